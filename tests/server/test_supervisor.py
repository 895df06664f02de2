"""The supervisor view: risk of the last hour, acceptance by action and agent, trends."""

from __future__ import annotations

import pytest

from server.supervisor import RECENT_TRENDS, SupervisorView
from state.keys import answer_fields


def contact(p: object) -> dict[str, object]:
    return {"kind": "contact", "risk": {"churn_probability": p}}


def test_risk_counts_the_last_hour_by_band_and_tenth() -> None:
    view = SupervisorView(window_s=60.0)
    for at, p in ((0.0, 0.05), (30.0, 0.45), (50.0, 0.61), (55.0, 1.0)):
        view.observe(contact(p), now=at)
    view.observe(contact("high"), now=55.0)  # not a probability: not counted
    view.observe(contact(1.5), now=55.0)
    risk = view.frame(now=70.0)["risk"]  # the first contact left the window
    assert risk["contacts"] == 3
    assert risk["bands"] == {"low": 0, "medium": 1, "high": 2}
    assert risk["histogram"] == [0, 0, 0, 0, 1, 0, 1, 0, 0, 1]


def test_acceptance_is_accepted_over_answered_and_bad_fields_are_skipped() -> None:
    view = SupervisorView()
    counts: dict[bytes, int] = {}
    for action, agent, response, n in (
        ("retention_offer", "a1", "accepted", 3),
        ("retention_offer", "a2", "declined", 1),
        ("payment_help", "a1", "not_relevant", 2),
    ):
        for name in answer_fields(action, agent, response):
            counts[name.encode()] = counts.get(name.encode(), 0) + n
    raw = {k: str(v).encode() for k, v in counts.items()}
    raw[b"agent|a3|maybe"] = b"4"  # unknown response
    raw[b"action|x|accepted"] = b"many"  # not a count
    raw[b"\xff|x|accepted"] = b"1"  # not UTF-8
    view.answers(raw)
    acceptance = view.frame(now=0.0)["acceptance"]
    assert acceptance["by_action"] == {
        "payment_help": {"answered": 2, "accepted": 0, "rate": 0.0},
        "retention_offer": {"answered": 4, "accepted": 3, "rate": 0.75},
    }
    assert acceptance["by_agent"] == {
        "a1": {"answered": 5, "accepted": 3, "rate": 0.6},
        "a2": {"answered": 1, "accepted": 0, "rate": 0.0},
    }


def test_an_agent_id_with_a_bar_keeps_its_name() -> None:
    view = SupervisorView()
    view.answers({name.encode(): b"1" for name in answer_fields("act", "team|a1", "accepted")})
    assert list(view.frame(now=0.0)["acceptance"]["by_agent"]) == ["team|a1"]


def test_the_latest_trend_alerts_are_kept() -> None:
    view = SupervisorView()
    for i in range(RECENT_TRENDS + 3):
        view.observe({"kind": "trend", "alert_id": f"t{i}"}, now=0.0)
    trends = view.frame(now=0.0)["trends"]
    assert [t["alert_id"] for t in trends] == [f"t{i}" for i in range(3, RECENT_TRENDS + 3)]
    assert view.frame(now=0.0)["risk"]["contacts"] == 0  # trends are not contacts


def test_past_the_cap_the_oldest_contacts_leave_the_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("server.supervisor.RISK_KEEP", 3)
    view = SupervisorView()
    for p in (0.95, 0.05, 0.45, 0.15):  # the first (high) is pushed out by the fourth
        view.observe(contact(p), now=0.0)
    risk = view.frame(now=0.0)["risk"]
    assert risk["contacts"] == 3
    assert risk["bands"] == {"low": 2, "medium": 1, "high": 0}
    assert sum(risk["histogram"]) == 3
    assert risk["histogram"][9] == 0


def test_a_contact_not_scored_counts_as_a_contact_apart_from_the_bands() -> None:
    view = SupervisorView(window_s=60.0)
    view.observe({"kind": "contact", "queue": "care", "risk": None}, now=0.0)
    view.observe({"kind": "contact", "queue": "care", "risk": {"churn_probability": 0.1}}, now=1.0)
    view.observe({"kind": "proactive", "queue": "retention", "risk": None}, now=1.0)
    risk = view.frame(now=2.0)["risk"]
    assert (risk["contacts"], risk["unscored"], risk["bands"]["low"]) == (2, 1, 1)
    assert view.frame(now=2.0, queues=frozenset({"care"}))["risk"]["unscored"] == 1
    assert view.frame(now=2.0, queues=frozenset({"billing"}))["risk"]["contacts"] == 0
    later = view.frame(now=60.5)["risk"]  # the unscored one has left the window
    assert (later["contacts"], later["unscored"]) == (1, 0)
    assert view.queue_unscored == {}


def test_the_experience_figures_from_broken_or_foreign_counts_are_kept_as_they_were() -> None:
    import orjson

    view = SupervisorView()
    assert view.frame(now=0.0)["experience"] is None
    day = {"day": [2, 1, 0, 0, 0, 0, 0, 0], "day_previous": [0] * 8}
    good = {"hour": 5, "series": {"overall": day}}
    view.experience([orjson.dumps(good), b"{broken", b"[1, 2]"])
    nps = view.frame(now=0.0)["experience"]["kpis"]["overall"]["day"]["nps"]
    assert (nps["value"], nps["n"]) == (50.0, 2)
    view.experience([orjson.dumps({"series": {"overall": {"day": "not counts"}}})])
    assert view.frame(now=0.0)["experience"]["kpis"]["overall"]["day"]["nps"]["n"] == 2
