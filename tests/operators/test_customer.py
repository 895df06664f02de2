from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.customer import (
    BUCKETS,
    MAX_LINKED,
    CustomerBucket,
    CustomerConfig,
    CustomerLogic,
    Watermark,
    _datetime,
    bucket_of,
)
from operators.erasure import Forgotten
from operators.logic import DISCARD, RETAIN
from operators.records import (
    ConsentChange,
    Erase,
    Example,
    Outcome,
    ProfileUpdate,
    ScoreRequest,
    Watched,
)
from state.catalog import default_catalog
from tests.conftest import DAY, T0, ev


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


CONFIG = CustomerConfig(retention_s=3600.0, horizon_ms=7 * DAY, label_mode="cancel")


def logic(clock: FakeClock | None = None) -> CustomerLogic:
    return CustomerLogic(None, config=CONFIG, clock=clock or FakeClock())


def test_contact_start_asks_for_a_score_with_features_as_of_the_event() -> None:
    c = logic()
    c.on_item(ev(1, "complaint", ts=T0))
    out, keep = c.on_item(
        ev(2, "contact_start", ts=T0 + DAY, channel="voice", agent_id="a1", queue="care")
    )
    assert keep is RETAIN
    [req] = [o for o in out if isinstance(o, ScoreRequest)]
    assert req.customer_id == "c1"
    assert req.features["complaints_open"] == 1.0
    assert req.features["contacts_7d"] == 1.0
    assert req.previous is None
    assert req.journey["open_complaints"] == 1
    assert any(isinstance(o, ProfileUpdate) for o in out)


def test_second_contact_carries_the_previous_snapshot_for_the_trend() -> None:
    c = logic()
    c.on_item(ev(1, "contact_start", ts=T0))
    out, _ = c.on_item(ev(2, "contact_start", ts=T0 + DAY))
    [req] = [o for o in out if isinstance(o, ScoreRequest)]
    assert req.previous is not None
    assert req.previous["contacts_7d"] == 1.0
    assert req.features["contacts_7d"] == 2.0


def test_duplicate_event_changes_nothing_but_the_profiles_count() -> None:
    c = logic()
    c.on_item(ev(1, "complaint"))
    snap = c.snapshot()
    out, _ = c.on_item(ev(1, "complaint"))
    # the profile's duplicates count is written at once, not at the next new event
    assert list(out) == [ProfileUpdate("c1", {"duplicates": 1})]
    assert c.snapshot()[1] == snap[1]  # journey untouched
    assert c.duplicates == 1


def test_forget_erases_the_anonymous_ids_seen_on_the_customers_events() -> None:
    c = logic()
    c.on_item(replace(ev(1, "page_view"), anonymous_id="ck-1"))
    c.on_item(replace(ev(2, "identify"), anonymous_id="ck-2"))
    c.on_item(replace(ev(3, "page_view"), anonymous_id="ck-1"))
    resumed = CustomerLogic(c.snapshot(), config=CONFIG, clock=FakeClock())
    out, _ = resumed.on_item(ev(4, "forget"))
    assert list(out) == [Erase("c1", ("ck-1", "ck-2"))]
    many = logic()
    for i in range(40):
        many.on_item(replace(ev(i, "page_view"), anonymous_id=f"ck-{i}"))
    (erase,), _ = many.on_item(ev(99, "forget"))
    assert isinstance(erase, Erase)
    assert len(erase.linked) == MAX_LINKED


def test_cancel_decides_positive_and_the_window_closing_hands_it_over() -> None:
    clock = FakeClock()
    watermark = Watermark()
    c = CustomerLogic(None, config=CONFIG, clock=clock, watermark=watermark)
    c.on_item(ev(1, "contact_start", ts=T0))
    out, _ = c.on_item(ev(2, "cancel", ts=T0 + DAY))
    assert [o for o in out if isinstance(o, Example)] == []  # decided, held until T0 + 7 days
    watermark.observe(T0 + 7 * DAY + 1)  # another customer's event moves event time on
    out, keep = c.on_notify()
    [example] = [o for o in out if isinstance(o, Example)]
    assert (example.label, example.snapshot_ts, example.label_ts) == (1, T0, T0 + DAY)
    assert example.features["contacts_7d"] == 1.0  # the features of the snapshot
    assert keep is RETAIN


def test_immediate_release_hands_a_positive_over_at_the_cancel() -> None:
    config = CustomerConfig(retention_s=3600.0, horizon_ms=7 * DAY, release="immediate")
    c = CustomerLogic(None, config=config, clock=FakeClock())
    c.on_item(ev(1, "contact_start", ts=T0))
    out, _ = c.on_item(ev(2, "cancel", ts=T0 + DAY))
    assert [(o.label, o.label_ts) for o in out if isinstance(o, Example)] == [(1, T0 + DAY)]


def test_pending_deadline_schedules_a_check_no_sooner_than_a_second() -> None:
    clock = FakeClock(1000.0)
    watermark = Watermark()
    config = CustomerConfig(retention_s=30 * 86_400.0, horizon_ms=7 * DAY)
    c = CustomerLogic(None, config=config, clock=clock, watermark=watermark)
    c.on_item(ev(1, "contact_start", ts=T0))
    assert c.next_check() == 1000.0 + 7 * 86_400  # live: the deadline, 7 days ahead
    watermark.observe(T0 + 8 * DAY)  # a replay: event time is past the deadline
    assert c.next_check() == 1001.0


def test_quiet_customer_expires_after_retention_and_pending_is_labelled() -> None:
    clock = FakeClock(1000.0)
    c = logic(clock)
    c.on_item(ev(1, "contact_start", ts=T0))
    assert c.notify_at() is not None
    clock.now = 1000.0 + 3599
    out, keep = c.on_notify()
    assert (list(out), keep) == ([], RETAIN)
    clock.now = 1000.0 + 3600
    out, keep = c.on_notify()
    assert keep is DISCARD
    assert [(o.label, o.snapshot_ts) for o in out if isinstance(o, Example)] == [(0, T0)]


def test_snapshot_restores_the_same_behaviour() -> None:
    a = logic()
    for e in (ev(1, "complaint", ts=T0), ev(2, "contact_start", ts=T0 + 1000)):
        a.on_item(e)
    b = CustomerLogic(a.snapshot(), config=CONFIG, clock=FakeClock())
    assert b.snapshot() == a.snapshot()
    out_a, _ = a.on_item(ev(3, "cancel", ts=T0 + DAY))
    out_b, _ = b.on_item(ev(3, "cancel", ts=T0 + DAY))
    assert list(out_a) == list(out_b)
    out_dup, _ = b.on_item(ev(2, "contact_start", ts=T0 + 1000))
    assert [type(o) for o in out_dup] == [ProfileUpdate]  # dedupe survived: a count, no score


from operators.events import Event  # noqa: E402

_later = st.lists(
    st.tuples(
        st.integers(1, 40 * DAY),
        st.sampled_from(["page_view", "complaint", "cancel", "payment_failed", "survey"]),
    ),
    max_size=25,
)


@given(_later, st.randoms(use_true_random=False), st.integers(0, 25))
def test_no_leakage_what_follows_a_snapshot_never_changes_its_features(
    later: list[tuple[int, str]], rnd: object, keep: int
) -> None:
    """Shuffling or removing the events after a snapshot changes neither the scored
    features nor the features of the example it matures into."""
    import random

    assert isinstance(rnd, random.Random)
    history = [ev(1, "complaint", ts=T0), ev(2, "page_view", ts=T0 + 3600_000)]
    contact = ev(3, "contact_start", ts=T0 + DAY, channel="voice")

    def run(after: list[tuple[int, str]]) -> tuple[dict[str, float], list[dict[str, float]]]:
        clock = FakeClock()
        wm = Watermark()
        c = CustomerLogic(None, config=CONFIG, clock=clock, watermark=wm)
        for e in history:
            c.on_item(e)
        out, _ = c.on_item(contact)
        [req] = [o for o in out if isinstance(o, ScoreRequest)]
        examples = []
        for i, (dt, kind) in enumerate(after):
            event = Event(f"later-{i}", "c1", None, T0 + DAY + dt, "web", kind, {})
            got, _ = c.on_item(event)
            examples += [o.features for o in got if isinstance(o, Example)]
        wm.observe(T0 + 100 * DAY)
        got, _ = c.on_notify()
        examples += [o.features for o in got if isinstance(o, Example)]
        return req.features, examples

    base_features, base_examples = run(sorted(later))
    shuffled = list(later)
    rnd.shuffle(shuffled)
    for variant in (sorted(shuffled), sorted(later)[:keep]):
        features, examples = run(variant)
        assert features == base_features
        assert all(x == base_features for x in examples)
    assert all(x == base_features for x in base_examples)


def test_a_cancel_is_never_a_scoring_moment() -> None:
    config = CustomerConfig(retention_s=3600.0, horizon_ms=7 * DAY, score_every=1)
    c = CustomerLogic(None, config=config, clock=FakeClock())
    out, _ = c.on_item(ev(1, "page_view", ts=T0))
    assert any(isinstance(o, ScoreRequest) for o in out)
    out, _ = c.on_item(ev(2, "cancel", ts=T0 + DAY))
    assert not any(isinstance(o, ScoreRequest) for o in out)


def profiles(out: object) -> list[ProfileUpdate]:
    return [o for o in out if isinstance(o, ProfileUpdate)]  # type: ignore[attr-defined]


def test_profiles_are_written_behind_at_most_once_per_interval() -> None:
    clock = FakeClock(1000.0)
    config = CustomerConfig(retention_s=3600.0, horizon_ms=7 * DAY, profile_interval_s=5.0)
    c = CustomerLogic(None, config=config, clock=clock)
    out, _ = c.on_item(ev(1, "page_view", ts=T0))
    assert len(profiles(out)) == 1  # the first event writes at once
    clock.now += 1
    out, _ = c.on_item(ev(2, "page_view", ts=T0 + 1000))
    assert profiles(out) == []  # within the interval: held back ...
    assert c.next_check() == 1005.0  # ... and due at its end
    clock.now += 1
    out, _ = c.on_item(ev(3, "contact_start", ts=T0 + 2000))
    [p] = profiles(out)  # a contact writes at once
    assert p.fields["journey"]["events"] == 3
    clock.now += 1
    c.on_item(ev(4, "search", ts=T0 + 3000))
    clock.now += 4.5
    out, keep = c.on_notify()
    [p] = profiles(out)  # the latest journey is flushed at the end of the interval
    assert p.fields["journey"]["events"] == 4
    assert keep is RETAIN
    out, _ = c.on_notify()
    assert profiles(out) == []  # nothing new to write


def test_a_held_back_profile_survives_a_restart_and_is_flushed_at_expiry() -> None:
    clock = FakeClock(1000.0)
    config = CustomerConfig(retention_s=60.0, horizon_ms=7 * DAY, profile_interval_s=5.0)
    c = CustomerLogic(None, config=config, clock=clock)
    c.on_item(ev(1, "page_view", ts=T0))
    c.on_item(ev(2, "page_view", ts=T0 + 1000))
    resumed = CustomerLogic(c.snapshot(), config=config, clock=clock)
    assert resumed.profile_due
    clock.now += 61
    out, keep = resumed.on_notify()
    [p] = profiles(out)
    assert p.fields["journey"]["events"] == 2
    assert keep is DISCARD


def test_without_recovery_no_snapshot_is_built() -> None:
    c = CustomerLogic(None, config=CONFIG, clock=FakeClock(), keep_snapshots=False)
    c.on_item(ev(1, "complaint"))
    assert c.snapshot() == ()


def test_notification_times_are_rounded_up_to_10_ms_and_shared() -> None:
    clock = FakeClock(1000.2537)
    a, b = logic(clock), logic(clock)
    a.on_item(ev(1, "page_view"))
    b.on_item(ev(2, "page_view"))
    at = a.notify_at()
    assert at is not None
    assert at.timestamp() == pytest.approx(1000.26 + 3600.0)  # rounded up, never early
    assert b.notify_at() is at  # one cached object


def test_the_profile_expiry_is_pushed_back_at_most_hourly() -> None:
    clock = FakeClock(1000.0)
    c = logic(clock)
    refreshes = []
    for i in range(6):
        clock.now += 1000.0
        out, _ = c.on_item(ev(i + 1, "page_view", ts=T0 + i))
        refreshes += [p.refresh_ttl for p in profiles(out)]
    assert refreshes == [True, False, False, False, True, False]  # 1000 s apart


# -- erasure --------------------------------------------------------------------------------------


def test_forget_erases_the_customer_and_labels_nothing() -> None:
    forgotten = Forgotten()
    c = CustomerLogic(None, config=CONFIG, clock=FakeClock(), forgotten=forgotten)
    c.on_item(ev(1, "complaint", ts=T0, text="my secret"))
    c.on_item(ev(2, "contact_start", ts=T0 + DAY))
    assert len(c.pending) == 1
    out, keep = c.on_item(ev(3, "forget", ts=T0 + 2 * DAY))
    assert list(out) == [Erase("c1")]  # no example, no profile
    assert keep is DISCARD
    assert "c1" in forgotten
    assert c.snapshot() == ()  # nothing of it is written to recovery again


def test_a_later_event_of_an_erased_customer_is_suppressed() -> None:
    forgotten = Forgotten()
    forgotten.add("c1")
    fresh = CustomerLogic(None, config=CONFIG, clock=FakeClock(), forgotten=forgotten)
    out, keep = fresh.on_item(ev(4, "contact_start", channel="voice"))
    assert list(out) == [Erase("c1")]  # swept again: the event got past the parse step
    assert keep is DISCARD
    assert forgotten.suppressed == 1
    other = CustomerLogic(None, config=CONFIG, clock=FakeClock(), forgotten=forgotten)
    out, keep = other.on_item(ev(5, "page_view", customer="c2"))
    assert keep is RETAIN
    assert any(isinstance(o, ProfileUpdate) for o in out)


def test_forget_is_carried_out_again_for_an_erased_customer() -> None:
    forgotten = Forgotten()
    forgotten.add("c1")
    c = CustomerLogic(None, config=CONFIG, clock=FakeClock(), forgotten=forgotten)
    out, keep = c.on_item(ev(6, "forget"))
    assert list(out) == [Erase("c1")]
    assert keep is DISCARD
    assert forgotten.suppressed == 0


def test_a_snapshot_from_before_the_erasure_is_dropped_on_resume() -> None:
    clock = FakeClock()
    c = CustomerLogic(None, config=CONFIG, clock=clock)
    c.on_item(ev(1, "complaint", ts=T0))
    c.on_item(ev(2, "contact_start", ts=T0 + DAY))
    snap = c.snapshot()
    forgotten = Forgotten()
    forgotten.add("c1")
    resumed = CustomerLogic(snap, config=CONFIG, clock=clock, forgotten=forgotten)
    assert resumed.snapshot() == ()
    assert resumed.next_check() == clock.now  # dropped at once
    out, keep = resumed.on_notify()
    assert list(out) == []
    assert keep is DISCARD


def test_late_events_are_folded_in_by_their_time_and_counted() -> None:
    c = logic()
    c.on_item(ev(1, "page_view", ts=T0 + DAY))
    c.on_item(ev(2, "complaint", ts=T0))  # arrives after, happened before
    out, _ = c.on_item(ev(3, "page_view", ts=T0 + DAY))  # the same time is not late
    [profile] = profiles(out)
    assert profile.fields["late_events"] == 1
    assert profile.fields["journey"]["events"] == 3
    assert [t["ts"] for t in profile.fields["journey"]["last_touchpoints"]] == [
        T0 + DAY,
        T0 + DAY,
        T0,
    ]
    resumed = CustomerLogic(c.snapshot(), config=CONFIG, clock=FakeClock())
    assert resumed.late == 1


TYPES = ["page_view", "complaint", "contact_start", "purchase", "cancel", "forget", "survey"]


def _drive(
    ops: list[tuple[str, int, int]],
) -> tuple[list[Counter[str]], list[Counter[str]], CustomerBucket]:
    """The same operations on one CustomerBucket and on one CustomerLogic per
    customer notified as Bytewax notifies its keys; what each emitted, per step."""
    config = CustomerConfig(
        retention_s=600.0, horizon_ms=DAY, label_mode="cancel", profile_interval_s=5.0
    )
    clock = FakeClock()
    mark_a, mark_b = Watermark(), Watermark()
    alone: dict[str, CustomerLogic] = {}
    bucket = CustomerBucket(
        new=lambda: CustomerLogic(
            None, config=config, clock=clock, watermark=mark_b, keep_snapshots=False
        ),
        clock=clock,
    )
    ref_out: list[Counter[str]] = []
    bucket_out: list[Counter[str]] = []
    ts = T0
    for i, (kind, a, b) in enumerate(ops):
        if kind == "event":
            key = f"c{a}"
            ts += b * 60_000
            event = ev(i, TYPES[b % len(TYPES)], customer=key, ts=ts)
            c = alone.get(key)
            if c is None:
                c = alone[key] = CustomerLogic(
                    None, config=config, clock=clock, watermark=mark_a, keep_snapshots=False
                )
            out, discard = c.on_item(event)
            if discard:
                del alone[key]
            got, _ = bucket.on_batch([(key, event)])
        else:
            clock.now += a + b / 100
            now = _datetime(clock.now)
            out = []
            for key, c in list(alone.items()):
                if c.notify_at() is not None and c.notify_at() <= now:  # type: ignore[operator]
                    outs, discard = c.on_notify()
                    out.extend(outs)
                    if discard:
                        del alone[key]
            at = bucket.notify_at()
            got = bucket.on_notify()[0] if at is not None and at <= now else []
        ref_out.append(Counter(repr(o) for o in out))
        bucket_out.append(Counter(repr(o) for o in got))
        assert set(bucket.customers) == set(alone), i
    return ref_out, bucket_out, bucket


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("event"), st.integers(0, 4), st.integers(0, 40)),
            st.tuples(st.just("tick"), st.integers(0, 400), st.integers(0, 99)),
        ),
        max_size=60,
    )
)
def test_a_bucket_of_customers_emits_what_each_customer_would_under_its_own_key(
    ops: list[tuple[str, int, int]],
) -> None:
    ref_out, bucket_out, bucket = _drive(ops)
    assert bucket_out == ref_out
    assert len(bucket.timers) <= 2 * len(bucket.queued) + 64
    assert set(bucket.queued) == set(bucket.scheduled) == set(bucket.customers)


def test_a_bucket_expires_its_quiet_customers_and_is_discarded_when_empty() -> None:
    ops = [("event", 0, 2), ("event", 1, 2), ("tick", 30, 0), ("event", 0, 0)]
    ops += [("tick", 400, 0)] * 6  # past the retention of 600 s
    _, bucket_out, bucket = _drive(ops)
    assert not bucket.customers
    assert not bucket.scheduled
    assert bucket.notify_at() is None
    assert any("Example" in k for c in bucket_out for k in c)  # pending snapshots labelled


def test_a_forgotten_customer_leaves_the_bucket_at_once() -> None:
    forget = TYPES.index("forget")
    _, _, bucket = _drive([("event", 0, 2), ("event", 1, 2), ("event", 0, forget)])
    assert set(bucket.customers) == {"c1"}
    assert "c0" not in bucket.scheduled
    out, discard = bucket.on_batch([("c1", ev(99, "forget", customer="c1"))])
    assert [type(o).__name__ for o in out] == ["Erase"]
    assert discard is DISCARD  # nobody left in it


def test_bucket_of_is_stable_and_spreads_customers() -> None:
    counts = Counter(bucket_of(f"customer-{i}") for i in range(6400))
    assert len(counts) == BUCKETS
    assert max(counts.values()) < 2 * 6400 / BUCKETS
    assert bucket_of("customer-1") == bucket_of("customer-1")


SILENT = replace(
    CONFIG, label_mode="inactivity", silence_ratio=2.0, silence_levels=2, retention_s=1e9
)


def test_a_silence_long_for_the_customer_is_scored_at_its_own_time() -> None:
    c = CustomerLogic(None, config=SILENT, clock=FakeClock())
    for n, day in enumerate((0, 2, 4)):  # a mean gap of 2 days: silent at 4 + 2 * 2 days
        c.on_item(ev(n, "page_view", ts=T0 + day * DAY, channel="app"))
    assert c.next_deadline() == T0 + 8 * DAY
    assert c.advance(T0 + 8 * DAY - 1) == []
    [req] = c.advance(T0 + 9 * DAY)
    assert isinstance(req, ScoreRequest)
    assert (req.moment, req.event.type, req.event.ts, req.event.channel) == (
        "silence",
        "silence",
        T0 + 8 * DAY,
        "app",
    )
    assert req.features["days_since_last"] == 4.0  # as of the silence, not of the check
    assert req.event.event_id == f"silence:c1:{T0 + 8 * DAY}"  # the same in every replay
    assert len(c.pending) == 1  # labelled later, as any snapshot
    # the next level at twice the gap, then no more for this silence
    assert c.next_deadline() == T0 + 12 * DAY
    [again] = [o for o in c.advance(T0 + 13 * DAY) if isinstance(o, ScoreRequest)]
    assert again.event.ts == T0 + 12 * DAY
    assert not any(isinstance(o, ScoreRequest) for o in c.advance(T0 + 60 * DAY))


def test_a_silence_whose_horizon_has_passed_is_not_scored() -> None:
    # event time jumped (a long stop, a source whose clock runs ahead): the outcome of
    # that silence is known already, and a burst of stale forecasts would help nobody
    c = CustomerLogic(None, config=SILENT, clock=FakeClock())
    for n, day in enumerate((0, 2, 4)):  # silent at day 8
        c.on_item(ev(n, "page_view", ts=T0 + day * DAY))
    # at day 15 the silence of day 8 is past its 7-day horizon; that of day 12 is not
    [req] = [o for o in c.advance(T0 + 8 * DAY + SILENT.horizon_ms) if isinstance(o, ScoreRequest)]
    assert req.event.ts == T0 + 12 * DAY
    assert c.silences == 2
    assert c.next_deadline() == T0 + 12 * DAY + SILENT.horizon_ms  # its label; no silence left


def test_a_stale_silence_asks_for_no_notification() -> None:
    # the stream's time (another customer's events) is far past this one's silences:
    # no check is scheduled for them, however many events this customer sends
    watermark = Watermark()
    c = CustomerLogic(None, config=SILENT, clock=FakeClock(), watermark=watermark)
    c.on_item(ev(1, "page_view", ts=T0))
    assert c.next_deadline() == T0 + 2 * DAY  # twice the one-day floor
    watermark.observe(T0 + 400 * DAY)
    assert c.next_deadline() is None
    assert c.advance(watermark.now) == []


def test_a_new_event_starts_a_new_silence_and_a_late_one_does_not() -> None:
    c = CustomerLogic(None, config=SILENT, clock=FakeClock())
    c.on_item(ev(1, "page_view", ts=T0))
    c.on_item(ev(2, "page_view", ts=T0 + DAY))
    [_] = c.advance(T0 + 3 * DAY)  # silent since day 1, two mean gaps on: day 3
    c.on_item(ev(3, "page_view", ts=T0 + DAY // 2))  # late: the silence goes on
    assert c.silences == 1
    c.on_item(ev(4, "page_view", ts=T0 + 4 * DAY))
    assert c.silences == 0
    # four events over four days (the late one counts): a mean gap of 4/3 days
    assert c.next_deadline() == T0 + 4 * DAY + int(2 * 4 * DAY / 3)


def test_silences_survive_a_snapshot_and_are_off_by_default_and_for_file_labels() -> None:
    c = CustomerLogic(None, config=SILENT, clock=FakeClock())
    c.on_item(ev(1, "page_view", ts=T0))
    [_] = c.advance(T0 + 2 * DAY)  # one event: no cadence yet, twice the 1-day floor
    resumed = CustomerLogic(c.snapshot(), config=SILENT, clock=FakeClock())
    assert resumed.silences == 1
    assert resumed.next_deadline() == c.next_deadline()
    for config in (CONFIG, replace(SILENT, label_mode="external")):
        quiet = CustomerLogic(None, config=config, clock=FakeClock())
        quiet.on_item(ev(1, "page_view", ts=T0))
        assert not any(isinstance(o, ScoreRequest) for o in quiet.advance(T0 + 300 * DAY))


def test_a_silence_schedules_the_customers_next_check() -> None:
    clock = FakeClock()
    c = CustomerLogic(None, config=SILENT, clock=clock)
    c.on_item(ev(1, "page_view", ts=T0))
    c.watermark.observe(T0 + DAY // 2)
    assert c.next_check() == pytest.approx(clock.now + 1.5 * DAY / 1000)  # silent at day 2


# -- proactive rules ------------------------------------------------------------------------

PROACTIVE_CONFIG = replace(CONFIG, triggers=default_catalog().triggers, proactive=True)


def _requests(out: object) -> list[ScoreRequest]:
    assert isinstance(out, list)
    return [o for o in out if isinstance(o, ScoreRequest)]


def test_a_second_failed_payment_within_7_days_is_a_moment_to_act() -> None:
    c = CustomerLogic(None, config=PROACTIVE_CONFIG, clock=FakeClock())
    assert _requests(c.on_item(ev(1, "payment_failed", ts=T0))[0]) == []
    [req] = _requests(c.on_item(ev(2, "payment_failed", ts=T0 + 3 * DAY, tz="Europe/Paris"))[0])
    assert req.moment == "trigger"
    assert req.trigger == ("payment_failed_twice", "two failed payments within 7 days")
    assert req.tz == "Europe/Paris"
    assert req.journey["payment_failures_30d"] == 2
    assert "value" not in req.features  # the rules' own name is not a model feature
    assert len(c.pending) == 0  # not a training example: the model's data is unchanged
    assert c.watch is not None
    assert len(c.watch) == 1  # but its outcome is watched, for the uplift
    # the label comes at the horizon: a cancel within it is churn
    c.on_item(ev(3, "cancel", ts=T0 + 5 * DAY))
    [watched] = [o for o in c.advance(T0 + 11 * DAY) if isinstance(o, Watched)]
    assert watched == Watched("c1", T0 + 3 * DAY, 1)


def test_rules_ignore_late_events_a_bad_zone_and_an_off_switch() -> None:
    c = CustomerLogic(None, config=PROACTIVE_CONFIG, clock=FakeClock())
    c.on_item(ev(1, "page_view", ts=T0 + 10 * DAY))
    c.on_item(ev(2, "payment_failed", ts=T0 + 2 * DAY))  # late
    assert _requests(c.on_item(ev(3, "payment_failed", ts=T0 + 3 * DAY))[0]) == []  # late too
    c.on_item(ev(4, "review", ts=T0 + 11 * DAY, rating=4, tz="Not/AZone"))
    assert c.tz is None
    [req] = _requests(c.on_item(ev(5, "review", ts=T0 + 12 * DAY, rating=1))[0])
    assert req.trigger is not None
    assert req.trigger[0] == "bad_review"
    off = CustomerLogic(None, config=CONFIG, clock=FakeClock())
    off.on_item(ev(6, "payment_failed", ts=T0))
    assert _requests(off.on_item(ev(7, "payment_failed", ts=T0 + DAY))[0]) == []


def test_channel_reports_on_an_outbound_action_are_outcomes() -> None:
    c = CustomerLogic(None, config=PROACTIVE_CONFIG, clock=FakeClock())
    ids = {"alert_id": "al_1", "action_id": "payment_help"}
    for n, (type_, response) in enumerate(
        [
            ("outbound_delivered", "delivered"),
            ("outbound_opened", "opened"),
            ("outbound_clicked", "clicked"),
        ]
    ):
        out, _ = c.on_item(ev(n, type_, ts=T0 + n, channel="sms", **ids))
        assert [o for o in out if isinstance(o, Outcome)] == [
            Outcome("c1", "al_1", "payment_help", response, T0 + n)
        ]


def test_proactive_state_survives_a_snapshot() -> None:
    c = CustomerLogic(None, config=PROACTIVE_CONFIG, clock=FakeClock())
    c.on_item(ev(1, "payment_failed", ts=T0, tz="Asia/Tokyo"))
    resumed = CustomerLogic(c.snapshot(), config=PROACTIVE_CONFIG, clock=FakeClock())
    assert resumed.tz == "Asia/Tokyo"
    [req] = _requests(resumed.on_item(ev(2, "payment_failed", ts=T0 + DAY))[0])
    assert req.trigger is not None
    # a snapshot of the state before proactive retention existed still resumes
    old = c.snapshot()[:11]
    assert CustomerLogic(old, config=PROACTIVE_CONFIG, clock=FakeClock()).tz is None


# -- consent ---------------------------------------------------------------------------------


def said(
    n: int | str, purpose: str, granted: bool, ts: int, on: str | None = None, **more: object
) -> Event:
    """A consent statement (``on``: the channel it is for; None: every channel)."""
    attrs: dict[str, object] = {"purpose": purpose, "granted": granted, **more}
    if on is not None:
        attrs["channel"] = on
    return Event(f"e{n}", "c1", None, ts, "app", "consent", attrs)


def test_a_consent_statement_is_kept_audited_and_carried_with_the_moment() -> None:
    c = CustomerLogic(None, config=CONFIG, clock=FakeClock())
    out, _ = c.on_item(said("m", "marketing", False, T0, on="sms", source="centre"))
    [change] = [o for o in out if isinstance(o, ConsentChange)]
    assert (change.purpose, change.channel, change.granted, change.source) == (
        "marketing",
        "sms",
        False,
        "centre",
    )
    assert not change.objected
    [profile] = [o for o in out if isinstance(o, ProfileUpdate)]
    assert profile.fields["consent"] == {
        "marketing": {"sms": {"granted": False, "at": T0, "source": "centre"}}
    }
    # an older statement changes nothing and is not audited
    out, _ = c.on_item(said("old", "marketing", True, T0 - DAY, on="sms"))
    assert not [o for o in out if isinstance(o, ConsentChange)]
    out, _ = c.on_item(ev(2, "contact_start", ts=T0 + DAY, channel="voice"))
    [req] = [o for o in out if isinstance(o, ScoreRequest)]
    assert req.consent is not None
    assert req.consent.statement("marketing", "sms") == (False, T0, "centre")
    # the moment carries the consents as they were: a later statement does not reach it
    c.on_item(said("m2", "marketing", True, T0 + 2 * DAY, on="sms"))
    assert req.consent.statement("marketing", "sms") == (False, T0, "centre")
    b = CustomerLogic(c.snapshot(), config=CONFIG, clock=FakeClock())
    assert b.consents is not None
    assert c.consents is not None
    assert b.consents.snapshot() == c.consents.snapshot()


def test_a_consent_statement_writes_the_profile_within_the_interval() -> None:
    # (a right of access right after a withdrawal shows it, not 30 s later)
    clock = FakeClock(1000.0)
    config = replace(CONFIG, profile_interval_s=30.0)
    c = CustomerLogic(None, config=config, clock=clock)
    c.on_item(ev(1, "page_view", ts=T0))
    clock.now += 1
    out, _ = c.on_item(ev(2, "page_view", ts=T0 + 1000))
    assert not [o for o in out if isinstance(o, ProfileUpdate)]  # held back
    clock.now += 1
    out, _ = c.on_item(said("m", "marketing", False, T0 + 2000, on="email"))
    [profile] = [o for o in out if isinstance(o, ProfileUpdate)]
    assert profile.fields["consent"] == {
        "marketing": {"email": {"granted": False, "at": T0 + 2000, "source": "app"}}
    }
    assert profile.fields["journey"]["events"] == 3


def test_an_objection_to_profiling_drops_what_is_pending_and_scores_nothing_more() -> None:
    clock = FakeClock()
    watermark = Watermark()
    config = replace(SILENT, retention_s=90 * 86_400.0)
    c = CustomerLogic(None, config=config, clock=clock, watermark=watermark)
    for n, day in enumerate((0, 2, 4)):
        c.on_item(ev(n, "page_view", ts=T0 + day * DAY))
    c.on_item(ev(5, "contact_start", ts=T0 + 5 * DAY, channel="voice"))
    assert len(c.pending) == 1
    out, _ = c.on_item(said("p", "profiling", False, T0 + 5 * DAY + 1))
    [change] = [o for o in out if isinstance(o, ConsentChange)]
    assert change.objected
    assert len(c.pending) == 0
    assert any(
        isinstance(o, ProfileUpdate) and o.fields.get("risk", 1) is None for o in out
    )  # the profile's score goes
    # a contact: still passed on (for the agent's alert), but nothing kept to learn from
    out, _ = c.on_item(ev(6, "contact_start", ts=T0 + 6 * DAY, channel="voice"))
    [req] = [o for o in out if isinstance(o, ScoreRequest)]
    assert config.consent.objected(req.consent)
    assert len(c.pending) == 0
    # no silence is scored, no label comes, however long event time runs
    watermark.observe(T0 + 60 * DAY)
    assert c.advance(T0 + 60 * DAY) == []
    assert not [
        o for o in c.on_item(ev(7, "cancel", ts=T0 + 61 * DAY))[0] if isinstance(o, Example)
    ]
    # a later grant restores it from that moment on
    out, _ = c.on_item(said("g", "profiling", True, T0 + 62 * DAY))
    assert not [o for o in out if isinstance(o, ConsentChange) and o.objected]
    c.on_item(ev(8, "contact_start", ts=T0 + 63 * DAY, channel="voice"))
    assert c.pending.times() == [T0 + 63 * DAY]
    # and the objection survives a restart
    c.on_item(said("p2", "profiling", False, T0 + 64 * DAY))
    resumed = CustomerLogic(c.snapshot(), config=config, clock=clock, watermark=watermark)
    assert resumed.objected
    assert resumed.advance(T0 + 120 * DAY) == []


def test_a_late_objection_still_applies_if_it_is_the_latest_statement() -> None:
    c = CustomerLogic(None, config=CONFIG, clock=FakeClock())
    c.on_item(ev(1, "contact_start", ts=T0 + DAY))
    c.on_item(said("p", "profiling", False, T0))  # older than the contact, but the latest said
    assert c.objected
    assert len(c.pending) == 0


def test_forget_drops_the_consents_too() -> None:
    c = CustomerLogic(None, config=CONFIG, clock=FakeClock())
    c.on_item(said("p", "marketing", False, T0))
    c.on_item(ev("f", "forget", ts=T0 + 1))
    assert c.consents is None


def test_with_profiling_denied_by_default_nobody_is_scored_until_they_grant_it() -> None:
    from operators.consent import ConsentPolicy, parse_consent_default

    config = replace(CONFIG, consent=ConsentPolicy(parse_consent_default("profiling=denied")))
    c = CustomerLogic(None, config=config, clock=FakeClock())
    assert c.objected
    c.on_item(ev(1, "contact_start", ts=T0, channel="voice"))
    assert len(c.pending) == 0
    c.on_item(said("g", "profiling", True, T0 + 1))
    assert not c.objected
    c.on_item(ev(2, "contact_start", ts=T0 + 2, channel="voice"))
    assert c.pending.times() == [T0 + 2]
    assert CustomerLogic(c.snapshot(), config=config, clock=FakeClock()).objected is False
