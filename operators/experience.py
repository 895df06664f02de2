"""Measuring the experience: NPS, CSAT and CES per touchpoint, the journey map, and
which touchpoints come before churn.

A touchpoint is ``channel·type`` (``voice·contact_start``).  :class:`Kpis` holds one
series' survey answers (attrs ``nps`` 0-10, ``csat`` 1-5, ``ces`` 1-7, on any event):

- NPS: promoters (9-10) minus detractors (0-6), in points; its 95% interval from the
  variance of the per-answer score (+1, 0, -1);
- CSAT: the share of 4-5 answers, in %, with Wilson's 95% interval;
- CES: the mean, with a normal 95% interval (from two answers).

:class:`ExperienceReport` folds a log in event time (``cxstream report``): the KPIs
overall, by channel and by touchpoint (for a ``survey`` or ``review``, the customer's
touchpoint before it; for any other event, its own), the transitions between a
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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from operators.evaluate import Row
from operators.events import Event
from operators.proactive import uplift_of

Z95 = 1.959964
SURVEY_TYPES = frozenset(("survey", "review"))  # rated the touchpoint before them
CHURN_TYPES = frozenset(("cancel",))
GAP_SAMPLE = 512  # gaps kept per transition for its median (a reservoir once full)


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

    def add(self, attrs: Mapping[str, Any]) -> bool:
        """Count the event's answers (typed attrs, validated at parse); True if any."""
        found = False
        nps = attrs.get("nps")
        if isinstance(nps, int | float) and not isinstance(nps, bool):
            self.nps_n += 1
            self.promoters += nps >= 9
            self.detractors += nps <= 6
            found = True
        csat = attrs.get("csat")
        if isinstance(csat, int | float) and not isinstance(csat, bool):
            self.csat_n += 1
            self.satisfied += csat >= 4
            found = True
        ces = attrs.get("ces")
        if isinstance(ces, int | float) and not isinstance(ces, bool):
            self.ces_n += 1
            self.ces_total += ces
            self.ces_squares += ces * ces
            found = True
        return found

    def figures(self) -> dict[str, dict[str, Any]]:
        return {
            "nps": nps_figure(self.promoters, self.detractors, self.nps_n),
            "csat": csat_figure(self.satisfied, self.csat_n),
            "ces": ces_figure(self.ces_n, self.ces_total, self.ces_squares),
        }


def touchpoint(event: Event) -> str:
    """``channel·type`` (the log's own channel name when it had one outside the contract).

    >>> touchpoint(Event("e", "c", None, 0, "voice", "contact_start", {}))
    'voice·contact_start'
    """
    source = event.attrs.get("source_channel") if event.attrs else None
    return f"{source if isinstance(source, str) else event.channel}·{event.type}"


@dataclass(slots=True)
class _Transition:
    count: int = 0
    gaps: list[int] = field(default_factory=list)
    seen: int = 0  # gaps offered to the sample

    def add(self, gap_ms: int) -> None:
        self.count += 1
        self.seen += 1
        if len(self.gaps) < GAP_SAMPLE:
            self.gaps.append(gap_ms)
            return
        # a reservoir (Vitter's algorithm R) with a draw made from the count: the same
        # log gives the same sample
        j = (self.seen * 2_654_435_761 + 97) % 4_294_967_291 % self.seen
        if j < GAP_SAMPLE:
            self.gaps[j] = gap_ms

    def median_s(self) -> float:
        ordered = sorted(self.gaps)
        mid = len(ordered) // 2
        ms = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
        return _round(ms / 1000, 3)


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
            self.by_channel.setdefault(event.channel, Kpis()).add(event.attrs)
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
        out = []
        for name, (with_n, with_churned) in had.items():
            without_n, without_churned = n - with_n, churned - with_churned
            cell = {
                "n_control": with_n,
                "churned_control": with_churned,
                "n_treated": without_n,
                "churned_treated": without_churned,
            }
            u = uplift_of(cell)
            out.append(
                {
                    "touchpoint": name,
                    "churn_lift": u["uplift"],
                    "ci": u["ci"],
                    "n": with_n,
                    "churn_with": u["churn_control"],
                    "churn_without": u["churn_treated"],
                }
            )
        out.sort(key=lambda t: (-(t["churn_lift"] or 0.0), t["touchpoint"]))
        return out
