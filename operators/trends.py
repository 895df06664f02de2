"""Trends: complaint and contact rates per topic, channel and queue, watched by an
online anomaly detector; a spike becomes a ``trend`` alert for supervisors.

The customer step emits a :class:`Signal` for every new (not duplicate)
``complaint`` and ``contact_start``.  :func:`trend_keys` fans a signal out to
its series, one per dimension: ``complaints|topic=outage``,
``complaints|channel=chat``, ``contacts|queue=care`` ...  A
:class:`TrendLogic` per series counts signals in event-time buckets (the
window cut in :data:`BUCKETS`) and keeps the sliding-window count: the last
buckets, the newest still filling.  At every bucket close, once a
whole window has passed, it learns its baseline: the exponentially weighted
mean and variance of the window count (half-life a day of event time; the
weight of a new count is the larger of the fading factor and 1/n, so the
first hours are an equal-weight mean rather than the first count for a day).
After the warm-up a count is learnt clipped at the alarm level, so a spike does
not teach the baseline that spikes are normal, while a lasting shift still
moves it.

A spike is a window count that is at least ``min_count``, at least ``ratio``
times the baseline, and ``threshold`` deviations above it, where the deviation
is the larger of the learned one and Poisson's (the square root of the mean):
a quiet series is not alarmed by noise, a noisy one by its usual noise.  It is
checked at every signal, so a spike is reported at the signal that makes it,
within the window it starts in; once per episode (the series re-arms when the
count falls back under half the threshold at a bucket close).  The alert
carries the evidence: count, baseline, deviation, and the latest example
events (ids, channel, type, topic, queue, sentiment: no customer id, no text,
so an erasure has nothing to sweep here).

>>> cfg = TrendConfig(window_ms=60_000, warmup_windows=1)
>>> series = TrendLogic(None, config=cfg, clock=lambda: 0.0, keep_snapshots=False)
>>> def at(ts, i):
...     signal = Signal("complaints", ts, f"e{i}", "chat", None, "outage", None)
...     return ("complaints|topic=outage", signal)
>>> quiet = [series.on_item(at(t * 10_000, t)) for t in range(60)]  # one a 10 s: 6 a window
>>> [a for out, _ in quiet for a in out]
[]
>>> burst = [series.on_item(at(600_000 + i * 500, 100 + i)) for i in range(40)]
>>> alerts = [a for out, _ in burst for a in out]
>>> len(alerts), alerts[0].payload["kind"], alerts[0].payload["trend"]["baseline"]
(1, 'trend', 6.08)
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from operators.alerts import alert_id
from operators.events import Event
from operators.logic import DISCARD, RETAIN, Logic
from operators.records import Alert, Signal
from operators.values import NUMBER

DAY_MS: Final = 86_400_000
BUCKETS: Final = 12  # a window is 12 buckets: it slides by a twelfth
EXAMPLES: Final = 5  # example events an alert carries
MAX_LABEL: Final = 64  # a queue or topic longer than this is cut (they name series)

METRICS: Final = {"complaint": "complaints", "contact_start": "contacts"}


@dataclass(frozen=True, slots=True, kw_only=True)
class TrendConfig:
    """``window_ms``: the sliding window (CX_TREND_WINDOW_MIN); ``threshold``: deviations
    above the baseline (CX_TREND_THRESHOLD); ``min_count``: signals in the window before
    anything is a spike (CX_TREND_MIN_COUNT); ``ratio``: times the baseline;
    ``warmup_windows``: windows of learned baseline before the first alarm (learning
    starts once one whole window has passed); ``halflife_ms``: the
    baseline's memory (event time); ``idle_s``: wall time after which a silent series is
    dropped."""

    window_ms: int = 3_600_000
    threshold: float = 5.0
    min_count: int = 10
    ratio: float = 2.0
    warmup_windows: int = 24  # a day at the default window
    halflife_ms: int = DAY_MS
    idle_s: float = 7 * 86_400.0

    @property
    def bucket_ms(self) -> int:
        return max(1, self.window_ms // BUCKETS)

    @property
    def fading(self) -> float:
        """The weight of a new count in the baseline, once past the first counts: an old
        count's weight halves every ``halflife_ms``."""
        return float(1.0 - 0.5 ** (self.bucket_ms / self.halflife_ms))


def signal_of(event: Event) -> Signal | None:
    """The event's signal, if it is a complaint or a contact.

    >>> e = Event("e1", "c1", None, 5, "chat", "complaint", {"topic": "billing", "sentiment": -0.5})
    >>> signal_of(e).metric, signal_of(e).topic, signal_of(e).sentiment
    ('complaints', 'billing', -0.5)
    """
    metric = METRICS.get(event.type)
    if metric is None:
        return None
    attrs = event.attrs
    queue, topic, sentiment = attrs.get("queue"), attrs.get("topic"), attrs.get("sentiment")
    return Signal(
        metric,
        event.ts,
        event.event_id,
        event.channel,
        queue[:MAX_LABEL] if isinstance(queue, str) and queue else None,
        topic[:MAX_LABEL] if isinstance(topic, str) and topic else None,
        float(sentiment) if isinstance(sentiment, NUMBER) else None,
    )


def trend_keys(signal: Signal, topics: Collection[str] = ()) -> list[tuple[str, TrendItem]]:
    """The series a signal counts in: its channel, queue and topic.  A topic outside
    ``topics`` (the configured map) counts as ``other``, so a channel cannot open
    series without end.

    >>> s = Signal("contacts", 0, "e1", "voice", "care", "billing", None)
    >>> [k for k, _ in trend_keys(s, {"billing"})]
    ['contacts|channel=voice', 'contacts|queue=care', 'contacts|topic=billing']
    >>> [k for k, _ in trend_keys(s, {"outage"})][-1]
    'contacts|topic=other'
    """
    m = signal.metric
    names = [f"{m}|channel={signal.channel}"]
    if signal.queue is not None:
        names.append(f"{m}|queue={signal.queue}")
    if signal.topic is not None:
        names.append(f"{m}|topic={signal.topic if signal.topic in topics else 'other'}")
    return [(name, (name, signal)) for name in names]


def trend_keys_batch(
    signals: list[Signal], topics: Collection[str] = ()
) -> list[tuple[str, TrendItem]]:
    """:func:`trend_keys` of a batch of signals, in one call.

    >>> s = Signal("complaints", 0, "e1", "web", None, None, None)
    >>> [k for k, _ in trend_keys_batch([s, s])]
    ['complaints|channel=web', 'complaints|channel=web']
    """
    out: list[tuple[str, TrendItem]] = []
    for signal in signals:
        out.extend(trend_keys(signal, topics))
    return out


TrendSnapshot = tuple[Any, ...]


TrendItem = tuple[str, Signal]  # (series, signal): the step is keyed by series


class TrendLogic(Logic[TrendItem, Alert, TrendSnapshot]):
    """One series' sliding count and baseline, in Bytewax's ``on_item``/``snapshot`` shape."""

    def __init__(
        self,
        resume: TrendSnapshot | None,
        *,
        config: TrendConfig,
        clock: Callable[[], float],
        keep_snapshots: bool = True,
    ) -> None:
        self.config = config
        self.clock = clock
        self.keep_snapshots = keep_snapshots
        self.counts: deque[int]  # window counts per bucket, the newest (still filling) last
        self.examples: deque[Signal]  # the latest signals, newest last
        if resume:
            (
                series,
                start,
                counts,
                mean,
                var,
                closes,
                alarmed,
                examples,
                late,
                signals,
                touched,
            ) = resume
            # (one typed assignment each: from the snapshot's values, they would be
            # ``Any``, and the compiled build's arithmetic on them generic calls)
            self.series: str = str(series)
            self.start: int = int(start)
            self.mean: float = float(mean)
            self.var: float = float(var)
            self.closes: int = int(closes)
            self.alarmed: bool = bool(alarmed)
            self.late: int = int(late)
            self.signals: int = int(signals)
            self.touched_at: float = float(touched)
            self.counts = deque(counts, maxlen=BUCKETS)
            self.total = sum(self.counts)
            self.examples = deque(examples, maxlen=EXAMPLES)
        else:
            self.series = ""
            self.start = -1  # event time at which the newest bucket opened
            self.counts = deque([0] * BUCKETS, maxlen=BUCKETS)
            self.total = 0  # sum(self.counts): the window count
            self.mean = 0.0  # baseline: exponentially weighted mean of the window count
            self.var = 0.0  # ... and variance
            self.closes = 0  # buckets closed
            self.alarmed = False
            self.examples = deque(maxlen=EXAMPLES)
            self.late = 0  # signals older than the window
            self.signals = 0  # signals counted
            self.touched_at = clock()

    def on_item(self, value: TrendItem) -> tuple[Iterable[Alert], bool]:
        return self.observe(*value), RETAIN

    def observe(self, series: str, signal: Signal) -> list[Alert]:
        """Count one signal of ``series``; the alert if it makes a spike."""
        self.series = series
        self.touched_at = self.clock()
        bucket_ms = self.config.bucket_ms
        ts = signal.ts
        if self.start < 0:
            self.start = ts - ts % bucket_ms
        if ts >= self.start + bucket_ms:
            self._close_until(ts)
        back = (self.start - ts + bucket_ms - 1) // bucket_ms if ts < self.start else 0
        if back >= BUCKETS:
            self.late += 1
            return []
        self.counts[BUCKETS - 1 - back] += 1
        self.total += 1
        self.signals += 1
        self.examples.append(signal)
        if self.alarmed or self.closes - BUCKETS < self.config.warmup_windows * BUCKETS:
            return []
        count = self.total
        check = self.check(count)
        if check is None:
            return []
        self.alarmed = True
        return [self._alert(signal, count, *check)]

    def check(self, count: int) -> tuple[float, float, float] | None:
        """(baseline, deviation, z) when ``count`` is a spike, else None."""
        cfg = self.config
        mean = self.mean
        sd = math.sqrt(max(self.var, mean, 1.0))
        z = (count - mean) / sd
        if count >= cfg.min_count and count >= cfg.ratio * mean and z >= cfg.threshold:
            return mean, sd, z
        return None

    def _close_until(self, ts: int) -> None:
        """Close the buckets before the one holding ``ts``, learning from each.

        Once the window is empty and the weights have reached the fading factor,
        the rest of a silence is learnt at once: k closes of an empty window take
        the mean to ``mean * a**k`` and the variance to
        ``a**k * (var + mean**2 * (1 - a**k))``, with ``a = 1 - fading``.
        """
        bucket_ms = self.config.bucket_ms
        steps = (ts - self.start) // bucket_ms
        self.start += steps * bucket_ms
        fading = self.config.fading
        half = self.config.threshold / 2
        clip_after = self.config.warmup_windows * BUCKETS
        counts = self.counts
        total = self.total
        while steps > 0:
            n = self.closes + 1 - BUCKETS  # this close's learned count (first window: none)
            if total == 0 and n > 0 and fading * n > 1.0:
                a = (1.0 - fading) ** steps
                self.var = a * (self.var + self.mean * self.mean * (1.0 - a))
                self.mean *= a
                self.closes += steps
                self.alarmed = False  # an empty window is no spike
                counts.extend([0] * min(steps, BUCKETS))
                break
            self.closes += 1
            steps -= 1
            if n > 0:
                weight = fading if fading * n > 1.0 else 1.0 / n
                sd = math.sqrt(max(self.var, self.mean, 1.0))
                # Learnt clipped at the alarm level (after the warm-up): a spike does
                # not teach the baseline that spikes are normal; a lasting shift still
                # moves it.
                count = (
                    min(total, self.mean + self.config.threshold * sd) if n > clip_after else total
                )
                diff = count - self.mean
                self.mean += weight * diff
                self.var = (1.0 - weight) * (self.var + weight * diff * diff)
                if self.alarmed and (total - self.mean) / sd < half:
                    self.alarmed = False
            oldest: int = counts[0]  # (typed: a deque's item is Any, its arithmetic generic)
            total -= oldest
            counts.append(0)
        self.total = total

    def _alert(self, signal: Signal, count: int, mean: float, sd: float, z: float) -> Alert:
        metric, _, dimension = self.series.partition("|")
        name, _, value = dimension.partition("=")
        window_start = self.start + self.config.bucket_ms - self.config.window_ms
        payload: dict[str, Any] = {
            "alert_id": alert_id("trend", f"{self.series}\x00{signal.event_id}"),
            "kind": "trend",
            "customer_id": None,
            "contact_id": None,
            "agent_id": None,
            "queue": None,
            "channel": None,
            "event_id": signal.event_id,
            "event_ts": signal.ts,
            "emitted_at": int(self.clock() * 1000),
            "risk": None,
            "journey": None,
            "next_best_action": None,
            "trend": {
                "series": self.series,
                "metric": metric,
                "dimension": name,
                "value": value,
                "count": count,
                "window_ms": self.config.window_ms,
                "window_start": window_start,
                "baseline": round(mean, 2),
                "deviation": round(sd, 2),
                "z": round(z, 1),
                "ratio": round(count / mean, 1) if mean > 0 else None,
                "examples": [_example(s) for s in reversed(self.examples)],
            },
        }
        return Alert(payload["alert_id"], payload)

    def notify_at(self) -> datetime | None:
        return datetime.fromtimestamp(self.touched_at + self.config.idle_s, tz=UTC)

    def on_notify(self) -> tuple[Iterable[Alert], bool]:
        if self.clock() >= self.touched_at + self.config.idle_s:
            return [], DISCARD
        return [], RETAIN

    def snapshot(self) -> TrendSnapshot:
        if not self.keep_snapshots:
            return ()
        return (
            self.series,
            self.start,
            tuple(self.counts),
            self.mean,
            self.var,
            self.closes,
            self.alarmed,
            tuple(self.examples),
            self.late,
            self.signals,
            self.touched_at,
        )


def _example(s: Signal) -> dict[str, Any]:
    return {
        "event_id": s.event_id,
        "ts": s.ts,
        "channel": s.channel,
        "type": "complaint" if s.metric == "complaints" else "contact_start",
        "queue": s.queue,
        "topic": s.topic,
        "sentiment": s.sentiment,
    }
