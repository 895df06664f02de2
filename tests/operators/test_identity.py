from __future__ import annotations

from operators.erasure import Forgotten
from operators.events import Event
from operators.identity import KEPT, IdentityLogic, needs_identity
from operators.logic import DISCARD, RETAIN
from tests.conftest import T0


def anon(n: int, type_: str = "page_view") -> Event:
    return Event(f"a{n}", None, "ck-1", T0 + n, "web", type_, {})


def identify(customer: str, n: int = 100) -> Event:
    return Event(f"id-{customer}-{n}", customer, "ck-1", T0 + n, "voice", "identify", {})


def logic(forgotten: Forgotten | None = None) -> IdentityLogic:
    return IdentityLogic(None, clock=lambda: 0.0, retention_s=3600.0, forgotten=forgotten)


def test_the_anonymous_journey_is_handed_to_the_customer_in_order_then_later_events() -> None:
    i = logic()
    for n in range(3):
        out, _ = i.on_item(anon(n))
        assert [k for k, _ in out] == ["ck-1"]  # the anonymous journey meanwhile
    out, _ = i.on_item(identify("c1"))
    assert [(k, e.event_id, e.customer_id) for k, e in out] == [
        ("c1", "a0", "c1"),
        ("c1", "a1", "c1"),
        ("c1", "a2", "c1"),
        ("c1", "id-c1-100", "c1"),
    ]
    out, _ = i.on_item(anon(200, "search"))
    assert [(k, e.customer_id, e.anonymous_id) for k, e in out] == [("c1", "c1", "ck-1")]


def test_a_repeated_identify_hands_nothing_over_twice() -> None:
    i = logic()
    i.on_item(anon(1))
    i.on_item(identify("c1"))
    out, _ = i.on_item(identify("c1", 101))
    assert [e.event_id for _, e in out] == ["id-c1-101"]


def test_first_claim_wins_and_conflicts_are_counted() -> None:
    i = logic()
    i.on_item(anon(1))
    i.on_item(identify("c1"))
    out, _ = i.on_item(identify("c2", 101))
    assert [(k, e.event_id) for k, e in out] == [("c2", "id-c2-101")]
    assert i.conflicts == 1
    assert [k for k, _ in i.on_item(anon(2))[0]] == ["c1"]


def test_only_the_last_events_are_kept_before_a_link() -> None:
    i = logic()
    for n in range(KEPT + 5):
        i.on_item(anon(n))
    out, _ = i.on_item(identify("c1", 1000))
    assert len(list(out)) == KEPT + 1
    assert i.dropped == 5


def test_a_link_to_an_erased_customer_is_dropped() -> None:
    forgotten = Forgotten()
    i = logic(forgotten)
    i.on_item(anon(1))
    i.on_item(identify("c1"))
    snap = i.snapshot()
    forgotten.add("c1")
    assert [k for k, _ in i.on_item(anon(2))[0]] == ["ck-1"]  # anonymous again
    resumed = IdentityLogic(snap, clock=lambda: 0.0, retention_s=3600.0, forgotten=forgotten)
    assert resumed.owner is None


def test_state_expires_after_the_retention() -> None:
    now = [0.0]
    i = IdentityLogic(None, clock=lambda: now[0], retention_s=10.0)
    i.on_item(anon(1))
    assert i.on_notify()[1] is RETAIN
    now[0] = 10.0
    assert i.on_notify()[1] is DISCARD


def test_which_events_go_through_the_identity_step() -> None:
    assert needs_identity(("ck-1", anon(1)))
    assert needs_identity(("c1", identify("c1")))
    known = Event("k", "c1", "ck-1", T0, "web", "page_view", {})
    assert not needs_identity(("c1", known))
    assert not needs_identity(("c1", Event("k", "c1", None, T0, "web", "page_view", {})))


def test_a_forget_of_the_anonymous_id_goes_to_its_own_key_and_drops_the_link() -> None:
    i = logic(Forgotten())
    i.on_item(anon(1))
    i.on_item(identify("c1"))
    out, keep = i.on_item(anon(2, "forget"))
    assert [(k, e.type) for k, e in out] == [("ck-1", "forget")]  # not the customer's
    assert keep is DISCARD
