"""One customer's journey, kept live, and the features computed from it.

``JourneyState.update_one(event)`` folds an event in (the event is not mutated);
``features(state, now_ms)`` gives the model's ``dict[str, float]`` as of
``now_ms``; ``summary(state, now_ms)`` gives the journey part of an alert.
The same ``features`` function serves scoring and learning.

Memory per customer is bounded: counts live in fixed small tables, the lists
of recent touchpoints, contacts and channel switches are capped.

>>> from operators.events import Event
>>> s = JourneyState()
>>> day = 86_400_000
>>> for i, (ch, ty) in enumerate([("web", "page_view"), ("chat", "complaint"),
...                               ("voice", "contact_start")]):
...     s.update_one(Event(f"e{i}", "c1", None, i * day, ch, ty, {}))
>>> f = features(s, 2 * day)
>>> f["complaints_open"], f["contacts_7d"], f["channel_switches_24h"]
(1.0, 1.0, 1.0)
"""

from __future__ import annotations

import math
from typing import Any

from operators.events import KNOWN_TYPE_SET, Event

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
TOUCHPOINTS_KEPT = 10
CONTACTS_KEPT = 16
SWITCHES_KEPT = 16
PAYMENT_FAILURES_KEPT = 8
SENTIMENT_ALPHA = 0.3
CONTACT_TYPES = frozenset(("contact_start",))
COUNTED_TYPES = (
    "page_view",
    "search",
    "cart_abandon",
    "purchase",
    "payment_failed",
    "complaint",
    "contact_start",
    "survey",
    "review",
    "offer_response",
)

FEATURE_NAMES = (
    "n_events_log",
    "tenure_days",
    "days_since_last",
    "contacts_7d",
    "complaints_open",
    "complaints_total",
    "sentiment",
    "sentiment_known",
    "nps",
    "nps_known",
    "csat",
    "csat_known",
    "payment_failures_30d",
    "purchases",
    "value_log",
    "channel_switches_24h",
    "channels_used",
    "cart_abandons",
    "page_views_log",
    "offers_declined",
)


class JourneyState:
    """The live journey of one customer.  Mutated by :meth:`update_one` only."""

    __slots__ = (
        "channel_counts",
        "complaints_open",
        "complaints_total",
        "contacts",
        "csat",
        "first_ts",
        "last_channel",
        "last_ts",
        "n_events",
        "nps",
        "offers_declined",
        "other_types",
        "payment_failures",
        "prev_ts",
        "sentiment",
        "switches",
        "touchpoints",
        "type_counts",
        "value",
    )

    def __init__(self) -> None:
        self.n_events = 0
        self.first_ts = 0
        self.last_ts = 0
        self.prev_ts = 0  # the latest event time before the most recent event
        self.channel_counts: dict[str, int] = {}
        self.type_counts: dict[str, int] = {}
        self.other_types = 0
        self.touchpoints: list[tuple[int, str, str]] = []
        self.contacts: list[int] = []
        self.switches: list[int] = []
        self.payment_failures: list[int] = []
        self.last_channel = ""
        self.complaints_open = 0
        self.complaints_total = 0
        self.sentiment: float | None = None
        self.nps: float | None = None
        self.csat: float | None = None
        self.value = 0.0
        self.offers_declined = 0

    def update_one(self, event: Event) -> None:
        """Fold one event into the journey (late events count by their own ts)."""
        ts, channel, type_ = event.ts, event.channel, event.type
        attrs = event.attrs
        if self.n_events == 0:
            self.first_ts = ts
        else:
            self.first_ts = min(self.first_ts, ts)
        if ts >= self.last_ts:
            switched = self.n_events > 0 and channel != self.last_channel
            if switched and ts - self.last_ts <= DAY_MS:
                _push(self.switches, ts, SWITCHES_KEPT)
            self.prev_ts, self.last_ts = self.last_ts, ts
            self.last_channel = channel
        self.n_events += 1
        self.channel_counts[channel] = self.channel_counts.get(channel, 0) + 1
        if type_ in KNOWN_TYPE_SET:
            self.type_counts[type_] = self.type_counts.get(type_, 0) + 1
        else:
            self.other_types += 1
        _insert_touchpoint(self.touchpoints, (ts, channel, type_))

        if type_ in CONTACT_TYPES:
            _push(self.contacts, ts, CONTACTS_KEPT)
        elif type_ == "complaint":
            self.complaints_open += 1
            self.complaints_total += 1
        elif type_ == "complaint_resolved":
            self.complaints_open = max(0, self.complaints_open - 1)
        elif type_ == "payment_failed":
            _push(self.payment_failures, ts, PAYMENT_FAILURES_KEPT)
        elif type_ == "purchase":
            amount = attrs.get("amount")
            if isinstance(amount, int | float) and not isinstance(amount, bool):
                self.value += float(amount)
        elif type_ == "offer_response" and attrs.get("response") == "declined":
            self.offers_declined += 1

        sentiment = attrs.get("sentiment")
        if isinstance(sentiment, int | float) and not isinstance(sentiment, bool):
            s = float(sentiment)
            prev = self.sentiment
            self.sentiment = s if prev is None else prev + SENTIMENT_ALPHA * (s - prev)
        nps = attrs.get("nps")
        if isinstance(nps, int | float) and not isinstance(nps, bool):
            self.nps = float(nps)
        csat = attrs.get("csat")
        if isinstance(csat, int | float) and not isinstance(csat, bool):
            self.csat = float(csat)

    def snapshot(self) -> tuple[Any, ...]:
        """An immutable, picklable copy of the state."""
        return tuple(
            tuple(v)
            if isinstance(v, list)
            else tuple(sorted(v.items()))
            if isinstance(v, dict)
            else v
            for v in (getattr(self, name) for name in self.__slots__)
        )

    @classmethod
    def restore(cls, snap: tuple[Any, ...]) -> JourneyState:
        state = cls()
        for name, value in zip(cls.__slots__, snap, strict=True):
            current = getattr(state, name)
            if isinstance(current, list):
                value = list(value)
            elif isinstance(current, dict):
                value = dict(value)
            setattr(state, name, value)
        return state


def _push(items: list[int], ts: int, cap: int) -> None:
    items.append(ts)
    if len(items) > cap:
        del items[0]


def _insert_touchpoint(items: list[tuple[int, str, str]], tp: tuple[int, str, str]) -> None:
    """Keep the latest TOUCHPOINTS_KEPT touchpoints in event-time order."""
    if not items or tp[0] >= items[-1][0]:
        items.append(tp)
    else:
        i = len(items)
        while i > 0 and items[i - 1][0] > tp[0]:
            i -= 1
        items.insert(i, tp)
    if len(items) > TOUCHPOINTS_KEPT:
        del items[0]


def _count_since(items: list[int], since: int, until: int) -> int:
    return sum(1 for t in items if since < t <= until)


def features(state: JourneyState, now_ms: int) -> dict[str, float]:
    """The model's features as of event time ``now_ms`` (one fixed set of names)."""
    tc = state.type_counts
    last_before = state.prev_ts if state.last_ts >= now_ms and state.prev_ts else state.last_ts
    return {
        "n_events_log": math.log1p(state.n_events),
        "tenure_days": max(0.0, (now_ms - state.first_ts) / DAY_MS),
        "days_since_last": max(0.0, (now_ms - last_before) / DAY_MS) if state.n_events > 1 else 0.0,
        "contacts_7d": float(_count_since(state.contacts, now_ms - 7 * DAY_MS, now_ms)),
        "complaints_open": float(state.complaints_open),
        "complaints_total": float(state.complaints_total),
        "sentiment": state.sentiment if state.sentiment is not None else 0.0,
        "sentiment_known": 0.0 if state.sentiment is None else 1.0,
        "nps": state.nps if state.nps is not None else 0.0,
        "nps_known": 0.0 if state.nps is None else 1.0,
        "csat": state.csat if state.csat is not None else 0.0,
        "csat_known": 0.0 if state.csat is None else 1.0,
        "payment_failures_30d": float(
            _count_since(state.payment_failures, now_ms - 30 * DAY_MS, now_ms)
        ),
        "purchases": float(tc.get("purchase", 0)),
        "value_log": math.log1p(max(0.0, state.value)),
        "channel_switches_24h": float(_count_since(state.switches, now_ms - DAY_MS, now_ms)),
        "channels_used": float(len(state.channel_counts)),
        "cart_abandons": float(tc.get("cart_abandon", 0)),
        "page_views_log": math.log1p(tc.get("page_view", 0)),
        "offers_declined": float(state.offers_declined),
    }


def summary(state: JourneyState, now_ms: int) -> dict[str, Any]:
    """The ``journey`` object of an alert and of the profile hash."""
    return {
        "last_touchpoints": [
            {"ts": ts, "channel": ch, "type": ty} for ts, ch, ty in reversed(state.touchpoints)
        ],
        "open_complaints": state.complaints_open,
        "complaints_total": state.complaints_total,
        "sentiment": None if state.sentiment is None else round(state.sentiment, 3),
        "nps": state.nps,
        "csat": state.csat,
        "channel_switches_24h": _count_since(state.switches, now_ms - DAY_MS, now_ms),
        "repeat_contacts_7d": max(0, _count_since(state.contacts, now_ms - 7 * DAY_MS, now_ms) - 1),
        "payment_failures_30d": _count_since(state.payment_failures, now_ms - 30 * DAY_MS, now_ms),
        "value": round(state.value, 2),
        "tenure_days": round(max(0.0, (now_ms - state.first_ts) / DAY_MS), 1),
        "events": state.n_events,
        "channels": dict(sorted(state.channel_counts.items())),
    }
