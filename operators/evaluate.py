"""Prequential evaluation: replay history through the same operators, in event time.

Each row is fed to the customer's :class:`CustomerLogic` (dedupe, journey,
features) exactly as in the flow.  At each scoring moment the model predicts
*before* it has learned anything from that customer's outcome; it learns only
once the label is known in event time:

- ``labels="file"``: the row's ``label`` is the case's outcome, known at its
  ``label_ts`` (rows at or after ``label_ts`` reveal the outcome and are
  skipped, never scored); a label without ``label_ts`` is known only at the end.
- ``labels="engine"``: the engine's own rule labels each snapshot
  (``label_mode`` cancel or inactivity, horizon H), as in the live flow.

``oracle`` (optional) gives a reference score for a customer, e.g. the
simulator's latent churn propensity, evaluated on the same snapshots.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from operators.customer import CustomerConfig, CustomerLogic
from operators.events import Event
from operators.metrics import expected_calibration_error, log_loss, roc_auc
from operators.records import Example, ScoreRequest

NEVER = 2**62


class Learner(Protocol):
    def predict_proba_one(self, x: dict[str, float]) -> float: ...

    def learn_one(self, x: dict[str, float], y: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Row:
    event: Event
    label: int | None = None
    label_ts: int | None = None  # None: known only at the end of the data


@dataclass
class Evaluation:
    scores: list[float] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    oracle: list[float] = field(default_factory=list)
    n_events: int = 0
    n_after_outcome: int = 0
    n_scored: int = 0
    n_learned: int = 0
    n_unlabelled: int = 0

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "roc_auc": _round(roc_auc(self.scores, self.labels)),
            "log_loss": _round(log_loss(self.scores, self.labels)),
            "ece": _round(expected_calibration_error(self.scores, self.labels)),
            "n_scored": self.n_scored,
            "n_evaluated": len(self.labels),
            "n_learned": self.n_learned,
            "n_events": self.n_events,
            "n_after_outcome": self.n_after_outcome,
            "positive_rate": _round(sum(self.labels) / len(self.labels)) if self.labels else None,
        }
        if self.oracle:
            out["oracle_roc_auc"] = _round(roc_auc(self.oracle, self.labels))
        return out


def _round(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 4)


class Evaluator:
    """Feeds rows in event-time order; call :meth:`finish` for the figures."""

    def __init__(
        self,
        learner: Learner,
        *,
        labels: str,
        horizon_ms: int,
        label_mode: str = "inactivity",
        score_every: int = 1,
        pending_cap: int = 64,
        oracle: Callable[[str], float | None] | None = None,
    ) -> None:
        if labels not in ("file", "engine"):
            raise ValueError(f"labels {labels!r}: use file or engine")
        self.learner = learner
        self.labels = labels
        self.oracle = oracle
        self.config = CustomerConfig(
            retention_s=math.inf,
            horizon_ms=horizon_ms,
            label_mode="external" if labels == "file" else label_mode,
            pending_cap=pending_cap,
            score_every=score_every,
            release="horizon",
        )
        self.customers: dict[str, CustomerLogic] = {}
        self.result = Evaluation()
        self._to_learn: list[tuple[int, int, dict[str, float], int]] = []  # file labels
        self._deadlines: list[tuple[int, str]] = []  # engine labels
        self._scored: dict[tuple[str, int], tuple[float, float | None]] = {}
        self._seq = 0

    def feed(self, row: Row) -> None:
        event = row.event
        r = self.result
        r.n_events += 1
        self._advance(event.ts)
        if row.label_ts is not None and event.ts >= row.label_ts:
            r.n_after_outcome += 1
            return
        logic = self.customers.get(event.key)
        if logic is None:
            logic = self.customers[event.key] = CustomerLogic(
                None, config=self.config, clock=lambda: 0.0
            )
        outputs, _ = logic.on_item(event)
        for out in outputs:
            if isinstance(out, Example):
                self._learn(out)
            elif isinstance(out, ScoreRequest):
                self._score(out, row)
        deadline = logic.next_deadline()
        if deadline is not None:
            heapq.heappush(self._deadlines, (deadline, event.key))

    def _score(self, req: ScoreRequest, row: Row) -> None:
        r = self.result
        p = self.learner.predict_proba_one(req.features)
        o = self.oracle(req.customer_id) if self.oracle else None
        r.n_scored += 1
        if self.labels == "file":
            if row.label is None:
                r.n_unlabelled += 1
                return
            self._record(p, row.label, o)
            self._seq += 1
            when = row.label_ts if row.label_ts is not None else NEVER
            heapq.heappush(self._to_learn, (when, self._seq, req.features, row.label))
        else:
            self._scored[(req.customer_id, req.event.ts)] = (p, o)

    def _record(self, p: float, y: int, o: float | None) -> None:
        self.result.scores.append(p)
        self.result.labels.append(y)
        if o is not None:
            self.result.oracle.append(o)

    def _learn(self, example: Example) -> None:
        scored = self._scored.pop((example.customer_id, example.snapshot_ts), None)
        if scored is not None:
            self._record(scored[0], example.label, scored[1])
        self.learner.learn_one(example.features, example.label)
        self.result.n_learned += 1

    def _advance(self, now: int) -> None:
        while self._to_learn and self._to_learn[0][0] <= now:
            _, _, x, y = heapq.heappop(self._to_learn)
            self.learner.learn_one(x, y)
            self.result.n_learned += 1
        while self._deadlines and self._deadlines[0][0] < now:
            _, key = heapq.heappop(self._deadlines)
            logic = self.customers[key]
            for example in logic.advance(now):
                self._learn(example)
            deadline = logic.next_deadline()
            if deadline is not None:
                heapq.heappush(self._deadlines, (deadline, key))

    def finish(self) -> dict[str, Any]:
        """The figures; snapshots whose label is still unknown at the end are left out."""
        return self.result.summary()
