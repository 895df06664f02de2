"""The journey flow with bytewax.testing: one worker, and a 2-worker cluster.

The tests of one worker run both shapes of the flow: its keyed steps apart (as a
cluster runs them) and in one step (``one_worker``, as ``cxstream run -w 1`` runs them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import TestingSink, TestingSource, cluster_main, run_main

from cxstream.settings import Settings
from flows.journey import Sinks, build_flow
from operators.erasure import Forgotten
from operators.events import Event, Rejected, Suppressed, encode_event
from operators.experience import live_view
from operators.nba import in_control_group
from operators.records import (
    Alert,
    ConsentChange,
    Erase,
    ExperienceStatus,
    ModelStatus,
    Proactive,
    ProfileUpdate,
    StoreWrite,
)
from state.source import Entry
from tests.conftest import DAY, T0, ev, free_port


@dataclass
class Captured:
    sent: list[Alert | Proactive] = field(default_factory=list)  # what the alert sink got
    dead: list[Rejected] = field(default_factory=list)
    profiles: list[StoreWrite] = field(default_factory=list)
    models: list[ModelStatus] = field(default_factory=list)
    experience: list[ExperienceStatus] = field(default_factory=list)

    @property
    def alerts(self) -> list[Alert]:
        return [a for a in self.sent if isinstance(a, Alert)]

    @property
    def proactive(self) -> list[Proactive]:
        return [a for a in self.sent if isinstance(a, Proactive)]

    def sinks(self) -> Sinks:
        return Sinks(
            alerts=TestingSink(self.sent),
            dead_letters=TestingSink(self.dead),
            profiles=TestingSink(self.profiles),
            models=TestingSink(self.models),
            experience=TestingSink(self.experience),
        )


def entries() -> list[Entry]:
    events = []
    for c in range(6):
        cid = f"cust-{c}"
        events += [
            ev(f"{c}-1", "page_view", customer=cid, ts=T0 + c),
            ev(f"{c}-2", "complaint", customer=cid, ts=T0 + DAY, channel="email", sentiment=-0.7),
            ev(f"{c}-2", "complaint", customer=cid, ts=T0 + DAY, channel="email", sentiment=-0.7),
            ev(
                f"{c}-3",
                "contact_start",
                customer=cid,
                ts=T0 + 2 * DAY,
                channel="voice",
                agent_id=f"agent-{c % 2}",
                queue="care",
                contact_id=f"ct-{c}",
            ),
        ]
    for c in range(0, 6, 2):  # two failed payments in 7 days, days after the call
        cid = f"cust-{c}"
        events += [
            ev(f"{c}-4", "payment_failed", customer=cid, ts=T0 + 4 * DAY, amount=20.0),
            ev(f"{c}-5", "payment_failed", customer=cid, ts=T0 + 5 * DAY, amount=20.0),
        ]
    out = [Entry("cx:events:0", f"{i}-0", encode_event(e)) for i, e in enumerate(events)]
    out.insert(5, Entry("cx:events:0", "900-0", b"{broken"))
    out.insert(9, Entry("cx:events:0", "901-0", None))
    return out


@pytest.fixture(params=[False, True], ids=["steps", "one_step"])
def one_worker(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def settings() -> Settings:
    return Settings(horizon_days=7, retention_days=30)


def action_of(payload: dict[str, Any]) -> str:
    nba = payload["next_best_action"]
    return "control" if nba is None else str(nba["action_id"])


def summarise(c: Captured) -> dict[str, Any]:
    """What must not depend on the number of workers (the exploring policy's draws may)."""
    return {
        "alerts": sorted(
            (
                a.payload["customer_id"],
                a.alert_id,
                a.payload["agent_id"],
                tuple(a.payload["risk"]["reasons"]),
                a.payload["journey"]["open_complaints"],
            )
            for a in c.alerts
        ),
        "dead": sorted((d.entry_id, d.reason) for d in c.dead),
        "proactive": sorted(
            (p.customer_id, p.alert_id, p.trigger["name"], p.control) for p in c.proactive
        ),
        "profiled": sorted({p.customer_id for p in c.profiles if isinstance(p, ProfileUpdate)}),
    }


def test_single_worker_flow_alerts_dedupes_and_dead_letters(one_worker: bool) -> None:
    captured = Captured()
    flow = build_flow(
        settings(),
        source=TestingSource(entries()),
        sinks=captured.sinks(),
        clock=lambda: 1000.0,
        one_worker=one_worker,
    )
    run_main(flow)
    s = summarise(captured)
    assert len(s["alerts"]) == 6
    for _customer, _id, agent, reasons, open_complaints in s["alerts"]:
        assert open_complaints == 1  # the duplicate complaint was dropped
        assert "1 open complaint" in reasons  # the prior speaks: its contributions rank them
        assert agent in ("agent-0", "agent-1")
    for a in captured.alerts:
        nba = a.payload["next_best_action"]
        if in_control_group(a.payload["customer_id"], 0.05):  # cust-4 is, by its id
            assert (nba, a.payload["control"]) == (None, True)
            continue
        assert nba["action_id"] in (
            "resolve_complaint",
            "service_recovery_credit",
            "thank_and_listen",
        )
        assert nba["excluded"]["retention_offer"] == "sales action while a complaint is open"
    assert s["dead"] == [("900-0", "not json"), ("901-0", "no data field")]
    # the second failed payment of cust-0, -2 and -4: a proactive decision each, once
    assert [(c, name) for c, _, name, _ in s["proactive"]] == [
        (f"cust-{c}", "payment_failed_twice") for c in (0, 2, 4)
    ]
    for p in captured.proactive:
        assert p.outbound is not None
        assert p.outbound["control"] is p.control
        assert (p.alert is None) is p.control
        if p.alert is not None:
            assert p.alert["queue"] == "retention"
    assert s["profiled"] == [f"cust-{c}" for c in range(6)]
    assert captured.models
    assert captured.models[0].shard == "m0"
    assert all(a.payload["emitted_at"] == 1_000_000 for a in captured.alerts)


@pytest.mark.timeout(60)
def test_two_worker_cluster_gives_the_same_results(one_worker: bool) -> None:
    single, double = Captured(), Captured()
    run_main(
        build_flow(
            settings(), source=TestingSource(entries()), sinks=single.sinks(), one_worker=one_worker
        )
    )
    flow = build_flow(settings(), source=TestingSource(entries()), sinks=double.sinks())
    cluster_main(flow, [f"localhost:{free_port()}"], 0, worker_count_per_proc=2)
    assert summarise(double) == summarise(single)


def test_model_shards_spread_over_workers(one_worker: bool) -> None:
    captured = Captured()
    s = Settings(horizon_days=7, retention_days=30, model_shards=3)
    run_main(
        build_flow(
            s, source=TestingSource(entries()), sinks=captured.sinks(), one_worker=one_worker
        )
    )
    assert len(captured.alerts) == 6
    assert {m.shard for m in captured.models} <= {"m0", "m1", "m2"}
    assert len({m.shard for m in captured.models}) >= 2


class BatchSink(DynamicSink[StoreWrite]):
    """A sink keeping each batch as it was written (the profile sink merges a batch)."""

    def __init__(self) -> None:
        self.batches: list[list[StoreWrite]] = []

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _BatchPartition:
        return _BatchPartition(self.batches)


class _BatchPartition(StatelessSinkPartition[StoreWrite]):
    def __init__(self, batches: list[list[StoreWrite]]) -> None:
        self.batches = batches

    def write_batch(self, items: list[StoreWrite]) -> None:
        self.batches.append(list(items))


@pytest.mark.parametrize("shards", [1, 3])
def test_a_customers_profile_writes_reach_the_store_in_order(shards: int, one_worker: bool) -> None:
    """Profiles written at every event: a customer's journey is never overwritten by an
    older one, and each contact's risk is written (its journey by then or after)."""
    from operators.simulate import SimConfig, Simulator

    sim = Simulator(SimConfig(customers=300, seed=11, start_ms=T0, customer_gap_ms=2 * DAY))
    raws = [encode_event(e) for e in sim.take(4_000)]
    source = [Entry(f"cx:events:{i % 4}", f"{i + 1}-0", raw) for i, raw in enumerate(raws)]
    s = Settings(horizon_days=7, retention_days=30, profile_interval_ms=0, model_shards=shards)
    captured, store = Captured(), BatchSink()
    sinks = replace(captured.sinks(), profiles=store)
    run_main(
        build_flow(
            s, source=TestingSource(source, batch_size=250), sinks=sinks, one_worker=one_worker
        )
    )
    assert len({a.payload["customer_id"] for a in captured.alerts}) > 50
    last_ts: dict[str, int] = {}
    risks: set[str] = set()
    for batch in store.batches:
        for u in batch:
            if not isinstance(u, ProfileUpdate):
                continue
            if "journey" in u.fields:  # the journey's time never goes back
                ts = u.fields["last_event_ts"]
                assert ts >= last_ts.get(u.customer_id, ts), u.customer_id
                last_ts[u.customer_id] = ts
            if "last_alert_id" in u.fields:
                risks.add(u.fields["last_alert_id"])
    assert risks == {a.alert_id for a in captured.alerts}


def erasure_entries() -> list[Entry]:
    """cust-0 is forgotten after its contact; a later contact of it must not alert."""
    later = [
        ev("f", "forget", customer="cust-0", ts=T0 + 3 * DAY, channel="crm"),
        ev("f-late", "contact_start", customer="cust-0", ts=T0 + 4 * DAY, channel="voice"),
        ev("n-late", "contact_start", customer="cust-1", ts=T0 + 4 * DAY, channel="voice"),
    ]
    base = entries()
    return base + [
        Entry("cx:events:0", f"{1000 + i}-0", encode_event(e)) for i, e in enumerate(later)
    ]


def test_forget_erases_and_suppresses_later_events(one_worker: bool) -> None:
    captured = Captured()
    forgotten = Forgotten()
    run_main(
        build_flow(
            settings(),
            source=TestingSource(erasure_entries()),
            sinks=captured.sinks(),
            forgotten=forgotten,
            one_worker=one_worker,
        )
    )
    alerted = [a.payload["customer_id"] for a in captured.alerts]
    assert alerted.count("cust-0") == 1  # before the forget only
    assert alerted.count("cust-1") == 2
    erased = [p for p in captured.profiles if isinstance(p, Erase)]
    assert erased[0] == Erase("cust-0")
    # The later event got past the parse step (same batch as the forget) or not.
    suppressed = [p for p in captured.profiles if isinstance(p, Suppressed)]
    assert len(erased) + len(suppressed) == 2
    assert "cust-0" in forgotten
    assert forgotten.suppressed == 1
    last_erase = max(i for i, p in enumerate(captured.profiles) if isinstance(p, Erase))
    assert not any(
        isinstance(p, ProfileUpdate) and p.customer_id == "cust-0"
        for p in captured.profiles[last_erase:]
    )


def test_free_text_gets_a_sentiment_and_a_topic_in_the_flow(one_worker: bool) -> None:
    captured = Captured()
    said = ev(1, "complaint", customer="talker", channel="chat", text="Furious: charged twice!")
    source = TestingSource([Entry("cx:events:0", "1-0", encode_event(said))])
    run_main(build_flow(settings(), source=source, sinks=captured.sinks(), one_worker=one_worker))
    [profile] = [p for p in captured.profiles if isinstance(p, ProfileUpdate)]
    assert profile.fields["journey"]["sentiment"] < 0  # scored from the text (VADER)


def test_a_journey_begun_anonymous_on_the_web_shows_in_the_call_alert(one_worker: bool) -> None:
    captured = Captured()
    web = [
        Event("w1", None, "cookie-7", T0, "web", "page_view", {}),
        Event("w2", None, "cookie-7", T0 + 60_000, "web", "cart_abandon", {}),
    ]
    identify = Event("i1", "cust-7", "cookie-7", T0 + DAY, "web", "identify", {})
    call = ev("c1", "contact_start", customer="cust-7", ts=T0 + DAY + 60_000, channel="voice")
    entries_ = [
        Entry("cx:events:0", f"{i}-0", encode_event(e))
        for i, e in enumerate([*web, identify, call])
    ]
    run_main(
        build_flow(
            settings(),
            source=TestingSource(entries_, batch_size=1),
            sinks=captured.sinks(),
            one_worker=one_worker,
        )
    )
    [alert] = captured.alerts
    assert alert.payload["customer_id"] == "cust-7"
    seen = [(t["channel"], t["type"]) for t in alert.payload["journey"]["last_touchpoints"]]
    assert ("web", "page_view") in seen
    assert ("web", "cart_abandon") in seen
    assert alert.payload["journey"]["events"] == 4  # the web visits, identify, the call


def test_an_incident_raises_a_trend_alert_within_a_window_and_normal_days_none(
    one_worker: bool,
) -> None:
    """Three normal days of 1,500 customers, then an outage: a share of the customers'
    steps become outage complaints.  (False alarm rates over many days and strengths:
    benchmarks/trends.py, figures in RESULTS.md.)"""
    from operators.simulate import Incident, SimConfig, Simulator

    incident = Incident("outage", 3 * 24 * 60 + 10 * 60, 120.0, 0.3)  # day 4, 10:00, 2 h
    sim = Simulator(SimConfig(customers=1500, seed=4, incidents=(incident,)))
    start = sim.config.start_ms + int(incident.start_min * 60_000)
    events: list[Event] = []
    while not events or events[-1].ts < start + 3_600_000:
        events.append(sim.next_event())
    source = [Entry("cx:events:0", f"{i}-0", encode_event(e)) for i, e in enumerate(events)]
    captured = Captured()
    flow = build_flow(
        settings(),
        source=TestingSource(source, batch_size=500),
        sinks=captured.sinks(),
        clock=lambda: 1000.0,
        one_worker=one_worker,
    )
    run_main(flow)
    trends = [a.payload for a in captured.alerts if a.payload["kind"] == "trend"]
    assert [t for t in trends if t["event_ts"] < start] == []  # no alarm on normal days
    outage = [t for t in trends if t["trend"]["series"] == "complaints|topic=outage"]
    assert len(outage) == 1  # once per episode
    alert = outage[0]
    assert start <= alert["event_ts"] < start + 3_600_000  # within one window of the start
    evidence = alert["trend"]
    assert evidence["count"] >= 10
    assert evidence["count"] >= 2 * evidence["baseline"]
    assert evidence["z"] >= 5
    assert len(evidence["examples"]) == 5
    assert all(x["topic"] == "outage" for x in evidence["examples"])
    assert alert["customer_id"] is None
    assert "text" not in str(evidence)


def test_a_silent_customer_is_scored_as_event_time_passes_without_an_alert(
    one_worker: bool,
) -> None:
    events = [ev("q1", "purchase", customer="quiet", ts=T0)]
    events += [ev("q2", "purchase", customer="quiet", ts=T0 + DAY)]
    # another customer's events carry event time on past the quiet one's silence
    events += [ev(f"b{d}", "page_view", customer="busy", ts=T0 + d * DAY) for d in range(12)]
    captured = Captured()
    flow = build_flow(
        Settings(horizon_days=7, retention_days=30, silence_ratio=2.0),
        source=TestingSource(
            [Entry("cx:events:0", f"{i}-0", encode_event(e)) for i, e in enumerate(events)]
        ),
        sinks=captured.sinks(),
        clock=lambda: 1000.0,
        one_worker=one_worker,
    )
    run_main(flow)
    risks = [
        p.fields["risk"]
        for p in captured.profiles
        if isinstance(p, ProfileUpdate) and p.customer_id == "quiet" and "risk" in p.fields
    ]
    # silent since day 1 with a gap of a day: scored at day 3, in event time, once
    assert [r["scored_at_event_ts"] for r in risks] == [T0 + 3 * DAY]
    assert all(r["moment"] == "silence" for r in risks)
    assert not captured.alerts  # no contact: nobody to alert


def consent_entries() -> list[Entry]:
    """cust-0 withdraws marketing, cust-1 objects to profiling, cust-2 says nothing;
    each then calls twice, the customer step learning nothing from cust-1."""
    events: list[Event] = []
    said = {
        "cust-0": {"purpose": "marketing", "granted": False},
        "cust-1": {"purpose": "profiling", "granted": False},
    }
    for cid, attrs in said.items():
        events.append(Event(f"{cid}-c", cid, None, T0, "app", "consent", attrs))
    for c in range(3):
        cid = f"cust-{c}"
        for k in range(2):
            events.append(
                ev(
                    f"{c}-call-{k}",
                    "contact_start",
                    customer=cid,
                    ts=T0 + (1 + k * 10) * DAY,
                    channel="voice",
                    queue="care",
                )
            )
    events.append(ev("bad-consent", "consent", customer="cust-2", purpose="spam", granted=True))
    return [Entry("cx:events:0", f"{i}-0", encode_event(e)) for i, e in enumerate(events)]


def test_consent_reaches_the_alerts_the_audit_and_stops_learning(one_worker: bool) -> None:
    captured = Captured()
    s = Settings(horizon_days=7, retention_days=30)
    run_main(
        build_flow(
            s,
            source=TestingSource(consent_entries()),
            sinks=captured.sinks(),
            one_worker=one_worker,
        )
    )
    by_customer: dict[str, list[dict[str, Any]]] = {}
    for a in captured.alerts:
        by_customer.setdefault(a.payload["customer_id"], []).append(a.payload)
    assert {c: len(v) for c, v in by_customer.items()} == {"cust-0": 2, "cust-1": 2, "cust-2": 2}
    for payload in by_customer["cust-0"]:
        assert payload["consent"]["marketing"]["granted"] is False
        nba = payload["next_best_action"]
        assert nba["excluded"]["retention_offer"].startswith("no marketing consent")
        assert nba["excluded"]["upsell_upgrade"].startswith("no marketing consent")
    for payload in by_customer["cust-1"]:
        assert payload["risk"] is None
        assert payload["notes"]
    for payload in by_customer["cust-2"]:
        assert payload["risk"] is not None
        assert payload["consent"]["marketing"] == {"granted": True, "at": None, "source": "default"}
    changes = [p for p in captured.profiles if isinstance(p, ConsentChange)]
    assert sorted((c.customer_id, c.purpose, c.objected) for c in changes) == [
        ("cust-0", "marketing", False),
        ("cust-1", "profiling", True),
    ]
    assert [d.reason for d in captured.dead] == ["attrs.purpose unknown"]
    # the calls of cust-0 and cust-2 wait for their labels; cust-1's are not kept
    pending = {
        p.customer_id: p.fields["pending_examples"]
        for p in captured.profiles
        if isinstance(p, ProfileUpdate) and "pending_examples" in p.fields
    }
    assert pending == {"cust-0": 1, "cust-1": 0, "cust-2": 1}


def experience_entries() -> list[Entry]:
    """24 customers: each day a visit, a call and a survey (one an hour across the day);
    the answers of the second day are much worse (CES 1-2 after 5-6); a last survey on
    the third day closes the second day's last hour."""
    events = []
    hour = 3_600_000
    for day, (ces, nps) in enumerate(((5, 9), (1, 3))):
        for c in range(24):
            cid, at = f"cust-{c}", T0 + day * DAY + (day * 24 + c - day * 24) * hour
            events += [
                ev(f"{c}-{day}-1", "page_view", customer=cid, ts=at),
                ev(f"{c}-{day}-2", "contact_start", customer=cid, ts=at + 60_000,
                   channel="voice", queue="care", contact_id=f"ct-{c}-{day}"),
                ev(f"{c}-{day}-3", "survey", customer=cid, ts=at + 120_000, channel="survey",
                   ces=ces + c % 2, nps=nps),
            ]  # fmt: skip
    events.append(ev("last", "survey", customer="cust-0", ts=T0 + 2 * DAY, nps=9))
    return [Entry("cx:events:0", f"{i}-0", encode_event(e)) for i, e in enumerate(events)]


def experience_of(c: Captured, *, alerts: bool = True) -> dict[str, Any]:
    """The live counts handed over last (at the end of the input), in a stable order."""
    assert c.experience, "no experience counts"
    counts = c.experience[-1].counts
    return {
        "series": counts["series"],
        "transitions": sorted(map(tuple, counts["transitions"])),
        "periods": counts["periods"],
        "touched": counts["touched"],
        "ces_alerts": sorted(
            a.payload["trend"]["series"]
            for a in c.alerts
            if alerts and a.payload["kind"] == "trend" and a.payload["trend"]["metric"] == "ces"
        ),
    }


def test_answers_and_steps_reach_the_live_view_and_a_ces_drop_alerts(one_worker: bool) -> None:
    s = Settings(horizon_days=1, retention_days=30, experience_min_n=10)
    captured = Captured()
    run_main(
        build_flow(
            s,
            source=TestingSource(experience_entries()),
            sinks=captured.sinks(),
            one_worker=one_worker,
        )
    )
    x = experience_of(captured)
    assert x["ces_alerts"] == [
        "ces|channel=voice|day",
        "ces|overall|day",
        "ces|queue=care|day",
        "ces|touchpoint=voice·contact_start|day",
    ]
    [alert] = [
        a.payload
        for a in captured.alerts
        if a.payload["kind"] == "trend" and a.payload["trend"]["series"] == "ces|overall|day"
    ]
    assert (alert["customer_id"], alert["trend"]["current"]["n"]) == (None, 24)
    assert alert["trend"]["previous"]["value"] == 5.5
    assert alert["trend"]["current"]["value"] == 1.5
    steps = {(src, dst): count for src, dst, count, *_ in x["transitions"]}
    assert steps[("web·page_view", "voice·contact_start")] == 48
    assert steps[("voice·contact_start", "web·page_view")] == 24  # (a survey is no step)
    # labelled at their ends, none churned: each customer's first (their next day's visit
    # ends it), and the first customer's second, which ends as the last survey brings
    # event time to it (the others' end later)
    assert x["periods"] == [25, 0]
    view = live_view([captured.experience[-1].counts])
    assert view is not None
    care = view["kpis"]["by_queue"]["care"]["day"]["ces"]
    # the last day now: hours 25-48, without the first customer's answer of hour 24
    assert (care["value"], care["n"]) == (round(35 / 23, 2), 23)


@pytest.mark.timeout(60)
def test_two_workers_count_the_same_experience_as_one(one_worker: bool) -> None:
    s = Settings(horizon_days=1, retention_days=30, experience_min_n=10)
    single, double = Captured(), Captured()
    run_main(
        build_flow(
            s,
            source=TestingSource(experience_entries()),
            sinks=single.sinks(),
            one_worker=one_worker,
        )
    )
    flow = build_flow(s, source=TestingSource(experience_entries()), sinks=double.sinks())
    cluster_main(flow, [f"localhost:{free_port()}"], 0, worker_count_per_proc=2)
    # (not the alerts: an hour is tested when the first worker's answers pass it, and in
    # a replay one worker's tally may hold its whole input; live, the workers hand their
    # tallies over every second)
    assert experience_of(double, alerts=False) == experience_of(single, alerts=False)


def test_without_the_live_experience_nothing_is_counted(one_worker: bool) -> None:
    s = Settings(horizon_days=1, retention_days=30, experience=False)
    captured = Captured()
    run_main(
        build_flow(
            s,
            source=TestingSource(experience_entries()),
            sinks=captured.sinks(),
            one_worker=one_worker,
        )
    )
    assert captured.experience == []
    assert [a for a in captured.alerts if a.payload["kind"] == "trend"] == []
    assert len(captured.alerts) == 48  # the contacts' alerts, as ever


def everything(c: Captured) -> dict[str, Any]:
    """What every sink got, but the exploring policy's choices (its draws follow the order
    contacts reach the model shard, which the customers' buckets set)."""
    journeys: dict[str, dict[str, Any]] = {}
    for p in c.profiles:
        if isinstance(p, ProfileUpdate) and "journey" in p.fields:
            journeys[p.customer_id] = p.fields["journey"]
    return {
        "alerts": sorted(
            (a.alert_id, a.payload["kind"], str(a.payload.get("customer_id"))) for a in c.alerts
        ),
        "contact_journeys": sorted(
            (a.alert_id, repr(a.payload["journey"])) for a in c.alerts if "journey" in a.payload
        ),
        "proactive": sorted((p.alert_id, p.trigger["name"]) for p in c.proactive),
        "dead": sorted((d.entry_id, d.reason) for d in c.dead),
        "erased": sorted(p.customer_id for p in c.profiles if isinstance(p, Erase)),
        "suppressed": sorted(p.entry_id for p in c.profiles if isinstance(p, Suppressed)),
        "consent": sorted(
            (p.customer_id, p.event_id, p.purpose)
            for p in c.profiles
            if isinstance(p, ConsentChange)
        ),
        "last_journeys": sorted((k, repr(v)) for k, v in journeys.items()),
        "shards": sorted({m.shard for m in c.models}),
    }


def anonymous_entries(events: list[Event]) -> list[Entry]:
    return [Entry("cx:events:0", f"{i}-0", encode_event(e)) for i, e in enumerate(events)]


@pytest.mark.parametrize("source", ["erasure", "consent", "experience", "anonymous"])
def test_one_step_sends_the_sinks_what_the_steps_send(source: str) -> None:
    """The same input through both shapes of a single worker: every sink gets the same,
    but what depends on the order customers are taken in within an activation, as
    between one worker and two (the steps take them bucket by bucket, one step in the
    order they came): the exploring policy's draws, and the live experience's periods
    where one customer's events pass another's in event time (the process's watermark)."""
    web = [
        Event("w1", None, "cookie-7", T0, "web", "page_view", {}),
        Event("w2", None, "cookie-7", T0 + 60_000, "web", "cart_abandon", {}),
        Event("i1", "cust-7", "cookie-7", T0 + DAY, "web", "identify", {}),
        ev("c1", "contact_start", customer="cust-7", ts=T0 + DAY + 60_000, channel="voice"),
    ]
    made: dict[str, Callable[[], list[Entry]]] = {
        "erasure": erasure_entries,
        "consent": consent_entries,
        "experience": experience_entries,
        "anonymous": lambda: anonymous_entries(web),
    }
    s = Settings(horizon_days=1, retention_days=30, experience_min_n=10)
    results = []
    for one_worker in (False, True):
        captured = Captured()
        flow = build_flow(
            s,
            source=TestingSource(made[source](), batch_size=7),
            sinks=captured.sinks(),
            clock=lambda: 1000.0,
            forgotten=Forgotten(),
            one_worker=one_worker,
        )
        run_main(flow)
        seen = everything(captured)
        if source == "experience":  # (one customer a bucket's worth: no order to differ by)
            seen["experience"] = experience_of(captured, alerts=False)
        results.append(seen)
    steps, one = results
    assert one == steps
    assert steps["alerts"]  # (something to compare)
