"""The HTTP API with real sockets on 127.0.0.1 (port 0) and a real Redis, served by
the AlertServer beside its WebSocket port; the client is the standard library's."""

from __future__ import annotations

import asyncio
import http.client
import socket
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import orjson
import pytest
import redis

from cxstream.settings import Settings
from operators.events import parse_event
from server.app import AlertServer
from server.metrics import Metrics
from server.rest import MAX_BODY_BYTES
from state.erasure import erase
from state.keys import DLQ, KeyNames, events_stream
from tests.conftest import SECRET, entries
from tests.server.test_app import run, token

EVENT = {
    "event_id": "h1",
    "customer_id": "c-http",
    "ts": "2026-01-01T10:00:00Z",
    "channel": "web",
    "type": "page_view",
    "attrs": {"page": "/pricing"},
}

Reply = tuple[int, dict[str, str], Any]


def call(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    *,
    tok: str | None = None,
    content_type: str = "application/json",
    conn: http.client.HTTPConnection | None = None,
) -> Reply:
    """One request with http.client; the status, the headers (lower-case) and the JSON."""
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": content_type} if body is not None else {}
    if tok is not None:
        headers["Authorization"] = f"Bearer {tok}"
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        found = {k.lower(): v for k, v in resp.getheaders()}
        return resp.status, found, orjson.loads(data) if data else None
    finally:
        if own:
            conn.close()


def post(port: int, body: object, *, role: str = "ingest", **kw: Any) -> Reply:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return call(port, "POST", "/v1/events", data, tok=token("shop", (), role=role), **kw)


def get(port: int, customer: str, *, role: str = "agent") -> Reply:
    return call(port, "GET", f"/v1/customers/{customer}", tok=token("crm", ("care",), role=role))


def serve(settings: Settings, body: Callable[[AlertServer], Any]) -> None:
    """Run the blocking ``body`` (an HTTP client) in a thread while the server serves."""

    async def threaded(server: AlertServer) -> None:
        await asyncio.to_thread(body, server)

    run(settings, threaded)


def events_of(r: redis.Redis) -> list[tuple[str, dict[str, Any]]]:
    """Every event in the shard streams, in shard then stream order."""
    out = []
    for shard in range(4):
        for entry_id, fields in entries(r, events_stream(shard)):
            out.append((entry_id, parse_event(fields[b"data"]).to_json()))
    return out


def test_the_http_api_listens_on_its_own_port(settings: Settings) -> None:
    def body(server: AlertServer) -> None:
        assert server.http_port not in (0, server.port)
        with socket.create_connection(("127.0.0.1", server.http_port), timeout=5):
            pass

    serve(settings, body)


def test_one_event_an_array_and_ndjson_are_written(settings: Settings, r: redis.Redis) -> None:
    def body(server: AlertServer) -> None:
        port = server.http_port
        status, headers, reply = post(port, EVENT)
        assert (status, headers["content-type"]) == (202, "application/json")
        assert reply["rejected"] == []
        [first] = reply["stream_ids"]
        status, _, reply = post(port, [{**EVENT, "event_id": f"a{i}"} for i in range(3)])
        assert (status, len(reply["stream_ids"])) == (202, 3)
        lines = b"\n".join(orjson.dumps({**EVENT, "event_id": f"n{i}"}) for i in range(2))
        status, _, reply = post(port, lines + b"\n", content_type="application/x-ndjson")
        assert (status, len(reply["stream_ids"])) == (202, 2)
        written = events_of(r)
        assert [e["event_id"] for _, e in written] == ["h1", "a0", "a1", "a2", "n0", "n1"]
        assert written[0] == (first, {**EVENT, "ts": 1767261600000})

    serve(settings, body)


def test_a_mixed_batch_writes_the_valid_ones_dead_letters_the_others_and_is_400(
    settings: Settings, r: redis.Redis
) -> None:
    def body(server: AlertServer) -> None:
        bad = {**EVENT, "event_id": "bad", "ts": "yesterday"}
        status, _, reply = post(server.http_port, [EVENT, bad])
        assert status == 400
        assert reply["error"] == "invalid_events"
        assert len(reply["stream_ids"]) == 1
        assert reply["rejected"] == [{"index": 1, "reason": "ts not rfc 3339: 'yesterday'"}]

    serve(settings, body)
    assert [e["event_id"] for _, e in events_of(r)] == ["h1"]
    [(_, letter)] = entries(r, DLQ)
    assert (letter[b"source"], letter[b"entry_id"], letter[b"reason"]) == (
        b"ingest",
        b"1",
        b"ts not rfc 3339",
    )
    assert orjson.loads(letter[b"data"])["event_id"] == "bad"
    assert letter[b"customer"] == b"c-http"  # an erasure finds it


def test_tokens_missing_of_another_role_or_expired(settings: Settings, r: redis.Redis) -> None:
    def body(server: AlertServer) -> None:
        port = server.http_port
        status, headers, reply = call(port, "POST", "/v1/events", orjson.dumps(EVENT))
        assert (status, reply["error"]) == (401, "auth_required")
        assert headers["www-authenticate"].startswith("Bearer")
        assert post(port, EVENT, role="agent")[0] == 403
        assert get(port, "c-http", role="ingest")[0] == 403
        from server.tokens import mint

        old = mint(
            SECRET, agent_id="shop", queues=(), role="ingest", now=time.time() - 60, ttl_s=30
        )
        status, _, reply = call(port, "POST", "/v1/events", orjson.dumps(EVENT), tok=old)
        assert status == 401
        assert reply["message"].startswith("token expired")

    serve(settings, body)
    assert events_of(r) == []


def test_a_body_over_the_limit_is_413_and_the_client_reads_it(settings: Settings) -> None:
    def body(server: AlertServer) -> None:
        big = b"[" + b" " * MAX_BODY_BYTES + b"]"
        status, headers, reply = post(server.http_port, big)
        assert (status, reply["error"]) == (413, "too_large")
        assert headers["connection"] == "close"

    serve(settings, body)


def test_415_and_405(settings: Settings) -> None:
    def body(server: AlertServer) -> None:
        port = server.http_port
        assert post(port, b"x=1", content_type="application/x-www-form-urlencoded")[0] == 415
        status, headers, _ = call(port, "GET", "/v1/events", tok=token())
        assert (status, headers["allow"]) == (405, "POST")

    serve(settings, body)


def test_a_profile_is_read_unknown_is_404_and_erased_is_404(
    settings: Settings, r: redis.Redis
) -> None:
    names = KeyNames.of(settings)
    profile = {"customer_id": "c-360", "risk": {"band": "high"}, "journey": {"events": 7}}
    r.hset(names.profile("c-360"), mapping={k: orjson.dumps(v) for k, v in profile.items()})
    r.hset(names.profile("c-gone"), mapping={"customer_id": orjson.dumps("c-gone")})
    erase(r, "c-gone", shards=names)
    # a write that trails the erasure (another process's late profile update)
    r.hset(names.profile("c-gone"), mapping={"customer_id": orjson.dumps("c-gone")})

    def body(server: AlertServer) -> None:
        port = server.http_port
        status, headers, reply = get(port, "c-360")
        assert (status, reply) == (200, profile)
        assert headers["cache-control"] == "no-store"
        assert get(port, "c-360", role="supervisor")[0] == 200
        status, _, reply = get(port, "nobody")
        assert (status, reply) == (404, {"error": "not_found", "message": "no such customer"})
        assert get(port, "c-gone")[0] == 404

    serve(settings, body)


def test_one_connection_serves_several_requests(settings: Settings) -> None:
    def body(server: AlertServer) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)
        try:
            for i in range(3):
                status, _, _ = post(server.http_port, {**EVENT, "event_id": f"k{i}"}, conn=conn)
                assert status == 202
            assert get(server.http_port, "nobody")[0] == 404
            sock = conn.sock
            assert call(server.http_port, "GET", "/v1/customers/x", conn=conn)[0] == 401
            assert conn.sock is sock  # the same socket all along
        finally:
            conn.close()

    serve(settings, body)


def test_the_requests_are_counted_in_the_metrics(settings: Settings) -> None:
    def body(server: AlertServer) -> None:
        post(server.http_port, EVENT)
        get(server.http_port, "nobody")
        registry = server.metrics.registry

        def count(route: str, status: str) -> float | None:
            labels = {"route": route, "status": status}
            return registry.get_sample_value("cx_http_requests_total", labels)

        assert (count("events", "202"), count("customers", "404")) == (1, 1)

    serve(settings, body)


def test_the_store_away_is_503(settings: Settings) -> None:
    from server.ingest import Writes
    from server.rest_server import RestServer
    from state.redis import connect_async

    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        away = f"redis://127.0.0.1:{closed.getsockname()[1]}"

    async def main() -> None:
        client = connect_async(away, cluster=False)
        metrics = Metrics()
        names = KeyNames.of(settings)
        writes = Writes(client, names, metrics)
        rest = RestServer(settings, redis=client, writes=writes, secret=SECRET, metrics=metrics)
        await rest.start()
        try:
            status, headers, reply = await asyncio.to_thread(post, rest.port, EVENT)
            assert (status, headers["retry-after"], reply["error"]) == (503, "1", "unavailable")
            assert (await asyncio.to_thread(get, rest.port, "c1"))[0] == 503
        finally:
            await rest.stop()
            await client.aclose()

    asyncio.run(asyncio.wait_for(main(), timeout=30))


def test_the_http_port_in_use_is_a_clear_error(settings: Settings) -> None:
    from operators.errors import CxError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = replace(settings, http_port=taken.getsockname()[1])

        async def main() -> None:
            assert busy.redis_url is not None
            server = AlertServer(busy, redis_url=busy.redis_url, secret=SECRET)
            with pytest.raises(
                CxError, match=r"127\.0\.0\.1:\d+ for the http api: Address already in use"
            ):
                await server.start()

        asyncio.run(main())
