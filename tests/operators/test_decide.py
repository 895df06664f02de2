from __future__ import annotations

import itertools
import pickle
import random
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.consent import Consents
from operators.customer import CustomerBucket, CustomerConfig, CustomerLogic, Watermark
from operators.decide import OBJECTED_NOTE, WARMUP_EXAMPLES, DecideLogic, with_shard
from operators.erasure import Forgotten
from operators.events import Event
from operators.journey import FEATURE_NAMES
from operators.personas import Personas
from operators.proactive import ProactiveConfig
from operators.records import (
    Alert,
    ConsentChange,
    DecideIn,
    Erase,
    Example,
    ModelStatus,
    Outcome,
    Proactive,
    ProfileUpdate,
    Rated,
    ScoreRequest,
    Tally,
    Watched,
    model_input,
    model_shard,
    route_batch,
)
from operators.refit import HazardRefit
from state.catalog import default_catalog
from tests.conftest import DAY, T0, ev

CATALOG = default_catalog()


def x(**values: float) -> dict[str, float]:
    base = dict.fromkeys(FEATURE_NAMES, 0.0)
    base.update(values)
    return base


def request(**values: float) -> ScoreRequest:
    e = ev(9, "contact_start", channel="voice", agent_id="a1", queue="care", contact_id="ct9")
    return ScoreRequest(
        "c1", e, x(**values), None, {"open_complaints": int(values.get("complaints_open", 0))}
    )


def test_model_status_is_reported_at_most_once_per_interval() -> None:
    now = [0.0]
    d = DecideLogic(
        None, catalog=CATALOG, clock=lambda: now[0], status_every=10, status_interval_s=1.0
    )
    statuses = 0
    for i in range(200):
        now[0] = i * 0.05  # 20 examples per second of wall time
        out, _ = d.on_item(Example("c", x(complaints_open=float(i % 3)), i % 2, T0, T0))
        statuses += sum(isinstance(o, ModelStatus) for o in out)
    assert statuses == 10  # every 10 examples would be 20; once per second is 10


def test_score_request_becomes_an_alert_with_reasons_and_an_action() -> None:
    d = DecideLogic(None, catalog=CATALOG, clock=lambda: 1.5)
    out, _ = d.on_item(request(complaints_open=1.0, contacts_7d=3.0))
    [alert] = [o for o in out if isinstance(o, Alert)]
    payload = alert.payload
    assert payload["emitted_at"] == 1500
    # the prior's contributions: 3 contacts x 0.2 outweigh 1 open complaint x 0.35
    assert payload["risk"]["reasons"][:2] == ["3rd contact in 7 days", "1 open complaint"]
    assert payload["risk"]["model"].endswith("(prior)")  # no evidence yet: the prior speaks
    assert payload["next_best_action"]["action_id"] == "resolve_complaint"
    assert any(isinstance(o, ProfileUpdate) for o in out)
    assert any(isinstance(o, ModelStatus) for o in out)  # first score reports the model


def test_learning_moves_scores_and_explanations_follow_the_model() -> None:
    ticks = itertools.count()
    d = DecideLogic(None, catalog=CATALOG, clock=lambda: float(next(ticks)), status_every=100)
    rng = random.Random(1)
    statuses = []
    for _ in range(1000):
        complaints = float(rng.randint(0, 3))
        y = int(rng.random() < 0.1 + 0.25 * complaints)
        out, _ = d.on_item(Example("c", x(complaints_open=complaints), y, T0, T0))
        statuses += [o for o in out if isinstance(o, ModelStatus)]
    assert len(statuses) == 10
    assert statuses[-1].fields["n_learned"] == 1000
    assert statuses[-1].fields["roc_auc"] > 0.6
    out, _ = d.on_item(request(complaints_open=3.0, contacts_7d=3.0))
    [alert] = [o for o in out if isinstance(o, Alert)]
    risk = alert.payload["risk"]
    assert risk["churn_probability"] > 0.5
    assert "warming up" not in risk["model"]
    assert risk["reasons"][0] == "3 open complaints"
    assert WARMUP_EXAMPLES <= 1000


def test_snapshot_restores_the_model() -> None:
    d = DecideLogic(None, catalog=CATALOG, clock=lambda: 0.0)
    for i in range(60):
        d.on_item(Example("c", x(complaints_open=float(i % 2)), i % 2, T0, T0))
    clone = DecideLogic(d.snapshot(), catalog=CATALOG, clock=lambda: 0.0)
    req = request(complaints_open=1.0)
    assert clone.on_item(req)[0] == d.on_item(req)[0]


def test_shard_helpers() -> None:
    assert model_shard("anyone", 1) == "m0"
    assert {model_shard(f"c{i}", 4) for i in range(100)} == {"m0", "m1", "m2", "m3"}
    status = with_shard(("m3", ModelStatus("", {"version": "v"})))
    assert isinstance(status, ModelStatus)
    assert status.shard == "m3"


def test_without_recovery_the_snapshot_is_empty_and_cheap() -> None:
    d = DecideLogic(None, catalog=CATALOG, clock=lambda: 0.0, keep_snapshots=False)
    d.on_item(Example("c", x(complaints_open=1.0), 1, T0, T0))
    assert d.snapshot() == b""
    fresh = DecideLogic(b"", catalog=CATALOG, clock=lambda: 0.0)
    assert fresh.model.n_learned == 0


def test_erase_drops_the_customer_from_the_arbiter_and_goes_on_to_the_store() -> None:
    d = DecideLogic(None, catalog=CATALOG, clock=lambda: 1.5)
    out, _ = d.on_item(request(complaints_open=1.0, contacts_7d=3.0))
    [alert] = [o for o in out if isinstance(o, Alert)]
    assert "c1" in d.arbiter.customers()
    out, _ = d.on_item(Erase("c1"))
    assert list(out) == [Erase("c1")]
    assert "c1" not in d.arbiter.customers()
    assert b"c1" not in pickle.dumps(d.arbiter.history) + pickle.dumps(d.arbiter.pending)
    # The open recommendation still teaches the acceptance model when answered.
    action = alert.payload["next_best_action"]["action_id"]
    out, _ = d.on_item(Outcome("c1", alert.alert_id, action, "declined", T0))
    assert any(isinstance(o, ModelStatus) for o in out)
    assert d.arbiter.customers() == set()


def test_a_model_snapshot_from_before_an_erasure_forgets_on_resume() -> None:
    d = DecideLogic(None, catalog=CATALOG, clock=lambda: 1.5)
    d.on_item(request(complaints_open=1.0, contacts_7d=3.0))
    snap = d.snapshot()
    forgotten = Forgotten()
    forgotten.add("c1")
    resumed = DecideLogic(snap, catalog=CATALOG, clock=lambda: 1.5, forgotten=forgotten)
    assert resumed.arbiter.customers() == set()
    assert resumed.model.kept_scores == {}  # (the contact's score, kept by id)
    kept = DecideLogic(snap, catalog=CATALOG, clock=lambda: 1.5)
    assert kept.arbiter.customers() == {"c1"}
    assert [k[0] for k in kept.model.kept_scores] == ["c1"]


def examples(n: int) -> list[DecideIn]:
    return [Example("c", x(complaints_open=float(i % 2)), i % 2, T0, T0) for i in range(n)]


def test_learning_waits_for_an_activation_without_contacts_and_is_bounded() -> None:
    from operators.decide import LEARN_PER_BATCH

    d = DecideLogic(None, catalog=CATALOG, clock=lambda: 0.0, warmup=0)
    batch: list[DecideIn] = [*examples(30), request(complaints_open=1.0), *examples(10)]
    out, _ = d.on_batch(batch)
    assert any(isinstance(o, Alert) for o in out)
    assert d.model.n_learned == 0  # the alert goes out before any learning
    assert d.notify_at() is not None  # learning is asked for at once...
    d.on_notify()  # ...but not in the activation that scored the contact
    assert d.model.n_learned == 0
    d.on_notify()  # the next activation
    assert d.model.n_learned == LEARN_PER_BATCH
    d.on_batch(examples(2))  # a batch without contacts learns too
    assert d.model.n_learned == 2 * LEARN_PER_BATCH
    d.on_eof()
    assert d.model.n_learned == 42
    assert not d.backlog
    assert d.notify_at() is None


def test_a_backlog_past_its_bound_is_learned_even_in_batches_with_contacts() -> None:
    from operators.decide import BACKLOG_SOFT

    d = DecideLogic(None, catalog=CATALOG, clock=lambda: 0.0)
    d.on_batch([*examples(BACKLOG_SOFT + 100), request(complaints_open=1.0)])
    assert d.model.n_learned == (BACKLOG_SOFT + 100) // 4


def test_a_refit_goes_on_in_steps_when_every_activation_has_contacts() -> None:
    # at rates where every activation scores contacts, the notification that follows
    # each is skipped: the refit steps with the backlog's learning, past its bound
    from operators.decide import BACKLOG_SOFT

    d = DecideLogic(None, catalog=CATALOG, clock=lambda: 0.0)
    champion = d.model.champion
    assert isinstance(champion, HazardRefit)
    steps = 0
    step = champion.refit_step

    def counted() -> bool:
        nonlocal steps
        steps += 1
        return step()

    champion.refit_step = counted  # type: ignore[method-assign]
    rng = random.Random(5)
    for i in range(400):  # each activation: contacts, and matured examples
        contacts = [
            replace(request(complaints_open=float(rng.randint(0, 2))), customer_id=f"c{i}-{j}")
            for j in range(3)
        ]
        d.on_batch([*examples(40), *contacts])
        d.on_notify()  # (skipped: right after contacts, in their activation)
    assert len(d.backlog) <= 4 * BACKLOG_SOFT + 40  # bounded
    assert steps > 0  # the refit went on, a step at a time
    assert champion.since_fit < 8 * champion.cadence  # never so overdue it ran whole


def test_a_backlog_is_learned_a_quarter_at_a_time_so_it_cannot_grow_without_bound() -> None:
    d = DecideLogic(None, catalog=CATALOG, clock=lambda: 0.0)
    for _ in range(20):
        d.on_batch(examples(400))
    assert len(d.backlog) < 400 * 4  # settles: a quarter of 1,600 is 400 a batch
    assert d.model.n_learned + len(d.backlog) == 8000


def test_the_backlog_survives_a_snapshot() -> None:
    d = DecideLogic(None, catalog=CATALOG, clock=lambda: 0.0)
    d.on_batch(examples(40))
    clone = DecideLogic(d.snapshot(), catalog=CATALOG, clock=lambda: 0.0)
    assert len(clone.backlog) == len(d.backlog) > 0


def test_a_silence_updates_the_profiles_risk_and_alerts_nobody() -> None:
    d = DecideLogic(None, catalog=CATALOG, clock=lambda: 1.5)
    e = ev(9, "silence", channel="app")
    req = ScoreRequest("c1", e, x(complaints_open=1.0), None, {}, "silence")
    out, _ = d.on_batch([req])
    [profile] = out
    assert isinstance(profile, ProfileUpdate)
    risk = profile.fields["risk"]
    assert risk["moment"] == "silence"
    assert risk["scored_at_event_ts"] == e.ts
    assert risk["reasons"] == ["1 open complaint"]
    assert 0.0 < risk["churn_probability"] < 1.0
    assert not d.held  # nothing for an agent: learning need not wait
    assert len(d.model.champion) == 1  # type: ignore[arg-type]  # in the refit window
    assert d.n_scored == 0  # the contacts scored


def test_a_silence_waits_for_the_contacts_of_its_batch() -> None:
    d = DecideLogic(None, catalog=CATALOG, clock=lambda: 1.5)
    silence = ScoreRequest("c1", ev(9, "silence"), x(), None, {}, "silence")
    contact = ScoreRequest("c2", ev(10, "contact_start", customer="c2"), x(), None, {})
    out, _ = d.on_batch([silence, contact])
    assert sum(isinstance(o, Alert) for o in out) == 1
    assert [o.customer_id for o in out if isinstance(o, ProfileUpdate)] == ["c2"]
    assert d.held
    assert len(d.backlog) == 1
    assert list(d.on_notify()[0]) == []  # the activation that scored the contact
    [later] = d.on_notify()[0]
    assert isinstance(later, ProfileUpdate)
    assert later.customer_id == "c1"
    assert later.fields["risk"]["moment"] == "silence"


# -- proactive retention ------------------------------------------------------------------

PROACTIVE = ProactiveConfig(holdout=0.0, quiet_hours=None)
NOON = T0 + 12 * 3_600_000  # 2026-01-01T12:00Z


def fired(n: int, ts: int, customer: str = "c1", value: float = 200.0) -> ScoreRequest:
    """A catalog rule fired on a second failed payment of ``customer`` at ``ts``."""
    e = Event(f"pf{n}", customer, None, ts, "web", "payment_failed", {})
    rule = ("payment_failed_twice", "two failed payments within 7 days")
    return ScoreRequest(
        customer, e, x(payment_failures_30d=2.0), None, {"value": value}, "trigger", rule
    )


def proactive_of(out: Iterable[object]) -> list[Proactive]:
    return [o for o in out if isinstance(o, Proactive)]


def test_a_fired_rule_becomes_a_proactive_alert_and_an_outbound_action() -> None:
    d = DecideLogic(None, catalog=CATALOG, clock=lambda: 2.0, proactive=PROACTIVE)
    out, _ = d.on_batch([fired(1, NOON)])
    [p] = proactive_of(out)
    assert p.alert is not None
    assert p.outbound is not None
    alert, outbound = p.alert, p.outbound
    assert alert["kind"] == "proactive"
    assert alert["alert_id"] == p.alert_id == outbound["alert_id"]
    assert (alert["contact_id"], alert["agent_id"], alert["queue"]) == (None, None, "retention")
    assert alert["trigger"] == {
        "kind": "rule",
        "name": "payment_failed_twice",
        "event_id": "pf1",
        "why": "two failed payments within 7 days",
    }
    action = alert["next_best_action"]["action_id"]
    assert action in ("payment_help", "retention_offer")
    assert outbound["action_id"] == action
    assert outbound["channel"] == alert["channel"] in ("sms", "email", "voice")
    assert outbound["control"] is False
    assert outbound["expires_at"] == NOON + 72 * 3_600_000
    # expected value = churn x value x the uplift (the catalog's prior: none measured) - cost
    p_churn = alert["risk"]["churn_probability"]
    prior = CATALOG.get(action)
    assert prior is not None
    assert alert["expected_value"] == pytest.approx(
        p_churn * 200 * prior.uplift - prior.cost, abs=0.01
    )
    # a replay of the same moment gives the same id
    again = DecideLogic(None, catalog=CATALOG, clock=lambda: 2.0, proactive=PROACTIVE)
    assert proactive_of(again.on_batch([fired(1, NOON)])[0])[0].alert_id == p.alert_id


def test_the_contact_policy_holds_proactive_actions_back() -> None:
    d = DecideLogic(None, catalog=CATALOG, clock=lambda: 0.0, proactive=PROACTIVE)
    assert proactive_of(d.on_batch([fired(1, NOON)])[0])
    assert not proactive_of(d.on_batch([fired(2, NOON + 6 * DAY)])[0])  # cool-down
    assert proactive_of(d.on_batch([fired(3, NOON + 8 * DAY)])[0])
    # a contact: no proactive action within a day of it
    contact = ev(9, "contact_start", customer="c2", ts=NOON, channel="voice", queue="care")
    d.on_batch([ScoreRequest("c2", contact, x(), None, {})])
    assert not proactive_of(d.on_batch([fired(4, NOON + 3_600_000, "c2")])[0])
    assert proactive_of(d.on_batch([fired(5, NOON + DAY + 1, "c2")])[0])
    assert d.outbound.blocked == {"cool-down": 1, "recent contact": 1}


def test_quiet_hours_set_not_before_in_the_customers_time_zone() -> None:
    quiet = ProactiveConfig(holdout=0.0, quiet_hours=(21, 8))
    d = DecideLogic(None, catalog=CATALOG, clock=lambda: 0.0, proactive=quiet)
    late = T0 + 22 * 3_600_000  # 22:00 UTC, 07:00 in Tokyo the next day
    req = fired(1, late)
    [p] = proactive_of(d.on_batch([req])[0])
    assert p.outbound is not None
    assert p.outbound["not_before"] == T0 + DAY + 8 * 3_600_000
    event = Event("pf9", "c3", None, late, "web", "payment_failed", {})
    tokyo = ScoreRequest(
        "c3", event, req.features, None, req.journey, "trigger", req.trigger, "Asia/Tokyo"
    )
    [p] = proactive_of(d.on_batch([tokyo])[0])
    assert p.outbound is not None
    assert p.outbound["not_before"] == T0 + 23 * 3_600_000  # 08:00 in Tokyo
    assert p.outbound["expires_at"] == p.outbound["not_before"] + 72 * 3_600_000


def test_the_hold_out_gets_no_alert_and_its_outcome_counts_for_the_uplift() -> None:
    everyone = ProactiveConfig(holdout=0.999999, quiet_hours=None)
    d = DecideLogic(None, catalog=CATALOG, clock=lambda: 0.0, proactive=everyone, status_every=1)
    [p] = proactive_of(d.on_batch([fired(1, NOON)])[0])
    assert p.control
    assert p.alert is None
    assert p.outbound is not None
    assert p.outbound["control"] is True
    d.on_batch([Watched("c1", NOON, 1)])
    out, _ = d.on_item(Example("c1", x(), 1, NOON, NOON))
    [status] = [o for o in out if isinstance(o, ModelStatus)]
    counts = status.fields["proactive"]["by_trigger"]["payment_failed_twice"]
    assert counts == {"n_treated": 0, "churned_treated": 0, "n_control": 1, "churned_control": 1}
    assert status.fields["proactive"]["funnel"] == {"control": 1, "triggered": 1}


def test_channel_reports_teach_like_answers_and_fill_the_funnel() -> None:
    d = DecideLogic(None, catalog=CATALOG, clock=lambda: 0.0, proactive=PROACTIVE)
    [p] = proactive_of(d.on_batch([fired(1, NOON)])[0])
    assert p.action_id is not None
    for response in ("delivered", "opened"):
        d.on_batch([Outcome("c1", p.alert_id, p.action_id, response, NOON + 60_000)])
    assert d.arbiter.outcomes == 0  # reports, not answers
    d.on_batch([Outcome("c1", p.alert_id, p.action_id, "clicked", NOON + 120_000)])
    assert d.arbiter.outcomes == 1  # a click is learned as an acceptance
    assert d.arbiter.model.mean(p.action_id, "proactive") > 0.5
    assert d.funnel["delivered"] == d.funnel["opened"] == d.funnel["clicked"] == 1
    # an agent's answer to a contact alert is not a click
    contact = request(complaints_open=1.0)
    [alert] = [o for o in d.on_batch([contact])[0] if isinstance(o, Alert)]
    nba = alert.payload["next_best_action"]
    d.on_batch([Outcome("c1", alert.alert_id, nba["action_id"], "accepted", NOON + 180_000)])
    assert d.arbiter.outcomes == 2
    assert d.funnel["clicked"] == 1


def test_erasure_forgets_the_customers_proactive_state() -> None:
    d = DecideLogic(None, catalog=CATALOG, clock=lambda: 0.0, proactive=PROACTIVE)
    d.on_batch([fired(1, NOON)])
    assert "c1" in d.outbound.customers() | d.uplift.customers()
    d.on_batch([Erase("c1")])
    assert "c1" not in d.outbound.customers() | d.uplift.customers()
    # and a snapshot taken before the erasure resumes without it
    d2 = DecideLogic(None, catalog=CATALOG, clock=lambda: 0.0, proactive=PROACTIVE)
    d2.on_batch([fired(1, NOON)])
    forgotten = Forgotten()
    forgotten.add("c1")
    resumed = DecideLogic(
        d2.snapshot(), catalog=CATALOG, clock=lambda: 0.0, proactive=PROACTIVE, forgotten=forgotten
    )
    assert "c1" not in resumed.outbound.customers() | resumed.uplift.customers()


def test_model_triggers_act_only_where_the_expected_value_is_positive() -> None:
    """A risk entering the high band at an event moment: the model's own trigger acts
    only when churn x value x uplift - cost is worth it."""
    d = DecideLogic(None, catalog=CATALOG, clock=lambda: 0.0, proactive=PROACTIVE)
    e = Event("ev1", "c1", None, NOON, "web", "payment_failed", {})
    risky = x(payment_failures_30d=2.0, complaints_open=1.0, complaints_total=1.0)
    poor = ScoreRequest("c1", e, risky, None, {"value": 1.0}, "event")
    [p] = proactive_of(d.on_batch([poor])[0])
    assert p.trigger["kind"] == "model"
    assert p.trigger["name"] == "risk_high"
    assert p.action_id is None  # worth nothing: left alone, nothing written
    assert p.alert is None
    assert p.outbound is None
    e2 = Event("ev2", "c2", None, NOON, "web", "payment_failed", {})
    rich = ScoreRequest("c2", e2, risky, None, {"value": 100_000.0}, "event")
    [p] = proactive_of(d.on_batch([rich])[0])
    assert p.action_id is not None
    assert p.alert is not None


def test_a_silence_timer_fires_a_model_trigger_without_any_new_event() -> None:
    """A daily customer has a failed payment and calls (medium risk); then says nothing.
    Event time moves on with another customer's events; once the fake clock reaches the
    customer's silence check, the silence is scored, the risk enters the high band,
    and a proactive action goes out: no event of that customer came."""
    now = [1_000.0]
    clock = lambda: now[0]  # noqa: E731
    config = CustomerConfig(
        silence_ratio=6.0, proactive=True, triggers=CATALOG.triggers, silence_journey=True
    )
    watermark = Watermark()
    bucket = CustomerBucket(
        new=lambda: CustomerLogic(
            None, config=config, clock=clock, watermark=watermark, keep_snapshots=False
        ),
        clock=clock,
    )
    d = DecideLogic(None, catalog=CATALOG, clock=clock, proactive=PROACTIVE)
    journey = [
        ev(
            i,
            "purchase" if i % 3 == 0 else "page_view",
            customer="a",
            ts=NOON + i * DAY,
            amount=50.0,
        )
        for i in range(20)
    ]
    journey += [
        ev(20, "complaint", customer="a", ts=NOON + 20 * DAY, channel="email", sentiment=-0.45),
        ev(21, "contact_start", customer="a", ts=NOON + 20 * DAY + DAY // 2, channel="voice"),
    ]
    out, _ = bucket.on_batch([("a", e) for e in journey])
    decided, _ = d.on_batch([o for o in out if isinstance(o, ScoreRequest | Example | Watched)])
    [contact] = [o for o in decided if isinstance(o, Alert)]
    assert contact.payload["risk"]["band"] != "high"
    assert not proactive_of(decided)
    # a week of another customer's events: event time passes the silence; no check is due
    # before the clock gets there
    others = [ev(100 + k, "page_view", customer="b", ts=NOON + (21 + k) * DAY) for k in range(7)]
    out, _ = bucket.on_batch([("b", e) for e in others])
    assert not [o for o in out if isinstance(o, ScoreRequest) and o.customer_id == "a"]
    notify = bucket.notify_at()
    assert notify is not None
    now[0] = notify.timestamp()
    out, _ = bucket.on_notify()
    [silence] = [o for o in out if isinstance(o, ScoreRequest) and o.customer_id == "a"]
    assert silence.moment == "silence"
    assert silence.journey["events"] == 22  # the alert carries the journey
    decided, _ = d.on_batch([silence])  # (after the contacts of its batch: none here)
    [p] = proactive_of(decided)
    assert p.trigger["kind"] == "model"
    assert p.trigger["name"] == "risk_high"
    assert p.ts == silence.event.ts
    assert p.alert is not None  # worth it for this customer (on the seeded uplift draw)
    assert p.alert["risk"]["band"] == "high"
    assert p.alert["risk"]["trend"] == "rising"
    assert p.alert["event_id"] == silence.event.event_id


# -- consent ---------------------------------------------------------------------------------

MARKETING = {a.action_id for a in CATALOG.actions if a.purpose == "marketing"}


def consents(*statements: tuple[str, str | None, bool, int]) -> Consents:
    c = Consents()
    for purpose, channel, granted, ts in statements:
        c.observe(purpose, channel, granted, ts, "crm")
    return c


def contact(
    n: int, consent: Consents | None, customer: str = "c1", **values: float
) -> ScoreRequest:
    e = ev(n, "contact_start", customer=customer, channel="voice", queue="care", contact_id=f"k{n}")
    return ScoreRequest(
        customer, e, x(**values), None, {"value": 300.0}, "contact", None, None, consent
    )


def nba_of(out: Iterable[object]) -> dict[str, Any]:
    [alert] = [o for o in out if isinstance(o, Alert)]
    return alert.payload


@pytest.mark.parametrize(
    "values",
    [
        {},  # calm and low risk: the upsell would win
        {"contacts_7d": 4.0, "days_since_last": 20.0, "tenure_days": 20.0},  # at risk
    ],
)
def test_without_marketing_consent_no_sales_action_is_offered(values: dict[str, float]) -> None:
    withdrawn = consents(("marketing", None, False, T0))
    offered: dict[bool, set[str]] = {True: set(), False: set()}
    for granted in (True, False):
        d = DecideLogic(None, catalog=CATALOG, clock=lambda: 0.0)
        for n in range(60):  # Thompson draws vary: many contacts, many customers
            c = None if granted else withdrawn
            payload = nba_of(d.on_item(contact(n, c, customer=f"c{n}", **values))[0])
            action = payload["next_best_action"]
            if action is not None:
                offered[granted].add(action["action_id"])
                if not granted:
                    for sale in MARKETING:
                        assert action["excluded"][sale] == (
                            "no marketing consent (withdrawn 2026-01-01 via crm)"
                        )
                    assert payload["notes"] == [
                        "Sales offers held back: no marketing consent "
                        "(withdrawn 2026-01-01 via crm)."
                    ]
            if granted:
                assert payload["notes"] == []
            assert payload["consent"]["marketing"]["granted"] is granted
    assert offered[True] & MARKETING  # with consent, sales actions are offered
    assert not offered[False] & MARKETING


_consent_steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("consent"),
            st.sampled_from((None, "voice", "email")),
            st.booleans(),
            st.integers(0, 10),
        ),
        st.tuples(st.just("contact"), st.none(), st.booleans(), st.integers(0, 10)),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(_consent_steps)
def test_a_marketing_action_follows_the_latest_statement_in_any_sequence(
    steps: list[tuple[str, str | None, bool, int]],
) -> None:
    """Random consent statements (some late) and contacts, through the customer step and
    the model step: a contact gets a marketing action only if the latest marketing
    statement for its channel (its own or for all channels; ties: the refusal) grants it."""
    clock = lambda: 0.0  # noqa: E731
    c = CustomerLogic(None, config=CustomerConfig(), clock=clock)
    d = DecideLogic(None, catalog=CATALOG, clock=clock)
    said: list[tuple[str | None, bool, int]] = []
    for n, (kind, channel, granted, day) in enumerate(steps):
        ts = T0 + day * DAY + n  # late statements: an older day than what came before
        if kind == "consent":
            attrs: dict[str, Any] = {"purpose": "marketing", "granted": granted}
            if channel is not None:
                attrs["channel"] = channel
            c.on_item(Event(f"s{n}", "c1", None, ts, "app", "consent", attrs))
            said.append((channel, granted, ts))
            continue
        out, _ = c.on_item(Event(f"k{n}", "c1", None, ts, "voice", "contact_start", {}))
        for item in out:
            if not isinstance(item, ScoreRequest):
                continue
            payload = nba_of(d.on_item(item)[0])
            applying = [s for s in said if s[0] in (None, "voice")]
            allowed = True
            if applying:
                latest = max(s[2] for s in applying)
                allowed = all(s[1] for s in applying if s[2] == latest)
            assert payload["consent"]["marketing"]["granted"] is allowed
            action = payload["next_best_action"]
            if action is not None and not allowed:
                assert action["action_id"] not in MARKETING
                assert all(
                    action["excluded"][sale].startswith("no marketing consent")
                    for sale in MARKETING
                )


def test_a_proactive_action_goes_only_on_channels_with_contact_consent() -> None:
    d = DecideLogic(None, catalog=CATALOG, clock=lambda: 0.0, proactive=PROACTIVE)
    no_sms = consents(("contact", "sms", False, T0))
    req = replace(fired(1, NOON, customer="a"), consent=no_sms)
    [p] = proactive_of(d.on_batch([req])[0])
    assert p.outbound is not None
    assert p.outbound["channel"] != "sms"
    # no contact at all: nothing goes out, and the alert would have said why
    none = consents(("contact", None, False, T0))
    [p] = proactive_of(d.on_batch([replace(fired(2, NOON, customer="b"), consent=none)])[0])
    assert p.action_id is None
    assert p.outbound is None
    assert p.alert is None
    # without marketing consent by email, the loyalty discount goes by voice if at all
    d2 = DecideLogic(None, catalog=CATALOG, clock=lambda: 0.0, proactive=PROACTIVE)
    mail = consents(("marketing", "email", False, T0))
    for n in range(30):
        req = replace(fired(10 + n, NOON, customer=f"m{n}", value=5000.0), consent=mail)
        for p in proactive_of(d2.on_batch([req])[0]):
            if p.outbound is not None and p.action_id in MARKETING:
                assert p.outbound["channel"] != "email"


def test_a_customer_who_objects_to_profiling_is_neither_scored_nor_learned_from() -> None:
    d = DecideLogic(None, catalog=CATALOG, clock=lambda: 0.0, proactive=PROACTIVE)
    objected = consents(("profiling", None, False, T0))
    # the customer's examples wait in the backlog behind a contact ...
    backlog: list[DecideIn] = [
        Example("o", x(contacts_7d=float(i % 3)), i % 2, T0 + i, T0 + i + DAY) for i in range(20)
    ]
    d.on_batch([contact(1, None, customer="other"), *backlog])
    assert len(d.backlog) == 20
    # ... when the objection comes: they are dropped, never learned
    change = ConsentChange("o", "p1", T0 + DAY, "profiling", None, False, "app", True)
    out, _ = d.on_batch([change])
    assert change in list(out)  # on to the store: the audit trail
    assert ProfileUpdate("o", {"risk": None, "persona": None}) in list(out)
    d.on_eof()
    assert d.model.n_learned == 0
    # a contact: an alert without a score, a service action chosen without the model
    payload = nba_of(d.on_item(contact(2, objected, customer="o", complaints_open=1.0))[0])
    assert payload["risk"] is None
    assert payload["persona"] is None
    assert payload["notes"]
    assert payload["notes"][0] == OBJECTED_NOTE
    assert payload["consent"]["profiling"]["granted"] is False
    action = payload["next_best_action"]
    assert action["action_id"] == "resolve_complaint"
    chosen = CATALOG.get(action["action_id"])
    assert chosen is not None
    assert chosen.kind == "service"
    assert not chosen.needs_score
    for a in CATALOG.actions:
        if a.needs_score or a.kind == "sales":
            assert "profiling objected" in action["excluded"][a.action_id]
    # its answer teaches nothing
    before = d.arbiter.model.n_learned
    d.on_item(Outcome("o", payload["alert_id"], action["action_id"], "accepted", T0 + 2))
    assert d.arbiter.model.n_learned == before
    # other customers are scored and learned from as before
    d.on_eof()
    d.on_batch(examples(30))
    d.on_eof()
    assert d.model.n_learned == 30
    # no proactive action for the objector, even if a rule fired somehow
    assert not proactive_of(
        d.on_batch([replace(fired(3, NOON, customer="o"), consent=objected)])[0]
    )


def test_through_both_steps_an_objector_teaches_the_model_nothing() -> None:
    """Two customers call every few days for months; one objects to profiling half-way.
    Through the customer step and the model step, nothing of the objector's is learned
    after the objection (what was pending is dropped), the other customer's is, and the
    objector's alerts after the objection carry no score."""
    now = [1_000.0]
    clock = lambda: now[0]  # noqa: E731
    watermark = Watermark()
    config = CustomerConfig(horizon_ms=7 * DAY, retention_s=1e9)
    bucket = CustomerBucket(
        new=lambda: CustomerLogic(
            None, config=config, clock=clock, watermark=watermark, keep_snapshots=False
        ),
        clock=clock,
    )
    d = DecideLogic(None, catalog=CATALOG, clock=clock)
    learned: list[tuple[str, int]] = []  # (customer, day it was learned)
    learn_one = d.model.learn_one
    today = [0]

    def spy(x: dict[str, float], y: int, **kw: Any) -> None:
        learned.append((kw["key"], today[0]))
        learn_one(x, y, **kw)

    d.model.learn_one = spy  # type: ignore[method-assign]
    objected_at = T0 + 60 * DAY + 2
    alerts: dict[str, list[dict[str, Any]]] = {"a": [], "b": []}
    for day in range(0, 120, 3):
        today[0] = day
        events = [
            ("a", ev(f"a{day}", "contact_start", customer="a", ts=T0 + day * DAY)),
            ("b", ev(f"b{day}", "contact_start", customer="b", ts=T0 + day * DAY + 1)),
        ]
        if day == 60:
            said = {"purpose": "profiling", "granted": False}
            events.append(("b", Event("b-no", "b", None, objected_at, "app", "consent", said)))
        out, _ = bucket.on_batch(events)
        now[0] += 1.0
        if bucket.notify_at() is not None:
            out = [*out, *bucket.on_notify()[0]]
        inputs = [i for i in map(model_input, out) if i is not None]
        decided = [*d.on_batch(inputs)[0], *d.on_eof()[0]]
        for o in decided:
            if isinstance(o, Alert):
                alerts[o.payload["customer_id"]].append(o.payload)
    assert {day for who, day in learned if who == "a"} >= {90, 117}  # learned all along
    assert any(who == "b" for who, _ in learned)  # before the objection, b was learned
    assert not [day for who, day in learned if who == "b" and day >= 60]
    assert d.model.n_learned == len(learned)
    after = [p for p in alerts["b"] if p["event_ts"] > objected_at]
    assert len(after) == 19
    assert all(p["risk"] is None for p in after)
    assert all(p["risk"] is not None for p in alerts["a"])


def test_answers_are_counted_by_the_persona_of_the_customers_latest_contact() -> None:
    """A batch's answers go to the experience as one tally, by (hour, persona): the
    persona the customer got at their latest contact (on the agent's card); none before
    a contact, while the personas warm up, after an erasure or an objection."""
    d = DecideLogic(None, catalog=CATALOG, clock=lambda: 0.0)
    d.personas = Personas(warmup=2)
    promoter = (1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 6.0, 36.0)  # NPS 9, CES 6
    detractor = (1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0)  # NPS 3, CSAT 2

    def contact(customer: str) -> str | None:
        req = replace(request(complaints_open=1.0), customer_id=customer)
        [alert] = [o for o in d.on_item(req)[0] if isinstance(o, Alert)]
        persona = alert.payload["persona"]
        return None if persona is None else str(persona["name"])

    assert contact("c1") is None  # warming up: no persona, the answer is not counted by one
    assert list(d.on_batch([Rated("c1", 100, promoter)])[0]) == []
    names = {c: str(contact(c)) for c in ("c1", "c2", "c3")}
    assert "None" not in names.values()
    out = list(
        d.on_batch(
            [Rated("c1", 100, promoter), Rated("c1", 100, detractor), Rated("c9", 100, promoter)]
        )[0]
    )
    [tally] = out  # (c9 had no contact here: not counted by persona)
    assert isinstance(tally, Tally)
    [(hour, persona_id, name, counts)] = tally.personas
    assert (hour, name, counts) == (100, names["c1"], (2.0, 1.0, 1.0, 1.0, 0.0, 1.0, 6.0, 36.0))
    assert (tally.ratings, tally.steps) == ((), ())  # (no customer id, nothing else)
    # the flow stamps the shard on the persona: each shard clusters its own customers
    stamped = with_shard(("m1", tally))
    assert isinstance(stamped, Tally)
    assert stamped.personas == ((100, f"m1/{persona_id}", name, counts),)
    [second] = d.on_item(Rated("c2", 101, promoter))[0]
    assert isinstance(second, Tally)
    assert [(n, c) for _, _, n, c in second.personas] == [(names["c2"], promoter)]
    d.on_item(Erase("c2"))
    d.on_item(ConsentChange("c3", "e1", T0, "profiling", None, False, "app", objected=True))
    assert list(d.on_batch([Rated("c2", 102, promoter), Rated("c3", 102, promoter)])[0]) == []


def test_answers_go_to_the_customers_model_shard() -> None:
    rated = Rated("c7", 1, (0.0,) * 8)
    assert route_batch([("c7", rated)], 4) == [(model_shard("c7", 4), rated)]
    assert model_input(rated) is rated
