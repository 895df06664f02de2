from operators.alerts import alert_id, build_alert
from operators.nba import Arbiter
from state.catalog import load_catalog
from tests.conftest import ev

CONTRACT_KEYS = {
    "alert_id",
    "kind",
    "customer_id",
    "contact_id",
    "agent_id",
    "queue",
    "channel",
    "event_ts",
    "emitted_at",
    "risk",
    "journey",
    "next_best_action",
}


def test_alert_follows_the_contract_and_its_id_is_deterministic() -> None:
    e = ev(1, "contact_start", channel="voice", contact_id="ct1", agent_id="a1", queue="care")
    kwargs = {
        "kind": "contact",
        "event": e,
        "churn_probability": 0.72,
        "previous_probability": 0.5,
        "model": "logreg-1@100",
        "reasons": ["1 open complaint"],
        "journey": {"open_complaints": 1},
        "decision": Arbiter(load_catalog(None)).select_one(
            "c1", {"complaints_open": 1.0}, 0.72, "voice", now_ms=0
        ),
    }
    a = build_alert(emitted_at=1, **kwargs)  # type: ignore[arg-type]
    b = build_alert(emitted_at=2, **kwargs)  # type: ignore[arg-type]
    assert set(a) >= CONTRACT_KEYS
    assert a["alert_id"] == b["alert_id"] == alert_id("contact", "e1")
    assert a["risk"] == {
        "churn_probability": 0.72,
        "band": "high",
        "trend": "rising",
        "model": "logreg-1@100",
        "reasons": ["1 open complaint"],
        "holding_down": [],
    }
    assert (a["agent_id"], a["queue"], a["contact_id"]) == ("a1", "care", "ct1")
    nba = a["next_best_action"]
    assert {"action_id", "title", "script", "score", "why", "alternatives", "excluded"} <= set(nba)
    assert a["control"] is False


def test_the_action_says_why_in_words_and_names_its_alternatives_by_title() -> None:
    """What the console shows an agent: a sentence, not the score's arithmetic, and the
    catalog titles of the alternatives beside their ids."""
    catalog = load_catalog(None)
    e = ev(1, "contact_start", channel="voice", queue="care")
    decision = Arbiter(catalog).select_one("c1", {"complaints_open": 1.0}, 0.72, "voice", now_ms=0)
    nba = build_alert(
        kind="contact",
        event=e,
        churn_probability=0.72,
        previous_probability=None,
        model="m",
        reasons=[],
        journey={},
        decision=decision,
        emitted_at=1,
    )["next_best_action"]
    assert nba["reason"].endswith(".")
    assert "P(accept)" not in nba["reason"]
    assert "segment" not in nba["reason"]
    assert "open complaint" in nba["reason"] or "complained before" in nba["reason"]
    assert nba["alternatives"], "the catalog leaves alternatives for an open complaint"
    for alt in nba["alternatives"]:
        action = catalog.get(alt["action_id"])
        assert action is not None
        assert alt["title"] == action.title
        assert set(alt) == {"action_id", "score", "title"}


def test_different_events_give_different_ids() -> None:
    assert alert_id("contact", "e1") != alert_id("contact", "e2")
    assert alert_id("contact", "e1") != alert_id("proactive", "e1")
