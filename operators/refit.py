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
- every ``refit_every`` new records (an eighth of the window once it is larger) the
  window is refitted as a *discrete-time hazard model*: the horizon is cut into
  ``bins``; a snapshot contributes one row per bin it was at risk in (censored ones up
  to their age), and a logistic regression with L2 on standardised features, a baseline
  per bin (smoothed by a trend in log age, so bins no snapshot has reached yet are
  extrapolated) and a few Newton steps from the previous fit gives the hazard of each
  bin; ``P(deciding event within H) = 1 - prod(1 - h_j)``.
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
import zlib
from collections import deque
from collections.abc import Callable, Generator, Iterable
from typing import Any, Final, TypeVar

import numpy as np
from mypy_extensions import mypyc_attr

from operators.journey import FEATURE_NAMES, fixed_values

# One record of the window: [key, snapshot ts, fixed features, extra features (dict),
# decided at (ts or None), label (or None), matured, mark (crc32 of key and ts),
# sample level (the record stands for 2**level snapshots)].
Record = list[Any]

PRIOR_RATE: Final = 0.5  # the prior's base rate before any label: then the labels' own rate
PRIOR_STRENGTH: Final = 2.0  # labels the PRIOR_RATE counts for against the labels seen
TREND_PENALTY: Final = 0.01  # the baseline's level: nearly free
# The baseline's trend in log age, centred on a hazard that halves as age doubles: a
# population of customers each with a steady rate of return (or cancel), the rates
# spread, has a falling hazard (the quick ones go first; a Pareto/NBD-like 1/age), and
# the window only sees ages up to its own span, so the horizon's far end is extrapolated.
# Measured on a purchase log, the first 90 days: flat (0 with no pull) ECE 0.22, this 0.11.
AGE_SLOPE: Final = -1.0
AGE_SLOPE_PENALTY: Final = 50.0
# L2 on the standardised features, per unit of weight in the fit (so it holds as
# much with a small window as with a full one).  Journey features come in near-copies
# (a rate, its count and the tenure; activity per channel and in all): weakly held, the
# fit swings along them from one refit to the next (a rate's weight +52, then -22) and
# extrapolates as the cohort ages.  Measured on a purchase log (90-day horizon), as an
# absolute penalty on a full window (about 13,000 units): 1 gave AUC 0.715, ECE 0.027;
# 10: 0.725; 200: 0.731, 0.017; 1000: 0.734, 0.024 but 0.005 less on simulated purchase
# logs; on the simulator 200 also gains (0.665 -> 0.674).
L2: Final = 0.015
MIN_SEEN: Final = 0.05  # the share of the horizon seen, floored here, divides the L2
BIN_PENALTY: Final = 30.0  # each bin's own deviation from the trend: shrunk hard
MAX_STEP: Final = 2.0  # Newton steps are damped to this (log-odds) per coefficient
MAX_HALVINGS: Final = 12  # a Newton step is halved at most this often before the fit stops
ARMIJO: Final = 1e-4  # a step must lower the loss by this share of what its slope promises
Z_CLIP: Final = 6.0
# The window thins rather than span fewer horizons than this (its oldest third then
# holds outcomes known whole, for the recalibration); measured on a purchase log, 1.5
# against 2: AUC 0.718 against 0.715, ECE 0.024 against 0.027.
SPAN: Final = 1.5
PLATT_MIN: Final = 200  # snapshots of known outcome before the fit is recalibrated
PLATT_PENALTY: Final = 5.0  # pulls the recalibration toward none
VOCABULARY_EVERY: Final = 8  # fits between two counts of the extra features' names
STALE_FITS: Final = 8  # without inline refits, a window this many refits overdue refits anyway
FIT_CHUNK: Final = 1024  # records a refit step reads, or rows of the fit it sums (see refit_step)
DESIGN_CHUNK: Final = 256  # records a refit step puts into the design (their extras: ~16 each)
MAX_LEVEL: Final = 12  # at most 1 snapshot in 4,096 is sampled
# The fit is trusted alone once its window holds snapshots at risk for this share of
# the horizon; before, it is blended with the prior in proportion.
TRUST_COVERAGE: Final = 1 / 3

# The prior: transparent log-odds contributions of journey features (a customer
# whose current gap is long for their own cadence, who buys or visits rarely, has open
# complaints, negative sentiment or failed payments is riskier).
PRIOR_WEIGHTS: Final[dict[str, float]] = {
    "gap_ratio_log": 0.3,
    "n_events_log": -0.35,
    "rate_log": -0.3,
    "complaints_open": 0.35,
    "contacts_7d": 0.2,
    "payment_failures_30d": 0.4,
    "sentiment": -0.8,
    "offers_declined": 0.15,
}
PRIOR_CENTRE: Final[dict[str, float]] = {
    "gap_ratio_log": math.log(2.0),
    "n_events_log": math.log(4.0),
}


def prior_terms(x: dict[str, float]) -> dict[str, float]:
    """Each known prior feature's push on the log-odds (a centred feature at 0 is not
    known yet: no gap before the first return).

    >>> prior_terms({"n_events_log": 0.0, "rate_log": 0.0, "other": 1.0})
    {'rate_log': -0.0}
    """
    terms = {}  # (one lookup a name, where ``name in x`` then ``x[name]`` made two or three)
    for name, weight in PRIOR_WEIGHTS.items():
        value = x.get(name)
        if value is None:
            continue
        centre = PRIOR_CENTRE.get(name)
        if centre is None:
            terms[name] = weight * value
        elif value:
            terms[name] = weight * (value - centre)
    return terms


def prior_logit(x: dict[str, float]) -> float:
    """The prior's log-odds shift from the base rate, from the journey alone.

    >>> prior_logit({"complaints_open": 2.0}) > prior_logit({}) > prior_logit({"n_events_log": 3.0})
    True
    """
    return max(-3.0, min(3.0, sum(prior_terms(x).values())))


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


_PRIOR_LOGIT: Final = _logit(PRIOR_RATE)


Loss = Callable[[np.ndarray], float]
Derivatives = Callable[[np.ndarray], tuple[float, np.ndarray, np.ndarray]]
# the same, computed in steps (a refit's, over blocks of rows: see HazardRefit.refit_step)
SteppedLoss = Callable[[np.ndarray], Generator[None, None, float]]
SteppedDerivatives = Callable[
    [np.ndarray], Generator[None, None, tuple[float, np.ndarray, np.ndarray]]
]
T = TypeVar("T")


def _newton(beta: np.ndarray, loss: Loss, derivatives: Derivatives, steps: int) -> np.ndarray:
    """At most ``steps`` Newton steps on a penalised loss, each damped to ``MAX_STEP`` on
    its largest coefficient and halved until the loss falls enough (Armijo's rule).

    Without the search, a fit warm-started from the previous refit cycled between two
    points (the gradient 1,163 then 6,315, then 1,163 again, refit after refit) on a
    window of file labels whose features come in exact sums (one-hot groups), and the
    recalibration cycled likewise (slope 0.25, then 0.4, then 0.25).

    A one-weight logistic regression with L2, started far out (25), where undamped
    Newton steps would run off:

    >>> x, y = np.array([-2.0, -1.0, 1.0, 2.0]), np.array([0.0, 1.0, 0.0, 1.0])
    >>> def loss(b):
    ...     return logistic_loss(b[0] * x, y, 1.0) + b[0] ** 2 / 2
    >>> def derivatives(b):
    ...     p = 1 / (1 + np.exp(-b[0] * x))
    ...     return loss(b), np.array([x @ (p - y) + b[0]]), np.array([[x**2 @ (p * (1 - p)) + 1]])
    >>> grid = np.linspace(-1.0, 1.0, 20001)
    >>> best = grid[np.argmin([loss([g]) for g in grid])]
    >>> bool(abs(_newton(np.array([25.0]), loss, derivatives, 20)[0] - best) < 1e-4)
    True
    """
    return _finish(_newton_steps(beta, _at_once(loss), _at_once(derivatives), steps))


def _finish(steps: Generator[None, None, T]) -> T:
    """A computation in steps, run to its end: its result."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            result: T = done.value
            return result


def _at_once(f: Callable[[np.ndarray], T]) -> Callable[[np.ndarray], Generator[None, None, T]]:
    """``f`` as a computation of no steps (for :func:`_newton_steps`)."""

    def steps(b: np.ndarray) -> Generator[None, None, T]:
        yield from ()
        return f(b)

    return steps


def _newton_steps(
    beta: np.ndarray, loss: SteppedLoss, derivatives: SteppedDerivatives, steps: int
) -> Generator[None, None, np.ndarray]:
    """:func:`_newton`, pausing (``yield``) after each step and inside each evaluation of
    the loss and its derivatives (their own steps); returns the coefficients."""
    value, gradient, hessian = yield from derivatives(beta)
    for i in range(steps):
        yield
        step: np.ndarray = np.linalg.solve(hessian, gradient)
        largest = float(np.abs(step).max())
        if largest > MAX_STEP:
            step *= MAX_STEP / largest
        for _ in range(MAX_HALVINGS):
            candidate: np.ndarray = beta - step
            new = yield from loss(candidate)
            if new <= value - ARMIJO * float(gradient @ step):  # lowered enough
                break
            step *= 0.5
        else:
            return beta  # no step lowers the loss: at its minimum, to float precision
        beta = candidate
        if i + 1 < steps:
            value, gradient, hessian = yield from derivatives(beta)
        else:
            value = new
    return beta


def logistic_loss(eta: np.ndarray, y: np.ndarray, w: np.ndarray | float) -> float:
    """The weighted log loss of log-odds ``eta`` against labels ``y`` (in nats)."""
    return float(np.sum(w * (np.logaddexp(0.0, eta) - y * eta)))


def _sigmoid(z: float) -> float:
    if z < -30.0:
        return 0.0
    if z > 30.0:
        return 1.0
    return 1.0 / (1.0 + math.exp(-z))


@mypyc_attr(native_class=False)
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
        l2: float = L2,
        extras: int = 24,
        min_events: int = 30,
        newton_steps: int = 3,
        inline_refit: bool = True,
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
        # refit as soon as due (in whatever call made it due); an owner that calls
        # refit() off the scoring path sets it False: then only a window far overdue
        # (STALE_FITS refits' worth) is refitted inline
        self.inline_refit = inline_refit
        self.records: deque[Record] = deque()
        self.index: dict[tuple[str, int], Record] = {}
        self.since_fit = 0
        self.now = 0
        self.level = 0  # the window keeps one snapshot in 2**level (see _bound)
        self.keyless = 0  # examples learned without a customer key
        self.n_fits = 0
        self.vocabulary: tuple[str, ...] = ()  # the names of the last count (_vocabulary)
        # the fit: names, their weights on raw values (beta / sd), the offset, per-bin baseline
        self.names: tuple[str, ...] = ()
        self.beta: np.ndarray | None = None
        self.weights: dict[str, float] = {}
        self.means: dict[str, float] = {}
        self.bounds: dict[str, tuple[float, float]] = {}
        self.offset = 0.0
        self.baseline: tuple[float, ...] = ()
        self.trust = 0.0  # 0: the prior speaks, 1: the fit
        self.platt = (0.0, 1.0)  # recalibration of the fit: logit p -> a + b logit p
        self.base_rate = PRIOR_RATE  # the fitted mean P(churn) over the window
        self.labels_seen = 0  # matured labels learned, and of them positive: the prior's
        self.positives_seen = 0  # base rate is theirs (it speaks before any fit)
        self.prior_offset = _PRIOR_LOGIT
        self._job: Generator[None, None, None] | None = None  # a refit under way

    # -- the window ------------------------------------------------------------------------

    def _add(self, key: str, ts: int, x: dict[str, float]) -> Record | None:
        """Keep this snapshot if the window's sample takes it (see :meth:`_bound`)."""
        if key:
            mark = zlib.crc32(f"{key}\x00{ts}".encode())
        else:  # an example without a customer: its place in the arrivals marks it
            self.keyless += 1
            mark = zlib.crc32(f"\x00{ts}\x00{self.keyless}".encode())
        if mark & ((1 << self.level) - 1):
            return None
        fixed = np.array(fixed_values(x))  # (a copy: a view would keep the array too)
        extra = {k: v for k, v in x.items() if k not in _FIXED and v}
        record: Record = [key, ts, fixed, extra, None, None, False, mark, self.level]
        self.records.append(record)
        self.index[(key, ts)] = record
        self.since_fit += 1
        self._bound()
        return record

    def _bound(self) -> None:
        """Hold the window to ``window`` records spanning at most ``SPAN`` horizons.

        A window of the last N snapshots spans less than the horizon when contacts are
        many: every fit would then extrapolate the return (or cancel) times it has never
        seen.  So while the full window spans less than ``SPAN`` horizons it is thinned
        instead of cut: the sample level goes up by one and only snapshots whose mark has
        one more low zero bit stay (half, deterministically, the same in every run and
        worker).  Once it spans more, the oldest go; when it holds under a quarter of its
        size the level comes down for new snapshots, each weighing ``2**level`` in the fit.
        """
        records, span = self.records, SPAN * self.horizon_ms
        if self.event_label is None:
            if len(records) > self.window + self.window // 4:  # sorted a quarter at a time
                self._keep_newest()
            return
        while len(records) > self.window:
            if self.now - records[0][1] < span and self.level < MAX_LEVEL:
                self.level += 1
                mask = (1 << self.level) - 1
                kept: deque[Record] = deque()
                for r in records:
                    if r[8] >= self.level or not r[7] & mask:
                        r[8] = max(r[8], self.level)
                        kept.append(r)
                    else:
                        self._unindex(r)
                self.records = records = kept
            else:
                self._pop()
        while records and self.now - records[0][1] > span:
            self._pop()
        if self.level and len(records) < self.window // 4:
            self.level -= 1

    def _keep_newest(self) -> None:
        """External labels: keep the ``window`` newest snapshots (by their own time) of
        known outcome.  Outcomes arrive late and out of order (a long case's first
        snapshots mature with its last), so the newest snapshots, not the newest arrivals,
        follow the present (measured on BPIC 2012 with a batch fit: AUC 0.716 against
        0.709)."""
        if len(self.records) <= self.window:
            return
        newest = sorted(self.records, key=lambda r: r[1])[-self.window :]
        for r in self.records:
            self._unindex(r)
        self.records = deque(newest)
        self.index.update(((r[0], r[1]), r) for r in newest)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if self._job is not None:  # a refit under way starts again after a restart
            state["_job"] = None
            state["since_fit"] = max(self.since_fit, self.cadence)
        return state

    def _pop(self) -> None:
        self._unindex(self.records.popleft())

    def _unindex(self, record: Record) -> None:
        """A record leaves the window: its index entry goes (unless a later one took it)."""
        if self.index.get((record[0], record[1])) is record:
            del self.index[(record[0], record[1])]

    def observe_snapshot(self, key: str, ts: int, x: dict[str, float]) -> None:
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
        x: dict[str, float],
        y: int,
        *,
        key: str | None = None,
        snapshot_ts: int | None = None,
        label_ts: int | None = None,
    ) -> None:
        """A matured example; without ``snapshot_ts`` it enters as decided now (or at
        ``label_ts``), seen a horizon before."""
        self.labels_seen += 1
        self.positives_seen += int(y)
        self.prior_offset = _logit(
            (self.positives_seen + PRIOR_RATE * PRIOR_STRENGTH)
            / (self.labels_seen + PRIOR_STRENGTH)
        )
        record = None if key is None or snapshot_ts is None else self.index.get((key, snapshot_ts))
        if record is None and key is not None and self.event_label is not None:
            # its snapshot was not kept, or has left the window: the window holds its
            # snapshots as they were at their time, censored ones included, and an old
            # example added at its end was measured to bias it (churn over-predicted
            # by 0.08 on a 90-day horizon)
            return
        if record is None:
            if snapshot_ts is None:  # known now (or at label_ts): seen a horizon before
                decided = label_ts if label_ts is not None else self.now
                ts = decided - self.horizon_ms
            else:
                ts = snapshot_ts
                decided = label_ts if label_ts is not None else ts + self.horizon_ms
            record = self._add(key or "", ts, x)
            if record is None:
                return  # not in the sample
            record[4] = decided
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
        if self.since_fit >= (self.cadence if self.inline_refit else STALE_FITS * self.cadence):
            self.refit()

    @property
    def cadence(self) -> int:
        """New records between two refits: ``refit_every``, or an eighth of the window
        once that is more (a refit passes over the whole window: refitting a full one
        every 256 records took 15.7% of the flow's profiled samples at 5,000 events/s,
        for fits that differ by 3% of their rows), or sooner while the window is young (once it
        has grown by a quarter), so the first fits come at once and the prior does not
        speak for a whole ``refit_every``."""
        n = len(self.records)
        return min(max(self.refit_every, n // 8), max(self.min_events, n // 4))

    @property
    def due(self) -> bool:
        """Whether a refit is due or under way (:meth:`refit_step` off the scoring path)."""
        return self._job is not None or self.since_fit >= self.cadence

    # -- the fit ---------------------------------------------------------------------------

    def _survival_rows(
        self,
    ) -> Generator[None, None, tuple[list[Record], np.ndarray, np.ndarray, np.ndarray]]:
        """The records that say something, each with its time at risk, whether the
        deciding event ended it (ages in ms, at most the horizon) and its weight; a step
        per :data:`FIT_CHUNK` records.  The records are the window's at the start, its
        sample level the start's; each is read when its step reaches it (a decision may
        have come meanwhile)."""
        h, now, e, level = self.horizon_ms, self.now, self.event_label, self.level
        used: list[Record] = []
        stops: list[float] = []
        events: list[bool] = []
        weights: list[float] = []
        for i, r in enumerate(list(self.records)):
            if i % FIT_CHUNK == FIT_CHUNK - 1:
                yield
            decided, label = r[4], r[5]
            if e is None:  # external labels: matured ones, one bin
                if not r[6]:
                    continue
                stop, event = float(h), bool(label)
            elif decided is not None and label == e:  # the deciding event happened
                stop, event = float(min(h, max(0, decided - r[1]))), True
            elif decided is not None:  # matured without it: at risk the whole horizon
                stop, event = float(h), False
            else:
                age = now - r[1]
                if age > h:  # censored at its age (older and never matured: dropped)
                    continue
                stop, event = float(max(0, age)), False
            used.append(r)
            stops.append(stop)
            events.append(event)
            weights.append(2.0 ** (r[8] - level))
        sample = np.asarray(weights, dtype=float)
        return used, np.asarray(stops), np.asarray(events, dtype=bool), sample

    def _vocabulary(self, used: list[Record]) -> Generator[None, None, tuple[str, ...]]:
        """The fixed features and the ``extras`` commonest others; counted at each of the
        first ``VOCABULARY_EVERY`` fits (while the window fills, new names come fast),
        then every ``VOCABULARY_EVERY`` fits (a pass over every record's features: a third
        of a refit's time on a full window), the same in between.  A step per
        :data:`FIT_CHUNK` records counted."""
        if self.vocabulary and self.n_fits >= VOCABULARY_EVERY and self.n_fits % VOCABULARY_EVERY:
            return self.vocabulary
        counts: dict[str, int] = {}
        for i, r in enumerate(used):
            if i % FIT_CHUNK == FIT_CHUNK - 1:
                yield
            for k in r[3]:
                counts[k] = counts.get(k, 0) + 1
        floor = max(5, len(used) // 200)
        common = sorted((c, k) for k, c in counts.items() if c >= floor)[::-1][: self.extras]
        self.vocabulary = FEATURE_NAMES + tuple(sorted(k for _, k in common))
        return self.vocabulary

    def refit(self) -> None:
        """Refit the window now (a fit under way by :meth:`refit_step` is finished)."""
        while self.refit_step():
            pass

    def refit_step(self) -> bool:
        """One bounded part of a refit, starting one if none is under way; whether the
        refit goes on.  The steps fit the window's records as they were when the refit
        started; what came since waits for the next.  Every pass over the records goes
        :data:`FIT_CHUNK` of them a step (the rows, the vocabulary, each evaluation of
        the loss and its derivatives, the recalibration's labels), :data:`DESIGN_CHUNK`
        for the design; the steps between passes work on the fit's arrays whole (their
        means, the predictions, the two-weight recalibration), the external labels'
        sort of the window in the first.  Measured on a full window: a whole refit held
        the model step for 40 to 67 ms, and steps of a pass each took up to 8 ms (a
        contact arriving then waited as long) before they were cut by records, at most
        about 2.5 ms since; the new fit is put in place at once, at the last step."""
        if self._job is None:
            self._job = self._fit()
        try:
            next(self._job)
        except StopIteration:
            self._job = None
            return False
        return True

    def _fit(self) -> Generator[None, None, None]:
        self.since_fit = 0
        if self.event_label is None:
            self._keep_newest()
        used, stops, events, sample = yield from self._survival_rows()
        n_events = int(events.sum())
        if len(used) < 2 * self.min_events or min(n_events, len(used) - n_events) < self.min_events:
            return
        yield
        names = yield from self._vocabulary(used)
        yield
        extra_names = names[len(FEATURE_NAMES) :]
        column = {k: j for j, k in enumerate(extra_names)}
        n_rec = len(used)
        raw = np.zeros((n_rec, len(names)))
        nfixed = len(FEATURE_NAMES)
        for start in range(0, n_rec, DESIGN_CHUNK):
            chunk = used[start : start + DESIGN_CHUNK]
            raw[start : start + len(chunk), :nfixed] = [r[2] for r in chunk]
            if extra_names:  # a record holds ~16 extras; the names are 24
                at_row: list[int] = []
                at_column: list[int] = []
                values: list[float] = []
                for i, r in enumerate(chunk, start):
                    for k, v in r[3].items():
                        j = column.get(k)
                        if j is not None:
                            at_row.append(i)
                            at_column.append(nfixed + j)
                            values.append(v)
                raw[at_row, at_column] = values  # (one assignment: one numpy call, not each)
            yield
        mean = raw.mean(axis=0)
        sd = raw.std(axis=0)
        yield
        live = sd > 1e-9
        names = tuple(n for n, keep in zip(names, live, strict=True) if keep)
        mean, sd = mean[live], sd[live]
        z = np.clip((raw[:, live] - mean) / sd, -Z_CLIP, Z_CLIP)
        yield

        nb, h = self.bins, float(self.horizon_ms)
        edges = np.linspace(0.0, h, nb + 1)
        mids = np.log((edges[:-1] + edges[1:]) / 2.0 / h)
        # The fit on one row per snapshot and bin at risk, without making the rows: a
        # snapshot's bins share its features, so the features' gradient and Hessian need
        # only per-snapshot sums over its bins (N x F work, not rows x (F + bins)): 6x
        # faster on a full window, the same numbers.
        w = np.zeros((n_rec, nb))  # each snapshot's weight in each bin (0: not at risk)
        y = np.zeros((n_rec, nb))
        for j in range(nb):
            lo, hi = edges[j], edges[j + 1]
            at_risk = (stops > lo) | ((j == 0) & events)
            hit = events & at_risk & (stops <= hi)
            exposure = np.clip((np.minimum(stops, hi) - lo) / (hi - lo), 0.0, 1.0)
            w[:, j] = np.where(at_risk, np.where(hit, 1.0, exposure) * sample, 0.0)
            y[:, j] = hit
        # the baseline's design, one row per bin: level, trend in log age, the bin's own
        design = np.zeros((nb, 2 + nb))
        design[:, 0] = 1.0
        design[:, 1] = mids
        design[:, 2:] = np.eye(nb)
        if nb == 1:
            design[:, 1:] = 0.0  # one bin: the level alone
        # how far the window has seen: the longest time at risk observed, of the horizon
        seen = float(stops.max()) / h if len(stops) else 0.0
        nf = len(names)
        penalty = np.concatenate(
            [
                [TREND_PENALTY, TREND_PENALTY],
                np.full(nb, BIN_PENALTY),
                np.full(nf, self.l2 * float(w.sum()) / max(seen, MIN_SEEN)),
            ]
        )
        centre = np.zeros(len(penalty))
        if nb > 1:  # hazards fall with age (see AGE_SLOPE) unless the window shows otherwise
            centre[1], penalty[1] = AGE_SLOPE, AGE_SLOPE_PENALTY
        beta = self._start(names, 2 + nb)
        fit = _HazardLoss(z, y, w, design, penalty, centre, FIT_CHUNK)

        yield
        beta = yield from _newton_steps(beta, fit.loss, fit.derivatives, self.newton_steps)
        yield
        coef = beta[2 + nb :]
        baseline = tuple(float(beta[0] + beta[1] * mids[j] + beta[2 + j]) for j in range(nb))
        fitted = self._fitted_many(z @ coef, baseline)
        platt = yield from self._recalibration(used, fitted, sample)
        a, b = platt
        q = np.clip(fitted, 1e-6, 1.0 - 1e-6)
        base_rate = float((1.0 / (1.0 + np.exp(-(a + b * np.log(q / (1.0 - q)))))).mean())
        # the new fit, put in place at once (a contact scored between two steps of this
        # refit was scored by the previous fit, whole)
        self.names, self.beta = names, beta
        self.weights = {n: float(c / s) for n, c, s in zip(names, coef, sd, strict=True)}
        self.means = {n: float(m) for n, m in zip(names, mean, strict=True)}
        # scoring clips each value to the range the fit saw (z within Z_CLIP): a value far
        # out in a tail is not extrapolated to a certainty (measured on a purchase log:
        # without, the top 1% of scores read 0.99 and churned 42%)
        self.bounds = {
            n: (float(m - Z_CLIP * s), float(m + Z_CLIP * s))
            for n, m, s in zip(names, mean, sd, strict=True)
        }
        self.offset = float(-(coef * mean / sd).sum())
        self.baseline = baseline
        self.n_fits += 1
        self.trust = min(1.0, seen / TRUST_COVERAGE) if self.event_label is not None else 1.0
        self.platt = platt
        self.base_rate = base_rate

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
        """P(label = 1) for a linear predictor, from the per-bin hazards (one value of
        :meth:`_fitted_many`, without numpy: this is the contact path)."""
        survive = 1.0
        for b in self.baseline:
            survive *= 1.0 - _sigmoid(b + linear)
        p_event = 1.0 - survive
        return p_event if self.event_label != 0 else survive

    def _fitted_many(self, linear: np.ndarray, baseline: tuple[float, ...]) -> np.ndarray:
        survive = np.ones(len(linear))
        for b in baseline:
            survive *= 1.0 - 1.0 / (1.0 + np.exp(-np.clip(b + linear, -30.0, 30.0)))
        return survive if self.event_label == 0 else 1.0 - survive

    def _recalibration(
        self, used: list[Record], p: np.ndarray, sample: np.ndarray
    ) -> Generator[None, None, tuple[float, float]]:
        """Platt scaling on the window's snapshots older than the horizon, whose outcomes
        are all known: logit p -> a + b logit p, pulled toward none (the current one if
        too few are known).  The hazard model extrapolates the horizon's far end and can
        be off by a steady margin there.  A step per :data:`FIT_CHUNK` records read."""
        if self.event_label is None:
            return self.platt  # external labels: every record is matured and in the fit
        h, now = self.horizon_ms, self.now
        known = np.zeros(len(used), dtype=bool)
        labels: list[float] = []
        for i, r in enumerate(used):
            if i % FIT_CHUNK == FIT_CHUNK - 1:
                yield
            label = r[5]
            if label is not None and now - r[1] >= h:
                known[i] = True
                labels.append(float(label))
        if len(labels) < PLATT_MIN:
            return self.platt
        y = np.asarray(labels, dtype=float)
        if min(y.sum(), len(y) - y.sum()) < PLATT_MIN / 4:
            return self.platt
        yield
        q = np.clip(p[known], 1e-6, 1.0 - 1e-6)
        design = np.column_stack([np.ones(len(q)), np.log(q / (1.0 - q))])
        w = sample[known]
        prior = np.array([0.0, 1.0])
        penalty = np.full(2, PLATT_PENALTY)

        platt = _PlattLoss(design, y, w, prior, penalty)
        beta = _newton(np.asarray(self.platt, dtype=float), platt.loss, platt.derivatives, 4)
        return (float(np.clip(beta[0], -3.0, 3.0)), float(np.clip(beta[1], 0.25, 4.0)))

    # -- scoring ---------------------------------------------------------------------------

    @property
    def stage(self) -> str:
        return "prior" if self.trust <= 0.0 else "learned" if self.trust >= 1.0 else "blend"

    def linear_one(self, x: dict[str, float]) -> float:
        weights, bounds = self.weights, self.bounds
        linear = self.offset
        for name, value in x.items():
            w = weights.get(name)
            if w is not None:
                lo, hi = bounds[name]
                linear += w * (lo if value < lo else hi if value > hi else value)
        return linear

    def predict_proba_one(self, x: dict[str, float]) -> float:
        trust = self.trust
        prior = 0.0
        if trust < 1.0:
            prior = _sigmoid(self.prior_offset + prior_logit(x))
            if trust <= 0.0:
                return prior
        fitted = self._fitted(self.linear_one(x))
        a, b = self.platt
        if a or b != 1.0:
            q = min(max(fitted, 1e-6), 1.0 - 1e-6)
            fitted = _sigmoid(a + b * math.log(q / (1.0 - q)))
        return fitted if trust >= 1.0 else trust * fitted + (1.0 - trust) * prior

    def contributions(self, x: dict[str, float]) -> dict[str, float]:
        """Each feature's push on the log-odds of churn against the window's average
        customer (positive: riskier); the prior's weights while it speaks."""
        if self.trust <= 0.0:
            return prior_terms(x)
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
            "prior_rate": round(_sigmoid(self.prior_offset), 4),
            "fits": self.n_fits,
            "window": len(self.records),
            "base_rate": round(self.base_rate, 4),
        }


class _HazardLoss:
    """The hazard fit's penalised loss over a window, its gradient and Hessian (sums
    over the snapshots' rows), a step per ``chunk`` rows (:meth:`HazardRefit.refit_step`).

    ``z``: the standardised features, a row per snapshot; ``y`` and ``w``: each snapshot's
    event and weight in each bin; ``design``: the baseline's, a row per bin."""

    def __init__(
        self,
        z: np.ndarray,
        y: np.ndarray,
        w: np.ndarray,
        design: np.ndarray,
        penalty: np.ndarray,
        centre: np.ndarray,
        chunk: int,
    ) -> None:
        self.z, self.y, self.w, self.design = z, y, w, design
        self.penalty, self.centre = penalty, centre
        self.nbase = design.shape[1]
        n = len(z)
        self.blocks = [slice(lo, min(lo + chunk, n)) for lo in range(0, n, chunk)]

    def loss(self, b: np.ndarray) -> Generator[None, None, float]:
        nbase, z, y, w = self.nbase, self.z, self.y, self.w
        base = self.design @ b[:nbase]
        value = 0.0
        for rows in self.blocks:
            eta = base[None, :] + (z[rows] @ b[nbase:])[:, None]
            value += logistic_loss(eta, y[rows], w[rows])
            yield
        d = b - self.centre
        return value + 0.5 * float(self.penalty @ (d * d))

    def derivatives(
        self, b: np.ndarray
    ) -> Generator[None, None, tuple[float, np.ndarray, np.ndarray]]:
        nbase, z, y, w, design = self.nbase, self.z, self.y, self.w, self.design
        nb, nf = design.shape[0], z.shape[1]
        base = design @ b[:nbase]
        value = 0.0
        by_bin_r, by_bin_v = np.zeros(nb), np.zeros(nb)
        grad_z = np.zeros(nf)
        cross_v = np.zeros((nb, nf))
        hess_z = np.zeros((nf, nf))
        for rows in self.blocks:
            zr = z[rows]
            eta = base[None, :] + (zr @ b[nbase:])[:, None]
            wr, yr = w[rows], y[rows]
            value += logistic_loss(eta, yr, wr)
            p = 1.0 / (1.0 + np.exp(-np.clip(eta, -30.0, 30.0)))
            r = wr * (p - yr)
            v = wr * p * (1.0 - p)
            by_bin_r += r.sum(axis=0)
            by_bin_v += v.sum(axis=0)
            grad_z += zr.T @ r.sum(axis=1)
            cross_v += v.T @ zr
            hess_z += (zr * v.sum(axis=1)[:, None]).T @ zr
            yield
        penalty = self.penalty
        d = b - self.centre
        gradient = np.concatenate([design.T @ by_bin_r, grad_z])
        gradient += penalty * d
        hessian = np.empty((nbase + nf, nbase + nf))
        hessian[:nbase, :nbase] = (design * by_bin_v[:, None]).T @ design
        cross = design.T @ cross_v
        hessian[:nbase, nbase:] = cross
        hessian[nbase:, :nbase] = cross.T
        hessian[nbase:, nbase:] = hess_z
        hessian += np.diag(penalty)
        return value + 0.5 * float(penalty @ (d * d)), gradient, hessian


class _PlattLoss:
    """The recalibration's penalised loss, gradient and Hessian (logit p -> a + b logit p
    on the snapshots of known outcome, pulled toward ``prior``)."""

    def __init__(
        self,
        design: np.ndarray,
        y: np.ndarray,
        w: np.ndarray,
        prior: np.ndarray,
        penalty: np.ndarray,
    ) -> None:
        self.design, self.y, self.w, self.prior, self.penalty = design, y, w, prior, penalty

    def loss(self, b: np.ndarray) -> float:
        d = b - self.prior
        return logistic_loss(self.design @ b, self.y, self.w) + 0.5 * float(self.penalty @ (d * d))

    def derivatives(self, b: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        design, y, w, penalty = self.design, self.y, self.w, self.penalty
        fit = 1.0 / (1.0 + np.exp(-np.clip(design @ b, -30.0, 30.0)))
        gradient = design.T @ (w * (fit - y)) + penalty * (b - self.prior)
        hessian = (design * (w * fit * (1.0 - fit))[:, None]).T @ design + np.diag(penalty)
        return self.loss(b), gradient, hessian


_FIXED: Final = frozenset(FEATURE_NAMES)


def forget_keys(model: HazardRefit, keys: Iterable[str]) -> int:
    """Drop every window record of these customer keys (erasure); how many went."""
    gone = set(keys)
    if model._job is not None:  # a refit under way holds their snapshots: it starts again
        model._job = None
        model.since_fit = max(model.since_fit, model.cadence)
    kept = deque(r for r in model.records if r[0] not in gone)
    dropped = len(model.records) - len(kept)
    if dropped:
        model.records = kept
        model.index = {(r[0], r[1]): r for r in kept}
    return dropped
