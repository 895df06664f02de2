"""The whole path on real parts: Redis, the dataflow and the server as processes, a real client.

A channel system XADDs journey events and a contact_start; the agent handling
the contact receives the alert (risk, reasons, action) over the WebSocket.
A channel that speaks HTTP POSTs its contact to the HTTP API instead, and a CRM
desktop reads the customer's profile there.  A malformed event lands in cx:dlq
and the flow goes on.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
import redis
from websockets.asyncio.client import connect

from server.tokens import mint
from state.ingest import xadd_events
from state.keys import DLQ, events_stream, profile_key
from tests.conftest import (
    DAY,
    SECRET,
    entries,
    ev,
    free_port,
    hash_of,
    running_stack,
    wait_until,
)

pytestmark = pytest.mark.timeout(120)


@dataclass
class Stack:
    redis_url: str
    port: int
    client: redis.Redis
    http_port: int


@pytest.fixture(scope="module")
def stack(redis_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    client = redis.Redis.from_url(redis_server)
    client.flushall()
    folder = tmp_path_factory.mktemp("e2e")
    http_port = free_port()
    try:
        with running_stack(
            redis_server,
            folder,
            CX_HORIZON_DAYS="7",
            CX_RETENTION_DAYS="30",
            CX_HTTP_PORT=str(http_port),
        ) as port:
            yield Stack(redis_server, port, client, http_port)
    finally:
        client.close()


def test_contact_start_reaches_the_handling_agent_with_risk_reasons_and_action(
    stack: Stack,
) -> None:
    now = int(time.time() * 1000)
    journey = [
        ev("j1", "page_view", customer="cust-e2e-1", ts=now - 10 * DAY),
        ev("j2", "payment_failed", customer="cust-e2e-1", ts=now - 5 * DAY, amount=30.0),
        ev(
            "j3",
            "complaint",
            customer="cust-e2e-1",
            ts=now - 3 * DAY,
            channel="email",
            sentiment=-0.8,
        ),
        ev(
            "j4",
            "contact_start",
            customer="cust-e2e-1",
            ts=now - 2 * DAY,
            channel="chat",
            queue="care",
        ),
    ]
    contact = ev(
        "j5",
        "contact_start",
        customer="cust-e2e-1",
        ts=now,
        channel="voice",
        agent_id="agent-e2e",
        queue="billing",
        contact_id="call-1",
    )
    tok = mint(
        SECRET, agent_id="agent-e2e", queues=["billing"], role="agent", now=time.time(), ttl_s=600
    )

    async def agent() -> tuple[dict[str, object], float]:
        async with connect(f"ws://127.0.0.1:{stack.port}/ws") as ws:
            await ws.send(orjson.dumps({"type": "auth", "token": tok}).decode())
            assert orjson.loads(await ws.recv())["type"] == "welcome"
            xadd_events(stack.client, journey, 4)
            await asyncio.sleep(0.5)  # the earlier chat contact alerts the care queue, not us
            sent = time.perf_counter()
            xadd_events(stack.client, [contact], 4)
            frame = orjson.loads(await asyncio.wait_for(ws.recv(), timeout=10))
            latency = time.perf_counter() - sent
            alert = frame["alert"]
            outcome = {
                "type": "outcome",
                "alert_id": alert["alert_id"],
                "action_id": alert["next_best_action"]["action_id"],
                "response": "accepted",
            }
            await ws.send(orjson.dumps(outcome).decode())
            return frame, latency

    frame, latency = asyncio.run(agent())
    print(f"contact_start XADD -> alert frame at the agent: {latency * 1000:.1f} ms")
    assert frame["type"] == "alert"
    alert = frame["alert"]
    assert isinstance(alert, dict)
    assert alert["customer_id"] == "cust-e2e-1"
    assert (alert["agent_id"], alert["contact_id"], alert["queue"]) == (
        "agent-e2e",
        "call-1",
        "billing",
    )
    risk = alert["risk"]
    assert 0.0 <= risk["churn_probability"] <= 1.0
    assert risk["band"] in ("low", "medium", "high")
    assert risk["trend"] in ("new", "rising", "falling", "steady")
    # the prior speaks (no evidence yet): its three strongest risk signals, in words
    assert "payment failed once in 30 days" in risk["reasons"]
    assert len(risk["reasons"]) == 3
    assert risk["model"].endswith("(prior)")
    assert alert["control"] is False  # cust-e2e-1 is not in the control group
    nba = alert["next_best_action"]
    assert nba["action_id"] in (
        "resolve_complaint",
        "payment_help",
        "service_recovery_credit",
        "thank_and_listen",
    )
    assert nba["excluded"]["retention_offer"] == "sales action while a complaint is open"
    assert nba["why"].startswith("P(accept)")
    assert alert["journey"]["open_complaints"] == 1
    assert [t["type"] for t in alert["journey"]["last_touchpoints"][:2]] == [
        "contact_start",
        "contact_start",
    ]
    profile = hash_of(stack.client, profile_key("cust-e2e-1"))
    assert orjson.loads(profile[b"last_alert_id"]) == alert["alert_id"]

    # The agent's "accepted" went back into the event stream, through the flow, to the model.
    def outcomes() -> int:
        status = hash_of(stack.client, "cx:model:m0")
        return int(orjson.loads(status.get(b"nba_outcomes", b"0")))

    wait_until(lambda: outcomes() >= 1, "the outcome to reach the model", timeout=15)


def http(
    stack: Stack, method: str, path: str, body: object = None, *, role: str
) -> tuple[int, dict[str, Any]]:
    """A request to the HTTP API with a token of ``role``; the status and the JSON."""
    tok = mint(SECRET, agent_id="web-shop", queues=["care"], role=role, now=time.time(), ttl_s=60)
    request = urllib.request.Request(
        f"http://127.0.0.1:{stack.http_port}{path}",
        data=None if body is None else orjson.dumps(body),
        method=method,
        headers={"Authorization": f"Bearer {tok}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
            return resp.status, orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def test_a_contact_posted_over_http_reaches_the_agent_who_reads_the_profile_over_http(
    stack: Stack,
) -> None:
    now = int(time.time() * 1000)
    contact = {
        "event_id": "http-contact-1",
        "customer_id": "cust-http-1",
        "ts": now,
        "channel": "chat",
        "type": "contact_start",
        "attrs": {"agent_id": "agent-http", "queue": "care", "contact_id": "chat-7"},
    }
    tok = mint(
        SECRET, agent_id="agent-http", queues=["care"], role="agent", now=time.time(), ttl_s=600
    )

    async def agent() -> dict[str, Any]:
        async with connect(f"ws://127.0.0.1:{stack.port}/ws") as ws:
            await ws.send(orjson.dumps({"type": "auth", "token": tok}).decode())
            assert orjson.loads(await ws.recv())["type"] == "welcome"
            status, ack = await asyncio.to_thread(
                http, stack, "POST", "/v1/events", contact, role="ingest"
            )
            assert (status, len(ack["stream_ids"]), ack["rejected"]) == (202, 1, [])
            while True:  # alerts of earlier tests' contacts for care may come first
                frame = orjson.loads(await asyncio.wait_for(ws.recv(), timeout=15))
                if frame["alert"]["customer_id"] == "cust-http-1":
                    return frame  # type: ignore[no-any-return]

    frame = asyncio.run(agent())
    alert = frame["alert"]
    assert (alert["agent_id"], alert["contact_id"], alert["channel"]) == (
        "agent-http",
        "chat-7",
        "chat",
    )
    assert 0.0 <= alert["risk"]["churn_probability"] <= 1.0

    # the agent's CRM desktop reads the customer's 360 profile
    def profile() -> dict[str, Any] | None:
        status, body = http(stack, "GET", "/v1/customers/cust-http-1", role="agent")
        return body if status == 200 and body.get("last_alert_id") else None

    wait_until(profile, "the profile with the alert over http", timeout=15)
    found = profile()
    assert found is not None
    assert found["customer_id"] == "cust-http-1"
    assert found["last_alert_id"] == alert["alert_id"]
    assert http(stack, "GET", "/v1/customers/nobody-here", role="agent")[0] == 404


def test_malformed_event_goes_to_the_dead_letter_stream_and_the_flow_goes_on(
    stack: Stack,
) -> None:
    before = stack.client.xlen(DLQ)
    stack.client.xadd(events_stream(1), {"data": b'{"event_id": "bad-1", "ts": "never"'})
    stack.client.xadd(
        events_stream(1),
        {
            "data": orjson.dumps(
                {"event_id": "bad-2", "customer_id": "c", "ts": 1, "channel": "fax", "type": "x"}
            )
        },
    )
    stack.client.xadd(events_stream(1), {"nodata": b"1"})
    xadd_events(stack.client, [ev("after-bad", "page_view", customer="cust-after-bad")], 4)
    wait_until(
        lambda: stack.client.exists(profile_key("cust-after-bad")), "the event after the bad ones"
    )
    wait_until(lambda: stack.client.xlen(DLQ) == before + 3, "three dead letters")
    reasons = {f[b"reason"] for _, f in entries(stack.client, DLQ)}
    assert {b"not json", b"channel unknown", b"no data field"} <= reasons
    raw = [f[b"data"] for _, f in entries(stack.client, DLQ) if f[b"reason"] == b"not json"]
    assert raw == [b'{"event_id": "bad-1", "ts": "never"']


def test_healthz_and_metrics_report_the_flow_that_read_the_events(stack: Stack) -> None:
    """After the flow has read what was sent: Redis ok, the flow ok and not behind, the
    entries it read counted in /metrics."""
    import urllib.request

    def health() -> dict[str, Any] | None:
        with urllib.request.urlopen(f"http://127.0.0.1:{stack.port}/healthz", timeout=5) as r:
            body: dict[str, Any] = orjson.loads(r.read())
        flow = body["flow"]
        return body if flow["status"] == "ok" and flow["events_read"] > 0 else None

    wait_until(health, "the flow seen by /healthz", timeout=30)
    body = health()
    assert body is not None
    assert (body["status"], body["redis"]["status"]) == ("ok", "ok")
    assert body["flow"]["lag_s"] is not None
    assert body["flow"]["last_read_s_ago"] < 30
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.port}/metrics", timeout=5) as r:
        text = r.read().decode()
    assert "cx_redis_up 1.0" in text
    read = [line for line in text.splitlines() if line.startswith("cx_flow_events_read_total{")]
    assert read
    assert sum(float(line.rsplit(" ", 1)[1]) for line in read) > 0
