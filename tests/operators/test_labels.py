from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from operators.labels import PendingExamples

H = 100


def test_cancel_mode_positive_within_horizon_negative_after() -> None:
    p: PendingExamples[tuple[float, ...]] = PendingExamples(mode="cancel", horizon_ms=H)
    p.add(0, (1.0,))
    assert p.observe(50, "page_view") == []
    p.add(60, (2.0,))
    out = p.observe(120, "page_view")  # 120 > 0 + H: the first matures negative
    assert [(m.snapshot_ts, m.label, m.label_ts) for m in out] == [(0, 0, 100)]
    out = p.observe(130, "cancel")
    assert [(m.snapshot_ts, m.label, m.label_ts) for m in out] == [(60, 1, 130)]


def test_inactivity_mode_labels_on_the_next_event() -> None:
    p: PendingExamples[tuple[float, ...]] = PendingExamples(mode="inactivity", horizon_ms=H)
    p.add(0, (1.0,))
    assert [m.label for m in p.observe(99, "page_view")] == [0]
    p.add(100, (1.0,))
    assert [m.label for m in p.observe(300, "page_view")] == [1]


def test_events_at_or_before_the_snapshot_say_nothing_about_it() -> None:
    p: PendingExamples[tuple[float, ...]] = PendingExamples(mode="cancel", horizon_ms=H)
    p.add(50, (1.0,))
    assert p.observe(50, "cancel") == []
    assert p.observe(10, "cancel") == []
    assert len(p) == 1


def test_expiry_labels_what_is_pending_by_mode() -> None:
    for mode, label in (("cancel", 0), ("inactivity", 1)):
        p: PendingExamples[tuple[float, ...]] = PendingExamples(mode=mode, horizon_ms=H)
        p.add(5, (1.0,))
        assert [m.label for m in p.expire()] == [label]
        assert len(p) == 0


def test_cap_drops_the_oldest_and_counts_it() -> None:
    p: PendingExamples[tuple[float, ...]] = PendingExamples(mode="cancel", horizon_ms=H, cap=2)
    for t in (1, 2, 3):
        p.add(t, (float(t),))
    assert len(p) == 2
    assert p.dropped == 1
    assert p.latest() == (3, (3.0,))


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="label mode"):
        PendingExamples(mode="sometimes", horizon_ms=H)


later_events = st.lists(
    st.tuples(st.integers(0, 1000), st.sampled_from(["page_view", "cancel", "contact_start"])),
    max_size=30,
)


@given(st.integers(0, 500), later_events, st.sampled_from(["cancel", "inactivity"]))
def test_a_snapshot_keeps_its_features_and_is_labelled_at_most_once(
    snap_ts: int, events: list[tuple[int, str]], mode: str
) -> None:
    """No leakage: whatever comes later, the example carries the features of its snapshot."""
    p: PendingExamples[tuple[float, ...]] = PendingExamples(mode=mode, horizon_ms=H)
    values = (1.0, 2.0, 3.0)
    p.add(snap_ts, values)
    matured = [m for ts, kind in sorted(events) for m in p.observe(ts, kind)]
    matured += p.expire()
    assert len(matured) == 1
    m = matured[0]
    assert m.values == values
    assert m.snapshot_ts == snap_ts
    assert m.label_ts >= snap_ts
    assert m.label in (0, 1)


@given(st.integers(0, 500), later_events)
def test_cancel_label_is_one_iff_a_cancel_falls_inside_the_horizon(
    snap_ts: int, events: list[tuple[int, str]]
) -> None:
    p: PendingExamples[tuple[float, ...]] = PendingExamples(mode="cancel", horizon_ms=H)
    p.add(snap_ts, (0.0,))
    matured = [m for ts, kind in sorted(events) for m in p.observe(ts, kind)] + p.expire()
    cancelled = any(k == "cancel" and snap_ts < ts <= snap_ts + H for ts, k in events)
    assert matured[0].label == int(cancelled)


def test_advance_matures_what_event_time_has_passed_by_mode() -> None:
    for mode, label in (("cancel", 0), ("inactivity", 1)):
        p: PendingExamples[int] = PendingExamples(mode=mode, horizon_ms=H)
        p.add(0, 1)
        p.add(50, 2)
        assert p.next_deadline() == H
        assert p.advance(H) == []  # exactly at the horizon nothing is decided yet
        [m] = p.advance(H + 1)
        assert (m.snapshot_ts, m.label, m.label_ts, m.values) == (0, label, H, 1)
        assert p.next_deadline() == 50 + H
