"""Churn models: a champion, an optional challenger, and their evidence.

The champion (``champion="refit"``, the default) is :class:`operators.refit.HazardRefit`:
a hazard model refitted with numpy on a window of recent snapshots, pending ones
included as censored, with a transparent prior while the window has little evidence
(see that module).  It needs the scored snapshots and the early decisions
(:meth:`ChurnModel.observe_snapshot`, :meth:`ChurnModel.observe_decision`) and the
label mode (``cancel``, ``inactivity``, or ``external`` for labels from a file).

With labels from a file the refit keeps no censored snapshots and reads more of the
journey's event types (see ``_FILE_LABELS``).

``champion="logreg"`` is the online model of earlier
versions, a bucketed logistic regression: a global River
``StandardScaler | LogisticRegression`` (fused in :class:`ScaledLogReg`) plus one
per *bucket* (the latest activity type of the snapshot), used once the bucket has
seen ``bucket_min`` examples.  The challenger, when enabled, is a River adaptive random forest.

Labels arrive late and in bursts (every snapshot of a customer matures when the
outcome is known), which throws SGD about.  Matured examples therefore go
through a :class:`ReplayBuffer` and are learned in random order; the buffer
grows with experience (a quarter of what was seen, at most ``replay_size``) so
learning starts at once.

Every matured example is first scored by the champion (test, then train) into a
sliding window: exact ROC AUC, log loss and calibration, and ADWIN on its loss
to report drift.  One matured example in ``challenger_every`` is also scored by
the challenger, and by the champion into a paired window; the challenger is
promoted when its windowed AUC beats the champion's on those same examples by
``promote_margin``.

>>> m = ChurnModel(challenger=None, champion="logreg", seed=1)
>>> m.predict_proba_one({"a": 1.0})
0.5
>>> for i in range(2000):
...     m.learn_one({"a": float(i % 2)}, i % 2)
>>> m.predict_proba_one({"a": 1.0}) > 0.8 > 0.2 > m.predict_proba_one({"a": 0.0})
True
>>> m.version
'logreg-1@2000'
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Container, Iterable
from typing import Any, Final, Protocol

from mypy_extensions import mypyc_attr
from river import drift, forest

from operators.metrics import expected_calibration_error, log_loss, paired_auc_z, roc_auc
from operators.refit import HazardRefit, forget_keys

DAY_MS: Final = 86_400_000
EVENT_LABEL: Final = {"cancel": 1, "inactivity": 0, "external": None}  # the deciding event's label

WINDOW: Final = 2000
# A promotion needs this many of each class in the paired window, the challenger's AUC
# ahead by DeLong's statistic at least PROMOTE_Z besides the margin (one-sided 0.13%),
# and both to hold at every check over PROMOTE_HOLD new paired examples (half a window,
# so the evidence is not one lucky window).  Labels are rare (3% positive in the
# simulator), and with a handful of positives a window's AUC is noise: at 1,000,000
# simulated events the forest was promoted on the margin alone over a champion at AUC
# 0.30 (on a window holding a few positives) that was 0.67 to 0.79 against the forest's
# 0.50 to 0.72 for the rest of the run, and made the engine 40% slower.  Two scorers of
# equal quality (10% positives, checked every 50 examples) swapped places 4 to 8 times in
# 20,000 on the margin alone and 10 times in 10 runs of 30,000 with z >= 2.33; at 5%
# positives and the defaults' cadence, 2 times in 6 runs of 200,000 with z >= 3, and
# never once the evidence had to hold.
PROMOTE_MIN_CLASS = 50
PROMOTE_Z = 3.0
PROMOTE_HOLD = WINDOW // 2
# Scores the champion gave at scored moments whose labels are pending (the evidence of
# their example, out of sample): at most this many, the oldest dropped first, and none
# older than two horizons (a label matures within one; about 230 bytes each, pickled
# into a recovery snapshot with the model).  A dropped one is scored when it matures.
KEPT_SCORES: Final = 100_000


class OnlineModel(Protocol):
    family: str

    def predict_proba_one(self, x: dict[str, float]) -> float: ...

    def learn_one(self, x: dict[str, float], y: int) -> None: ...


INTERCEPT_LR: Final = 0.01  # River's LogisticRegression default
# The refit for labels from a file (``label_mode="external"``): every snapshot of a case
# matures at once when its outcome is known, the journey's event types carry the signal,
# and nothing is censored.  A window of the 32,768 newest snapshots of known outcome, the
# 256 commonest extra features (the event types, their recency, the last transition),
# refitted every 2,048 new outcomes.  On BPIC 2012: AUC 0.720, ECE 0.041, against the
# online bucketed model's 0.700 and 0.037; 24 extras gave 0.675 (the event types left out).
_FILE_LABELS: Final = {"window": 32_768, "extras": 256, "refit_every": 2_048}


@mypyc_attr(native_class=False)
class ScaledLogReg:
    """River's ``StandardScaler() | LogisticRegression(optimizer=SGD(lr), l2=l2)``, fused.

    The same arithmetic (Welford mean and variance, then SGD on the log loss of the
    standardised features, the intercept at River's 0.01), in one pass over the
    features with one small list per feature instead of five dicts and a pipeline:
    learning costs ~8 us instead of ~30, scoring ~3 instead of ~8 (32 features).
    ``tests/operators/test_churn.py`` checks it against River's pipeline.

    >>> m = ScaledLogReg(learning_rate=0.1)
    >>> for i in range(200):
    ...     m.learn_one({"a": float(i % 2)}, i % 2)
    >>> m.predict_proba_one({"a": 1.0}) > 0.5 > m.predict_proba_one({"a": 0.0})
    True
    """

    __slots__ = ("intercept", "l2", "learning_rate", "stats")

    def __init__(self, *, learning_rate: float, l2: float = 0.0) -> None:
        self.learning_rate = learning_rate
        self.l2 = l2
        self.intercept = 0.0
        # feature -> [count, mean, variance, standard deviation, weight]
        self.stats: dict[str, list[float]] = {}

    def __getstate__(self) -> tuple[float, float, float, dict[str, list[float]]]:
        return self.learning_rate, self.l2, self.intercept, self.stats

    def __setstate__(self, state: tuple[float, float, float, dict[str, list[float]]]) -> None:
        self.learning_rate, self.l2, self.intercept, self.stats = state

    def raw_one(self, x: dict[str, float]) -> float:
        """The log-odds of ``x``."""
        stats = self.stats
        dot = 0.0
        for name, xi in x.items():
            s = stats.get(name)
            if s is not None and s[3]:
                dot += s[4] * ((xi - s[1]) / s[3])
        return dot + self.intercept

    def predict_proba_one(self, x: dict[str, float]) -> float:
        raw = self.raw_one(x)
        if raw < -30:  # River's sigmoid
            return 0.0
        if raw > 30:
            return 1.0
        return 1.0 / (1.0 + math.exp(-raw))

    def learn_one(self, x: dict[str, float], y: int) -> None:
        stats = self.stats
        touched: list[list[float]] = []
        scaled: list[float] = []
        dot = 0.0
        for name, xi in x.items():
            s = stats.get(name)
            if s is None:
                s = stats[name] = [0.0, 0.0, 0.0, 0.0, 0.0]
            n = s[0] + 1.0
            d = xi - s[1]
            mean = s[1] + d / n
            var = s[2] + (d * (xi - mean) - s[2]) / n
            s[0], s[1], s[2] = n, mean, var
            if var:
                std = s[3] = math.sqrt(var)
                z = (xi - mean) / std
                dot += s[4] * z
            else:
                s[3] = z = 0.0
            touched.append(s)
            scaled.append(z)
        # River's log-loss gradient, labels mapped to -1/+1
        sign = 1.0 if y else -1.0
        margin = (dot + self.intercept) * sign
        if margin > 18.0:
            gradient = math.exp(-margin) * -sign
        elif margin < -18.0:
            gradient = -sign
        else:
            gradient = -sign / (math.exp(margin) + 1.0)
        self.intercept -= INTERCEPT_LR * gradient
        rate, l2 = self.learning_rate, self.l2
        for s, z in zip(touched, scaled, strict=True):
            s[4] -= rate * (gradient * z + l2 * s[4]) if l2 else rate * (gradient * z)

    def contributions(self, x: dict[str, float]) -> dict[str, float]:
        """Each feature's share of the log-odds (weight x standardised value)."""
        stats = self.stats
        out: dict[str, float] = {}
        for name, xi in x.items():
            s = stats.get(name)
            out[name] = s[4] * ((xi - s[1]) / s[3]) if s is not None and s[3] else 0.0
        return out


@mypyc_attr(native_class=False)
class BucketedLogReg:
    """A global logistic regression plus one per bucket (the snapshot's ``last:`` feature)."""

    family = "logreg"

    def __init__(
        self,
        *,
        learning_rate: float = 0.005,
        l2: float = 0.0,
        bucket_min: int = 200,
        blend: bool = True,
    ) -> None:
        self.learning_rate = learning_rate
        self.l2 = l2
        self.bucket_min = bucket_min
        self.blend = blend
        self.global_model = ScaledLogReg(learning_rate=learning_rate, l2=l2)
        self.buckets: dict[str, ScaledLogReg] = {}
        self.counts: dict[str, int] = {}

    @staticmethod
    def bucket(x: dict[str, float]) -> str:
        for k in x:  # a plain loop; no fixed feature name starts with "l"
            if k[0] == "l" and k.startswith("last:"):
                return k
        return ""

    def _model_for(self, x: dict[str, float]) -> ScaledLogReg:
        key = self.bucket(x)
        if self.counts.get(key, 0) >= self.bucket_min:
            return self.buckets[key]
        return self.global_model

    def predict_proba_one(self, x: dict[str, float]) -> float:
        model = self._model_for(x)
        p = model.predict_proba_one(x)
        if self.blend and model is not self.global_model:
            p = (p + self.global_model.predict_proba_one(x)) / 2
        return p

    def learn_one(self, x: dict[str, float], y: int) -> None:
        key = self.bucket(x)
        model = self.buckets.get(key)
        if model is None:
            model = self.buckets[key] = ScaledLogReg(learning_rate=self.learning_rate, l2=self.l2)
        model.learn_one(x, y)
        self.counts[key] = self.counts.get(key, 0) + 1
        self.global_model.learn_one(x, y)

    def contributions(self, x: dict[str, float]) -> dict[str, float]:
        """Each feature's share of the log-odds (weight x standardised value)."""
        return self._model_for(x).contributions(x)


@mypyc_attr(native_class=False)
class ForestChallenger:
    """River's adaptive random forest (trees with their own drift detectors).

    ``features``, when given, are the only ones it sees (the journey's fixed set:
    ``operators.journey.FEATURE_NAMES``).  River's trees follow a missing feature's
    most common path by summing the weights of its subtrees, so sparse features
    (one per event type) make every walk longer as the trees grow: at 1,000,000
    events the forest was 43% of the bare loop.  On 300,000 simulated events the
    fixed set cost 4.7 s against 6.3 at the same windowed AUC (0.55 to 0.60 against
    0.50 to 0.60).

    Its leaves predict their class frequencies (``leaf_prediction="mc"``) rather
    than choosing between those and a naive Bayes per leaf (River's default,
    ``"nba"``, which keeps a Gaussian per feature and class in every leaf): on the
    same events and fixed features 4.7 s against 5.9, windowed AUC 0.58 to 0.63
    against 0.55 to 0.60.
    """

    family = "arf"

    def __init__(
        self, *, n_models: int = 5, seed: int = 7, features: Iterable[str] | None = None
    ) -> None:
        self.model = forest.ARFClassifier(n_models=n_models, seed=seed, leaf_prediction="mc")
        self.features = None if features is None else frozenset(features)

    def _x(self, x: dict[str, float]) -> dict[str, float]:
        keep = self.features
        return x if keep is None else {k: v for k, v in x.items() if k in keep}

    def predict_proba_one(self, x: dict[str, float]) -> float:
        return float(self.model.predict_proba_one(self._x(x)).get(True, 0.0))

    def learn_one(self, x: dict[str, float], y: int) -> None:
        self.model.learn_one(self._x(x), bool(y))


@mypyc_attr(native_class=False)
class ReplayBuffer:
    """Releases matured examples in random order; holds min(size, seen/4) at most."""

    def __init__(self, *, size: int = 5000, seed: int = 7) -> None:
        self.size = size
        self.rng = random.Random(seed)
        self.items: list[tuple[dict[str, float], int]] = []
        self.seen = 0

    def add(self, x: dict[str, float], y: int) -> list[tuple[dict[str, float], int]]:
        self.seen += 1
        self.items.append((x, y))
        out = []
        while len(self.items) > min(self.size, max(16, self.seen // 4)):
            i = self.rng.randrange(len(self.items))
            self.items[i], self.items[-1] = self.items[-1], self.items[i]
            out.append(self.items.pop())
        return out


@mypyc_attr(native_class=False)
class Scorecard:
    """A sliding window of (score, label) from test-then-train, and what it says."""

    def __init__(self, size: int = WINDOW) -> None:
        self.scores: deque[float] = deque(maxlen=size)
        self.labels: deque[int] = deque(maxlen=size)

    def add(self, p: float, y: int) -> None:
        self.scores.append(p)
        self.labels.append(y)

    def copy(self) -> Scorecard:
        card = Scorecard(self.scores.maxlen or WINDOW)
        card.scores.extend(self.scores)
        card.labels.extend(self.labels)
        return card

    def auc(self) -> float:
        return roc_auc(list(self.scores), list(self.labels))

    def summary(self) -> dict[str, float | None]:
        s, y = list(self.scores), list(self.labels)
        return {
            "roc_auc": _clean(roc_auc(s, y)),
            "log_loss": _clean(log_loss(s, y)),
            "ece": _clean(expected_calibration_error(s, y)),
            "window": float(len(s)),
        }


def _clean(v: float) -> float | None:
    """A metric as reported: 4 decimals, None if undefined (NaN)."""
    return None if math.isnan(v) else round(v, 4)


@mypyc_attr(native_class=False)
class ChurnModel:
    """The churn model of one model shard: champion, challenger, replay, evidence."""

    def __init__(
        self,
        *,
        challenger: str | None = "arf",
        promote_margin: float = 0.02,
        promote_min: int = 500,
        check_every: int = 250,
        replay_size: int = 5000,
        seed: int = 7,
        challenger_every: int = 16,
        challenger_features: Iterable[str] | None = None,
        champion: str = "auto",
        label_mode: str = "cancel",
        horizon_ms: int = 30 * DAY_MS,
        refit_window: int | None = None,
    ) -> None:
        if champion not in ("auto", "refit", "logreg"):
            raise ValueError(f"champion {champion!r}: use auto, refit or logreg")
        if champion == "auto":
            champion = "refit"
        if label_mode not in EVENT_LABEL:
            raise ValueError(f"label mode {label_mode!r}: use cancel, inactivity or external")
        if challenger_every < 1:
            raise ValueError(f"challenger_every {challenger_every}: must be at least 1")
        # The challenger is scored on one matured example in `challenger_every` (its
        # evidence) and learns from one in `challenger_every`: a forest costs ~10x the
        # champion to train and ~2x to score.
        self.challenger_every = challenger_every
        self.replayed = 0
        self.champion: OnlineModel = (
            HazardRefit(
                horizon_ms=horizon_ms,
                event_label=EVENT_LABEL[label_mode],
                inline_refit=False,  # maintain() refits, off the scoring path
                **(_FILE_LABELS if label_mode == "external" else {}),
                **({} if refit_window is None else {"window": refit_window}),
            )
            if champion == "refit"
            else BucketedLogReg()
        )
        self.challenger: OnlineModel | None = (
            ForestChallenger(seed=seed, features=challenger_features)
            if challenger == "arf"
            else None
        )
        if challenger not in (None, "arf"):
            raise ValueError(f"challenger {challenger!r}: use arf or none")
        self.explainer = self.champion  # keeps the linear view for reasons after a promotion
        self.replay = ReplayBuffer(size=replay_size, seed=seed)
        self.promote_margin = promote_margin
        self.promote_min = promote_min
        self.check_every = check_every
        self.generation = 1
        self.n_learned = 0
        self.n_positive = 0
        self.drifts = 0
        self.promotions = 0
        self.adwin = drift.ADWIN()
        self.champion_card = Scorecard()  # the champion on every matured example
        self.challenger_card = Scorecard()  # the challenger on one in challenger_every
        self.paired_card = Scorecard()  # the champion on those same examples
        self.evidence_since: int | None = None  # paired examples when the evidence began
        # (customer, snapshot time) -> the champion's score then, until its label matures
        self.kept_scores: dict[tuple[str, int], float] = {}
        self.kept_max = KEPT_SCORES
        self.kept_for_ms = 2 * horizon_ms

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A model pickled before 0.9.7 (a recovery store) kept no scores."""
        state.setdefault("kept_scores", {})
        state.setdefault("kept_max", KEPT_SCORES)
        state.setdefault("kept_for_ms", 60 * DAY_MS)
        self.__dict__.update(state)

    def _windows(self) -> list[HazardRefit]:
        """The refitted models among champion, challenger and explainer."""
        out: list[HazardRefit] = []
        for m in (self.champion, self.challenger, self.explainer):
            if isinstance(m, HazardRefit) and m not in out:
                out.append(m)
        return out

    def observe_snapshot(
        self, key: str, ts: int, x: dict[str, float], p: float | None = None
    ) -> None:
        """A scored moment (its label pending): the refitted model keeps it, censored;
        ``p``, the champion's score of it, is kept for its example's evidence."""
        for m in self._windows():
            m.observe_snapshot(key, ts, x)
        if p is not None and key:
            kept = self.kept_scores
            kept.setdefault((key, ts), p)  # (two at one time: the first, as the window)
            oldest = ts - self.kept_for_ms  # (a dict keeps insertion order: oldest first)
            while kept and (len(kept) > self.kept_max or next(iter(kept))[1] < oldest):
                del kept[next(iter(kept))]

    def observe_decision(self, key: str, snapshot_ts: int, ts: int, label: int) -> None:
        """A pending snapshot's label was decided at ``ts``, before the horizon."""
        for m in self._windows():
            m.observe_decision(key, snapshot_ts, ts, label)

    def maintain(self, *, whole: bool = True) -> bool:
        """Refit what is due (off the scoring path); whether anything was refitted.
        ``whole=False``: one bounded step of each refit under way (the flow's model step
        between its activations, see :meth:`HazardRefit.refit_step`)."""
        refitted = False
        for m in self._windows():
            if m.due:
                if whole:
                    m.refit()
                else:
                    m.refit_step()
                refitted = True
        return refitted

    def due(self) -> bool:
        return any(m.due for m in self._windows())

    def forget(self, key: str) -> int:
        """Drop a customer's snapshots from the window, and their kept scores (erasure)."""
        self.forget_scores((key,))
        return sum(forget_keys(m, (key,)) for m in self._windows())

    def forget_scores(self, keys: Container[str]) -> None:
        """Drop the kept scores of these customers (erased ones, at a resume)."""
        kept = self.kept_scores
        for k in [k for k in kept if k[0] in keys]:
            del kept[k]

    @property
    def stage(self) -> str:
        """Who speaks: ``prior``, ``blend`` or ``learned`` (the online champion: learned
        once it has learned ``promote_min`` examples, else prior)."""
        champion = self.champion
        if isinstance(champion, HazardRefit):
            return champion.stage
        return "learned" if self.n_learned >= self.promote_min else "prior"

    @property
    def version(self) -> str:
        return f"{self.champion.family}-{self.generation}@{self.n_learned}"

    def predict_proba_one(self, x: dict[str, float]) -> float:
        return self.champion.predict_proba_one(x)

    def learn_one(
        self,
        x: dict[str, float],
        y: int,
        *,
        key: str | None = None,
        snapshot_ts: int | None = None,
        label_ts: int | None = None,
    ) -> None:
        """A matured example: score it with each model (the evidence), then learn.

        The champion's evidence (its card, its loss for drift) is the score it gave at
        the snapshot, kept by :meth:`observe_snapshot` (out of sample: a refit since
        then may have fitted this very snapshot's outcome, known to the window before
        its example comes; a demo run with 60 days of history sent at once read AUC
        0.91 on its first 560 labels scored at maturity, 0.63 scored at the snapshot,
        the truth's about 0.69); scored now when none was kept.  The paired window that
        a promotion is judged on scores both models now, alike.  The refitted model
        takes it into its window at once (matched to its snapshot by ``key`` and
        ``snapshot_ts`` when given); the online ones through the replay.
        """
        kept = (
            self.kept_scores.pop((key, snapshot_ts), None)
            if key is not None and snapshot_ts is not None
            else None
        )
        paired = self.challenger is not None and self.n_learned % self.challenger_every == 0
        now = self.champion.predict_proba_one(x) if kept is None or paired else kept
        p = now if kept is None else kept
        self.champion_card.add(p, y)
        loss = -math.log(max(1e-7, p if y else 1.0 - p))
        self.adwin.update(loss)
        if self.adwin.drift_detected:
            self.drifts += 1
        if paired:  # (like for like: both scored at maturity)
            assert self.challenger is not None
            self.challenger_card.add(self.challenger.predict_proba_one(x), y)
            self.paired_card.add(now, y)
        for m in self._windows():
            m.learn_one(x, y, key=key, snapshot_ts=snapshot_ts, label_ts=label_ts)
        for xx, yy in self.replay.add(x, y):
            if not isinstance(self.champion, HazardRefit):
                self.champion.learn_one(xx, yy)
            self.replayed += 1
            if self.challenger is not None and self.replayed % self.challenger_every == 0:
                self.challenger.learn_one(xx, yy)
            explainer = self.explainer
            if (
                explainer is not self.champion
                and explainer is not self.challenger
                and not isinstance(explainer, HazardRefit)
            ):
                explainer.learn_one(xx, yy)
        self.n_learned += 1
        self.n_positive += int(y)
        if self.challenger is not None and self.n_learned % self.check_every == 0:
            self._maybe_promote()

    def _maybe_promote(self) -> None:
        assert self.challenger is not None
        if not self._challenger_ahead():
            self.evidence_since = None
            return
        paired = -(-self.n_learned // self.challenger_every)  # paired examples so far
        if self.evidence_since is None:
            self.evidence_since = paired
        if paired - self.evidence_since < PROMOTE_HOLD:
            return
        self.evidence_since = None
        self.champion, self.challenger = self.challenger, self.champion
        self.kept_scores.clear()  # (the former champion's)
        # the new champion's window starts from its paired evidence
        self.champion_card = self.challenger_card.copy()
        self.challenger_card, self.paired_card = self.paired_card, self.challenger_card
        self.generation += 1
        self.promotions += 1

    def _challenger_ahead(self) -> bool:
        """Whether the paired window says the challenger ranks better, beyond noise."""
        labels = self.challenger_card.labels
        if len(labels) < self.promote_min:
            return False
        positives = sum(labels)
        if min(positives, len(labels) - positives) < PROMOTE_MIN_CLASS:
            return False
        champion_auc, challenger_auc, z = paired_auc_z(
            self.paired_card.scores, self.challenger_card.scores, labels
        )
        return challenger_auc - champion_auc >= self.promote_margin and z >= PROMOTE_Z

    def contributions(self, x: dict[str, float]) -> dict[str, float]:
        """Per-feature log-odds parts from the linear model (also after a promotion),
        against the average customer: positive pushes the risk up, negative holds it down."""
        explainer = self.explainer
        assert isinstance(explainer, (BucketedLogReg, HazardRefit))  # (no union per call)
        return explainer.contributions(x)

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "n_learned": self.n_learned,
            "positive_rate": round(self.n_positive / self.n_learned, 4) if self.n_learned else 0.0,
            "champion": self.champion.family,
            "generation": self.generation,
            "drifts": self.drifts,
            "promotions": self.promotions,
        }
        out["stage"] = self.stage
        for m in self._windows():
            out.update({f"refit_{k}": v for k, v in m.stats().items() if k != "stage"})
        out.update(self.champion_card.summary())
        if self.challenger is not None:
            out["challenger"] = self.challenger.family
            out.update({f"challenger_{k}": v for k, v in self.challenger_card.summary().items()})
        return out
