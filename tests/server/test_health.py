"""What /healthz and /metrics say of Redis and the flow: the check, with a real Redis."""

from __future__ import annotations

import asyncio
import time

import redis
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, generate_latest

from server.health import BEHIND_S, STALE_S, Health, HealthMonitor
from state.commands import flow_read
from state.keys import KeyNames, events_stream
from state.redis import send_commands


def check(url: str, shards: int = 2) -> Health:
    async def main() -> Health:
        client = aioredis.Redis.from_url(url)
        try:
            return await HealthMonitor(client, KeyNames(shards=shards), model_shards=1).check()
        finally:
            await client.aclose()

    return asyncio.run(main())


def test_no_flow_yet_is_degraded_not_down(redis_url: str) -> None:
    body = check(redis_url).body(connections=3)
    assert (body["status"], body["redis"]["status"], body["flow"]["status"]) == (
        "degraded",
        "ok",
        "not seen",
    )
    assert body["connections"] == 3


def test_the_flow_lag_is_the_newest_entry_minus_the_last_one_read(
    redis_url: str, r: redis.Redis
) -> None:
    now_ms = int(time.time() * 1000)
    r.xadd(events_stream(0), {"data": b"{}"}, id=f"{now_ms - 5000}-0")
    r.xadd(events_stream(0), {"data": b"{}"}, id=f"{now_ms}-0")
    r.xadd(events_stream(1), {"data": b"{}"}, id=f"{now_ms}-0")
    read = {events_stream(0): (f"{now_ms - 5000}-0", 1), events_stream(1): (f"{now_ms}-0", 1)}
    send_commands(r, [flow_read(read, at_ms=now_ms)], "test")
    body = check(redis_url).body(connections=0)
    flow = body["flow"]
    assert (body["status"], flow["status"]) == ("ok", "ok")
    assert flow["streams"][events_stream(0)]["lag_s"] == 5.0
    assert flow["streams"][events_stream(1)]["lag_s"] == 0.0
    assert (flow["lag_s"], flow["events_read"]) == (5.0, 2)


def test_a_flow_that_stopped_reading_or_fell_behind_is_said_so(
    redis_url: str, r: redis.Redis
) -> None:
    now_ms = int(time.time() * 1000)
    r.xadd(events_stream(0), {"data": b"{}"}, id=f"{now_ms}-0")
    stale_at = now_ms - int((STALE_S + 5) * 1000)
    send_commands(r, [flow_read({events_stream(0): (f"{now_ms}-0", 1)}, at_ms=stale_at)], "t")
    assert check(redis_url, shards=1).body(0)["flow"]["status"] == "stopped"
    behind = f"{now_ms - int((BEHIND_S + 5) * 1000)}-0"
    send_commands(r, [flow_read({events_stream(0): (behind, 1)}, at_ms=now_ms)], "t")
    assert check(redis_url, shards=1).body(0)["flow"]["status"] == "behind"


def test_redis_away_is_down_and_the_metrics_say_so() -> None:
    async def main() -> tuple[Health, bytes]:
        client = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
        monitor = HealthMonitor(client, KeyNames(shards=1), model_shards=1)
        registry = CollectorRegistry()
        registry.register(monitor)
        health = await monitor.check()
        await client.aclose()
        return health, generate_latest(registry)

    health, metrics = asyncio.run(main())
    body = health.body(0)
    assert (body["status"], body["redis"]["status"]) == ("down", "down")
    assert "error" in body["redis"]
    assert b"cx_redis_up 0.0" in metrics
