"""One customer's journey, kept live, and the features computed from it.

``JourneyState.update_one(event)`` folds an event in (the event is not mutated);
``features(state, now_ms)`` gives the model's ``dict[str, float]`` as of
``now_ms``; ``summary(state, now_ms)`` gives the journey part of an alert.
The same ``features`` function serves scoring and learning.

Memory per customer is bounded: counts live in fixed small tables (at most
``OTHER_TYPES_KEPT`` activity types outside the contract's list, the rest
aggregated), the lists of recent touchpoints, contacts, sessions and channel
switches are capped.  Decayed counts keep (value, time) and decay on read.

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
import struct
import sys
from array import array
from operator import itemgetter
from typing import Any, Final

from operators.events import KNOWN_TYPE_SET, Event, number

# (a static: compiled code would look ``math.log1p`` up by name at every call)
_log1p: Final = math.log1p

DAY_MS: Final = 86_400_000
HOUR_MS: Final = 3_600_000
TOUCHPOINTS_KEPT: Final = 10
CONTACTS_KEPT: Final = 16
SWITCHES_KEPT: Final = 16
PAYMENT_FAILURES_KEPT: Final = 8
SENTIMENT_ALPHA: Final = 0.3
SENTIMENT_SLOW_ALPHA: Final = 0.08
SESSION_GAP_MS: Final = 30 * 60_000
SESSIONS_KEPT: Final = 16
RATE_PRIOR_DAYS: Final = 30.0  # the rate per day of tenure is shrunk over this (see features)
OTHER_TYPES_KEPT: Final = 24
DECAY_HALF_LIFE_MS: Final = 7 * DAY_MS
CONTACT_TYPES: Final = frozenset(("contact_start",))
COUNTED_TYPES: Final[tuple[str, ...]] = (
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

FEATURE_NAMES: Final[tuple[str, ...]] = (
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
    "offers_accepted",
    "offers_made",
    "sessions_30d",
    "sentiment_trend",
    "activity_7d",
    "value_attr_log",
    "events_24h",
    "tenure_log",
    "rate_log",
    "gap_ratio_log",
    "value_per_event_log",
    "activity_trend",
)
TENURE_BUCKETS: Final[tuple[tuple[float, str], ...]] = (
    (1.0, "0-1d"),
    (3.0, "1-3d"),
    (7.0, "3-7d"),
    (14.0, "7-14d"),
    (30.0, "14-30d"),
    (90.0, "30-90d"),
    (365.0, "90-365d"),
    (math.inf, "365d+"),
)


# JourneyState's fields, here rather than read back from the class: a compiled (mypyc)
# class has no ``__slots__`` attribute
_SLOTS: Final[tuple[str, ...]] = (
    "activity",
    "ces",
    "channel_counts",
    "channel_decay",
    "complaints_open",
    "complaints_total",
    "contacts",
    "csat",
    "first_ts",
    "last_channel",
    "last_ts",
    "last_type",
    "n_events",
    "nps",
    "offers_accepted",
    "offers_declined",
    "other_counts",
    "other_last",
    "other_types",
    "payment_failures",
    "prev_ts",
    "prev_type",
    "sentiment",
    "sentiment_slow",
    "sessions",
    "switches",
    "touchpoints",
    "type_counts",
    "value",
    "value_attr",
)


class JourneyState:
    """The live journey of one customer.  Mutated by :meth:`update_one` only."""

    __slots__ = _SLOTS

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
        self.ces: float | None = None  # the latest Customer Effort Score (1-7, 7: easy)
        self.value = 0.0
        self.offers_declined = 0
        self.offers_accepted = 0
        self.sentiment_slow: float | None = None
        self.sessions: list[int] = []  # start times of the latest sessions
        # Types outside the contract's list: most customers have none, so these start
        # as one shared empty dict each (64 bytes apiece saved) until the first write.
        self.other_counts: dict[str, int] = _NO_OTHERS
        self.other_last: dict[str, int] = _NO_OTHERS_LAST  # latest time of each such type
        self.last_type = ""
        self.prev_type = ""
        self.channel_decay: dict[str, tuple[float, int]] = {}
        self.activity: tuple[float, int] = (0.0, 0)
        self.value_attr: float | None = None

    def update_one(self, event: Event) -> None:
        """Fold one event into the journey (late events count by their own ts)."""
        ts, channel, type_ = event.ts, event.channel, event.type
        n, last_ts = self.n_events, self.last_ts
        if n == 0 or ts < self.first_ts:
            self.first_ts = ts
        if ts >= last_ts:
            if n == 0 or ts - last_ts > SESSION_GAP_MS:  # a new session
                _push(self.sessions, ts, SESSIONS_KEPT)
            self.prev_type, self.last_type = self.last_type, type_
            if n and channel != self.last_channel and ts - last_ts <= DAY_MS:
                _push(self.switches, ts, SWITCHES_KEPT)
            self.prev_ts, self.last_ts = last_ts, ts
            self.last_channel = channel
        self.n_events = n + 1
        counts = self.channel_counts
        counts[channel] = counts.get(channel, 0) + 1
        if type_ in KNOWN_TYPE_SET:
            counts = self.type_counts
            counts[type_] = counts.get(type_, 0) + 1
        elif type_ in self.other_counts or len(self.other_counts) < OTHER_TYPES_KEPT:
            if self.other_counts is _NO_OTHERS:
                self.other_counts, self.other_last = {}, {}
            self.other_counts[type_] = self.other_counts.get(type_, 0) + 1
            self.other_last[type_] = max(ts, self.other_last.get(type_, ts))
        else:
            self.other_types += 1
        decay = self.channel_decay
        decay[channel] = _decay_add(decay.get(channel), ts)
        self.activity = _decay_add(self.activity, ts)
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
        attrs = event.attrs
        if not attrs:  # most events carry none
            return
        if type_ == "purchase":
            amount = number(attrs.get("amount"))
            if amount is not None:
                self.value += amount
        elif type_ == "offer_response":
            if attrs.get("response") == "declined":
                self.offers_declined += 1
            elif attrs.get("response") == "accepted":
                self.offers_accepted += 1
        value = number(attrs.get("value"))
        if value is not None:
            self.value_attr = value

        s = number(attrs.get("sentiment"))
        if s is not None:
            prev, slow = self.sentiment, self.sentiment_slow
            self.sentiment = s if prev is None else prev + SENTIMENT_ALPHA * (s - prev)
            self.sentiment_slow = s if slow is None else slow + SENTIMENT_SLOW_ALPHA * (s - slow)
        nps = number(attrs.get("nps"))
        if nps is not None:
            self.nps = nps
        csat = number(attrs.get("csat"))
        if csat is not None:
            self.csat = csat
        ces = number(attrs.get("ces"))
        if ces is not None:
            self.ces = ces

    def snapshot(self) -> tuple[Any, ...]:
        """An immutable, picklable copy of the state."""
        return tuple(
            tuple(v)
            if isinstance(v, list)
            else tuple(sorted(v.items()))
            if isinstance(v, dict)
            else v
            for v in (getattr(self, name) for name in _FIELDS)
        )

    @classmethod
    def restore(cls, snap: tuple[Any, ...]) -> JourneyState:
        state = cls()
        if len(snap) == len(_FIELDS) - 1:  # a 0.5 snapshot: no ces
            snap = (*snap, None)
        for name, value in zip(_FIELDS, snap, strict=True):
            current = getattr(state, name)
            if isinstance(current, list):
                value = list(value)
            elif current is _NO_OTHERS or current is _NO_OTHERS_LAST:
                value = dict(value) if value else current
            elif isinstance(current, dict):
                value = dict(value)
            setattr(state, name, value)
        return state


# the snapshot's order: the slots, the ones added since 0.5 last (older snapshots resume)
_FIELDS: Final[tuple[str, ...]] = (*(n for n in _SLOTS if n != "ces"), "ces")
_NO_OTHERS: Final[dict[str, int]] = {}  # shared, never written (see JourneyState.__init__)
_NO_OTHERS_LAST: Final[dict[str, int]] = {}


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


def _decay_add(current: tuple[float, int] | None, ts: int) -> tuple[float, int]:
    """Add 1 at ``ts`` to an exponentially decayed count kept as (value, as-of time)."""
    if current is None or (current[1] == 0 and current[0] == 0.0):
        return (1.0, ts)
    value, at = current
    if ts >= at:
        return (value * math.pow(0.5, (ts - at) / DECAY_HALF_LIFE_MS) + 1.0, ts)
    return (value + math.pow(0.5, (at - ts) / DECAY_HALF_LIFE_MS), at)  # a late event


def _decayed(current: tuple[float, int], now_ms: int) -> float:
    value, at = current
    return value * math.pow(0.5, max(0, now_ms - at) / DECAY_HALF_LIFE_MS)


def _count_since(items: list[int], since: int, until: int) -> int:
    n = 0
    for t in items:  # a plain loop: twice as fast as sum() over a generator here
        if since < t <= until:
            n += 1
    return n


# a steady 1/day's decayed count
_DECAY_MASS_DAYS: Final = DECAY_HALF_LIFE_MS / DAY_MS / math.log(2.0)


def silence_after(state: JourneyState, *, ratio: float, floor_ms: int) -> float | None:
    """How long after the customer's latest event their silence reaches level 0, in ms:
    ``ratio`` times their own mean gap between events (at least ``floor_ms``, which also
    stands for the gap of a customer of one event); level k is ``2**k`` times as long.
    None before a first event.

    >>> s = JourneyState()
    >>> for ts in (0, 2 * DAY_MS, 4 * DAY_MS):
    ...     s.update_one(Event(f"e{ts}", "c1", None, ts, "web", "page_view", {}))
    >>> after = silence_after(s, ratio=2.0, floor_ms=DAY_MS)
    >>> [(s.last_ts + int(after * 2**k)) // DAY_MS for k in (0, 1)]  # levels 0 and 1
    [8, 12]
    """
    n = state.n_events
    if not n:
        return None
    mean_gap = (state.last_ts - state.first_ts) / (n - 1) if n > 1 else 0.0
    return ratio * max(float(floor_ms), mean_gap)


def features(state: JourneyState, now_ms: int) -> dict[str, float]:
    """The model's features as of event time ``now_ms`` (one fixed set of names)."""
    tc = state.type_counts
    last_before = state.prev_ts if state.last_ts >= now_ms and state.prev_ts else state.last_ts
    age_ms = max(0, now_ms - state.first_ts) if state.n_events else 0
    x = {
        "n_events_log": _log1p(state.n_events),
        "tenure_days": age_ms / DAY_MS,
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
        "value_log": _log1p(max(0.0, state.value)),
        "channel_switches_24h": float(_count_since(state.switches, now_ms - DAY_MS, now_ms)),
        "channels_used": float(len(state.channel_counts)),
        "cart_abandons": float(tc.get("cart_abandon", 0)),
        "page_views_log": _log1p(tc.get("page_view", 0)),
        "offers_declined": float(state.offers_declined),
        "offers_accepted": float(state.offers_accepted),
        "offers_made": float(state.type_counts.get("offer_response", 0)),
        "sessions_30d": float(_count_since(state.sessions, now_ms - 30 * DAY_MS, now_ms)),
        "sentiment_trend": (
            state.sentiment - state.sentiment_slow
            if state.sentiment is not None and state.sentiment_slow is not None
            else 0.0
        ),
        "activity_7d": _decayed(state.activity, now_ms),
        "value_attr_log": _log1p(max(0.0, state.value_attr or 0.0)),
        "events_24h": float(
            sum(1 for t, _, _ in state.touchpoints if now_ms - DAY_MS < t <= now_ms)
        ),
        "tenure_log": _log1p(age_ms / HOUR_MS),
    }
    # cadence: the customer against their own rhythm
    n = state.n_events
    tenure_days = x["tenure_days"]
    # events a day of tenure, shrunk toward none over a first RATE_PRIOR_DAYS (a customer
    # of one purchase yesterday is not a daily buyer: the Gamma-Poisson posterior mean)
    rate = n / (tenure_days + RATE_PRIOR_DAYS)
    x["rate_log"] = _log1p(rate)
    # the current gap against the customer's mean gap before it
    gap = x["days_since_last"]
    earlier = n - 2 if state.last_ts >= now_ms else n - 1  # gaps completed before it
    span = tenure_days - gap
    x["gap_ratio_log"] = _log1p(gap * earlier / span) if earlier > 0 and span > 0 else 0.0
    purchases = x["purchases"]  # value a purchase (amounts), else the latest value attr
    x["value_per_event_log"] = (
        _log1p(max(0.0, state.value) / purchases) if purchases else x["value_attr_log"]
    )
    # recent activity (7-day half-life) against what the long-run rate would give
    x["activity_trend"] = _log1p(x["activity_7d"]) - _log1p(
        n / max(1.0, tenure_days) * _DECAY_MASS_DAYS
    )
    for name, count in state.other_counts.items():
        x[f"type:{name}"] = _log1p(count)
        x[f"since:{name}"] = _log1p(max(0.0, (now_ms - state.other_last[name]) / HOUR_MS))
    if state.ces is not None:  # (sparse, like the types: most customers never answer one)
        x["ces"] = (state.ces - 4.0) / 3.0  # -1 very hard .. +1 very easy
        x["ces_known"] = 1.0
    if state.last_type:
        x[f"last:{state.last_type}"] = 1.0
        if state.prev_type:
            x[f"after:{state.prev_type}>{state.last_type}"] = 1.0
    tenure = x["tenure_days"]
    x[f"tenure:{next(name for limit, name in TENURE_BUCKETS if tenure < limit)}"] = 1.0
    for channel, decayed in state.channel_decay.items():
        x[f"channel:{channel}"] = _decayed(decayed, now_ms)
    return x


Packed = tuple["array[float]", tuple[tuple[str, float], ...]]


def pack(x: dict[str, float]) -> Packed:
    """A compact, immutable form of a feature dict: fixed values + sparse extras.

    >>> x = {**dict.fromkeys(FEATURE_NAMES, 0.0), "type:A_SUBMITTED": 0.69}
    >>> unpack(pack(x)) == x
    True
    """
    fixed = fixed_values(x)
    fixed_names, intern = _FIXED, _intern
    extras = tuple((intern(k), v) for k, v in x.items() if k not in fixed_names)  # shared names
    return fixed, extras


def fixed_values(x: dict[str, float]) -> array[float]:
    """The values of ``x`` in :data:`FEATURE_NAMES` order (0.0 for a missing one), 8 bytes
    a value.

    >>> fixed_values({"contacts_7d": 2.0})[FEATURE_NAMES.index("contacts_7d")]
    2.0
    """
    try:  # (the journey's features have every fixed name: read in one call, and
        # packed in one: an array made from the values themselves converts each in turn)
        return array("d", _pack_fixed(*_fixed_values(x)))
    except KeyError:
        return array("d", [x.get(name, 0.0) for name in FEATURE_NAMES])


def unpack(packed: Packed) -> dict[str, float]:
    fixed, extras = packed
    x = dict(zip(FEATURE_NAMES, fixed, strict=True))
    x.update(extras)
    return x


_FIXED: Final = frozenset(FEATURE_NAMES)
_fixed_values: Final = itemgetter(*FEATURE_NAMES)  # a dict's values of them, in order
_pack_fixed: Final = struct.Struct(f"@{len(FEATURE_NAMES)}d").pack  # as an array("d")'s bytes
_intern: Final = sys.intern


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
        "ces": state.ces,
        "channel_switches_24h": _count_since(state.switches, now_ms - DAY_MS, now_ms),
        "repeat_contacts_7d": max(0, _count_since(state.contacts, now_ms - 7 * DAY_MS, now_ms) - 1),
        "payment_failures_30d": _count_since(state.payment_failures, now_ms - 30 * DAY_MS, now_ms),
        "value": round(state.value, 2),
        "tenure_days": round(max(0.0, (now_ms - state.first_ts) / DAY_MS), 1),
        "events": state.n_events,
        "channels": dict(sorted(state.channel_counts.items())),
    }
