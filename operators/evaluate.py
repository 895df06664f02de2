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

Yardsticks, in the same run and protocol: every journey feature of the fixed set used
alone as a score, its direction (riskier when higher or lower) chosen at each scoring
moment from the examples matured by then, never from the future (until both classes
have matured, the cold-start prior's direction: fewer events riskier, and so on); the
best of them and the model's lift over it; the AUC per month of event time, and apart
for the warm-up (snapshots scored while the model's ``stage`` was not ``learned``, or,
for a learner without one, before it had learned ``WARMUP`` examples); calibration as
ECE and a 10-bin reliability table.
"""

from __future__ import annotations

import heapq
import math
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from operators.customer import CustomerConfig, CustomerLogic
from operators.events import Event
from operators.journey import FEATURE_NAMES
from operators.metrics import calibration, expected_calibration_error, log_loss, roc_auc
from operators.records import Decided, Example, ScoreRequest
from operators.refit import PRIOR_WEIGHTS

NEVER = 2**62
# a feature's direction before any example has matured: the cold-start prior's
_PRIOR_LOWER = tuple(PRIOR_WEIGHTS.get(n, 0.0) < 0.0 for n in FEATURE_NAMES)
WARMUP = 500
# a snapshot scored, waiting for its label: score, oracle, single features, month, warm-up
_Scored = tuple[float, float | None, tuple[float, ...], str, bool]


class Learner(Protocol):
    def predict_proba_one(self, x: dict[str, float]) -> float: ...

    def learn_one(self, x: dict[str, float], y: int) -> None: ...


class CensoredLearner(Protocol):
    """A learner that also counts what is known before a label matures (ChurnModel)."""

    def predict_proba_one(self, x: dict[str, float]) -> float: ...

    def learn_one(
        self,
        x: dict[str, float],
        y: int,
        *,
        key: str | None = None,
        snapshot_ts: int | None = None,
        label_ts: int | None = None,
    ) -> None: ...

    def observe_snapshot(self, key: str, ts: int, x: dict[str, float]) -> None: ...

    def observe_decision(self, key: str, snapshot_ts: int, ts: int, label: int) -> None: ...

    def maintain(self) -> bool: ...


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
    singles: list[array[float]] = field(default_factory=lambda: [array("d") for _ in FEATURE_NAMES])
    periods: list[str] = field(default_factory=list)
    warm: list[bool] = field(default_factory=list)
    # silence moments (scored between events, engine labels): learned from like the rest,
    # reported apart so the figures above stay those of the log's own moments
    silence_scores: list[float] = field(default_factory=list)
    silence_labels: list[int] = field(default_factory=list)
    n_silences: int = 0

    def yardsticks(self) -> dict[str, Any]:
        s, y = self.scores, self.labels
        singles = {
            name: _round(roc_auc(list(col), y))
            for name, col in zip(FEATURE_NAMES, self.singles, strict=False)
        }
        ranked = sorted(((a, n) for n, a in singles.items() if a is not None), reverse=True)
        model_auc = _round(roc_auc(s, y))
        best_auc = ranked[0][0] if ranked else None
        best = {"name": ranked[0][1], "roc_auc": best_auc} if ranked else None
        by_period: dict[str, dict[str, Any]] = {}
        for period in sorted(set(self.periods)):
            idx = [i for i, p in enumerate(self.periods) if p == period]
            ps, ys = [s[i] for i in idx], [y[i] for i in idx]
            by_period[period] = {
                "n": len(idx),
                "roc_auc": _round(roc_auc(ps, ys)),
                "ece": _round(expected_calibration_error(ps, ys)),
                "positive_rate": _round(sum(ys) / len(ys)),
                "mean_score": _round(sum(ps) / len(ps)),
            }
        warm = [i for i, w in enumerate(self.warm) if w]
        late = [i for i, w in enumerate(self.warm) if not w]
        return {
            "best_single_feature": best,
            "lift_over_best_single": (
                round(model_auc - best_auc, 4)
                if best_auc is not None and model_auc is not None
                else None
            ),
            "single_feature_roc_auc": dict(ranked_items(singles)),
            "by_period": by_period,
            "warmup": {
                "n_scored": len(warm),
                "roc_auc": _round(roc_auc([s[i] for i in warm], [y[i] for i in warm])),
                "ece": _round(
                    expected_calibration_error([s[i] for i in warm], [y[i] for i in warm])
                ),
            },
            "after_warmup": {
                "n_scored": len(late),
                "roc_auc": _round(roc_auc([s[i] for i in late], [y[i] for i in late])),
                "ece": _round(
                    expected_calibration_error([s[i] for i in late], [y[i] for i in late])
                ),
            },
            "reliability": [
                {"mean_predicted": m, "observed": o, "n": n} for m, o, n in calibration(s, y)
            ],
        }

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
        if self.labels:
            out.update(self.yardsticks())
        if self.n_silences:
            s, y = self.silence_scores, self.silence_labels
            out["silence"] = {
                "n_scored": self.n_silences,
                "n_evaluated": len(y),
                "roc_auc": _round(roc_auc(s, y)),
                "ece": _round(expected_calibration_error(s, y)),
                "positive_rate": _round(sum(y) / len(y)) if y else None,
            }
        return out


def ranked_items(aucs: dict[str, float | None]) -> list[tuple[str, float | None]]:
    """Name and AUC, best first (unknown last)."""
    return sorted(aucs.items(), key=lambda kv: -1.0 if kv[1] is None else -kv[1])


def _month(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m")


def _round(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 4)


class Evaluator:
    """Feeds rows in event-time order; call :meth:`finish` for the figures."""

    def __init__(
        self,
        learner: Learner | CensoredLearner,
        *,
        labels: str,
        horizon_ms: int,
        label_mode: str = "inactivity",
        score_every: int = 1,
        pending_cap: int = 64,
        oracle: Callable[[str], float | None] | None = None,
        silence_ratio: float = 0.0,
    ) -> None:
        if labels not in ("file", "engine"):
            raise ValueError(f"labels {labels!r}: use file or engine")
        self.learner = learner
        self.censored: CensoredLearner | None = (
            learner if hasattr(learner, "observe_decision") else None  # type: ignore[assignment]
        )
        self.labels = labels
        self.oracle = oracle
        self.config = CustomerConfig(
            retention_s=math.inf,
            horizon_ms=horizon_ms,
            label_mode="external" if labels == "file" else label_mode,
            pending_cap=pending_cap,
            score_every=score_every,
            release="horizon",
            silence_ratio=silence_ratio,
        )
        self.customers: dict[str, CustomerLogic] = {}
        self.result = Evaluation()
        # file labels: (known at, order, customer, snapshot time, features, label)
        self._to_learn: list[tuple[int, int, str, int, dict[str, float], int]] = []
        self._deadlines: list[tuple[int, str]] = []  # engine labels
        self._scheduled: dict[str, int] = {}  # customer -> its live entry in _deadlines
        self._scored: dict[tuple[str, int], _Scored] = {}
        self._silent: dict[tuple[str, int], float] = {}  # silence moments awaiting labels
        # per fixed feature: sum and count of matured examples of each class (directions)
        self._sums = [[0.0, 0.0] for _ in FEATURE_NAMES]
        self._counts = [0, 0]
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
            elif isinstance(out, Decided) and self.censored is not None:
                self.censored.observe_decision(
                    out.customer_id, out.snapshot_ts, out.label_ts, out.label
                )
        if self.censored is not None:
            self.censored.maintain()
        self._schedule(event.key, logic)

    def _schedule(self, key: str, logic: CustomerLogic) -> None:
        """Keep one live heap entry per customer: its next deadline (a superseded entry
        is skipped when it comes up)."""
        deadline = logic.next_deadline()
        if deadline is not None and self._scheduled.get(key) != deadline:
            self._scheduled[key] = deadline
            heapq.heappush(self._deadlines, (deadline, key))

    def _score(self, req: ScoreRequest, row: Row | None) -> None:
        r = self.result
        p = self.learner.predict_proba_one(req.features)
        if self.censored is not None and self.labels == "engine":
            self.censored.observe_snapshot(req.customer_id, req.event.ts, req.features)
        if row is None:  # a silence moment: no row, labelled by the engine later
            r.n_silences += 1
            self._silent[(req.customer_id, req.event.ts)] = p
            return
        o = self.oracle(req.customer_id) if self.oracle else None
        r.n_scored += 1
        singles = self._singles(req.features)
        period = _month(req.event.ts)
        warm = self._warm()
        if self.labels == "file":
            if row.label is None:
                r.n_unlabelled += 1
                return
            self._record(p, row.label, o, singles, period, warm)
            self._seq += 1
            when = row.label_ts if row.label_ts is not None else NEVER
            heapq.heappush(
                self._to_learn,
                (when, self._seq, req.customer_id, req.event.ts, req.features, row.label),
            )
        else:
            self._scored[(req.customer_id, req.event.ts)] = (p, o, singles, period, warm)

    def _warm(self) -> bool:
        stage = getattr(self.learner, "stage", None)
        if isinstance(stage, str):
            return stage != "learned"
        return self.result.n_learned < WARMUP

    def _singles(self, x: dict[str, float]) -> tuple[float, ...]:
        """Each fixed feature as a score, its sign from the matured examples so far
        (before both classes have matured: the prior's sign, else higher is riskier)."""
        n0, n1 = self._counts
        out = []
        for name, (s0, s1), prior_lower in zip(
            FEATURE_NAMES, self._sums, _PRIOR_LOWER, strict=True
        ):
            v = x.get(name, 0.0)
            lower_is_riskier = s1 / n1 < s0 / n0 if n0 and n1 else prior_lower
            out.append(-v if lower_is_riskier else v)
        return tuple(out)

    def _seen(self, x: dict[str, float], y: int) -> None:
        self._counts[y] += 1
        for name, sums in zip(FEATURE_NAMES, self._sums, strict=True):
            sums[y] += x.get(name, 0.0)

    def _record(
        self,
        p: float,
        y: int,
        o: float | None,
        singles: tuple[float, ...],
        period: str,
        warm: bool,
    ) -> None:
        r = self.result
        r.scores.append(p)
        r.labels.append(y)
        for col, v in zip(r.singles, singles, strict=True):
            col.append(v)
        r.periods.append(period)
        r.warm.append(warm)
        if o is not None:
            r.oracle.append(o)

    def _learn(self, example: Example) -> None:
        key = (example.customer_id, example.snapshot_ts)
        scored = self._scored.pop(key, None)
        if scored is not None:
            self._record(scored[0], example.label, *scored[1:])
        elif key in self._silent:
            self.result.silence_scores.append(self._silent.pop(key))
            self.result.silence_labels.append(example.label)
        self._seen(example.features, example.label)
        if self.censored is not None:
            self.censored.learn_one(
                example.features,
                example.label,
                key=example.customer_id,
                snapshot_ts=example.snapshot_ts,
                label_ts=example.label_ts,
            )
        else:
            self.learner.learn_one(example.features, example.label)
        self.result.n_learned += 1

    def _advance(self, now: int) -> None:
        while self._to_learn and self._to_learn[0][0] <= now:
            when, _, key, snapshot_ts, x, y = heapq.heappop(self._to_learn)
            self._seen(x, y)
            if self.censored is not None:
                self.censored.learn_one(x, y, key=key, snapshot_ts=snapshot_ts, label_ts=when)
            else:
                self.learner.learn_one(x, y)
            self.result.n_learned += 1
        while self._deadlines and self._deadlines[0][0] < now:
            deadline, key = heapq.heappop(self._deadlines)
            if self._scheduled.get(key) != deadline:
                continue  # superseded
            del self._scheduled[key]
            logic = self.customers[key]
            for out in logic.advance(now):
                if isinstance(out, Example):
                    self._learn(out)
                elif isinstance(out, ScoreRequest):
                    self._score(out, None)
            self._schedule(key, logic)

    def finish(self) -> dict[str, Any]:
        """The figures; snapshots whose label is still unknown at the end are left out."""
        return self.result.summary()
