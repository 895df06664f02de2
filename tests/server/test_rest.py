"""The HTTP API's protocol without sockets: request bytes in, response bytes and actions out.

Requests are written and responses read with h11's client side, so the tests
speak HTTP as a client library would.
"""

from __future__ import annotations

from typing import Any

import h11
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.events import MAX_EVENT_BYTES
from server.protocol import MAX_EVENTS_PER_MESSAGE
from server.rest import (
    MAX_BODY_BYTES,
    Hangup,
    Output,
    ReadProfile,
    RestAction,
    RestSession,
    Write,
)
from server.tokens import mint
from tests.conftest import SECRET

NOW = 1_000_000.0
EVENT = {
    "event_id": "e1",
    "customer_id": "c1",
    "ts": "2026-01-01T10:00:00Z",
    "channel": "voice",
    "type": "contact_start",
    "attrs": {"queue": "care", "agent_id": "a1"},
}


def token(role: str = "ingest", *, ttl_s: float = 600, now: float = NOW) -> str:
    return mint(SECRET, agent_id="shop", queues=("care",), role=role, now=now, ttl_s=ttl_s)


def request(
    method: str,
    target: str,
    body: bytes = b"",
    *,
    auth: str | None = None,
    content_type: str | None = "application/json",
    headers: tuple[tuple[str, str], ...] = (),
    chunked: bool = False,
) -> bytes:
    """One request's bytes, as h11's client writes them."""
    client = h11.Connection(h11.CLIENT)
    head = [("Host", "127.0.0.1"), *headers]
    if auth is not None:
        head.append(("Authorization", auth))
    if content_type is not None:
        head.append(("Content-Type", content_type))
    if chunked:
        head.append(("Transfer-Encoding", "chunked"))
    elif body or method == "POST":
        head.append(("Content-Length", str(len(body))))
    out = client.send(h11.Request(method=method, target=target, headers=head)) or b""
    if body:
        out += client.send(h11.Data(data=body)) or b""
    return out + (client.send(h11.EndOfMessage()) or b"")


def post(
    target: str = "/v1/events",
    body: object = EVENT,
    *,
    role: str = "ingest",
    content_type: str = "application/json",
) -> bytes:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return request("POST", target, data, auth=f"Bearer {token(role)}", content_type=content_type)


def get(customer: str = "c1", *, role: str = "agent") -> bytes:
    return request(
        "GET", f"/v1/customers/{customer}", auth=f"Bearer {token(role)}", content_type=None
    )


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return orjson.loads(self.body)


def responses(actions: list[RestAction]) -> list[Response]:
    """The responses in the actions' output, read by an HTTP client."""
    client = h11.Connection(h11.CLIENT)
    # the client must have sent requests for h11 to read responses: send as many as needed
    data = b"".join(a.data for a in actions if isinstance(a, Output))
    client.receive_data(data)
    found: list[Response] = []
    while True:
        if client.our_state is h11.IDLE:
            client.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
            client.send(h11.EndOfMessage())
        event = client.next_event()
        if event is h11.NEED_DATA:
            return found
        if isinstance(event, h11.Response):
            status = event.status_code
            headers = {k.decode(): v.decode() for k, v in event.headers}
            body = b""
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            found.append(Response(status, headers, body))
            if client.our_state is h11.MUST_CLOSE or client.their_state is h11.MUST_CLOSE:
                return found
            client.start_next_cycle()


def answer(actions: list[RestAction]) -> Response:
    [one] = responses(actions)
    return one


def written(data: bytes, **kw: Any) -> tuple[RestSession, Write]:
    """A session given ``data``: it asks for the batch to be written."""
    session = RestSession(SECRET, **kw)
    [action] = session.receive(data, now=NOW)
    assert isinstance(action, Write), action
    return session, action


# -- POST /v1/events ---------------------------------------------------------------------------


def test_one_event_is_written_and_accepted_with_its_stream_id() -> None:
    session, action = written(post())
    assert [e.event_id for e in action.batch.events] == ["e1"]
    reply = answer(session.written(["17-0"], now=NOW))
    assert reply.status == 202
    assert reply.json() == {"stream_ids": ["17-0"], "rejected": []}
    assert reply.headers["content-type"] == "application/json"
    assert reply.headers["cache-control"] == "no-store"


def test_an_array_of_events_is_one_batch() -> None:
    events = [{**EVENT, "event_id": f"e{i}"} for i in range(3)]
    session, action = written(post(body=events))
    assert [e.event_id for e in action.batch.events] == ["e0", "e1", "e2"]
    assert answer(session.written(["1-0", "1-1", "1-2"], now=NOW)).status == 202


def test_ndjson_lines_are_events_and_a_broken_line_is_rejected_by_its_number() -> None:
    lines = [
        orjson.dumps({**EVENT, "event_id": "a"}),
        b"",  # blank lines are skipped, and counted in the numbers
        b'{"event_id": "broken"',
        orjson.dumps({**EVENT, "event_id": "b"}) + b"\r",
    ]
    session, action = written(post(body=b"\n".join(lines), content_type="application/x-ndjson"))
    assert [e.event_id for e in action.batch.events] == ["a", "b"]
    [(index, reason, raw)] = action.batch.rejected
    assert (index, raw) == (2, b'{"event_id": "broken"')
    assert reason.startswith("not json: ")
    reply = answer(session.written(["1-0", "1-1"], now=NOW))
    assert reply.status == 400
    assert reply.json()["rejected"] == [{"index": 2, "reason": reason}]


def test_a_mixed_batch_writes_the_valid_events_and_answers_400_with_the_reasons() -> None:
    batch = [EVENT, {**EVENT, "event_id": "e2", "channel": "fax"}, {"event_id": "e3"}]
    session, action = written(post(body=batch))
    assert [e.event_id for e in action.batch.events] == ["e1"]  # the valid one is written
    assert [r[0] for r in action.batch.rejected] == [1, 2]  # the others dead-lettered
    reply = answer(session.written(["5-0"], now=NOW))
    assert reply.status == 400
    body = reply.json()
    assert body["error"] == "invalid_events"
    assert body["message"] == "2 of 3 events rejected, 1 written"
    assert body["stream_ids"] == ["5-0"]
    assert body["rejected"] == [
        {"index": 1, "reason": "channel unknown: 'fax'"},
        {"index": 2, "reason": "customer_id missing: an event needs customer_id or anonymous_id"},
    ]


def test_forget_needs_a_privacy_token_as_on_ingest() -> None:
    forget = {**EVENT, "type": "forget", "attrs": {}}
    _, action = written(post(body=[forget, EVENT]))
    assert action.batch.rejected[0][:2] == (0, "forbidden: forget needs a privacy token")
    _, action = written(post(body=[forget, EVENT], role="privacy"))
    assert [e.type for e in action.batch.events] == ["forget"]
    assert action.batch.rejected[0][:2] == (
        1,
        "forbidden: a privacy token sends forget events only",
    )


def test_an_event_over_the_event_limit_inside_a_large_body_is_rejected() -> None:
    big = {**EVENT, "event_id": "big", "attrs": {"text": "x" * MAX_EVENT_BYTES}}
    _, action = written(post(body=[EVENT, big]))
    assert [e.event_id for e in action.batch.events] == ["e1"]
    assert action.batch.rejected[0][1].startswith("too large")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{oops", "bad_json"),
        (b"17", "bad_request"),
        (b"[]", "bad_request"),
        (b"", "bad_json"),
    ],
)
def test_a_body_that_holds_no_events_is_400(body: bytes, code: str) -> None:
    reply = answer(RestSession(SECRET).receive(post(body=body), now=NOW))
    assert (reply.status, reply.json()["error"]) == (400, code)


def test_an_empty_ndjson_body_is_400() -> None:
    data = post(body=b"\n\n", content_type="application/x-ndjson")
    reply = answer(RestSession(SECRET).receive(data, now=NOW))
    assert (reply.status, reply.json()["message"]) == (400, "the body holds no event")


# -- who may --------------------------------------------------------------------------------------


def test_no_token_is_401_with_a_bearer_challenge() -> None:
    data = request("POST", "/v1/events", orjson.dumps(EVENT))
    reply = answer(RestSession(SECRET).receive(data, now=NOW))
    assert reply.status == 401
    assert reply.headers["www-authenticate"] == 'Bearer realm="cxstream"'
    assert reply.json()["error"] == "auth_required"


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ("Bearer nope", "token invalid: malformed (cut short or mistyped? copy it whole)"),
        (f"Basic {token()}", "authorization scheme 'Basic': use bearer"),
        (f"Bearer {token(ttl_s=10, now=NOW - 100)}", "token expired 90 s ago"),
        ("Bearer " + mint(SECRET.__class__("k" * 40), agent_id="x", queues=(), role="ingest",
                          now=NOW, ttl_s=60), "token signature does not match"),
    ],
)  # fmt: skip
def test_a_bad_or_expired_token_is_401(auth: str, message: str) -> None:
    data = request("POST", "/v1/events", orjson.dumps(EVENT), auth=auth)
    reply = answer(RestSession(SECRET).receive(data, now=NOW))
    assert reply.status == 401
    assert 'error="invalid_token"' in reply.headers["www-authenticate"]
    assert reply.json() == {"error": "auth_failed", "message": message}


@pytest.mark.parametrize(
    ("data", "needs"),
    [
        (post(role="agent"), "ingest or privacy"),
        (post(role="supervisor"), "ingest or privacy"),
        (get(role="ingest"), "agent or supervisor"),
        (get(role="privacy"), "agent or supervisor"),
    ],
)
def test_a_token_of_another_role_is_403(data: bytes, needs: str) -> None:
    reply = answer(RestSession(SECRET).receive(data, now=NOW))
    assert reply.status == 403
    assert reply.json()["message"].endswith(f"it needs {needs}")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_another_content_type_is_415(content_type: str | None) -> None:
    data = request(
        "POST",
        "/v1/events",
        orjson.dumps(EVENT),
        auth=f"Bearer {token()}",
        content_type=content_type,
    )
    reply = answer(RestSession(SECRET).receive(data, now=NOW))
    assert (reply.status, reply.json()["error"]) == (415, "unsupported_media_type")


def test_json_with_a_charset_is_json() -> None:
    written(post(content_type="application/json; charset=utf-8"))


# -- limits ---------------------------------------------------------------------------------------


def test_a_declared_body_over_the_limit_is_413_before_it_is_read() -> None:
    head = (
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token()}\r\nContent-Length: {MAX_BODY_BYTES + 1}\r\n\r\n"
    )
    session = RestSession(SECRET)
    actions = session.receive(head.encode(), now=NOW)
    reply = answer(actions)
    assert reply.status == 413
    assert reply.headers["connection"] == "close"
    assert isinstance(actions[-1], Hangup)
    assert session.closed
    assert session.receive(b"x" * 1000, now=NOW) == []  # the rest is not read


def test_a_chunked_body_over_the_limit_is_413_as_soon_as_it_passes_it() -> None:
    session = RestSession(SECRET, max_body=100)
    data = request(
        "POST", "/v1/events", b"[" + b" " * 200 + b"]", auth=f"Bearer {token()}", chunked=True
    )
    actions = session.receive(data, now=NOW)
    assert answer(actions).status == 413
    assert isinstance(actions[-1], Hangup)


@pytest.mark.parametrize("order", ["cl-first", "te-first"])
def test_a_request_framed_by_both_length_and_chunks_is_refused_and_the_connection_closed(
    order: str,
) -> None:
    """Content-Length and Transfer-Encoding together: where the body ends is ambiguous
    (a request smuggled past a proxy that reads the other one), so nothing is read."""
    body = orjson.dumps(EVENT)
    framing = [f"Content-Length: {len(body)}", "Transfer-Encoding: chunked"]
    if order == "te-first":
        framing.reverse()
    head = (
        f"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token()}\r\n" + "".join(f"{h}\r\n" for h in framing) + "\r\n"
    )
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    session = RestSession(SECRET)
    actions = session.receive(head.encode() + chunked, now=NOW)
    reply = answer(actions)
    assert (reply.status, reply.json()["error"]) == (400, "bad_request")
    assert "content-length and transfer-encoding" in reply.json()["message"]
    assert not any(isinstance(a, Write) for a in actions)  # nothing written
    assert isinstance(actions[-1], Hangup)
    assert session.closed


def test_more_events_than_a_batch_holds_is_413() -> None:
    events = [{**EVENT, "event_id": f"e{i}"} for i in range(MAX_EVENTS_PER_MESSAGE + 1)]
    reply = answer(RestSession(SECRET).receive(post(body=events), now=NOW))
    assert (reply.status, reply.json()["error"]) == (413, "too_many")


# -- routes and methods ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "target", "allow"),
    [
        ("GET", "/v1/events", "POST"),
        ("PUT", "/v1/segment", "POST"),
        ("POST", "/v1/customers/c1", "GET, HEAD"),
    ],
)
def test_another_method_is_405_with_allow(method: str, target: str, allow: str) -> None:
    data = request(method, target, b"{}" if method != "GET" else b"", auth=f"Bearer {token()}")
    reply = answer(RestSession(SECRET).receive(data, now=NOW))
    assert reply.status == 405
    assert reply.headers["allow"] == allow


@pytest.mark.parametrize(
    ("target", "status"), [("/v1/customers/c1", 200), ("/v1/events", 405), ("/v2/nothing", 404)]
)
def test_a_head_request_is_answered_as_a_get_without_the_body(target: str, status: int) -> None:
    session = RestSession(SECRET)
    client = h11.Connection(h11.CLIENT)
    head = [("Host", "127.0.0.1"), ("Authorization", f"Bearer {token('agent')}")]
    sent = client.send(h11.Request(method="HEAD", target=target, headers=head)) or b""
    out = session.receive(sent + (client.send(h11.EndOfMessage()) or b""), now=NOW)
    if status == 200:  # a customer's profile is read as for a GET
        assert out == [ReadProfile("c1")]
        out = session.profile({"customer_id": "c1", "journey": {"events": 3}}, now=NOW)
    assert not any(isinstance(a, Hangup) for a in out)
    client.receive_data(b"".join(a.data for a in out if isinstance(a, Output)))
    response = client.next_event()
    assert isinstance(response, h11.Response)
    assert response.status_code == status
    headers = dict(response.headers)
    assert int(headers[b"content-length"]) > 0  # the length a GET's body would have
    if status == 405:
        assert headers[b"allow"] == b"POST"
    assert isinstance(client.next_event(), h11.EndOfMessage)  # and no body: h11 checks it
    [action] = session.receive(get(), now=NOW)  # the connection goes on
    assert isinstance(action, ReadProfile)


def test_a_malformed_request_is_named_in_words_not_bytes() -> None:
    reply = answer(
        RestSession(SECRET).receive(b"get /v1/customers/caf\xc3\xa9 http/1.1\r\n\r\n", now=NOW)
    )
    assert reply.status == 400
    assert reply.json()["message"] == "illegal request line"


def test_an_unknown_path_is_404() -> None:
    reply = answer(RestSession(SECRET).receive(request("GET", "/v2/nothing"), now=NOW))
    assert (reply.status, reply.json()["error"]) == (404, "not_found")


def test_garbage_is_400_and_the_connection_closes() -> None:
    actions = RestSession(SECRET).receive(b"HELLO THERE\r\n\r\n", now=NOW)
    assert isinstance(actions[-1], Hangup)
    assert b"400 Bad Request" in actions[0].data  # type: ignore[union-attr]


def test_requests_on_one_connection_are_answered_in_order_and_it_stays_open() -> None:
    session = RestSession(SECRET)
    [write] = session.receive(post() + get("c9"), now=NOW)  # pipelined: one at a time
    assert isinstance(write, Write)
    actions = session.written(["1-0"], now=NOW)
    assert actions[-1] == ReadProfile("c9")  # the next request, once the first is answered
    actions += session.profile({"customer_id": "c9"}, now=NOW)
    assert [(r.status, r.json()) for r in responses(actions)] == [
        (202, {"stream_ids": ["1-0"], "rejected": []}),
        (200, {"customer_id": "c9"}),
    ]
    assert not session.closed


def test_a_refusal_without_a_body_keeps_the_connection_open() -> None:
    session = RestSession(SECRET)
    actions = session.receive(request("GET", "/v1/customers/c1"), now=NOW)
    assert answer(actions).status == 401
    assert not any(isinstance(a, Hangup) for a in actions)
    assert session.receive(get(), now=NOW) == [ReadProfile("c1")]


def test_a_client_waiting_for_100_continue_is_told_to_send() -> None:
    data = request(
        "POST",
        "/v1/events",
        orjson.dumps(EVENT),
        auth=f"Bearer {token()}",
        headers=(("Expect", "100-continue"),),
    )
    head, _, body = data.partition(b"\r\n\r\n")
    session = RestSession(SECRET)
    [cont] = session.receive(head + b"\r\n\r\n", now=NOW)
    assert isinstance(cont, Output)
    assert cont.data.startswith(b"HTTP/1.1 100 ")
    [write] = session.receive(body, now=NOW)
    assert isinstance(write, Write)


def test_the_store_away_is_503_with_retry_after() -> None:
    session, _ = written(post())
    reply = answer(session.unavailable(now=NOW))
    assert (reply.status, reply.headers["retry-after"]) == (503, "1")


def test_the_client_closing_ends_the_session() -> None:
    session = RestSession(SECRET)
    assert session.receive(b"", now=NOW) == [Hangup()]
    assert session.closed


# -- GET /v1/customers/{id} -----------------------------------------------------------------------


def test_a_profile_is_read_for_an_agent_or_a_supervisor() -> None:
    for role in ("agent", "supervisor"):
        session = RestSession(SECRET)
        assert session.receive(get("c%201%2Fx", role=role), now=NOW) == [ReadProfile("c 1/x")]
        profile = {"customer_id": "c 1/x", "risk": {"band": "high"}}
        reply = answer(session.profile(profile, now=NOW))
        assert (reply.status, reply.json()) == (200, profile)
        assert reply.headers["cache-control"] == "no-store"


def test_an_unknown_or_impossible_customer_is_404() -> None:
    session = RestSession(SECRET)
    [read] = session.receive(get("nobody"), now=NOW)
    assert answer(session.profile(None, now=NOW)).json() == {
        "error": "not_found",
        "message": "no such customer",
    }
    for impossible in ("x" * 129, "%ff%fe"):
        reply = answer(RestSession(SECRET).receive(get(impossible), now=NOW))
        assert reply.status == 404
    assert read == ReadProfile("nobody")


# -- POST /v1/segment -----------------------------------------------------------------------------

TRACK = {
    "type": "track",
    "event": "Order Completed",
    "messageId": "m-1",
    "userId": "c1",
    "timestamp": "2026-01-05T10:00:00.000Z",
    "properties": {"revenue": 42.5},
}


def test_segment_calls_become_events() -> None:
    identify = {
        "type": "identify",
        "messageId": "m-2",
        "userId": "c1",
        "anonymousId": "ck-9",
        "timestamp": "2026-01-05T10:00:00Z",
    }
    _, action = written(post("/v1/segment", [TRACK, identify]))
    purchase, link = action.batch.events
    assert (purchase.event_id, purchase.type, purchase.channel) == ("m-1", "purchase", "web")
    assert purchase.attrs["amount"] == 42.5
    assert (link.type, link.customer_id, link.anonymous_id) == ("identify", "c1", "ck-9")


def test_segment_batch_and_the_channel_of_the_source() -> None:
    _, action = written(post("/v1/segment?channel=chat", {"batch": [TRACK]}))
    assert action.batch.events[0].channel == "chat"
    reply = answer(RestSession(SECRET).receive(post("/v1/segment?channel=fax", TRACK), now=NOW))
    assert (reply.status, reply.json()["error"]) == (400, "bad_request")


def test_a_segment_call_that_does_not_map_is_rejected_with_its_reason() -> None:
    session, action = written(post("/v1/segment", [TRACK, {**TRACK, "type": "group"}]))
    group = {**TRACK, "type": "group"}
    assert action.batch.rejected == ((1, "segment type unsupported: 'group'", orjson.dumps(group)),)
    assert answer(session.written(["1-0"], now=NOW)).status == 400


# -- whatever comes in ----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=5))
def test_any_bytes_give_actions_and_never_an_exception(chunks: list[bytes]) -> None:
    session = RestSession(SECRET)
    for chunk in [*chunks, b""]:
        for action in session.receive(chunk, now=NOW):
            assert isinstance(action, Output | Hangup | Write | ReadProfile)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(JSON_VALUES, st.sampled_from(["/v1/events", "/v1/segment"]))
def test_any_json_body_is_a_batch_or_a_400(body: object, target: str) -> None:
    session = RestSession(SECRET)
    actions = session.receive(post(target, orjson.dumps(body)), now=NOW)
    if isinstance(actions[0], Write):
        batch = actions[0].batch
        n = len(batch.events) + len(batch.rejected)
        assert n == (len(body) if isinstance(body, list) else 1) or isinstance(body, dict)
        status = answer(session.written(["1-0"] * len(batch.events), now=NOW)).status
        assert status == (400 if batch.rejected else 202)
    else:
        assert answer(actions).status in (400, 413)
