"""A churn model refitted with numpy on a window of recent snapshots, censored ones included.

Labels are delayed by the horizon H: with ``CX_HORIZON_DAYS=90`` a snapshot's label is
known 90 days after it, so a model that learns only from matured examples is 90 days
behind the base rate and knows nothing for the first 90 days.  But much is known
before a label matures.  In *inactivity* mode the label is decided negative the moment
the customer comes back; in *cancel* mode positive the moment they cancel.  A snapshot
still waiting at age ``a`` tells that the deciding event (a return, a cancel) did not
happen in ``a``.  That is survival data, and :class:`HazardRefit` uses it as such:

- every scored snapshot enters a bounded window (``observe_snapshot``); the deciding
  event reaches it as soon as it happens (``observe_decision``), the matured label at the
  horizon (``learn_one``);
- every ``refit_every`` new records the window is refitted as a *discrete-time hazard
  model*: the horizon is cut into ``bins``; a snapshot contributes one row per bin it was
  at risk in (censored ones up to their age), and a logistic regression with L2 on
  standardised features, a baseline per bin (smoothed by a trend in log age, so bins no
  snapshot has reached yet are extrapolated) and a few Newton steps from the previous fit
  gives the hazard of each bin; ``P(deciding event within H) = 1 - prod(1 - h_j)``.
  A window of recent examples tracks a moving base rate and moving features without a
  drift detector: the model is always fitted to the last ``window`` snapshots.
- with external labels (a file's, known only at their time, ``event_label=None``) there is
  nothing to censor: one bin, matured examples only, which is a plain windowed logistic
  regression.

Before the window has evidence (at least ``min_events`` deciding events and labels of
both kinds) and while it has seen less than the whole horizon, the score is a blend with a
transparent *prior* over journey features (:func:`prior_logit`): recency against the
customer's own cadence, frequency, complaints, sentiment, payment failures.  ``stage``
says who is speaking: ``prior``, ``blend`` or ``learned``.

>>> m = HazardRefit(horizon_ms=10, event_label=1, bins=2, refit_every=50, min_events=5)
>>> m.stage, 0.0 < m.predict_proba_one({"complaints_open": 2.0}) < 1.0
('prior', True)
>>> for i in range(400):
...     x = {"a": float(i % 2)}
...     m.observe_snapshot(f"c{i}", i, x)
...     if i % 2:
...         m.observe_decision(f"c{i}", i, i + 1, 1)   # "a" customers cancel at once
>>> m.advance(420); m.stage
'learned'
>>> m.predict_proba_one({"a": 1.0}) > 0.9 > 0.1 > m.predict_proba_one({"a": 0.0})
True
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from operators.journey import FEATURE_NAMES

# One record of the window: [key, snapshot ts, fixed features, extra features,
# decided at (ts or None), label (or None), matured].
Record = list[Any]

PRIOR_RATE = 0.5  # the prior's base rate, before the window knows one
TREND_PENALTY = 0.01  # the baseline's level and log-age trend: nearly free
BIN_PENALTY = 30.0  # each bin's own deviation from the trend: shrunk hard
MAX_STEP = 2.0  # Newton steps are damped to this (log-odds) per coefficient
Z_CLIP = 6.0
# The fit is trusted alone once its window holds snapshots at risk for this share of
# the horizon; before, it is blended with the prior in proportion.
TRUST_COVERAGE = 1 / 3

# The prior: transparent log-odds contributions of journey features (a customer
# whose current gap is long for their own cadence, who buys or visits rarely, has open
# complaints, negative sentiment or failed payments is riskier).
PRIOR_WEIGHTS: dict[str, float] = {
    "gap_ratio_log": 0.3,
    "n_events_log": -0.35,
    "rate_log": -0.3,
    "complaints_open": 0.35,
    "contacts_7d": 0.2,
    "payment_failures_30d": 0.4,
    "sentiment": -0.8,
    "offers_declined": 0.15,
}
PRIOR_CENTRE: dict[str, float] = {"gap_ratio_log": math.log(2.0), "n_events_log": math.log(4.0)}


def prior_logit(x: Mapping[str, float]) -> float:
    """The prior's log-odds shift from the base rate, from the journey alone.

    >>> prior_logit({"complaints_open": 2.0}) > prior_logit({}) > prior_logit({"n_events_log": 3.0})
    True
    """
    z = 0.0
    for name, weight in PRIOR_WEIGHTS.items():
        value = x.get(name)
        if value is not None:
            z += weight * (value - PRIOR_CENTRE.get(name, 0.0))
    return max(-3.0, min(3.0, z))


_PRIOR_LOGIT = math.log(PRIOR_RATE / (1.0 - PRIOR_RATE))


def _sigmoid(z: float) -> float:
    if z < -30.0:
        return 0.0
    if z > 30.0:
        return 1.0
    return 1.0 / (1.0 + math.exp(-z))


class HazardRefit:
    """See the module docstring.  ``event_label``: the label the deciding event gives
    (1 in cancel mode, 0 in inactivity mode, None for external labels)."""

    family = "refit"

    def __init__(
        self,
        *,
        horizon_ms: int,
        event_label: int | None,
        bins: int = 6,
        window: int = 8192,
        refit_every: int = 256,
        l2: float = 1.0,
        extras: int = 24,
        min_events: int = 30,
        newton_steps: int = 3,
    ) -> None:
        if horizon_ms <= 0:
            raise ValueError(f"horizon {horizon_ms} ms: must be positive")
        if event_label not in (0, 1, None):
            raise ValueError(f"event_label {event_label!r}: use 0, 1 or None")
        self.horizon_ms = horizon_ms
        self.event_label = event_label
        self.bins = 1 if event_label is None else max(1, bins)
        self.window = window
        self.refit_every = refit_every
        self.l2 = l2
        self.extras = extras
        self.min_events = min_events
        self.newton_steps = newton_steps
        self.records: deque[Record] = deque()
        self.index: dict[tuple[str, int], Record] = {}
        self.since_fit = 0
        self.now = 0
        self.n_fits = 0
        # the fit: names, their weights on raw values (beta / sd), the offset, per-bin baseline
        self.names: tuple[str, ...] = ()
        self.beta: np.ndarray | None = None
        self.weights: dict[str, float] = {}
        self.means: dict[str, float] = {}
        self.offset = 0.0
        self.baseline: tuple[float, ...] = ()
        self.trust = 0.0  # 0: the prior speaks, 1: the fit
        self.base_rate = PRIOR_RATE  # the fitted mean P(churn) over the window

    # -- the window ------------------------------------------------------------------------

    def _add(self, key: str, ts: int, x: Mapping[str, float]) -> Record:
        fixed = np.fromiter((x.get(n, 0.0) for n in FEATURE_NAMES), float, len(FEATURE_NAMES))
        extra = tuple((k, v) for k, v in x.items() if k not in _FIXED and v)
        record: Record = [key, ts, fixed, extra, None, None, False]
        self.records.append(record)
        self.index[(key, ts)] = record
        while len(self.records) > self.window:
            old = self.records.popleft()
            if self.index.get((old[0], old[1])) is old:
                del self.index[(old[0], old[1])]
        self.since_fit += 1
        return record

    def observe_snapshot(self, key: str, ts: int, x: Mapping[str, float]) -> None:
        """A scored moment of customer ``key`` at event time ``ts`` (pending its label)."""
        if self.event_label is None:
            return  # external labels: nothing is known before they arrive
        self._tick(ts)
        if (key, ts) in self.index:
            return
        self._add(key, ts, x)

    def observe_decision(self, key: str, snapshot_ts: int, ts: int, label: int) -> None:
        """The snapshot's label was decided at ``ts`` (before the horizon)."""
        record = self.index.get((key, snapshot_ts))
        if record is not None and record[4] is None:
            record[4], record[5] = ts, label
        self._tick(ts)

    def learn_one(
        self,
        x: Mapping[str, float],
        y: int,
        *,
        key: str | None = None,
        snapshot_ts: int | None = None,
        label_ts: int | None = None,
    ) -> None:
        """A matured example; without ``key``/``snapshot_ts`` it enters as decided at
        the horizon (or at ``label_ts``)."""
        record = None if key is None or snapshot_ts is None else self.index.get((key, snapshot_ts))
        if record is None and key is not None and self.event_label is not None:
            # its snapshot was not kept, or has left the window: the window holds its
            # snapshots as they were at their time, censored ones included, and an old
            # example added at its end was measured to bias it (churn over-predicted
            # by 0.08 on a 90-day horizon)
            return
        if record is None:
            ts = snapshot_ts if snapshot_ts is not None else self.now
            record = self._add(key or "", ts, x)
            record[4] = label_ts if label_ts is not None else ts + self.horizon_ms
        elif record[4] is None:
            record[4] = label_ts if label_ts is not None else record[1] + self.horizon_ms
        record[5], record[6] = int(y), True
        self._tick(record[4])

    def advance(self, now: int) -> None:
        """Event time reached ``now`` (refits when due)."""
        self._tick(now)

    def _tick(self, now: int) -> None:
        if now > self.now:
            self.now = now
        if self.since_fit >= self.refit_every:
            self.refit()

    # -- the fit ---------------------------------------------------------------------------

    def _survival_rows(self) -> tuple[list[Record], np.ndarray, np.ndarray]:
        """The records that say something, each with its time at risk and whether the
        deciding event ended it (ages in ms, at most the horizon)."""
        h, now, e = self.horizon_ms, self.now, self.event_label
        used: list[Record] = []
        stops: list[float] = []
        events: list[bool] = []
        for r in self.records:
            decided, label = r[4], r[5]
            if e is None:  # external labels: matured ones, one bin
                if r[6]:
                    used.append(r)
                    stops.append(float(h))
                    events.append(bool(label))
                continue
            if decided is not None and label == e:  # the deciding event happened
                used.append(r)
                stops.append(float(min(h, max(0, decided - r[1]))))
                events.append(True)
            elif decided is not None:  # matured without it: at risk the whole horizon
                used.append(r)
                stops.append(float(h))
                events.append(False)
            else:
                age = now - r[1]
                if age <= h:  # censored at its age (older and never matured: dropped)
                    used.append(r)
                    stops.append(float(max(0, age)))
                    events.append(False)
        return used, np.asarray(stops), np.asarray(events, dtype=bool)

    def _vocabulary(self, used: list[Record]) -> tuple[str, ...]:
        counts: dict[str, int] = {}
        for r in used:
            for k, _ in r[3]:
                counts[k] = counts.get(k, 0) + 1
        floor = max(5, len(used) // 200)
        common = sorted((c, k) for k, c in counts.items() if c >= floor)[::-1][: self.extras]
        return FEATURE_NAMES + tuple(sorted(k for _, k in common))

    def refit(self) -> None:
        """Refit the window now."""
        self.since_fit = 0
        used, stops, events = self._survival_rows()
        n_events = int(events.sum())
        if len(used) < 2 * self.min_events or min(n_events, len(used) - n_events) < self.min_events:
            return
        names = self._vocabulary(used)
        extra_names = names[len(FEATURE_NAMES) :]
        fixed = np.vstack([r[2] for r in used])
        if extra_names:
            column = {k: j for j, k in enumerate(extra_names)}
            extra = np.zeros((len(used), len(extra_names)))
            for i, r in enumerate(used):
                for k, v in r[3]:
                    j = column.get(k)
                    if j is not None:
                        extra[i, j] = v
            raw = np.hstack([fixed, extra])
        else:
            raw = fixed
        mean = raw.mean(axis=0)
        sd = raw.std(axis=0)
        live = sd > 1e-9
        names = tuple(n for n, keep in zip(names, live, strict=True) if keep)
        mean, sd = mean[live], sd[live]
        z = np.clip((raw[:, live] - mean) / sd, -Z_CLIP, Z_CLIP)

        nb, h = self.bins, float(self.horizon_ms)
        edges = np.linspace(0.0, h, nb + 1)
        mids = np.log((edges[:-1] + edges[1:]) / 2.0 / h)
        blocks, targets, weights = [], [], []
        for j in range(nb):
            lo, hi = edges[j], edges[j + 1]
            at_risk = (stops > lo) | ((j == 0) & events)
            if not at_risk.any():
                continue
            hit = events & at_risk & (stops <= hi)
            exposure = (np.minimum(stops[at_risk], hi) - lo) / (hi - lo)
            design = np.zeros((int(at_risk.sum()), 2 + nb))
            design[:, 0] = 1.0
            design[:, 1] = mids[j]
            design[:, 2 + j] = 1.0
            blocks.append(np.hstack([design, z[at_risk]]))
            targets.append(hit[at_risk].astype(float))
            weights.append(np.where(hit[at_risk], 1.0, np.clip(exposure, 0.0, 1.0)))
        x_rows = np.vstack(blocks)
        y_rows = np.concatenate(targets)
        w_rows = np.concatenate(weights)
        if nb == 1:
            x_rows[:, 1:3] = 0.0  # one bin: the level alone
        penalty = np.concatenate(
            [[TREND_PENALTY, TREND_PENALTY], np.full(nb, BIN_PENALTY), np.full(len(names), self.l2)]
        )
        beta = self._start(names, 2 + nb)
        for _ in range(self.newton_steps):
            p = 1.0 / (1.0 + np.exp(-np.clip(x_rows @ beta, -30.0, 30.0)))
            gradient = x_rows.T @ (w_rows * (p - y_rows)) + penalty * beta
            hessian = (x_rows * (w_rows * p * (1.0 - p))[:, None]).T @ x_rows + np.diag(penalty)
            step = np.linalg.solve(hessian, gradient)
            largest = float(np.abs(step).max())
            beta = beta - (step if largest <= MAX_STEP else step * (MAX_STEP / largest))
        self.names, self.beta = names, beta
        coef = beta[2 + nb :]
        self.weights = {n: float(c / s) for n, c, s in zip(names, coef, sd, strict=True)}
        self.means = {n: float(m) for n, m in zip(names, mean, strict=True)}
        self.offset = float(-(coef * mean / sd).sum())
        self.baseline = tuple(float(beta[0] + beta[1] * mids[j] + beta[2 + j]) for j in range(nb))
        self.n_fits += 1
        # how far the window has seen: the longest time at risk observed, of the horizon
        seen = float(stops.max()) / h if len(stops) else 0.0
        self.trust = min(1.0, seen / TRUST_COVERAGE) if self.event_label is not None else 1.0
        self.base_rate = self._fitted_mean(z, coef)

    def _start(self, names: tuple[str, ...], n_base: int) -> np.ndarray:
        """The previous fit's coefficients for these names (a warm start), else zeros."""
        start = np.zeros(n_base + len(names))
        if self.beta is not None and len(self.beta) >= n_base:
            start[:n_base] = self.beta[:n_base]
            old = {n: i for i, n in enumerate(self.names)}
            for i, n in enumerate(names):
                j = old.get(n)
                if j is not None:
                    start[n_base + i] = self.beta[n_base + j]
        return start

    def _fitted(self, linear: float) -> float:
        """P(label = 1) for a linear predictor, from the per-bin hazards."""
        survive = 1.0
        for b in self.baseline:
            survive *= 1.0 - _sigmoid(b + linear)
        p_event = 1.0 - survive
        return p_event if self.event_label != 0 else survive

    def _fitted_mean(self, z: np.ndarray, coef: np.ndarray) -> float:
        linear = z @ coef
        survive = np.ones(len(linear))
        for b in self.baseline:
            survive *= 1.0 - 1.0 / (1.0 + np.exp(-np.clip(b + linear, -30.0, 30.0)))
        p = survive if self.event_label == 0 else 1.0 - survive
        return float(p.mean())

    # -- scoring ---------------------------------------------------------------------------

    @property
    def stage(self) -> str:
        return "prior" if self.trust <= 0.0 else "learned" if self.trust >= 1.0 else "blend"

    def linear_one(self, x: Mapping[str, float]) -> float:
        weights = self.weights
        linear = self.offset
        for name, value in x.items():
            w = weights.get(name)
            if w is not None:
                linear += w * value
        return linear

    def predict_proba_one(self, x: Mapping[str, float]) -> float:
        trust = self.trust
        prior = 0.0
        if trust < 1.0:
            prior = _sigmoid(_PRIOR_LOGIT + prior_logit(x))
            if trust <= 0.0:
                return prior
        fitted = self._fitted(self.linear_one(x))
        return fitted if trust >= 1.0 else trust * fitted + (1.0 - trust) * prior

    def contributions(self, x: Mapping[str, float]) -> dict[str, float]:
        """Each feature's push on the log-odds of churn against the window's average
        customer (positive: riskier); the prior's weights while it speaks."""
        if self.trust <= 0.0:
            return {
                n: w * (x[n] - PRIOR_CENTRE.get(n, 0.0)) for n, w in PRIOR_WEIGHTS.items() if n in x
            }
        # the hazard of the deciding event: a return lowers the risk of inactivity churn
        sign = -1.0 if self.event_label == 0 else 1.0
        means = self.means
        return {
            n: sign * w * (x.get(n, 0.0) - means[n]) for n, w in self.weights.items() if w != 0.0
        }

    def __len__(self) -> int:
        return len(self.records)

    def stats(self) -> dict[str, float | int | str]:
        return {
            "stage": self.stage,
            "trust": round(self.trust, 3),
            "fits": self.n_fits,
            "window": len(self.records),
            "base_rate": round(self.base_rate, 4),
        }


_FIXED = frozenset(FEATURE_NAMES)


def forget_keys(model: HazardRefit, keys: Iterable[str]) -> int:
    """Drop every window record of these customer keys (erasure); how many went."""
    gone = set(keys)
    kept = deque(r for r in model.records if r[0] not in gone)
    dropped = len(model.records) - len(kept)
    if dropped:
        model.records = kept
        model.index = {(r[0], r[1]): r for r in kept}
    return dropped
