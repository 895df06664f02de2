"""Measuring the experience: NPS, CSAT and CES per touchpoint, the journey map, and
which touchpoints come before churn.

A touchpoint is ``channel·type`` (``voice·contact_start``).  :class:`Kpis` holds one
series' survey answers (attrs ``nps`` 0-10, ``csat`` 1-5, ``ces`` 1-7, on any event):

- NPS: promoters (9-10) minus detractors (0-6), in points; its 95% interval from the
  variance of the per-answer score (+1, 0, -1);
- CSAT: the share of 4-5 answers, in %, with Wilson's 95% interval;
- CES: the mean (1-7, 7: "very easy": higher is better, as for the other two), with a
  normal 95% interval (from two answers).

:class:`ExperienceReport` folds a log in event time (``cxstream report``): the KPIs
overall, by channel and by touchpoint (for a ``survey`` or ``review``, the customer's
touchpoint before it; for any other event, its own; by channel: the rated touchpoint's
channel), the transitions between a
customer's consecutive touchpoints (count, median time between, and the share of the
customers who took that step, before churning if they did, who churned), and for each
touchpoint the churn of the customers who had it (before their churn) against those
who did not, with the
difference's 95% interval (Agresti-Caffo).  A customer's churn is the log's label, or
a ``cancel`` event.

>>> k = Kpis()
>>> for score in (10, 9, 8, 6, 3):
...     _ = k.add({"nps": score})
>>> k.figures()["nps"]["value"], k.figures()["nps"]["n"]
(0.0, 5)
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Protocol

import numpy as np

from operators.alerts import alert_id
from operators.events import Event, number
from operators.logic import RETAIN, Logic
from operators.proactive import uplift_of
from operators.records import Alert, ExperienceIn, ExperienceStatus, Rating, Tally
from operators.trends import MAX_LABEL

if TYPE_CHECKING:
    from operators.journey import JourneyState


class Row(Protocol):
    """A log's row (``operators.evaluate.Row``, which this module cannot import: the
    customer step imports this one): the event, and its file label if any."""

    @property
    def event(self) -> Event: ...
    @property
    def label(self) -> int | None: ...
    @property
    def label_ts(self) -> int | None: ...


Z95: Final = 1.959964
SURVEY_TYPES: Final = frozenset(("survey", "review"))  # rated the touchpoint before them
CHURN_TYPES: Final = frozenset(("cancel",))
GAP_SAMPLE: Final = 512  # gaps kept per transition for its median (a reservoir once full)


def _round(x: float, digits: int = 2) -> float:
    return round(x, digits)


def nps_figure(promoters: int, detractors: int, n: int) -> dict[str, Any]:
    """NPS in points with its 95% interval.

    >>> nps_figure(50, 20, 100)
    {'value': 30.0, 'n': 100, 'ci': [14.69, 45.31]}
    """
    if not n:
        return {"value": None, "n": 0, "ci": None}
    mean = (promoters - detractors) / n
    var = (promoters + detractors) / n - mean * mean
    half = Z95 * math.sqrt(max(0.0, var) / n)
    return {
        "value": _round(100 * mean),
        "n": n,
        "ci": [_round(100 * max(-1.0, mean - half)), _round(100 * min(1.0, mean + half))],
    }


def csat_figure(satisfied: int, n: int) -> dict[str, Any]:
    """CSAT (the share of 4 and 5) in %, with Wilson's 95% interval.

    >>> csat_figure(80, 100)
    {'value': 80.0, 'n': 100, 'ci': [71.12, 86.66]}
    """
    if not n:
        return {"value": None, "n": 0, "ci": None}
    p = satisfied / n
    z2 = Z95 * Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return {
        "value": _round(100 * p),
        "n": n,
        "ci": [_round(100 * max(0.0, centre - half)), _round(100 * min(1.0, centre + half))],
    }


def ces_figure(n: int, total: float, squares: float) -> dict[str, Any]:
    """CES, the mean answer (1-7), with a normal 95% interval (none from one answer).

    >>> ces_figure(4, 2 + 3 + 3 + 4, 4 + 9 + 9 + 16)
    {'value': 3.0, 'n': 4, 'ci': [2.2, 3.8]}
    """
    if not n:
        return {"value": None, "n": 0, "ci": None}
    mean = total / n
    if n < 2:
        return {"value": _round(mean), "n": n, "ci": None}
    var = max(0.0, (squares - n * mean * mean) / (n - 1))
    half = Z95 * math.sqrt(var / n)
    return {"value": _round(mean), "n": n, "ci": [_round(mean - half), _round(mean + half)]}


@dataclass(slots=True)
class Kpis:
    """One series' answers: constant size, whatever the number of customers."""

    nps_n: int = 0
    promoters: int = 0
    detractors: int = 0
    csat_n: int = 0
    satisfied: int = 0
    ces_n: int = 0
    ces_total: float = 0.0
    ces_squares: float = 0.0

    def add(self, attrs: dict[str, Any]) -> bool:
        """Count the event's answers (typed attrs, validated at parse); True if any."""
        return self.add_answers(
            _answer(attrs, "nps"), _answer(attrs, "csat"), _answer(attrs, "ces")
        )

    def add_answers(self, nps: float | None, csat: float | None, ces: float | None) -> bool:
        """Count one customer's answers (None: not given); True if any."""
        if nps is None and csat is None and ces is None:
            return False
        n_nps, pro, det, n_csat, sat, n_ces, total, squares = Kpis.row(nps, csat, ces)
        self.nps_n += int(n_nps)
        self.promoters += int(pro)
        self.detractors += int(det)
        self.csat_n += int(n_csat)
        self.satisfied += int(sat)
        self.ces_n += int(n_ces)
        self.ces_total += total
        self.ces_squares += squares
        return True

    @staticmethod
    def row(nps: float | None, csat: float | None, ces: float | None) -> list[float]:
        """One customer's answers as the eight counts (the thresholds' one place: a
        promoter answers 9-10, a detractor 0-6, a satisfied customer 4-5).

        >>> Kpis.row(9, 3, 6.0)
        [1, 1, 0, 1, 0, 1, 6.0, 36.0]
        """
        row: list[float] = [0, 0, 0, 0, 0, 0, 0.0, 0.0]
        if nps is not None:
            row[0], row[1], row[2] = 1, 1 if nps >= 9 else 0, 1 if nps <= 6 else 0
        if csat is not None:
            row[3], row[4] = 1, 1 if csat >= 4 else 0
        if ces is not None:
            row[5], row[6], row[7] = 1, ces, ces * ces
        return row

    def counts(self) -> list[float]:
        """The eight counts, in the order the live series keep them."""
        return [
            self.nps_n,
            self.promoters,
            self.detractors,
            self.csat_n,
            self.satisfied,
            self.ces_n,
            self.ces_total,
            self.ces_squares,
        ]

    def figures(self) -> dict[str, dict[str, Any]]:
        return figures_of(self.counts())


def touchpoint(event: Event) -> str:
    """``channel·type`` (the log's own channel name when it had one outside the contract).

    >>> touchpoint(Event("e", "c", None, 0, "voice", "contact_start", {}))
    'voice·contact_start'
    """
    source = event.attrs.get("source_channel") if event.attrs else None
    return f"{source if isinstance(source, str) else event.channel}·{event.type}"


def lift_of(name: str, with_n: int, with_churned: int, n: int, churned: int) -> dict[str, Any]:
    """A touchpoint's churn lift: the churn of the ``with_n`` who had it
    (``with_churned`` churned) minus that of the others of ``n`` (``churned`` in all),
    with its 95% interval (Agresti-Caffo); nothing known when none had it.

    >>> lift_of("app·checkout_error", 10, 6, 100, 24)["churn_lift"]
    0.4
    """
    if not with_n:
        none = dict.fromkeys(("churn_lift", "ci", "churn_with", "churn_without"))
        return {"touchpoint": name, **none, "n": 0}
    u = uplift_of(
        {
            "n_control": with_n,
            "churned_control": with_churned,
            "n_treated": n - with_n,
            "churned_treated": churned - with_churned,
        }
    )
    return {
        "touchpoint": name,
        "churn_lift": u["uplift"],
        "ci": u["ci"],
        "n": with_n,
        "churn_with": u["churn_control"],
        "churn_without": u["churn_treated"],
    }


@dataclass(slots=True)
class _Transition:
    count: int = 0
    gaps: list[int] = field(default_factory=list)
    seen: int = 0  # gaps offered to the sample
    cap: int = GAP_SAMPLE  # the sample's size
    median: float = -1.0  # the sample's median in s, once asked (-1: changed since)

    def add(self, gap_ms: int) -> None:
        self.add_gaps(1, (gap_ms,))

    def add_gaps(self, count: int, gaps: Iterable[int]) -> None:
        """``count`` more steps, ``gaps`` (the time before some of them) to the sample."""
        self.count += count
        self.median = -1.0
        sample, cap = self.gaps, self.cap
        for gap_ms in gaps:
            self.seen += 1
            if len(sample) < cap:
                sample.append(gap_ms)
                continue
            # a reservoir (Vitter's algorithm R) with a draw made from the count: the
            # same log gives the same sample
            j = (self.seen * 2_654_435_761 + 97) % 4_294_967_291 % self.seen
            if j < cap:
                sample[j] = gap_ms

    def median_s(self) -> float:
        if self.median < 0:
            ordered = sorted(self.gaps)
            mid = len(ordered) // 2
            ms = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
            self.median = _round(ms / 1000, 3)
        return self.median


@dataclass(slots=True)
class _Customer:
    last: str | None = None
    last_ts: int = 0
    steps: dict[tuple[str, str], int] = field(default_factory=dict)  # step -> first time
    touched: dict[str, int] = field(default_factory=dict)  # touchpoint -> first time
    churned_at: int | None = None


class ExperienceReport:
    """A log's experience figures, folded in event time (see the module's text)."""

    def __init__(self) -> None:
        self.overall = Kpis()
        self.by_channel: dict[str, Kpis] = {}
        self.by_touchpoint: dict[str, Kpis] = {}
        self.transitions: dict[tuple[str, str], _Transition] = {}
        self.customers: dict[str, _Customer] = {}
        self.events = 0

    def observe(self, row: Row) -> None:
        event = row.event
        self.events += 1
        c = self.customers.get(event.key)
        if c is None:
            c = self.customers[event.key] = _Customer()
        here = touchpoint(event)
        if event.attrs and self.overall.add(event.attrs):
            rated = c.last if event.type in SURVEY_TYPES and c.last is not None else here
            channel = rated.partition("·")[0]  # the channel rated, not the survey's
            self.by_channel.setdefault(channel, Kpis()).add(event.attrs)
            self.by_touchpoint.setdefault(rated, Kpis()).add(event.attrs)
        if row.label == 1 and c.churned_at is None:
            c.churned_at = row.label_ts if row.label_ts is not None else 2**62
        if event.type in CHURN_TYPES and (c.churned_at is None or event.ts < c.churned_at):
            c.churned_at = event.ts
        if event.type in SURVEY_TYPES:
            return  # a rating, not a step of the journey
        if c.last is not None:
            step = (c.last, here)
            transition = self.transitions.get(step)
            if transition is None:
                transition = self.transitions[step] = _Transition()
            transition.add(max(0, event.ts - c.last_ts))
            c.steps.setdefault(step, event.ts)
        c.touched.setdefault(here, event.ts)
        c.last, c.last_ts = here, event.ts

    def observe_all(self, rows: Iterable[Row]) -> ExperienceReport:
        for row in rows:
            self.observe(row)
        return self

    def result(self, *, top: int = 50, min_customers: int = 20) -> dict[str, Any]:
        """The report: ``kpis``, ``journey_map`` (the ``top`` most frequent transitions,
        and the ten steps taken by at least ``min_customers`` customers after which most
        churned, ``to_churn``, and fewest, ``to_retention``) and ``touchpoints`` ranked
        by churn lift."""
        customers = self.customers.values()
        churned = sum(c.churned_at is not None for c in customers)
        n = len(self.customers)
        base = churned / n if n else None
        takers: dict[tuple[str, str], list[int]] = {}
        for c in customers:
            for step, first in c.steps.items():
                if c.churned_at is not None and first >= c.churned_at:
                    continue  # at or after the churn: not a step that led there
                pair = takers.setdefault(step, [0, 0])
                pair[0] += 1
                pair[1] += c.churned_at is not None
        ranked = sorted(self.transitions.items(), key=lambda kv: (-kv[1].count, kv[0]))
        transitions = []
        for (src, dst), t in ranked[:top]:
            took, left = takers.get((src, dst), [0, 0])
            transitions.append(
                {
                    "from": src,
                    "to": dst,
                    "count": t.count,
                    "customers": took,
                    "median_gap_s": t.median_s(),
                    "churn_rate": _round(left / took, 4) if took else None,
                }
            )
        often = [
            (left / took, took, step)
            for step, (took, left) in takers.items()
            if took >= min_customers
        ]
        to_churn = sorted(often, key=lambda p: (-p[0], -p[1], p[2]))
        to_retention = sorted(often, key=lambda p: (p[0], -p[1], p[2]))

        def path(p: tuple[float, int, tuple[str, str]]) -> dict[str, Any]:
            rate, took, (src, dst) = p
            return {"from": src, "to": dst, "customers": took, "churn_rate": _round(rate, 4)}

        return {
            "events": self.events,
            "customers": n,
            "churn_rate": None if base is None else _round(base, 4),
            "kpis": {
                "overall": self.overall.figures(),
                "by_channel": {k: v.figures() for k, v in sorted(self.by_channel.items())},
                "by_touchpoint": {k: v.figures() for k, v in sorted(self.by_touchpoint.items())},
            },
            "journey_map": {
                "transitions": transitions,
                "to_churn": [path(p) for p in to_churn[:10]],
                "to_retention": [path(p) for p in to_retention[:10]],
            },
            "touchpoints": self._impact(n, churned),
        }

    def _impact(self, n: int, churned: int) -> list[dict[str, Any]]:
        """Each touchpoint's churn lift: churn of those who had it (before churning)
        minus churn of those who did not (of ``n`` customers, ``churned`` churned), with
        its 95% interval."""
        had: dict[str, list[int]] = {}
        for c in self.customers.values():
            for name, first in c.touched.items():
                if c.churned_at is not None and first >= c.churned_at:
                    continue  # at or after the churn: it cannot have led there
                pair = had.setdefault(name, [0, 0])
                pair[0] += 1
                pair[1] += c.churned_at is not None
        out = [
            lift_of(name, with_n, with_churned, n, churned)
            for name, (with_n, with_churned) in had.items()
        ]
        out.sort(key=lambda t: (-(t["churn_lift"] or 0.0), t["touchpoint"]))
        return out


# ---------------------------------------------------------------- live, in event time
#
# The customer step keeps, per customer, a :class:`CustomerExperience` (its latest
# queue and its current period's touchpoints and steps) and, per worker, a
# :class:`TallyBuffer` (transitions and sentiment changes, handed over as one
# :class:`Tally` a second).  One :class:`LiveExperience` (one key) folds the ratings,
# tallies and labelled periods into constant-size series and hands its counts to the
# supervisors' view, which :func:`live_view` turns into figures.

HOUR_MS: Final = 3_600_000
# sliding windows, in hours of event time
WINDOWS: Final[tuple[tuple[str, int], ...]] = (("day", 24), ("week", 168))
# a series keeps two weeks of hourly counts: a window and the one before
RING_HOURS: Final = 2 * 168
KPI_FIELDS: Final = 8  # Kpis' counts, in order (see Kpis.row)
MAX_SERIES: Final = 256  # KPI series (overall, channels, touchpoints, queues); more are not opened
MAX_TRANSITIONS: Final = 4096  # transitions kept; a new one past this is counted in ``dropped``
MAX_TOUCHPOINTS: Final = 1024  # touchpoints with an id; later ones are not steps of the map
MAX_STEPS: Final = 4096  # steps with an id (the map's transitions)
LIVE_GAP_SAMPLE: Final = 128  # gaps a live transition keeps for its median (the report: 512)
COUNTS_STEPS: Final = 300  # steps handed to the view: this many most frequent, most taken
# A worker's tally goes every quarter second: its hand-over (names decoded, periods and
# gaps added up downstream) is work in one piece on the worker, a stall of the contacts
# behind it; a quarter of a second's is a quarter of the stall (measured at 5,000
# events/s: 4 to 22 ms each second before).
TALLY_EVERY_S: Final = 0.25
TALLY_GAPS: Final = 4  # gaps a tally hands over per step (16 a second, the reservoirs' feed)
METRICS: Final[tuple[str, ...]] = ("nps", "csat", "ces")

# Touchpoints and steps get small ids, in this process, as they first come: a
# customer's period holds the ones it saw as bits of an int, and a worker's tally counts
# by step id, so an event costs a few dict lookups whatever the customer's journey.
TOUCHPOINTS: Final[dict[str, dict[str, tuple[str, int]]]] = {}  # channel -> type -> (name, id)
_touch_names: list[str] = []  # id -> name
STEP_IDS: Final[dict[int, int]] = {}  # from id << 12 | to id -> step id
_step_names: list[tuple[str, str]] = []  # step id -> (from, to)
_registering = threading.Lock()  # (new ids only: the workers are threads of one process)


def touchpoint_of(channel: str, type_: str) -> tuple[str, int]:
    """``channel·type`` and its id (-1 past :data:`MAX_TOUCHPOINTS`): one shared pair.

    >>> touchpoint_of("app", "checkout") is touchpoint_of("app", "checkout")
    True
    >>> touchpoint_of("app", "checkout")[0]
    'app·checkout'
    """
    types = TOUCHPOINTS.get(channel)
    if types is not None:
        known = types.get(type_)
        if known is not None:
            return known
    with _registering:
        types = TOUCHPOINTS.setdefault(channel, {})
        known = types.get(type_)
        if known is None:
            name = f"{channel}·{type_}"
            if len(_touch_names) >= MAX_TOUCHPOINTS:
                return name, -1  # a channel inventing types without end: not kept
            known = types[type_] = (name, len(_touch_names))
            _touch_names.append(name)
        return known


def touchpoint_id(name: str) -> int:
    """The id of a touchpoint named ``channel·type`` (a snapshot's names)."""
    channel, _, type_ = name.partition("·")
    return touchpoint_of(channel, type_)[1]


def step_id(src: int, dst: int) -> int:
    """The id of the step between two touchpoint ids (-1 past :data:`MAX_STEPS`)."""
    key = src << 12 | dst
    known = STEP_IDS.get(key)
    if known is not None:
        return known
    with _registering:
        known = STEP_IDS.get(key)
        if known is None:
            if len(_step_names) >= MAX_STEPS:
                return -1
            known = STEP_IDS[key] = len(_step_names)
            _step_names.append((_touch_names[src], _touch_names[dst]))
        return known


_decoded: dict[tuple[int, int], tuple[int, ...]] = {}  # (kind, mask) -> ids, the latest


def _bits(mask: int) -> list[int]:
    """The set bits of ``mask``, lowest first."""
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


def _ids_of(kind: int, mask: int) -> tuple[int, ...]:
    """The ids of the touchpoints (kind 0) or steps (kind 1) of a mask: customers'
    periods repeat the same few sets, so the decoded ones are kept (up to 65,536)."""
    known = _decoded.get((kind, mask))
    if known is None:
        known = tuple(_bits(mask))
        if len(_decoded) >= 65_536:
            _decoded.clear()
        _decoded[(kind, mask)] = known
    return known


def _names_of(kind: int, mask: int) -> tuple[Any, ...]:
    """The touchpoints (kind 0) or steps (kind 1) of a mask, by name."""
    names: list[Any] = _touch_names if kind == 0 else _step_names
    return tuple(names[i] for i in _ids_of(kind, mask))


def _answer(attrs: dict[str, Any], name: str) -> float | None:
    return number(attrs.get(name))


class TallyBuffer:
    """What one worker's customers did for the experience view, handed over every
    ``every_s`` seconds of wall time (:meth:`take`) as one :class:`Tally`: steps (by
    step id), sentiment changes, answers (by hour, channel, touchpoint and queue) and
    labelled customer-periods (kept by their sets of touchpoint and step ids, counted
    by touchpoint and by step at the hand-over: all the view needs of them).  A
    quarter second of a worker's events is one record downstream, not one or more per
    event.

    >>> t = TallyBuffer(every_s=1.0)
    >>> (_, a), (_, b) = touchpoint_of("web", "page_view"), touchpoint_of("app", "checkout")
    >>> t.step(step_id(a, b), 60_000)
    >>> t.take(0.0).steps  # the first at once, then one a second
    ((('web·page_view', 'app·checkout'), 1, (60000,)),)
    >>> t.step(step_id(b, a), 5_000)
    >>> t.take(0.5) is None, len(t.take(1.0).steps)
    (True, 1)
    """

    __slots__ = ("due_at", "every_s", "periods", "ratings", "sentiments", "steps")

    def __init__(self, *, every_s: float = TALLY_EVERY_S) -> None:
        self.every_s = every_s
        self.due_at = 0.0
        self.steps: dict[int, list[int]] = {}  # step id -> [count, its first gaps...]
        self.sentiments: dict[str, list[float]] = {}  # touchpoint -> [count, sum]
        # (hour, channel, touchpoint, queue) -> the eight counts, CES changes: count, sum
        self.ratings: dict[tuple[int, str, str, str | None], list[float]] = {}
        self.periods: dict[tuple[int, int, int], int] = {}  # (touched, steps, churned) -> n

    def step(self, step: int, gap_ms: int) -> None:
        entry = self.steps.get(step)
        if entry is None:
            self.steps[step] = [1, gap_ms]
        else:
            entry[0] += 1
            if len(entry) <= TALLY_GAPS:
                entry.append(gap_ms)

    def sentiment(self, touchpoint: str, change: float) -> None:
        entry = self.sentiments.get(touchpoint)
        if entry is None:
            self.sentiments[touchpoint] = [1, change]
            return
        entry[0] += 1
        entry[1] += change

    def rate(self, rating: Rating) -> None:
        key = (rating.ts // HOUR_MS, rating.channel, rating.touchpoint, rating.queue)
        entry = self.ratings.get(key)
        if entry is None:
            entry = self.ratings[key] = [0.0] * (KPI_FIELDS + 2)
        row = Kpis.row(rating.nps, rating.csat, rating.ces)
        entry[:KPI_FIELDS] = [a + b for a, b in zip(entry, row, strict=False)]
        if rating.ces_change is not None:
            entry[KPI_FIELDS] += 1
            entry[KPI_FIELDS + 1] += rating.ces_change

    def period(self, touched: int, steps: int, churned: int) -> None:
        key = (touched, steps, churned)
        self.periods[key] = self.periods.get(key, 0) + 1

    def take(self, now: float, *, force: bool = False) -> Tally | None:
        """The tally since the last one, once ``every_s`` has passed or ``force`` (the
        end of the input) is set (None before, or if nothing was counted)."""
        if (now < self.due_at and not force) or not (
            self.steps or self.sentiments or self.ratings or self.periods
        ):
            return None
        self.due_at = now + self.every_s
        names = _step_names
        steps = tuple((names[k], v[0], tuple(v[1:])) for k, v in self.steps.items())
        sentiments = tuple((k, int(n), s) for k, (n, s) in self.sentiments.items())
        ratings = tuple(
            (*key, tuple(v[:KPI_FIELDS]), int(v[KPI_FIELDS]), v[KPI_FIELDS + 1])
            for key, v in sorted(self.ratings.items(), key=lambda kv: kv[0][0])
        )
        # the periods' marginals (all the view counts of them): ids gathered, counted in C
        labelled = churned_all = 0
        touched: list[int] = []
        touched_churned: list[int] = []
        took: list[int] = []
        took_churned: list[int] = []
        for (touched_mask, steps_mask, churned), n in self.periods.items():
            ids, step_ids = _ids_of(0, touched_mask) * n, _ids_of(1, steps_mask) * n
            touched += ids
            took += step_ids
            labelled += n
            if churned:
                churned_all += n
                touched_churned += ids
                took_churned += step_ids
        by_touchpoint, by_step = Counter(touched_churned), Counter(took_churned)
        self.steps, self.sentiments, self.ratings, self.periods = {}, {}, {}, {}
        return Tally(
            steps,
            sentiments,
            ratings,
            (labelled, churned_all),
            tuple((_touch_names[i], n, by_touchpoint[i]) for i, n in Counter(touched).items()),
            tuple((names[i], n, by_step[i]) for i, n in Counter(took).items()),
        )


class CustomerExperience:
    """What the experience view needs of one customer: their latest touchpoint (not a
    survey's: a survey rates the touchpoint before it and is no step of the journey),
    the queue of their latest contact and their current *period*, the unit of the
    journey map's churn figures.

    A period opens at the customer's first event (and at the first after the previous
    one closed) and lasts two halves of the horizon H.  Its first half observes the
    touchpoints and steps the customer takes (as bits of two ints, by id);
    its second half the outcome (a landmark analysis: every period compared was a
    customer's for the whole first half, so a churner's shorter journey does not make
    the touchpoints they had no time for look protective, nor a step taken on the way
    out look like a cause).  It closes at its start + H with a label:

    - ``cancel`` mode: churned if a ``cancel`` event came in the second half; a cancel
      in the first half drops the period (not at risk at the landmark);
    - ``inactivity`` mode: churned if no event came in the second half.

    Not kept while the customer objects to profiling (a period is a record of one
    customer's journey), nor with external labels.

    >>> from operators.journey import JourneyState
    >>> cx, tally, journey = CustomerExperience(), TallyBuffer(), JourneyState()
    >>> def see(ts: int, channel: str, type_: str) -> None:
    ...     event = Event(f"e{ts}", "c1", None, ts, channel, type_, {})
    ...     cx.observe(event, tally, journey, ts, True, 10, "cancel")
    >>> see(0, "web", "page_view"); see(2, "app", "checkout"); see(7, "web", "cancel")
    >>> cx.close_if_due(tally, 9, horizon_ms=10, mode="cancel"); cx.opened  # not over yet
    0
    >>> cx.close_if_due(tally, 10, horizon_ms=10, mode="cancel")  # over: churned (a cancel)
    >>> t = tally.take(0.0)  # one period, churned (the cancel is no touchpoint of it)
    >>> t.periods, t.touched
    ((1, 1), (('web·page_view', 1, 1), ('app·checkout', 1, 1)))
    >>> t.took
    ((('web·page_view', 'app·checkout'), 1, 1),)
    """

    __slots__ = ("last", "last_id", "last_ts", "opened", "outcome", "queue", "steps", "touched")

    def __init__(self, resume: tuple[Any, ...] | None = None) -> None:
        self.queue: str | None = None
        self.last: str | None = None  # the latest touchpoint (a survey's excepted)
        self.last_id = -1  # ... its id (-1: none, or one without an id)
        self.last_ts = 0  # ... and its time
        self.opened = -1  # event time the period opened (-1: none open)
        self.outcome = -1  # seen in the second half: 1 a cancel, 0 an event (-1: nothing)
        self.touched = 0  # the period's touchpoints: a bit each, by id
        self.steps = 0  # ... and its steps
        if resume:  # (by name: ids are this process's)
            self.queue, self.opened, self.outcome, touched, steps, last, self.last_ts = resume
            if last:
                self.last, self.last_id = touchpoint_of(*last.split("·", 1))
            for name in touched:
                self.touched |= _bit(touchpoint_id(name))
            for src, dst in steps:
                a, b = touchpoint_id(src), touchpoint_id(dst)
                if a >= 0 and b >= 0:
                    self.steps |= _bit(step_id(a, b))

    def observe(
        self,
        event: Event,
        tally: TallyBuffer,
        journey: JourneyState,
        now_ts: int,
        periods: bool,
        horizon_ms: int,
        mode: str,
    ) -> Rating | None:
        """The customer's ``event``, before it joins their ``journey``, as the experience
        view sees it, into the worker's ``tally``, with the stream's event time at
        ``now_ts`` (the worker's watermark, the event's time included); returns the
        answers it counted, if any (the customer step sends them on, for the series by
        persona):

        - the open period closes (labelled, to the tally) if ``now_ts`` has passed its
          end: here, before the event, not at a wake-up a second later;
        - the event's answers and sentiment (rating the customer's previous touchpoint
          if it is a survey), and the step from the previous touchpoint;
        - if ``periods``, and the event is not older than ``now_ts`` by a horizon (that
          period would be over before it was seen): a cancel marks the open period,
          another event opens one if none is open; the first half records the
          touchpoint and the step, the second half the outcome.  With external labels
          there are no periods.

        On every event of every customer: the registries' lookups are inlined (their
        functions register what is new), and a late event (older than the latest
        touchpoint) counts its answers but takes no step.
        """
        rating: Rating | None = None
        opened = self.opened
        if opened >= 0 and now_ts >= opened + horizon_ms:  # ended: labelled
            # (close_if_due's test, inline: a method call with keywords on every event
            # costs more than the two comparisons)
            self.close_into(tally, churned=self.label(mode))
            opened = -1
        type_, ts, channel = event.type, event.ts, event.channel
        types = TOUCHPOINTS.get(channel)
        known = types.get(type_) if types is not None else None
        here, here_id = known if known is not None else touchpoint_of(channel, type_)
        last_ts = self.last_ts
        late = ts < last_ts
        attrs = event.attrs
        if attrs:
            if type_ == "contact_start":
                queue = attrs.get("queue")
                if isinstance(queue, str) and queue:
                    self.queue = queue[:MAX_LABEL]
            if "nps" in attrs or "csat" in attrs or "ces" in attrs:
                previous = self.last
                if type_ in SURVEY_TYPES and previous is not None and not late:
                    rated, rated_channel = previous, previous.partition("·")[0]
                else:
                    rated, rated_channel = here, channel
                rating = rating_of(event, rated, rated_channel, self.queue, journey.ces)
                if rating is not None:
                    tally.rate(rating)
            sentiment = number(attrs.get("sentiment"))
            if sentiment is not None and not late:
                previous, before = self.last, journey.sentiment
                if previous is not None and before is not None:
                    tally.sentiment(previous, sentiment - before)
        if late or type_ in SURVEY_TYPES:
            return rating  # (a survey rates a step, it is none)
        step = -1
        previous_id = self.last_id
        if previous_id >= 0 and here_id >= 0:
            step = STEP_IDS.get(previous_id << 12 | here_id, -2)
            if step == -2:
                step = step_id(previous_id, here_id)
            if step >= 0:
                tally.step(step, ts - last_ts)
        self.last, self.last_id, self.last_ts = here, here_id, ts
        if not periods or mode == "external" or ts + horizon_ms <= now_ts:
            return rating
        if type_ in CHURN_TYPES:
            self.churn(ts, horizon_ms=horizon_ms)  # (labelled at the period's end)
            return rating
        if opened < 0:
            opened = self.opened = ts
            self.outcome = -1
        if ts < opened + horizon_ms // 2:
            if here_id >= 0:
                self.touched |= 1 << here_id
                if step >= 0:
                    self.steps |= 1 << step
        elif self.outcome < 0 and mode == "inactivity":
            self.outcome = 0  # still active after the landmark
        return rating

    def churn(self, ts: int, *, horizon_ms: int) -> None:
        """The customer churned (a cancel) at ``ts``."""
        if self.opened < 0:
            return
        if ts < self.opened + horizon_ms // 2:
            self.opened = -1  # before the landmark: the period is not counted
            self.touched = self.steps = 0
        else:
            self.outcome = 1

    def close_into(self, tally: TallyBuffer, *, churned: int) -> None:
        """Close the period into the worker's tally (decoded there, each quarter second)."""
        tally.period(self.touched, self.steps, churned)
        self.opened = self.outcome = -1
        self.touched = self.steps = 0

    def touchpoints(self) -> tuple[str, ...]:
        return _names_of(0, self.touched)

    def step_names(self) -> tuple[tuple[str, str], ...]:
        return _names_of(1, self.steps)

    def close_if_due(self, tally: TallyBuffer, now_ts: int, *, horizon_ms: int, mode: str) -> None:
        """Close the open period into ``tally`` if event time ``now_ts`` has passed its end."""
        if self.opened >= 0 and now_ts >= self.opened + horizon_ms:
            self.close_into(tally, churned=self.label(mode))

    def label(self, mode: str) -> int:
        """The period's label from what its second half saw (1: churned)."""
        if mode == "inactivity":
            return 0 if self.outcome == 0 else 1
        return 1 if self.outcome == 1 else 0

    def snapshot(self) -> tuple[Any, ...]:
        return (
            self.queue,
            self.opened,
            self.outcome,
            self.touchpoints(),
            self.step_names(),
            self.last,
            self.last_ts,
        )


def _bit(i: int) -> int:
    return 1 << i if i >= 0 else 0


def rating_of(
    event: Event, rated: str, channel: str, queue: str | None, ces_before: float | None
) -> Rating | None:
    """The event's answers as a :class:`Rating`, if it carries any."""
    attrs = event.attrs
    nps, csat, ces = _answer(attrs, "nps"), _answer(attrs, "csat"), _answer(attrs, "ces")
    if nps is None and csat is None and ces is None:
        return None
    change = ces - ces_before if ces is not None and ces_before is not None else None
    return Rating(event.ts, event.event_id, channel, rated, queue, nps, csat, ces, change)


def figures_of(counts: Iterable[float]) -> dict[str, dict[str, Any]]:
    """The three figures from the eight counts of a series' window.

    >>> figures_of([4, 2, 1, 0, 0, 2, 10.0, 52.0])["nps"]["value"], figures_of([0] * 8)["ces"]["n"]
    (25.0, 0)
    """
    n_nps, pro, det, n_csat, sat, n_ces, total, squares = (float(c) for c in counts)
    return {
        "nps": nps_figure(int(pro), int(det), int(n_nps)),
        "csat": csat_figure(int(sat), int(n_csat)),
        "ces": ces_figure(int(n_ces), total, squares),
    }


def _mean_se_all(metric: str, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The metric's value, its standard error and its answers, for every row of a
    (series x counts) array, in the metric's unit (points, %, CES).

    >>> now, then = [0, 0, 0, 0, 0, 100, 400.0, 1700.0], [0, 0, 0, 0, 0, 100, 500.0, 2600.0]
    >>> (m1, se1, _), (m0, se0, _) = (_mean_se_all("ces", np.array([c])) for c in (now, then))
    >>> float(m0[0] - m1[0]), round(float(np.hypot(se0, se1)[0]), 3)  # the drop, its se
    (1.0, 0.142)

    (Divisions by no answers give nan or inf: the caller holds numpy's warnings.)
    """
    if metric == "nps":
        n = c[:, 0]
        mean = (c[:, 1] - c[:, 2]) / n
        var = np.maximum(0.0, (c[:, 1] + c[:, 2]) / n - mean * mean)
        return 100 * mean, 100 * np.sqrt(var / n), n
    if metric == "csat":
        n = c[:, 3]
        p = c[:, 4] / n
        return 100 * p, 100 * np.sqrt(np.maximum(p * (1 - p), 0.25 / n) / n), n
    n = c[:, 5]
    mean = c[:, 6] / n
    var = np.maximum(0.0, (c[:, 7] - n * mean * mean) / (n - 1))
    return mean, np.sqrt(var / n), n


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveConfig:
    """``z``: a drop of a KPI from the previous window to the current one raises a
    trend alert once the drop is ``z`` standard errors of the difference
    (CX_EXPERIENCE_Z; 1.96 is the 95% interval: the default is stricter, because the
    view tests every series at every answer); ``min_n``: answers each window needs
    first (CX_EXPERIENCE_MIN_N); ``every_s``: how often its counts are handed to the
    supervisors' view (wall time); ``horizon_ms``: the churn horizon of a period."""

    z: float = 3.0
    min_n: int = 30
    every_s: float = 2.0


ExperienceOut = Alert | ExperienceStatus
LiveSnapshot = tuple[Any, ...]


class LiveExperience(Logic[ExperienceIn, ExperienceOut, LiveSnapshot]):
    """The live experience, one key: KPI series in hourly event-time rings, the
    journey map's transitions, the periods' churn by touchpoint and step.

    Its state is constant in the customers: a KPI series is a ring of
    :data:`RING_HOURS` x :data:`KPI_FIELDS` counts (21.5 KB; at most
    :data:`MAX_SERIES`), a transition a count, a reservoir of :data:`GAP_SAMPLE` gaps
    and two counts (at most :data:`MAX_TRANSITIONS`).  The rings are one array (series
    x hours x counts): the hourly test of every series' windows is a few array sums.
    """

    def __init__(
        self,
        resume: LiveSnapshot | None,
        *,
        name: str = "main",
        config: LiveConfig | None = None,
        clock: Callable[[], float],
        keep_snapshots: bool = True,
    ) -> None:
        self.name = name
        self.config = config or LiveConfig()
        self.clock = clock
        self.keep_snapshots = keep_snapshots
        self.sent_at = 0.0
        self.dirty = False
        # answers counted, not yet added to the rings: (row, hour in the ring, counts)
        self.unsaved: list[tuple[int, int, list[float]]] = []
        self.series: dict[str, int]  # series name -> its row in ``rings``
        self.rings: np.ndarray  # (series capacity, RING_HOURS, KPI_FIELDS)
        self.transitions: dict[tuple[str, str], _Transition]
        self.took: dict[tuple[str, str], list[int]]  # step -> [periods, churned]
        self.touched: dict[str, list[int]]  # touchpoint -> [periods, churned]
        self.sentiment: dict[str, list[float]]  # touchpoint -> [n, sum]
        self.ces_change: dict[str, list[float]]  # touchpoint -> [n, sum]
        self.alarmed: set[tuple[str, str, str]]  # (series, metric, window) in a drop
        # a persona series' name now (``m0/p2`` -> "high value, digital first"): not in the
        # snapshot, the next tally of the model shard brings it
        self.persona_names: dict[str, str] = {}
        if resume:
            (
                hour,
                first_hour,
                names,
                rings,
                transitions,
                self.took,
                periods,
                self.touched,
                self.sentiment,
                self.ces_change,
                self.alarmed,
                counters,
            ) = resume
            # (one typed assignment each: from the snapshot's values they would be ``Any``)
            self.hour: int = int(hour)
            self.first_hour: int = int(first_hour)
            self.periods: list[int] = list(periods)
            self.counters: dict[str, int] = dict(counters)
            self.transitions = {
                k: _Transition(c, list(g), s, LIVE_GAP_SAMPLE) for k, (c, g, s) in transitions
            }
            self.series = {name: i for i, name in enumerate(names)}
            self.rings = np.zeros((max(16, len(names)), RING_HOURS, KPI_FIELDS))
            self.rings[: len(names)] = rings
        else:
            self.hour = -1  # the newest hour of event time seen (-1: none yet)
            self.first_hour = -1  # the first
            self.series = {}
            self.rings = np.zeros((16, RING_HOURS, KPI_FIELDS))
            self.transitions = {}
            self.took = {}
            self.periods = [0, 0]  # labelled periods, churned
            self.touched = {}
            self.sentiment = {}
            self.ces_change = {}
            self.alarmed = set()
            self.counters = {"ratings": 0, "late": 0, "series_dropped": 0, "dropped": 0}

    # -- items
    def on_item(self, value: ExperienceIn) -> tuple[Iterable[ExperienceOut], bool]:
        out: list[ExperienceOut] = list(self.tally(value))
        self.dirty = True
        status = self._status_if_due()
        if status is not None:
            out.append(status)
        return out, RETAIN

    def rate(self, rating: Rating) -> list[Alert]:
        """Count one answer in its series (see :meth:`count`)."""
        counts = Kpis.row(rating.nps, rating.csat, rating.ces)
        change = rating.ces_change
        return self.count(
            rating.ts // HOUR_MS,
            rating.channel,
            rating.touchpoint,
            rating.queue,
            counts,
            0 if change is None else 1,
            change or 0.0,
        )

    def count(
        self,
        hour: int,
        channel: str,
        touchpoint: str,
        queue: str | None,
        counts: Iterable[float],
        ces_n: int = 0,
        ces_change: float = 0.0,
        *,
        check: bool = True,
    ) -> list[Alert]:
        """Count answers of one hour of event time in their series: overall, the
        channel, the touchpoint and the queue.  The first answers of a new hour close the
        hour before: the trend alerts of the drops the closed windows show (unless
        ``check`` is off: a tally tests once, after all its answers)."""
        alerts: list[Alert] = []
        if hour > self.hour:
            if self.hour >= 0 and check:
                alerts = self.check(self.hour)
            elif self.hour < 0:
                self.first_hour = hour
            self._advance(hour)
        elif hour <= self.hour - RING_HOURS:  # older than the windows
            self.counters["late"] += 1
            return []
        row = list(counts)
        self.counters["ratings"] += int(row[0] + row[3] + row[5] > 0)
        at = hour % RING_HOURS
        names = ["overall", f"channel={channel}", f"touchpoint={touchpoint}"]
        if queue is not None:
            names.append(f"queue={queue}")
        for r in map(self._row, names):
            if r >= 0:  # (added to the rings in bulk, before they are read)
                self.unsaved.append((r, at, row))
        if ces_n and f"touchpoint={touchpoint}" in self.series:
            entry = self.ces_change.setdefault(touchpoint, [0, 0.0])
            entry[0] += ces_n
            entry[1] += ces_change
        return alerts

    def _save(self) -> None:
        """The answers counted since the rings were last read, into the rings."""
        if self.unsaved:
            rows, hours, counts = zip(*self.unsaved, strict=True)
            np.add.at(self.rings, (np.array(rows), np.array(hours)), np.array(counts))
            self.unsaved.clear()

    def _row(self, name: str) -> int:
        """The series' row in the rings, opened if new (-1: past :data:`MAX_SERIES`)."""
        row = self.series.get(name)
        if row is not None:
            return row
        row = len(self.series)
        if row >= MAX_SERIES:
            self.counters["series_dropped"] += 1
            return -1
        if row >= len(self.rings):  # grown by doubling
            self._save()
            grown = np.zeros((min(MAX_SERIES, 2 * len(self.rings)), RING_HOURS, KPI_FIELDS))
            grown[:row] = self.rings
            self.rings = grown
        self.series[name] = row
        return row

    def _advance(self, hour: int) -> None:
        """Event time reached ``hour``: the hours between are emptied in every ring."""
        if self.hour >= 0:
            self._save()
            gone = range(self.hour + 1, min(hour, self.hour + RING_HOURS) + 1)
            self.rings[:, [h % RING_HOURS for h in gone]] = 0.0
        self.hour = hour

    def windows(self, hours: int, end: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Every series' counts in the window of the last ``hours`` hours up to ``end``
        (the newest hour by default) and in the one before it: two (series x counts)
        arrays."""
        self._save()
        end = self.hour if end is None else end
        rings = self.rings[: len(self.series)]
        return self._span(rings, end, hours), self._span(rings, end - hours, hours)

    @staticmethod
    def _span(rings: np.ndarray, newest: int, hours: int) -> np.ndarray:
        """The sum of the ``hours`` hours up to ``newest``: at most two slices of the
        ring (views, nothing copied)."""
        end = newest % RING_HOURS + 1
        start = end - hours
        if start >= 0:
            return rings[:, start:end].sum(axis=1)  # type: ignore[no-any-return]
        return rings[:, :end].sum(axis=1) + rings[:, RING_HOURS + start :].sum(axis=1)  # type: ignore[no-any-return]

    def check(self, end: int) -> list[Alert]:
        """Every series' windows up to hour ``end``, just closed (answers of a later hour
        came):
        a drop of ``z`` standard errors from the window before raises a trend alert, once
        (re-armed when the drop is back under one standard error).  A window is tested
        once event time has covered it and the one before (no alarm from a warm-up); the
        day's every hour, the week's every 7 hours."""
        cfg = self.config
        out: list[Alert] = []
        covered = end - self.first_hour + 1  # hours of event time seen
        names = list(self.series)
        if not names:
            return out
        with np.errstate(divide="ignore", invalid="ignore"):
            for window, hours in WINDOWS:
                if covered < 2 * hours or end % max(1, hours // 24):
                    continue  # (a week's window is tested every 7 hours, a day's every hour)
                current, before = self.windows(hours, end)
                for metric in METRICS:
                    m_now, se_now, n_now = _mean_se_all(metric, current)
                    m_then, se_then, n_then = _mean_se_all(metric, before)
                    se = np.hypot(se_now, se_then)
                    z = (m_then - m_now) / se
                    enough = (n_now >= cfg.min_n) & (n_then >= cfg.min_n) & (se > 0)
                    z = np.where(enough, z, 0.0)
                    for name, m, w in list(self.alarmed):  # back within its noise: re-armed
                        if m == metric and w == window and z[self.series[name]] < 1.0:
                            self.alarmed.discard((name, m, w))
                    for row in np.flatnonzero(z >= cfg.z):
                        key = (names[row], metric, window)
                        if key in self.alarmed:
                            continue
                        self.alarmed.add(key)
                        out.append(
                            self._alert(
                                names[row],
                                metric,
                                window,
                                hours,
                                current[row],
                                before[row],
                                float(z[row]),
                                float(se[row]),
                                end,
                            )
                        )
        return out

    def _alert(
        self,
        name: str,
        metric: str,
        window: str,
        hours: int,
        current: np.ndarray,
        before: np.ndarray,
        z: float,
        se: float,
        end: int,
    ) -> Alert:
        dimension, _, value = name.partition("=")
        now = figures_of(current)[metric]
        then = figures_of(before)[metric]
        series = f"{metric}|{name}|{window}"
        window_ms = hours * HOUR_MS
        closed = (end + 1) * HOUR_MS  # the end of the hour just closed
        # (no event made it: a window's answers did; the id names the series and the hour,
        # so a replay raises the same alert)
        event_id = f"experience:{series}:{end}"
        payload: dict[str, Any] = {
            "alert_id": alert_id("trend", event_id),
            "kind": "trend",
            "customer_id": None,
            "contact_id": None,
            "agent_id": None,
            "queue": value if dimension == "queue" else None,
            "channel": None,
            "event_id": event_id,
            "event_ts": closed,
            "emitted_at": int(self.clock() * 1000),
            "risk": None,
            "journey": None,
            "next_best_action": None,
            "trend": {
                "series": series,
                "metric": metric,
                "dimension": dimension,
                "value": value or None,
                "count": now["n"],
                "window": window,
                "window_ms": window_ms,
                "window_start": closed - window_ms,
                "baseline": then["value"],
                "current": now,
                "previous": then,
                "drop": round(then["value"] - now["value"], 2),
                "deviation": round(se, 3),
                "z": round(z, 1),
                "ratio": None,
                "examples": [],
            },
        }
        return Alert(payload["alert_id"], payload)

    def tally(self, tally: Tally) -> list[Alert]:
        """A worker's tally: its answers (the alerts of the hours they close), steps,
        sentiment changes and labelled periods."""
        newest = self.hour
        ratings, personas = tally.ratings, tally.personas
        hours = [r[0] for r in ratings] + [p[0] for p in personas]
        top = max(hours, default=-1)
        if top > newest:  # the hours it passes, emptied at once (a replay's tally passes many)
            if newest < 0:
                self.first_hour = min(hours)
            self._advance(top)
        for hour, channel, touchpoint, queue, counts, ces_n, ces_change in ratings:
            self.count(hour, channel, touchpoint, queue, counts, ces_n, ces_change, check=False)
        for hour, persona, persona_name, counts in personas:  # (a model shard's, by persona)
            row = self._row(f"persona={persona}") if hour > self.hour - RING_HOURS else -1
            if row >= 0:
                self.unsaved.append((row, hour % RING_HOURS, list(counts)))
                self.persona_names[persona] = persona_name
        # tested once, as of the last hour the tally closed (live, a tally is a second:
        # every hour is tested; a replay's tally may pass many hours at once)
        passed = self.hour > newest and self.hour > self.first_hour
        alerts = self.check(self.hour - 1) if passed else []
        labelled, churned = tally.periods
        self.periods[0] += labelled
        self.periods[1] += churned
        for name, n, churned in tally.touched:
            _add_periods(self.touched, name, n, churned)
        for step, n, churned in tally.took:
            _add_periods(self.took, step, n, churned)
        for step, count, gaps in tally.steps:
            t = self.transitions.get(step)
            if t is None:
                if len(self.transitions) >= MAX_TRANSITIONS:
                    self.counters["dropped"] += count
                    continue
                t = self.transitions[step] = _Transition(cap=LIVE_GAP_SAMPLE)
            t.add_gaps(count, gaps)
        for name, n, total in tally.sentiment:
            entry = self.sentiment.get(name)
            if entry is None:
                if len(self.sentiment) >= MAX_TRANSITIONS:
                    continue
                entry = self.sentiment[name] = [0, 0.0]
            entry[0] += n
            entry[1] += total
        return alerts

    # -- the view's counts
    def counts(self) -> dict[str, Any]:
        """What the supervisors' view is built from (JSON-ready; several processes'
        counts add up: see :func:`live_view`)."""
        series: dict[str, dict[str, list[float]]] = {}
        names = list(self.series)
        for window, hours in WINDOWS if names else ():
            current, before = self.windows(hours)
            seen = np.flatnonzero((current != 0).any(axis=1) | (before != 0).any(axis=1))
            rounded = np.round(current[seen], 6).tolist(), np.round(before[seen], 6).tolist()
            for row, now, previous in zip(seen.tolist(), *rounded, strict=True):
                entry = series.setdefault(names[row], {})
                entry[window] = now
                entry[f"{window}_previous"] = previous
        # the steps the view can show: the most frequent, and the most taken in labelled
        # periods (the steps to churn and to retention), not all 4,096 every 2 s
        often = sorted(self.transitions, key=lambda k: -self.transitions[k].count)
        taken = sorted(self.took, key=lambda k: -self.took[k][0])
        shown = dict.fromkeys([*often[:COUNTS_STEPS], *taken[:COUNTS_STEPS]])
        transitions = []
        for step in shown:
            t = self.transitions.get(step)
            count, median = (t.count, t.median_s()) if t is not None else (0, 0.0)
            transitions.append([*step, count, median, *self.took.get(step, [0, 0])])
        return {
            "name": self.name,
            "hour": self.hour,
            "series": series,
            "transitions": transitions,
            "periods": list(self.periods),
            "touched": {k: list(v) for k, v in self.touched.items()},
            "sentiment": {k: [v[0], round(v[1], 6)] for k, v in self.sentiment.items()},
            "ces_change": {k: [v[0], round(v[1], 6)] for k, v in self.ces_change.items()},
            "counters": dict(self.counters),
            "personas": dict(self.persona_names),
        }

    def _status_if_due(self) -> ExperienceStatus | None:
        now = self.clock()
        if not self.dirty or now < self.sent_at + self.config.every_s:
            return None
        self.sent_at, self.dirty = now, False
        return ExperienceStatus(self.name, self.counts())

    def _saved_rings(self) -> np.ndarray:
        self._save()
        return self.rings[: len(self.series)].copy()

    def notify_at(self) -> datetime | None:
        if not self.dirty:
            return None
        return datetime.fromtimestamp(self.sent_at + self.config.every_s, tz=UTC)

    def on_notify(self) -> tuple[Iterable[ExperienceOut], bool]:
        status = self._status_if_due()
        return ([status] if status is not None else []), RETAIN

    def on_eof(self) -> tuple[Iterable[ExperienceOut], bool]:
        if not self.dirty:
            return [], RETAIN
        self.sent_at, self.dirty = self.clock(), False
        return [ExperienceStatus(self.name, self.counts())], RETAIN

    def snapshot(self) -> LiveSnapshot:
        if not self.keep_snapshots:
            return ()
        return (
            self.hour,
            self.first_hour,
            tuple(self.series),
            self._saved_rings(),
            tuple((k, (t.count, tuple(t.gaps), t.seen)) for k, t in self.transitions.items()),
            {k: list(v) for k, v in self.took.items()},
            list(self.periods),
            {k: list(v) for k, v in self.touched.items()},
            {k: list(v) for k, v in self.sentiment.items()},
            {k: list(v) for k, v in self.ces_change.items()},
            set(self.alarmed),
            dict(self.counters),
        )


def _add_periods(table: dict[Any, list[int]], key: Any, n: int, churned: int) -> None:
    """``n`` periods (``churned`` of them churned) that had ``key``; a new key past
    :data:`MAX_TRANSITIONS` is not opened."""
    entry = table.get(key)
    if entry is None:
        if len(table) >= MAX_TRANSITIONS:
            return
        entry = table[key] = [0, 0]
    entry[0] += n
    entry[1] += churned


def live_view(
    parts: Iterable[Mapping[str, Any]], *, top: int = 40, min_periods: int = 20
) -> dict[str, Any] | None:
    """The supervisors' ``experience`` figures from the counts of one or more
    processes' :class:`LiveExperience` (None without any):

    - ``kpis`` {``overall``, ``by_channel``, ``by_touchpoint``, ``by_queue``,
      ``by_persona`` (by its name now and its model shard's cluster: "high value,
      digital first (m0/p2)")}: per name,
      per window (``day``, ``week``), ``nps``/``csat``/``ces`` with ``value``, ``n``,
      ``ci``, ``previous`` (the window before: ``value``, ``n``, ``ci``) and ``change``;
    - ``journey_map``: ``periods`` and ``churn_rate`` (labelled customer-periods and
      the share that churned), the ``top`` most frequent ``transitions`` (``from``,
      ``to``, ``count``, ``median_gap_s``, ``periods``, ``churn_rate``), ``to_churn``
      and ``to_retention`` (steps of at least ``min_periods`` periods);
    - ``touchpoints``: ranked by ``churn_lift`` (with ``ci``, ``n``, ``churn_with``,
      ``churn_without``), with ``sentiment_change`` and ``ces_change`` after it.
    """
    parts = [p for p in parts if isinstance(p, Mapping)]
    if not parts:
        return None
    series: dict[str, dict[str, np.ndarray]] = {}
    transitions: dict[tuple[str, str], list[float]] = {}
    touched: dict[str, list[float]] = {}
    sentiment: dict[str, list[float]] = {}
    ces_change: dict[str, list[float]] = {}
    periods = [0, 0]
    hour = -1
    persona_names: dict[str, str] = {}
    for part in parts:
        hour = max(hour, int(part.get("hour", -1)))
        persona_names.update(part.get("personas", {}))
        for name, windows in part.get("series", {}).items():
            mine = series.setdefault(name, {})
            for window, counts in windows.items():
                row = np.asarray(counts, dtype=float)
                mine[window] = mine[window] + row if window in mine else row
        for src, dst, count, median, took, churned in part.get("transitions", []):
            t = transitions.setdefault((src, dst), [0, 0.0, 0, 0])
            # (the median of several processes' gaps: their count-weighted mean)
            t[1] = (t[1] * t[0] + median * count) / (t[0] + count) if t[0] + count else 0.0
            t[0] += count
            t[2] += took
            t[3] += churned
        periods[0] += int(part.get("periods", [0, 0])[0])
        periods[1] += int(part.get("periods", [0, 0])[1])
        for table, into in (
            (part.get("touched", {}), touched),
            (part.get("sentiment", {}), sentiment),
            (part.get("ces_change", {}), ces_change),
        ):
            for name, (n, total) in table.items():
                entry = into.setdefault(name, [0, 0])
                entry[0] += n
                entry[1] += total
    kpis: dict[str, dict[str, Any]] = {
        "overall": {},
        "by_channel": {},
        "by_touchpoint": {},
        "by_queue": {},
        "by_persona": {},
    }
    groups = {"channel": "by_channel", "touchpoint": "by_touchpoint", "queue": "by_queue"}
    for name, windows in sorted(series.items()):
        figures: dict[str, Any] = {}
        for window, _ in WINDOWS:
            if window not in windows:
                continue
            now = figures_of(windows[window])
            then = figures_of(windows[f"{window}_previous"])
            figures[window] = {
                m: {
                    **now[m],
                    "previous": then[m],
                    "change": (
                        _round(now[m]["value"] - then[m]["value"])
                        if now[m]["value"] is not None and then[m]["value"] is not None
                        else None
                    ),
                }
                for m in METRICS
            }
        dimension, _, value = name.partition("=")
        if dimension == "overall":
            kpis["overall"] = figures
        elif dimension == "persona":  # by its name now, and its shard's cluster
            persona_name = persona_names.get(value)
            kpis["by_persona"][f"{persona_name} ({value})" if persona_name else value] = figures
        elif dimension in groups:
            kpis[groups[dimension]][value] = figures
    n, churned = periods
    base = churned / n if n else None
    ranked = sorted(transitions.items(), key=lambda kv: (-kv[1][0], kv[0]))
    rows = [
        {
            "from": src,
            "to": dst,
            "count": int(t[0]),
            "median_gap_s": _round(t[1], 3),
            "periods": int(t[2]),
            "churn_rate": _round(t[3] / t[2], 4) if t[2] else None,
        }
        for (src, dst), t in ranked[:top]
    ]
    often = [
        (t[3] / t[2], int(t[2]), step) for step, t in transitions.items() if t[2] >= min_periods
    ]

    def path(p: tuple[float, int, tuple[str, str]]) -> dict[str, Any]:
        rate, took, (src, dst) = p
        return {"from": src, "to": dst, "periods": took, "churn_rate": _round(rate, 4)}

    impact: list[dict[str, Any]] = []
    for name in sorted(set(touched) | set(sentiment) | set(ces_change)):
        with_n, with_churned = (int(v) for v in touched.get(name, [0, 0]))
        s_n, s_total = sentiment.get(name, [0, 0.0])
        c_n, c_total = ces_change.get(name, [0, 0.0])
        impact.append(
            {
                **lift_of(name, with_n, with_churned, n, churned),
                "sentiment_change": {
                    "value": _round(s_total / s_n, 3) if s_n else None,
                    "n": int(s_n),
                },
                "ces_change": {"value": _round(c_total / c_n, 2) if c_n else None, "n": int(c_n)},
            }
        )
    impact.sort(
        key=lambda t: (
            -(t["churn_lift"] if t["churn_lift"] is not None else -math.inf),
            -t["n"],
            t["touchpoint"],
        )
    )
    return {
        "at": (hour + 1) * HOUR_MS if hour >= 0 else None,
        "windows": {window: hours * HOUR_MS for window, hours in WINDOWS},
        "kpis": kpis,
        "journey_map": {
            "periods": n,
            "churn_rate": None if base is None else _round(base, 4),
            "transitions": rows,
            "to_churn": [path(p) for p in sorted(often, key=lambda p: (-p[0], -p[1], p[2]))[:10]],
            "to_retention": [
                path(p) for p in sorted(often, key=lambda p: (p[0], -p[1], p[2]))[:10]
            ],
        },
        "touchpoints": impact,
    }
