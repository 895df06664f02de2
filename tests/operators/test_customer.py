from __future__ import annotations

from bytewax.operators import StatefulLogic

from operators.customer import CustomerConfig, CustomerLogic
from operators.records import Example, ProfileUpdate, ScoreRequest
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
    assert keep is StatefulLogic.RETAIN
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


def test_duplicate_event_changes_nothing() -> None:
    c = logic()
    c.on_item(ev(1, "complaint"))
    snap = c.snapshot()
    out, _ = c.on_item(ev(1, "complaint"))
    assert list(out) == []
    assert c.snapshot()[1] == snap[1]  # journey untouched
    assert c.duplicates == 1


def test_cancel_labels_the_pending_snapshot_positive() -> None:
    c = logic()
    c.on_item(ev(1, "contact_start", ts=T0))
    out, _ = c.on_item(ev(2, "cancel", ts=T0 + DAY))
    [example] = [o for o in out if isinstance(o, Example)]
    assert (example.label, example.snapshot_ts, example.label_ts) == (1, T0, T0 + DAY)
    assert example.features["contacts_7d"] == 1.0  # the features of the snapshot


def test_quiet_customer_expires_after_retention_and_pending_is_labelled() -> None:
    clock = FakeClock(1000.0)
    c = logic(clock)
    c.on_item(ev(1, "contact_start", ts=T0))
    assert c.notify_at() is not None
    clock.now = 1000.0 + 3599
    out, keep = c.on_notify()
    assert (list(out), keep) == ([], StatefulLogic.RETAIN)
    clock.now = 1000.0 + 3600
    out, keep = c.on_notify()
    assert keep is StatefulLogic.DISCARD
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
    assert list(b.on_item(ev(2, "contact_start", ts=T0 + 1000))[0]) == []  # dedupe survived
