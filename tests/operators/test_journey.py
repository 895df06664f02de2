from __future__ import annotations

import copy
import pickle

from hypothesis import given
from hypothesis import strategies as st

from operators.events import CHANNELS, KNOWN_TYPES, Event
from operators.journey import (
    CONTACTS_KEPT,
    FEATURE_NAMES,
    OTHER_TYPES_KEPT,
    SWITCHES_KEPT,
    TOUCHPOINTS_KEPT,
    JourneyState,
    features,
    summary,
)
from tests.conftest import DAY, T0, ev


def fold(events: list[Event]) -> JourneyState:
    s = JourneyState()
    for e in events:
        s.update_one(e)
    return s


def test_complaints_open_and_resolve() -> None:
    s = fold([ev(1, "complaint"), ev(2, "complaint"), ev(3, "complaint_resolved")])
    assert (s.complaints_open, s.complaints_total) == (1, 2)
    s.update_one(ev(4, "complaint_resolved"))
    s.update_one(ev(5, "complaint_resolved"))
    assert s.complaints_open == 0


def test_repeat_contacts_within_seven_days() -> None:
    s = fold(
        [
            ev(1, "contact_start", ts=T0),
            ev(2, "contact_start", ts=T0 + 2 * DAY),
            ev(3, "contact_start", ts=T0 + 9 * DAY),
        ]
    )
    assert features(s, T0 + 9 * DAY)["contacts_7d"] == 1.0
    assert features(s, T0 + 2 * DAY)["contacts_7d"] == 2.0
    assert summary(s, T0 + 2 * DAY)["repeat_contacts_7d"] == 1


def test_sentiment_is_an_ewma_and_nps_csat_are_the_latest() -> None:
    s = fold([ev(1, "review", sentiment=1.0), ev(2, "survey", nps=3, csat=2)])
    s.update_one(ev(3, "chat", sentiment=-1.0))
    assert s.sentiment is not None
    assert 0.3 < s.sentiment < 0.5  # 1.0 + 0.3 * (-2.0)
    f = features(s, T0)
    assert (f["nps"], f["nps_known"], f["csat"]) == (3.0, 1.0, 2.0)


def test_channel_switches_only_within_a_day() -> None:
    s = fold(
        [
            ev(1, "page_view", channel="web", ts=T0),
            ev(2, "chat", channel="chat", ts=T0 + 3_600_000),
            ev(3, "contact_start", channel="voice", ts=T0 + 7_200_000),
            ev(4, "page_view", channel="web", ts=T0 + 3 * DAY),
        ]
    )
    assert features(s, T0 + 7_200_000)["channel_switches_24h"] == 2.0
    assert features(s, T0 + 3 * DAY)["channel_switches_24h"] == 0.0


def test_days_since_last_looks_at_the_gap_before_the_current_event() -> None:
    s = fold([ev(1, "page_view", ts=T0), ev(2, "contact_start", ts=T0 + 40 * DAY)])
    assert features(s, T0 + 40 * DAY)["days_since_last"] == 40.0


def test_late_event_keeps_touchpoints_in_event_time_order() -> None:
    s = fold([ev(1, "page_view", ts=T0 + 10), ev(2, "search", ts=T0 + 30)])
    s.update_one(ev(3, "purchase", ts=T0 + 20, amount=10.0))
    assert [tp[0] for tp in s.touchpoints] == [T0 + 10, T0 + 20, T0 + 30]
    assert s.last_ts == T0 + 30
    assert s.value == 10.0


def test_unknown_types_are_counted_apart_so_memory_stays_bounded() -> None:
    s = fold([ev(i, f"custom_{i}") for i in range(50)] + [ev(99, "custom_0")])
    assert len(s.other_counts) == OTHER_TYPES_KEPT
    assert s.other_counts["custom_0"] == 2
    assert s.other_types == 50 - OTHER_TYPES_KEPT
    assert s.type_counts == {}
    f = features(s, T0 + 100 * 60_000)
    assert f["type:custom_0"] > f["type:custom_1"] > 0
    assert f["last:custom_0"] == 1.0  # the latest event's type


def test_features_are_the_fixed_names_plus_prefixed_extras() -> None:
    empty = features(JourneyState(), T0)
    assert tuple(empty)[: len(FEATURE_NAMES)] == FEATURE_NAMES
    assert set(empty) - set(FEATURE_NAMES) == {"tenure:0-1d"}
    f = features(fold([ev(1, "purchase", amount=5)]), T0 + 60_000)
    assert tuple(f)[: len(FEATURE_NAMES)] == FEATURE_NAMES
    extras = set(f) - set(FEATURE_NAMES)
    assert extras == {"last:purchase", "channel:web", "tenure:0-1d"}
    assert features(fold([ev(1, "page_view", ts=T0)]), T0 + 40 * DAY)["tenure:30-90d"] == 1.0


def test_decayed_channel_touchpoints_halve_every_week() -> None:
    s = fold([ev(1, "page_view", ts=T0), ev(2, "page_view", ts=T0)])
    assert features(s, T0)["channel:web"] == 2.0
    assert abs(features(s, T0 + 7 * DAY)["channel:web"] - 1.0) < 1e-9
    assert abs(features(s, T0 + 7 * DAY)["activity_7d"] - 1.0) < 1e-9


def test_sessions_start_after_thirty_quiet_minutes() -> None:
    minute = 60_000
    s = fold([ev(i, "page_view", ts=T0 + t * minute) for i, t in enumerate((0, 10, 45, 50, 200))])
    assert features(s, T0 + 200 * minute)["sessions_30d"] == 3.0


def test_sentiment_trend_turns_negative_when_it_falls() -> None:
    s = fold([ev(i, "review", sentiment=0.8) for i in range(5)])
    for i in range(5, 9):
        s.update_one(ev(i, "chat", sentiment=-0.8))
    assert features(s, T0 + DAY)["sentiment_trend"] < -0.3


events_strategy = st.lists(
    st.builds(
        Event,
        event_id=st.text(min_size=1, max_size=4),
        customer_id=st.just("c1"),
        anonymous_id=st.none(),
        ts=st.integers(T0, T0 + 60 * DAY),
        channel=st.sampled_from(sorted(CHANNELS)),
        type=st.sampled_from([*KNOWN_TYPES, "other_thing"]),
        attrs=st.fixed_dictionaries(
            {},
            optional={
                "sentiment": st.floats(-1, 1),
                "nps": st.integers(0, 10),
                "amount": st.floats(0, 1000),
                "response": st.sampled_from(["accepted", "declined"]),
            },
        ),
    ),
    max_size=80,
)


@given(events_strategy)
def test_state_is_bounded_whatever_arrives(events: list[Event]) -> None:
    s = fold(events)
    assert len(s.touchpoints) <= TOUCHPOINTS_KEPT
    assert len(s.contacts) <= CONTACTS_KEPT
    assert len(s.switches) <= SWITCHES_KEPT
    assert len(s.channel_counts) <= len(CHANNELS)
    assert len(s.type_counts) <= len(KNOWN_TYPES)
    assert len(pickle.dumps(s.snapshot())) < 4096


@given(events_strategy)
def test_snapshot_restores_an_equal_state_and_events_are_not_mutated(events: list[Event]) -> None:
    before = copy.deepcopy(events)
    s = fold(events)
    assert events == before
    restored = JourneyState.restore(pickle.loads(pickle.dumps(s.snapshot())))
    assert restored.snapshot() == s.snapshot()
    assert features(restored, T0 + 61 * DAY) == features(s, T0 + 61 * DAY)


@given(events_strategy, st.integers(0, 79))
def test_snapshot_is_immutable_against_later_updates(events: list[Event], cut: int) -> None:
    s = fold(events[:cut])
    snap = s.snapshot()
    frozen = pickle.dumps(snap)
    for e in events[cut:]:
        s.update_one(e)
    assert pickle.dumps(snap) == frozen


def test_offers_made_accepted_and_declined() -> None:
    s = fold(
        [
            ev(1, "offer_response", response="declined"),
            ev(2, "offer_response", response="accepted"),
            ev(3, "offer_response", response="not_relevant"),
        ]
    )
    f = features(s, T0 + DAY)
    assert (f["offers_made"], f["offers_accepted"], f["offers_declined"]) == (3.0, 1.0, 1.0)
