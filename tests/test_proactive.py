"""Proactive retention on real parts: Redis, the flow and the server as processes.

A customer's second failed payment within 7 days, with no contact, reaches an
agent of the proactive queue within a second, and one ``cx:outbound`` entry is
written; a third failure inside the cool-down yields nothing; the same events
sent again yield nothing; and a flow restarted with no state, reading the same
events again, writes no entry twice.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest
import redis
from websockets.asyncio.client import connect

from server.tokens import mint
from state.ingest import xadd_events
from state.keys import ALERTS, OUTBOUND
from tests.conftest import DAY, SECRET, entries, ev, running_stack, wait_until

pytestmark = pytest.mark.timeout(180)

HOUR = 3_600_000


def _midday(ts: int) -> int:
    """``ts`` moved to 12:00 UTC of its day: out of the default quiet hours."""
    return ts - ts % DAY + 12 * HOUR


def _outbound(client: redis.Redis) -> list[dict[str, object]]:
    return [orjson.loads(fields[b"data"]) for _, fields in entries(client, OUTBOUND)]


def _read_past(client: redis.Redis, entry_id: str) -> bool:
    """Whether the flow has read some event stream up to ``entry_id`` (``cx:flow``)."""
    positions = [orjson.loads(v)["id"] for v in client.hvals("cx:flow")]
    return any(
        tuple(map(int, p.split("-"))) >= tuple(map(int, entry_id.split("-"))) for p in positions
    )


def _proactive_alerts(client: redis.Redis) -> list[dict[str, object]]:
    alerts = [orjson.loads(fields[b"data"]) for _, fields in entries(client, ALERTS)]
    return [a for a in alerts if a["kind"] == "proactive"]


def test_a_second_failed_payment_reaches_a_retention_agent_once(
    redis_url: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    today = _midday(int(time.time() * 1000))
    customer = "cust-pro-1"
    history = [
        ev("p1", "purchase", customer=customer, ts=today - 20 * DAY, amount=80.0),
        ev("p2", "page_view", customer=customer, ts=today - 10 * DAY),
        ev("p3", "payment_failed", customer=customer, ts=today - 3 * DAY, amount=80.0),
    ]
    second = ev("p4", "payment_failed", customer=customer, ts=today, amount=80.0)
    third = ev("p5", "payment_failed", customer=customer, ts=today + HOUR, amount=80.0)
    token = mint(
        SECRET, agent_id="agent-r1", queues=["retention"], role="agent", now=time.time(), ttl_s=600
    )
    # the hold-out would write an outbound entry and no alert: none for this customer
    env: dict[str, str] = {
        "CX_PROACTIVE_HOLDOUT": "0",
        "CX_HORIZON_DAYS": "7",
        "CX_RETENTION_DAYS": "30",
    }

    async def agent() -> tuple[dict[str, object], float, list[object]]:
        async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
            await ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
            assert orjson.loads(await ws.recv())["type"] == "welcome"
            xadd_events(client, history, 4)
            await asyncio.sleep(0.5)
            sent = time.perf_counter()
            xadd_events(client, [second], 4)
            frame = orjson.loads(await asyncio.wait_for(ws.recv(), timeout=10))
            latency = time.perf_counter() - sent
            xadd_events(client, [third], 4)  # inside the cool-down
            xadd_events(client, [*history, second, third], 4)  # the same events again
            more: list[object] = []
            try:
                while True:
                    more.append(orjson.loads(await asyncio.wait_for(ws.recv(), timeout=2.0)))
            except TimeoutError:
                pass
            return frame, latency, more

    for name in ("first", "again"):
        (tmp_path / name).mkdir()
    try:
        with running_stack(redis_url, tmp_path / "first", run_args=(), **env) as port:
            frame, latency, more = asyncio.run(agent())
            alert = frame["alert"]
            assert isinstance(alert, dict)
            assert alert["kind"] == "proactive"
            assert alert["customer_id"] == customer
            assert alert["contact_id"] is None
            assert alert["queue"] == "retention"
            assert alert["trigger"] == {
                "kind": "rule",
                "name": "payment_failed_twice",
                "event_id": "ep4",
                "why": "two failed payments within 7 days",
            }
            assert isinstance(alert["expected_value"], float)
            assert alert["next_best_action"]["action_id"] in ("payment_help", "retention_offer")
            assert latency < 1.0, f"the proactive alert took {latency:.3f} s"
            assert [m for m in more if isinstance(m, dict) and m.get("type") == "alert"] == []
            wait_until(lambda: _outbound(client), "the outbound entry")
            time.sleep(1.0)
            [out] = _outbound(client)
            assert out["alert_id"] == alert["alert_id"]
            assert out["customer_id"] == customer
            assert out["action_id"] == alert["next_best_action"]["action_id"]
            assert out["channel"] == alert["channel"]
            assert out["control"] is False
            assert isinstance(out["expires_at"], int)
            assert out["expires_at"] > today
            assert len(_proactive_alerts(client)) == 1
        # A flow with no state (no recovery) reads every event again: nothing new is written.
        with running_stack(redis_url, tmp_path / "again", run_args=(), **env):
            [last] = xadd_events(
                client, [ev("p7", "page_view", customer=customer, ts=today + 2 * HOUR)], 4
            )
            wait_until(lambda: _read_past(client, last), "the flow reading every event again")
            time.sleep(1.0)  # what it read has reached the sinks
            assert len(_outbound(client)) == 1
            assert len(_proactive_alerts(client)) == 1
    finally:
        client.close()
