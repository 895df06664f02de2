"""The per-customer step: dedupe, journey, delayed labels, contact moments.

A :class:`CustomerLogic` lives for one customer key.  For each event it drops a
duplicate ``event_id``; folds the event into the journey; labels pending
snapshots the event decides; at a ``contact_start`` emits a
:class:`ScoreRequest` and keeps the snapshot pending; passes complaints and
contacts on to the trends as :class:`Signal`; and emits the profile.
It expires ``retention`` after its last event (wall time from the injected
clock), labelling what is still pending.

A ``consent`` event updates the customer's :class:`~operators.consent.Consents`
(the latest statement in event time wins) and goes on as a :class:`ConsentChange`
(the audit trail).  While the customer objects to profiling, nothing is kept to
learn from (what was pending is dropped at the objection), no silence or event is
scored, no rule fires, and a contact is still passed on, with the consents, for an
alert without a score.

A ``forget`` event erases the customer: the state is discarded, nothing
pending is labelled, and an :class:`Erase` goes on (the model shard drops the
customer's open recommendations, the store sink deletes what is stored).  The
customer's key joins the process's :class:`Forgotten` digests; a later event
of that key is suppressed, and so is a state resumed from a snapshot taken
before the erasure.
"""

from __future__ import annotations

import heapq
import math
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from operators.consent import ConsentPolicy, Consents
from operators.dedupe import RecentIds
from operators.erasure import Forgotten
from operators.events import Event, Keyed
from operators.experience import (
    HOUR_MS,
    CustomerExperience,
    Kpis,
    TallyBuffer,
)
from operators.journey import (
    DAY_MS,
    JourneyState,
    Packed,
    features,
    pack,
    silence_after,
    summary,
    unpack,
)
from operators.labels import Matured, PendingExamples
from operators.logic import DISCARD, RETAIN, BatchLogic, Logic
from operators.proactive import Rule, RuleState, zone
from operators.records import (
    ConsentChange,
    CustomerOut,
    Decided,
    Erase,
    Example,
    Outcome,
    ProfileUpdate,
    Rated,
    Rating,
    ScoreRequest,
    Watched,
)
from operators.trends import signal_of

SCORE_TYPES: Final = frozenset(("contact_start",))
# Channel systems' reports on an outbound action: the answer the arbiter learns from
OUTBOUND_REPORTS: Final = {
    "outbound_delivered": "delivered",
    "outbound_opened": "opened",
    "outbound_clicked": "clicked",  # the policy learns it as an acceptance
}
NEVER_SCORED: Final = frozenset(("cancel", "forget"))  # the customer is leaving: nothing to predict

CustomerSnapshot = tuple[Any, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomerConfig:
    """``label_mode`` is cancel or inactivity (labels from later events), or external
    (labels come from elsewhere, e.g. a file: nothing is kept pending).
    ``score_every`` K > 0 also scores every K-th event of a customer, not only contacts.
    ``profile_interval_s`` > 0 writes a customer's profile at most that often (wall
    time), except at its first event, at contact moments and at consent statements;
    the latest journey is always written, at the end of the interval (write-behind).
    ``silence_ratio`` > 0 also scores a customer whose silence reaches that many times
    their own mean gap between events (a gap of at least ``silence_floor_ms``), then at
    each doubling of that, ``silence_levels`` times a silence (see
    :func:`operators.journey.silence_after`); not with external labels (a file's labels
    belong to its rows).  One level by default: measured on a purchase log and simulated
    ones, a second level doubled the silence snapshots in the refit's window and cost the
    contact moments 0.003 to 0.006 of AUC.
    """

    retention_s: float = 90 * 86_400.0
    horizon_ms: int = 30 * DAY_MS
    label_mode: str = "cancel"
    dedupe_size: int = 32
    pending_cap: int = 4
    score_every: int = 0
    release: str = "horizon"
    profile_interval_s: float = 0.0
    silence_ratio: float = 0.0
    silence_floor_ms: int = DAY_MS
    silence_levels: int = 1
    triggers: tuple[Rule, ...] = ()  # the catalog's proactive rules
    proactive: bool = False  # label the moments that may act proactively (``Watched``)
    silence_journey: bool = False  # a silence carries the journey (a model trigger's alert)
    consent: ConsentPolicy = field(default_factory=ConsentPolicy)  # before any statement
    rule_events: frozenset[str] = field(init=False, default=frozenset())  # their event types

    def __post_init__(self) -> None:
        object.__setattr__(self, "rule_events", frozenset(r.event for r in self.triggers))


class Watermark:
    """The latest event time seen by the customer logics that share it (one per worker).

    It lets a quiet customer's pending snapshots mature once the stream's event
    time has passed their horizon, without that customer sending anything.
    """

    __slots__ = ("now",)

    def __init__(self) -> None:
        self.now = 0

    def observe(self, ts: int) -> None:
        if ts > self.now:
            self.now = ts


MIN_CHECK_S: Final = 1.0
MAX_LINKED: Final = 16  # anonymous ids remembered per customer (erased with it)
# A profile's expiry (CX_RETENTION_DAYS) is pushed back at most this often: it may
# expire up to an hour before the journey state does, and saves a command a write.
TTL_REFRESH_S: Final = 3600.0


class CustomerLogic(Logic[Event, CustomerOut, CustomerSnapshot]):
    """Journey state of one customer, in Bytewax's ``on_item``/``snapshot`` shape."""

    def __init__(
        self,
        resume: CustomerSnapshot | None,
        *,
        config: CustomerConfig,
        clock: Callable[[], float],
        watermark: Watermark | None = None,
        keep_snapshots: bool = True,
        forgotten: Forgotten | None = None,
        tally: TallyBuffer | None = None,
    ) -> None:
        self.config = config
        self.forgotten = forgotten
        # the worker's transitions and sentiment changes (the experience view), if kept
        self.tally = tally
        self.cx: CustomerExperience | None = None  # the customer's period and queue
        self.erased = False
        self.clock = clock
        self.watermark = watermark or Watermark()
        # Bytewax asks for a snapshot of every touched key at every epoch, recovery or
        # not; without recovery nothing ever resumes from it, so none is built.
        self.keep_snapshots = keep_snapshots
        self.profile_at = 0.0  # wall time the profile was last emitted
        self.profile_due = False  # the journey changed since then
        self.ttl_at = -math.inf  # wall time the profile's expiry was last pushed back
        self.late = 0  # events older than the customer's latest (folded in by their own time)
        self.silences = 0  # silence moments scored since the customer's latest event
        self.tz: str | None = None  # the customer's time zone (attr tz), if said
        self.rules: RuleState | None = None  # made when a rule's event first comes
        # the moments that may act proactively, labelled like examples (for the uplift);
        # made when the first is watched
        self.watch: PendingExamples[None] | None = None
        self.consents: Consents | None = None  # made at the first consent event
        self.objected = False  # to profiling: not scored, not learned from
        if not resume:
            self.key = ""
            self.journey = JourneyState()
            self.seen = RecentIds(size=config.dedupe_size)
            self.pending: PendingExamples[Packed] = PendingExamples(
                mode=_pending_mode(config),
                horizon_ms=config.horizon_ms,
                cap=config.pending_cap,
                release=config.release,
            )
            self.duplicates = 0
            self.touched_at = clock()
            self.linked: tuple[str, ...] = ()
        else:
            key, journey, seen, (items, dropped, decided), duplicates, touched_at = resume[:6]
            self.profile_due, self.ttl_at, self.late = bool(resume[6]), resume[7], resume[8]
            self.linked, self.silences = tuple(resume[9]), resume[10]
            if len(resume) > 11:  # proactive state (older snapshots have none)
                self.tz = resume[11]
                self.rules = RuleState(resume[12]) if resume[12] else None
                w_items, w_dropped, w_decided = resume[13]
                self.watch = _watched(config, w_items, w_dropped, w_decided) if w_items else None
            if len(resume) > 14 and resume[14]:  # consents (older snapshots have none)
                self.consents = Consents(resume[14])
            if len(resume) > 15 and resume[15]:  # experience (older snapshots have none)
                self.cx = CustomerExperience(resume[15])
            self.key = key
            self.journey = JourneyState.restore(journey)
            self.seen = RecentIds(size=config.dedupe_size, digests=seen)
            self.pending = PendingExamples(
                mode=_pending_mode(config),
                horizon_ms=config.horizon_ms,
                cap=config.pending_cap,
                items=items,
                dropped=dropped,
                release=config.release,
                decided=decided,
            )
            self.duplicates = duplicates
            self.touched_at = touched_at
            # A snapshot from before an erasure (a restart resumed from it): drop it
            # at the first notification, and never snapshot it again.
            self.erased = forgotten is not None and key in forgotten
        # (CX_CONSENT_DEFAULT may deny profiling until the customer grants it)
        self.objected = config.consent.objected(self.consents)

    def on_item(self, value: Event) -> tuple[Iterable[CustomerOut], bool]:
        event = value
        # (the event's fields read once: each read of a record's field is a Python
        # attribute lookup, and ``key`` a property)
        type_, ts, key, attrs = event.type, event.ts, event.key, event.attrs
        if type_ == "forget":
            return self._forget(key), DISCARD
        if self.erased or (not self.key and self.forgotten is not None and key in self.forgotten):
            # Got past the parse step (whose process had not heard of the erasure
            # yet): dropped here, and the customer's entries are swept again.
            if self.forgotten is not None:
                self.forgotten.suppressed += 1
            self.erased = True
            return [Erase(key)], DISCARD
        if not self.seen.add(event.event_id):
            self.duplicates += 1
            # the profile's count stays true without waiting for the next new event
            return [ProfileUpdate(self.key, {"duplicates": self.duplicates})], RETAIN
        self.key = key
        anonymous = event.anonymous_id
        if anonymous is not None and anonymous != key and anonymous not in self.linked:
            self.linked = (*self.linked, anonymous)[-MAX_LINKED:]
        self.touched_at = self.clock()
        self.watermark.observe(ts)
        if ts < self.journey.last_ts:
            self.late += 1
        matured, held = self.pending.observe_decisions(ts, type_)
        out: list[CustomerOut] = [self._example(m) for m in matured]
        for snapshot_ts, label, label_ts in held:
            out.append(Decided(self.key, snapshot_ts, label, label_ts))
        if self.watch:
            out.extend(
                Watched(self.key, m.snapshot_ts, m.label) for m in self.watch.observe(ts, type_)
            )
        if type_ == "consent":
            out.extend(self._consent(event))
        tz = attrs.get("tz") if attrs else None
        if type(tz) is str and zone(tz) is not None:
            self.tz = tz
        tally = self.tally
        rating: Rating | None = None
        if tally is not None:  # the experience view: before the event joins the journey
            cx = self.cx
            if cx is None:
                cx = self.cx = CustomerExperience()
            # A period whose end the stream's event time has passed closes here, before
            # the event (which may open the next one).  No period while the customer
            # objects to profiling (a period is a record of one customer's journey).
            config = self.config
            rating = cx.observe(
                event,
                tally,
                self.journey,
                self.watermark.now,
                not self.objected,
                config.horizon_ms,
                config.label_mode,
            )
        self.journey.update_one(event)
        if ts >= self.journey.last_ts:  # the latest event: a new silence begins
            self.silences = 0
        every = self.config.score_every
        due = type_ in SCORE_TYPES or (
            every and not self.objected and self.journey.n_events % every == 0
        )
        journey: dict[str, Any] | None = None
        x: dict[str, float] | None = None
        rule: tuple[str, str] | None = None
        if type_ in self.config.rule_events and not self.objected:
            x, rule = self._rules(event)
        if (due or rule) and type_ not in NEVER_SCORED:
            if x is None:
                x = features(self.journey, ts)
            latest = self.pending.latest()
            previous = unpack(latest[1]) if latest else None
            if due and self.config.label_mode != "external" and not self.objected:
                self.pending.add(ts, pack(x))
            journey = summary(self.journey, ts)  # the alert's and the profile's
            # a rule that fired on an event scored anyway (score_every) rides on its moment
            moment = "contact" if type_ in SCORE_TYPES else "event" if due else "trigger"
            if moment == "trigger":  # (a scored event's example is its label)
                self._watch(ts)
            out.append(
                ScoreRequest(
                    self.key, event, x, previous, journey, moment, rule, self.tz, self._consents()
                )
            )
        if rating is not None and not self.objected:  # to the model shard, by persona
            out.append(
                Rated(
                    self.key,
                    rating.ts // HOUR_MS,
                    tuple(Kpis.row(rating.nps, rating.csat, rating.ces)),
                )
            )
        signal = signal_of(event)  # a complaint or a contact, for the trends
        if signal is not None:
            out.append(signal)
        if type_ == "offer_response" or type_ in OUTBOUND_REPORTS:
            a = attrs
            alert_id, action_id = a.get("alert_id"), a.get("action_id")
            response = OUTBOUND_REPORTS.get(type_) or a.get("response")
            if (
                isinstance(alert_id, str)
                and isinstance(action_id, str)
                and isinstance(response, str)
            ):
                out.append(Outcome(self.key, alert_id, action_id, response, ts))
        now = self.touched_at
        # a consent statement is written at once too: the profile answers a right of
        # access (`cxstream export`), which must show what the customer just said
        if due or type_ == "consent" or now - self.profile_at >= self.config.profile_interval_s:
            out.append(self._profile(ts, journey))
            self.profile_at, self.profile_due = now, False
        else:
            self.profile_due = True
        if tally is not None and now >= tally.due_at:
            taken = tally.take(now)
            if taken is not None:
                out.append(taken)
        return out, RETAIN

    def _rules(self, event: Event) -> tuple[dict[str, float] | None, tuple[str, str] | None]:
        """The catalog rules this event fires (the first names the moment), and the
        features if the rules' tests computed them.  A late event fires nothing."""
        x: dict[str, float] | None = None
        state = self.journey

        def journey(name: str) -> float:
            """The customer's value, or a feature (computed only if a test reads one)."""
            nonlocal x
            if name == "value":
                return state.value or (state.value_attr or 0.0)
            if x is None:
                x = features(state, event.ts)
            return x.get(name, 0.0)

        if self.rules is None:
            self.rules = RuleState()
        fired = self.rules.observe(self.config.triggers, event.type, event.ts, event.attrs, journey)
        if not fired or event.ts < self.journey.last_ts:
            return x, None
        return x, (fired[0].name, fired[0].words())

    def _consents(self) -> Consents | None:
        """The consents as of this moment (a copy: they may change before it is decided)."""
        return self.consents.copy() if self.consents else None

    def _consent(self, event: Event) -> list[CustomerOut]:
        """A consent statement (validated by the parse step): kept if it is the latest
        for its purpose and channel; an objection to profiling drops what was pending."""
        a = event.attrs
        purpose, granted, channel = a["purpose"], a["granted"], a.get("channel")
        source = a.get("source")
        source = source if isinstance(source, str) else event.channel
        if self.consents is None:
            self.consents = Consents()
        if not self.consents.observe(purpose, channel, granted, event.ts, source):
            return []  # older than what the customer said since: changes nothing
        policy = self.config.consent
        was, self.objected = self.objected, policy.objected(self.consents)
        out: list[CustomerOut] = [
            ConsentChange(
                self.key,
                event.event_id,
                event.ts,
                purpose,
                channel,
                granted,
                source,
                self.objected,
                event.channel,
            )
        ]
        if self.objected and not was:
            # nothing of this customer is learned from: what is pending goes unlabelled,
            # and the profile's score (a profiling result) is cleared
            self.pending.clear()
            self.watch = None
            if self.cx is not None:
                self.cx.opened = -1  # the period's record of the journey is dropped too
            out.append(ProfileUpdate(self.key, {"risk": None, "persona": None}))
        return out

    def _watch(self, ts: int) -> None:
        if self.config.proactive and self.config.label_mode != "external":
            if self.watch is None:
                self.watch = _watched(self.config)
            self.watch.add(ts, None)

    def _forget(self, key: str) -> list[CustomerOut]:
        """Erase this customer: nothing of it is kept or emitted but the erasure."""
        if self.forgotten is not None:
            self.forgotten.add(key)
        self.erased = True
        self.journey = JourneyState()
        self.pending.clear()
        self.watch = self.rules = None
        self.tz = None
        self.consents = None
        self.cx = None
        linked, self.linked = self.linked, ()
        return [Erase(key, linked)]

    def _example(self, m: Matured[Packed]) -> Example:
        return Example(self.key, unpack(m.values), m.label, m.snapshot_ts, m.label_ts)

    def _profile(self, now_ms: int, journey: dict[str, Any] | None = None) -> ProfileUpdate:
        """The profile as of event time ``now_ms`` (``journey``: its summary, if made)."""
        now = self.clock()
        refresh = now - self.ttl_at >= TTL_REFRESH_S
        if refresh:
            self.ttl_at = now
        return ProfileUpdate(
            self.key,
            {
                "journey": summary(self.journey, now_ms) if journey is None else journey,
                "last_event_ts": self.journey.last_ts,
                "pending_examples": len(self.pending),
                "pending_snapshot_ts": self.pending.times(),
                "consent": self.consents.as_dict() if self.consents else {},
                "duplicates": self.duplicates,
                "late_events": self.late,
            },
            refresh_ttl=refresh,
        )

    def advance(self, now_ts: int) -> list[Example | ScoreRequest | Watched]:
        """Event time has reached ``now_ts``: label the snapshots whose horizon passed, and
        score the silences that have grown long by then (each at its own time), unless
        its horizon has passed too (event time jumped: a restart after a long stop, a
        source whose clock runs ahead): its outcome is known, there is nothing to forecast.
        """
        out: list[Example | ScoreRequest | Watched] = [
            self._example(m) for m in self.pending.advance(now_ts)
        ]
        cx = self.cx
        if cx is not None and self.tally is not None:  # (to the worker's tally)
            config = self.config
            cx.close_if_due(
                self.tally, now_ts, horizon_ms=config.horizon_ms, mode=config.label_mode
            )
        if self.watch:
            out.extend(
                Watched(self.key, m.snapshot_ts, m.label) for m in self.watch.advance(now_ts)
            )
        due = self._next_silence(now_ts)
        while due is not None and due[1] <= now_ts:
            self.silences = due[0]  # past the levels gone stale
            out.append(self._silence(due[1]))
            due = self._next_silence(now_ts)
        return out

    def _next_silence(self, now_ts: int) -> tuple[int, int] | None:
        """The next silence level still to score and its moment (event time), if any:
        levels whose horizon ``now_ts`` has passed are stale (no notification for them)."""
        config = self.config
        if (
            not config.silence_ratio
            or self.erased
            or self.objected
            or config.label_mode == "external"
        ):
            return None
        journey = self.journey
        after = silence_after(journey, ratio=config.silence_ratio, floor_ms=config.silence_floor_ms)
        if after is None:
            return None
        last, horizon = journey.last_ts, config.horizon_ms
        for level in range(self.silences, config.silence_levels):
            at = last + int(after * float(1 << level))  # (2**level: a generic power)
            if now_ts < at + horizon:
                return level, at
        return None

    def _silence(self, at: int) -> ScoreRequest:
        """The customer has been silent until ``at``: a moment to score, pending its label."""
        self.silences += 1
        x = features(self.journey, at)
        x["silence"] = 1.0
        latest = self.pending.latest()
        previous = unpack(latest[1]) if latest else None
        self.pending.add(at, pack(x))
        event = Event(
            f"silence:{self.key}:{at}",
            self.key,
            None,
            at,
            self.journey.last_channel or "web",
            "silence",
            {},
        )
        journey = summary(self.journey, at) if self.config.silence_journey else {}
        return ScoreRequest(
            self.key, event, x, previous, journey, "silence", None, self.tz, self._consents()
        )

    def next_deadline(self) -> int | None:
        """The event time of the next thing due: a pending horizon or a silence."""
        deadline = self.pending.next_deadline()
        watched = self.watch.next_deadline() if self.watch else None
        if watched is not None and (deadline is None or watched < deadline):
            deadline = watched
        cx = self.cx
        if cx is not None and cx.opened >= 0:  # the customer's period ends
            closes = cx.opened + self.config.horizon_ms
            if deadline is None or closes < deadline:
                deadline = closes
        due = self._next_silence(self.watermark.now)
        if due is None:
            return deadline
        return due[1] if deadline is None else min(due[1], deadline)

    def expires_at(self) -> float:
        return self.touched_at + self.config.retention_s

    def next_check(self) -> float:
        """Wall time to look again: the TTL, a held-back profile, or when pending
        snapshots may have matured.

        Live, event time runs with the wall clock, so a deadline D ms ahead of the
        watermark is due in D ms; replays run faster and are checked every second.
        (Bytewax asks after every batch for every touched key: kept lean.)
        """
        if self.erased:
            return self.clock()
        when = self.expires_at()
        if self.profile_due:
            flush = self.profile_at + self.config.profile_interval_s
            if flush < when:
                when = flush
        deadline = self.next_deadline()
        if deadline is not None:
            ahead_s = (deadline - self.watermark.now) / 1000
            check = self.clock() + (ahead_s if ahead_s > MIN_CHECK_S else MIN_CHECK_S)
            if check < when:
                when = check
        return when

    def notify_at(self) -> datetime | None:
        return _datetime(self.next_check())

    def on_notify(self) -> tuple[Iterable[CustomerOut], bool]:
        if self.erased:
            return [], DISCARD
        out: list[CustomerOut] = list(self.advance(self.watermark.now))
        now = self.clock()
        if self.tally is not None and now >= self.tally.due_at:
            tally = self.tally.take(now)
            if tally is not None:
                out.append(tally)
        expired = now >= self.expires_at()
        if self.profile_due and (
            expired or now >= self.profile_at + self.config.profile_interval_s
        ):
            out.append(self._profile(self.journey.last_ts))
            self.profile_at, self.profile_due = now, False
        if not expired:
            return out, RETAIN
        out.extend(self._example(m) for m in self.pending.expire())
        if self.watch:
            out.extend(Watched(self.key, m.snapshot_ts, m.label) for m in self.watch.expire())
        return out, DISCARD

    def on_eof(self) -> tuple[Iterable[CustomerOut], bool]:
        """The input ended: the worker's tally goes now (the first customer to hear)."""
        tally = self.tally.take(self.clock(), force=True) if self.tally is not None else None
        return ([tally] if tally is not None else []), RETAIN

    def snapshot(self) -> CustomerSnapshot:
        if not self.keep_snapshots or self.erased:
            return ()
        return (
            self.key,
            self.journey.snapshot(),
            self.seen.snapshot(),
            self.pending.snapshot(),
            self.duplicates,
            self.touched_at,
            self.profile_due,
            self.ttl_at,
            self.late,
            self.linked,
            self.silences,
            self.tz,
            self.rules.snapshot() if self.rules is not None else {},
            self.watch.snapshot() if self.watch is not None else ((), 0, ()),
            self.consents.snapshot() if self.consents else (),
            self.cx.snapshot() if self.cx is not None else (),
        )


_datetimes: dict[int, datetime] = {}


def _datetime(at: float) -> datetime:
    """``at`` rounded up to 10 ms, as a (cached, shared) UTC datetime.

    Bytewax asks every touched key for its next notification time after every
    batch; building a datetime each time is a measurable cost, and a check
    10 ms late changes nothing here.  (Coarser rounding, a whole second, was
    measured to line every customer's notification up on the same instant: a
    burst of work once a second that held contacts back for hundreds of ms.)
    """
    tick = math.ceil(at * 100)
    found = _datetimes.get(tick)
    if found is None:
        if len(_datetimes) >= 4096:
            _datetimes.clear()
        found = _datetimes[tick] = datetime.fromtimestamp(tick / 100, tz=UTC)
    return found


def _watched(
    config: CustomerConfig,
    items: tuple[tuple[int, None], ...] = (),
    dropped: int = 0,
    decided: tuple[tuple[int, int, int], ...] = (),
) -> PendingExamples[None]:
    """The moments a rule fired, labelled like examples (release at the horizon)."""
    return PendingExamples(
        mode=_pending_mode(config),
        horizon_ms=config.horizon_ms,
        cap=4,
        items=items,
        dropped=dropped,
        release="horizon",
        decided=decided,
    )


def _pending_mode(config: CustomerConfig) -> str:
    return "cancel" if config.label_mode == "external" else config.label_mode


BUCKETS: Final = 64
_BUCKET_NAMES: Final = tuple(f"b{i}" for i in range(BUCKETS))  # (made once, not per event)


def bucket_of(key: str, buckets: int = BUCKETS) -> str:
    """The customer bucket a key belongs to: the journey step's Bytewax key when it
    runs without recovery (see :class:`CustomerBucket`).  Stable across processes.

    >>> bucket_of("c1"), bucket_of("c1", 1)
    ('b55', 'b0')
    """
    i = zlib.crc32(b"bucket:" + key.encode()) % buckets
    return _BUCKET_NAMES[i] if i < BUCKETS else f"b{i}"


def bucketed(items: list[Keyed]) -> list[tuple[str, Keyed]]:
    """Events keyed by their customer's bucket (:func:`bucket_of`), a batch in one call.

    >>> from operators.events import Event
    >>> [k for k, _ in bucketed([("c1", Event("e1", "c1", None, 1, "web", "page_view", {}))])]
    ['b55']
    """
    return [(bucket_of(item[0]), item) for item in items]


class CustomerBucket(BatchLogic[Keyed, CustomerOut, tuple[()]]):
    """Many customers' :class:`CustomerLogic` under one Bytewax key, their
    notifications in a heap of its own.

    Bytewax looks at every key's notification time at every activation of a
    stateful step (to find the soonest), so with one key per customer the
    step's cost per batch grows with the customers held: measured with a trivial
    logic at 40 events a batch, 7.8 us an event with 5,000 customers, 22.6 with
    20,000 and 54.4 with 80,000.  A bucket holds its customers in a dict and
    their next checks in a heap; Bytewax sees :data:`BUCKETS` keys.

    Without recovery only: a snapshot would have to hold the whole bucket, every
    epoch (``snapshot`` returns an empty tuple).  Items are ``(customer key,
    event)``; each customer's logic sees exactly what it would under its own key.

    >>> from operators.events import Event
    >>> clock = lambda: 0.0
    >>> b = CustomerBucket(new=lambda: CustomerLogic(
    ...     None, config=CustomerConfig(), clock=clock, keep_snapshots=False), clock=clock)
    >>> e = Event("e1", "c1", None, 1, "voice", "contact_start", {})
    >>> [type(o).__name__ for o in b.on_batch([("c1", e), ("c1", e)])[0]]  # then its duplicate
    ['ScoreRequest', 'Signal', 'ProfileUpdate', 'ProfileUpdate']
    >>> len(b), b.customers["c1"].duplicates
    (1, 1)
    """

    def __init__(self, *, new: Callable[[], CustomerLogic], clock: Callable[[], float]) -> None:
        self.new = new
        self.clock = clock
        self.customers: dict[str, CustomerLogic] = {}
        self.scheduled: dict[str, float] = {}  # customer -> its next check
        self.queued: dict[str, float] = {}  # customer -> the time of its live heap entry
        self.timers: list[tuple[float, str]] = []  # (time, customer); stale ones too

    def __len__(self) -> int:
        return len(self.customers)

    def _schedule(self, key: str, logic: CustomerLogic) -> None:
        """Note the customer's next check.  The heap gets an entry only when the check
        comes sooner than the one queued: most events put it later (the TTL runs from
        the latest event), and an entry found early is moved on when it comes up."""
        at = logic.next_check()
        self.scheduled[key] = at
        queued = self.queued.get(key)
        if queued is None or at < queued:
            self.queued[key] = at
            heapq.heappush(self.timers, (at, key))
            if len(self.timers) > 2 * len(self.queued) + 64:  # drop the stale entries
                self.timers = [(t, k) for k, t in self.queued.items()]
                heapq.heapify(self.timers)

    def _done(self, key: str, logic: CustomerLogic, discard: bool) -> None:
        if discard:
            del self.customers[key]
            self.scheduled.pop(key, None)
            self.queued.pop(key, None)
        else:
            self._schedule(key, logic)

    def on_batch(self, values: list[Keyed]) -> tuple[Iterable[CustomerOut], bool]:
        out: list[CustomerOut] = []
        customers = self.customers
        for key, event in values:
            logic = customers.get(key)
            if logic is None:
                logic = customers[key] = self.new()
            outs, discard = logic.on_item(event)
            out.extend(outs)
            self._done(key, logic, discard)
        return out, DISCARD if not customers else RETAIN

    def _top(self) -> float | None:
        """The time of the soonest live check: stale entries dropped, early ones moved
        on to their customer's check."""
        timers, queued, scheduled = self.timers, self.queued, self.scheduled
        while timers:
            t, key = timers[0]
            if queued.get(key) != t:
                heapq.heappop(timers)  # stale
                continue
            at = scheduled[key]
            if at <= t:
                return t
            queued[key] = at
            heapq.heapreplace(timers, (at, key))
        return None

    def on_notify(self) -> tuple[Iterable[CustomerOut], bool]:
        out: list[CustomerOut] = []
        timers, queued, scheduled = self.timers, self.queued, self.scheduled
        # Bytewax found the soonest check due: that one, and every other due by now
        # (each once: a check rescheduled to a time already past waits for the next call)
        top = self._top()
        now = max(self.clock(), top) if top is not None else 0.0
        due: list[str] = []
        while top is not None and top <= now:  # (the top: live and due at its time)
            _, key = heapq.heappop(timers)
            del queued[key], scheduled[key]
            due.append(key)
            top = self._top()
        for key in due:
            logic = self.customers[key]
            outs, discard = logic.on_notify()
            out.extend(outs)
            self._done(key, logic, discard)
        return out, DISCARD if not self.customers else RETAIN

    def on_eof(self) -> tuple[Iterable[CustomerOut], bool]:
        for logic in self.customers.values():  # they share the worker's tally
            return logic.on_eof()
        return [], RETAIN

    def notify_at(self) -> datetime | None:
        top = self._top()
        return _datetime(top) if top is not None else None

    def snapshot(self) -> tuple[()]:
        return ()
