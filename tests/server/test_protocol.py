"""The agent protocol without sockets: messages in, frames and actions out."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from operators.events import MAX_EVENT_BYTES
from server.protocol import (
    AUTH_TIMEOUT_S,
    CLOSE_AUTH_FAILED,
    CLOSE_AUTH_TIMEOUT,
    CLOSE_FORBIDDEN,
    CLOSE_POLICY,
    CLOSE_TOO_SLOW,
    HELD_DURING_REPLAY,
    AgentSession,
    Close,
    Ignored,
    IngestSession,
    Publish,
    Replay,
    Send,
    check_events,
)
from server.tokens import mint
from state.keys import ALL_QUEUES
from tests.conftest import SECRET


def tok(role: str = "agent", queues: tuple[str, ...] = ("care",), now: float = 0.0) -> str:
    return mint(SECRET, agent_id="a1", queues=queues, role=role, now=now, ttl_s=600)


def msg(**obj: Any) -> str:
    return orjson.dumps(obj).decode()


def frames(actions: list[Any]) -> list[dict[str, Any]]:
    return [orjson.loads(a.frame) for a in actions if isinstance(a, Send)]


def authed(role: str = "agent", queues: tuple[str, ...] = ("care",)) -> AgentSession:
    s = AgentSession(SECRET, now=0.0)
    out = s.receive(msg(type="auth", token=tok(role, queues)), now=1.0)
    assert frames(out)[0]["type"] == "welcome"
    return s


ALERT = {
    "alert_id": "al_1",
    "kind": "contact",
    "customer_id": "c1",
    "agent_id": "a9",
    "queue": "care",
    "contact_id": "ct1",
    "next_best_action": {"action_id": "retention_offer", "alternatives": [{"action_id": "call"}]},
}


def test_no_alert_byte_before_auth() -> None:
    s = AgentSession(SECRET, now=0.0)
    assert s.alert("1-0", ALERT) == []
    assert s.alert("1-0", {**ALERT, "agent_id": "a1"}) == []


def test_welcome_then_alerts_for_own_id_and_queues_only() -> None:
    s = authed()
    assert frames(s.alert("1-0", ALERT))[0] == {"type": "alert", "stream_id": "1-0", "alert": ALERT}
    assert s.alert("2-0", {**ALERT, "queue": "vip", "agent_id": "a9"}) == []
    assert len(frames(s.alert("3-0", {**ALERT, "queue": "care", "agent_id": "a1"}))) == 1


def test_the_welcome_tells_the_money_and_the_pace_of_event_time() -> None:
    """The console shows amounts in the currency and times to come in the viewer's time
    (event time runs ``clock_speed`` times the wall clock's: 1 live, the demo's faster)."""
    s = AgentSession(SECRET, now=0.0, currency="GBP", clock_speed=21_600.0)
    token = mint(SECRET, agent_id="a1", queues=("care",), role="agent", now=0, ttl_s=60)
    (welcome,) = frames(s.receive(msg(type="auth", token=token), now=1))
    assert welcome["currency"] == "GBP"
    assert welcome["clock_speed"] == 21_600.0
    plain = AgentSession(SECRET, now=0.0)
    (welcome,) = frames(plain.receive(msg(type="auth", token=token), now=1))
    assert welcome["clock_speed"] == 1.0


def test_an_agent_gets_only_alerts_of_queues_its_token_grants() -> None:
    """Any channel can put any agent_id on an event: addressing an agent does not
    carry an alert past the queues of its token (it is ignored, and counted)."""
    s = authed(queues=("care",))
    for n, queue in enumerate(("vip", None)):
        assert s.alert(f"{n + 1}-0", {**ALERT, "queue": queue, "agent_id": "a1"}) == [
            Ignored("al_1", "queue not in token")
        ]
    # subscribed to fewer queues than granted: addressed to it, a granted queue comes
    s = authed(queues=("care", "billing"))
    s.receive(msg(type="subscribe", queues=["billing"]), now=2)
    assert frames(s.alert("5-0", {**ALERT, "queue": "care", "agent_id": "a1"}))
    assert s.alert("6-0", {**ALERT, "queue": "care"}) == []
    # every queue
    s = authed("supervisor", queues=(ALL_QUEUES,))
    assert frames(s.alert("7-0", {**ALERT, "queue": "anything"}))
    assert frames(s.alert("8-0", {**ALERT, "kind": "proactive", "queue": None}))


def test_a_supervisor_gets_proactive_and_trend_alerts_of_its_queues_or_none() -> None:
    s = authed("supervisor", queues=("care",))
    assert frames(s.alert("1-0", {**ALERT, "kind": "proactive", "queue": None}))
    assert s.alert("2-0", {**ALERT, "kind": "proactive", "queue": "vip"}) == []
    assert frames(s.alert("3-0", {**ALERT, "kind": "trend", "queue": "care"}))


def stream_ids(actions: list[Any]) -> list[str]:
    return [f["stream_id"] for f in frames(actions) if f["type"] == "alert"]


def test_a_connection_gets_each_stream_id_once_and_in_order() -> None:
    s = authed()
    assert stream_ids(s.alert("5-0", ALERT)) == ["5-0"]  # live
    assert s.alert("5-0", ALERT) == []  # again (another path): not sent twice
    assert s.alert("4-0", ALERT) == []  # older than what was sent: out of order
    # a resume from before what was sent replays only what is newer
    assert s.receive(msg(type="resume", after="1-0"), now=2) == [Replay("5-0")]
    assert s.alert("7-0", ALERT) == []  # live during the replay: held
    replayed = [s.alert(i, ALERT, replay=True) for i in ("6-0", "7-0")]
    assert [stream_ids(a) for a in replayed] == [["6-0"], ["7-0"]]
    done = s.replayed()
    assert frames(done) == [{"type": "resumed", "through": "7-0"}]  # 7-0 held: sent already
    assert stream_ids(s.alert("8-0", ALERT)) == ["8-0"]


def test_live_alerts_held_during_a_replay_follow_it_in_order() -> None:
    s = AgentSession(SECRET, now=0.0)
    out = s.receive(msg(type="auth", token=tok(), after="2-0"), now=1.0)
    assert [type(a).__name__ for a in out] == ["Send", "Replay"]
    assert out[1] == Replay("2-0")
    assert s.alert("9-0", ALERT) == []  # live, held
    assert stream_ids(s.alert("3-0", ALERT, replay=True)) == ["3-0"]
    done = s.replayed()
    assert frames(done)[0] == {"type": "resumed", "through": "3-0"}
    assert stream_ids(done) == ["9-0"]
    assert frames(s.receive(msg(type="resume", after="1-0"), now=2)) == []  # a Replay("9-0")


def test_too_many_live_alerts_during_a_replay_close_as_too_slow() -> None:
    s = authed()
    s.receive(msg(type="resume", after="1-0"), now=2)
    for n in range(HELD_DURING_REPLAY):
        assert s.alert(f"{n + 10}-0", ALERT) == []
    out = s.alert("999999-0", ALERT)
    assert Close(CLOSE_TOO_SLOW, "too_slow") in out


def test_resume_ids_beyond_what_redis_holds_are_bad_messages() -> None:
    s = authed()
    for bad in ("99999999999999999999-0", "1-18446744073709551616", "-1", "1-2-3"):
        out = s.receive(msg(type="resume", after=bad), now=2)
        assert frames(out)[0]["code"] == "bad_message", bad
    assert s.receive(msg(type="resume", after="18446744073709551615-18446744073709551615"), now=2)
    t = AgentSession(SECRET, now=0.0)
    out = t.receive(msg(type="auth", token=tok(), after="99999999999999999999"), now=1.0)
    assert frames(out)[0]["code"] == "bad_message"


def test_supervisor_also_gets_trend_alerts() -> None:
    trend = {"alert_id": "t1", "kind": "trend", "queue": None}
    assert authed("supervisor").alert("1-0", trend) != []
    assert authed("agent").alert("1-0", trend) == []


def test_first_message_must_be_auth() -> None:
    s = AgentSession(SECRET, now=0.0)
    out = s.receive(msg(type="subscribe", queues=["care"]), now=1.0)
    assert frames(out)[0]["code"] == "auth_required"
    assert out[-1] == Close(CLOSE_AUTH_FAILED, "auth_required")
    assert s.receive(msg(type="auth", token=tok()), now=1.0) == []  # closed stays closed


def test_garbage_before_auth_closes_with_policy_violation() -> None:
    s = AgentSession(SECRET, now=0.0)
    out = s.receive("{{{{", now=1.0)
    assert frames(out)[0]["code"] == "bad_json"
    assert out[-1] == Close(CLOSE_POLICY, "bad_json")


def test_bad_token_and_ingest_token_are_refused() -> None:
    s = AgentSession(SECRET, now=0.0)
    out = s.receive(msg(type="auth", token="nope"), now=1.0)
    assert out[-1].code == CLOSE_AUTH_FAILED  # type: ignore[union-attr]
    s = AgentSession(SECRET, now=0.0)
    out = s.receive(msg(type="auth", token=tok(role="ingest")), now=1.0)
    assert out[-1] == Close(CLOSE_FORBIDDEN, "forbidden")


def test_auth_deadline() -> None:
    s = AgentSession(SECRET, now=0.0, auth_timeout=5.0)
    assert s.check_deadline(4.9) == []
    out = s.check_deadline(5.0)
    assert out[-1] == Close(CLOSE_AUTH_TIMEOUT, "auth_timeout")
    late = AgentSession(SECRET, now=0.0, auth_timeout=5.0)
    assert late.receive(msg(type="auth", token=tok()), now=6.0)[-1] == Close(
        CLOSE_AUTH_TIMEOUT, "auth_timeout"
    )


def test_token_expiry_ends_the_session() -> None:
    s = authed()
    out = s.receive(msg(type="resume", after="1-0"), now=700.0)
    assert out[-1] == Close(CLOSE_AUTH_FAILED, "token_expired")


def test_subscribe_only_to_granted_queues() -> None:
    s = authed(queues=("care", "billing"))
    assert frames(s.receive(msg(type="subscribe", queues=["billing"]), now=2))[0]["queues"] == [
        "billing"
    ]
    assert s.alert("1-0", ALERT) == []  # unsubscribed from care
    assert frames(s.receive(msg(type="subscribe", queues=["vip"]), now=2))[0]["code"] == "forbidden"
    assert (
        frames(s.receive(msg(type="subscribe", queues="care"), now=2))[0]["code"] == "bad_message"
    )


def test_resume_validates_the_stream_id() -> None:
    s = authed()
    assert s.receive(msg(type="resume", after="1700000000000-3"), now=2) == [
        Replay("1700000000000-3")
    ]
    assert frames(s.receive(msg(type="resume", after="1;FLUSHALL"), now=2))[0]["code"] == (
        "bad_message"
    )


def test_outcome_is_published_as_an_event_for_the_alerts_customer() -> None:
    s = authed()
    s.alert("1-0", ALERT)
    out = s.receive(
        msg(type="outcome", alert_id="al_1", action_id="retention_offer", response="accepted"),
        now=5.0,
    )
    [publish] = out
    assert isinstance(publish, Publish)
    e = publish.event
    assert (e.customer_id, e.type, e.channel, e.ts) == ("c1", "offer_response", "crm", 5000)
    assert e.attrs == {
        "action_id": "retention_offer",
        "response": "accepted",
        "alert_id": "al_1",
        "agent_id": "a1",
        "contact_id": "ct1",
        "queue": "care",
    }
    again = s.receive(
        msg(type="outcome", alert_id="al_1", action_id="retention_offer", response="accepted"),
        now=9.0,
    )
    assert again[0].event.event_id == e.event_id  # type: ignore[union-attr]  # a retry dedupes


def test_outcome_and_ack_need_a_delivered_alert_and_valid_fields() -> None:
    s = authed()
    out = s.receive(msg(type="ack", alert_id="al_1"), now=2)
    assert frames(out)[0]["code"] == "unknown_alert"
    s.alert("1-0", ALERT)
    assert isinstance(s.receive(msg(type="ack", alert_id="al_1"), now=2)[0], Publish)
    bad = s.receive(msg(type="outcome", alert_id="al_1", action_id="x", response="maybe"), now=2)
    assert frames(bad)[0]["code"] == "bad_message"
    bad = s.receive(msg(type="outcome", alert_id="al_1", response="declined"), now=2)
    assert frames(bad)[0]["code"] == "bad_message"


def test_an_outcome_names_an_action_of_the_alert_and_answers_it_once() -> None:
    s = authed()
    s.alert("1-0", ALERT)
    s.alert("2-0", {**ALERT, "alert_id": "al_2", "next_best_action": None})

    def outcome(alert_id: str, action_id: str, response: str) -> list[Any]:
        answer = msg(type="outcome", alert_id=alert_id, action_id=action_id, response=response)
        return s.receive(answer, now=3.0)

    [bad] = frames(outcome("al_1", "<img src=x>", "accepted"))
    assert bad["code"] == "bad_message"
    assert "is not an action of alert 'al_1' (its actions: retention_offer, call)" in bad["message"]
    assert (
        "its actions: none" in frames(outcome("al_2", "retention_offer", "accepted"))[0]["message"]
    )
    [first] = outcome("al_1", "call", "declined")  # an alternative may be answered
    assert isinstance(first, Publish)
    [again] = outcome("al_1", "call", "declined")  # the same answer: a retry, deduplicated
    assert isinstance(again, Publish)
    assert again.event.event_id == first.event.event_id
    [other] = frames(outcome("al_1", "retention_offer", "accepted"))
    assert other["code"] == "bad_message"
    assert "answered already (declined to call): one answer an alert" in other["message"]
    assert not s.closed


def test_an_answer_the_store_did_not_take_may_be_given_again_differently() -> None:
    s = authed()
    s.alert("1-0", ALERT)
    answer = msg(type="outcome", alert_id="al_1", action_id="call", response="declined")
    [lost] = s.receive(answer, now=3.0)
    assert isinstance(lost, Publish)
    s.unanswered(lost.event)  # (the I/O layer: Redis was away, the client told to retry)
    other = msg(type="outcome", alert_id="al_1", action_id="retention_offer", response="accepted")
    [kept] = s.receive(other, now=4.0)
    assert isinstance(kept, Publish)
    s.unanswered(lost.event)  # not the answer on record: nothing changes
    [refused] = frames(s.receive(answer, now=5.0))
    assert "answered already (accepted to retention_offer)" in refused["message"]


def test_a_session_closes_when_its_token_expires_even_if_the_client_is_silent() -> None:
    s = AgentSession(SECRET, now=0.0)
    assert s.wake_at() == AUTH_TIMEOUT_S  # the sign-in deadline first
    token = mint(SECRET, agent_id="a1", queues=("care",), role="agent", now=0, ttl_s=60)
    s.receive(msg(type="auth", token=token), now=1.0)
    assert s.wake_at() == 60.0  # then the token's expiry
    assert s.check_deadline(59.0) == []
    out = s.check_deadline(60.0)
    assert frames(out)[0]["code"] == "token_expired"
    assert out[-1] == Close(CLOSE_AUTH_FAILED, "token_expired")
    assert s.alert("1-0", ALERT) == []
    assert s.check_deadline(61.0) == []
    i = IngestSession(SECRET, now=0.0)
    token = mint(SECRET, agent_id="web", queues=(), role="ingest", now=0, ttl_s=30)
    i.receive(msg(type="auth", token=token), now=1.0)
    assert i.wake_at() == 30.0
    assert i.check_deadline(30.0)[-1] == Close(CLOSE_AUTH_FAILED, "token_expired")


def test_an_event_too_large_as_the_engine_writes_it_is_refused_when_sent() -> None:
    # (1e9 is written 1000000000.0: under the limit as sent, over it as written)
    ok = {"event_id": "e1", "customer_id": "c1", "ts": 1, "channel": "web", "type": "x"}
    sent = orjson.dumps(ok)[:-1] + b',"attrs":{"v":[' + b",".join([b"1e9"] * 7000) + b"]}}"
    assert len(sent) < MAX_EVENT_BYTES
    batch = check_events(enumerate([orjson.loads(sent), ok]), role="ingest")
    assert [e.event_id for e in batch.events] == ["e1"]
    [(index, reason, _)] = batch.rejected
    assert index == 0
    assert reason.startswith("too large: ")
    assert "limit 65536" in reason


def test_unknown_type_after_auth_is_an_error_not_a_close() -> None:
    s = authed()
    out = s.receive(msg(type="dance"), now=2)
    assert frames(out)[0]["code"] == "bad_message"
    assert not s.closed


@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_any_message_gives_actions_never_an_exception(message: str | bytes) -> None:
    for s in (AgentSession(SECRET, now=0.0), authed()):
        out = s.receive(message, now=2.0)
        assert all(isinstance(a, Send | Close | Replay | Publish) for a in out)


@given(
    st.dictionaries(
        st.sampled_from(["type", "token", "queues", "after", "alert_id", "action_id", "response"]),
        st.none()
        | st.integers(-(2**63), 2**63)
        | st.text(max_size=20)
        | st.lists(st.text(max_size=5)),
    )
)
def test_any_object_message_gives_actions(obj: dict[str, Any]) -> None:
    s = authed()
    s.alert("1-0", ALERT)
    out = s.receive(orjson.dumps(obj), now=2.0)
    assert all(isinstance(a, Send | Close | Replay | Publish) for a in out)


def test_the_stats_frame_goes_to_supervisors_only() -> None:
    frame = msg(type="stats", risk={})
    assert authed("supervisor").stats(frame) == [Send(frame)]
    assert authed("agent").stats(frame) == []
    assert AgentSession(SECRET, now=0.0).stats(frame) == []  # not signed in
