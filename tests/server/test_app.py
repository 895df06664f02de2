"""The websockets adapter with real sockets on 127.0.0.1 (port 0) and a real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import time
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
import redis
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

from cxstream.settings import Settings, parse_alert_groups
from operators.events import parse_event, shard_of
from server.app import AlertServer
from server.tokens import mint, verify
from state.commands import xadd_alert
from state.keys import ALERTS, AlertGroups, events_stream
from state.redis import send_commands, stream_id
from tests.conftest import SECRET, entries, xadd


def token(agent: str = "a1", queues: tuple[str, ...] = ("care",), role: str = "agent") -> str:
    return mint(SECRET, agent_id=agent, queues=queues, role=role, now=time.time(), ttl_s=600)


def run(
    settings: Settings, body: Callable[[AlertServer], Awaitable[None]], *, timeout: float = 20
) -> None:
    async def main() -> None:
        assert settings.redis_url is not None
        server = AlertServer(
            settings,
            redis_url=settings.redis_url,
            secret=SECRET,
            auth_timeout=0.5,
            stats_interval_s=0.1,
        )
        await server.start()
        try:
            await asyncio.wait_for(body(server), timeout=timeout)
        finally:
            await server.stop()

    asyncio.run(main())


def run_servers(
    settings: Settings,
    n: int,
    body: Callable[[list[AlertServer]], Awaitable[None]],
    *,
    timeout: float = 60,
    stats_interval_s: float = 60,
) -> None:
    """``n`` servers on the settings' Redis, started, ``body``, stopped."""

    async def main() -> None:
        assert settings.redis_url is not None
        servers = [
            AlertServer(
                settings,
                redis_url=settings.redis_url,
                secret=SECRET,
                stats_interval_s=stats_interval_s,
            )
            for _ in range(n)
        ]
        for server in servers:
            await server.start()
        try:
            await asyncio.wait_for(body(servers), timeout)
        finally:
            for server in servers:
                await server.stop()

    asyncio.run(main())


def url(server: AlertServer, path: str = "/ws") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


async def signed_in(server: AlertServer, tok: str | None = None, **kw: Any) -> ClientConnection:
    ws = await connect(url(server), **kw)
    await ws.send(orjson.dumps({"type": "auth", "token": tok or token()}).decode())
    welcome = orjson.loads(await ws.recv())
    assert welcome["type"] == "welcome"
    return ws


async def close_code(ws: ClientConnection) -> int:
    """Read (and drop) frames until the server closes the connection; return its code."""

    async def drain() -> None:
        while True:
            await ws.recv()

    with pytest.raises(ConnectionClosed) as info:
        await asyncio.wait_for(drain(), timeout=20)
    assert info.value.rcvd is not None
    return info.value.rcvd.code


async def add_alerts_steadily(r: redis.Redis, prefix: str, n: int, per_s: float) -> None:
    """XADD n padded alerts for queue care at a steady rate (8 KB frames)."""
    batch = 25
    for start in range(0, n, batch):
        pipe = r.pipeline(transaction=False)
        for i in range(start, min(n, start + batch)):
            alert = {
                "alert_id": f"{prefix}{i}",
                "customer_id": "c",
                "queue": "care",
                "pad": "x" * 8000,
            }
            pipe.xadd(ALERTS, {"data": orjson.dumps(alert)})
        pipe.execute()
        await asyncio.sleep(batch / per_s)


NBA = {"action_id": "retention_offer", "alternatives": [{"action_id": "callback"}]}


def add_alert(r: redis.Redis, alert_id: str, **fields: Any) -> str:
    alert = {
        "alert_id": alert_id,
        "kind": "contact",
        "customer_id": "c1",
        "next_best_action": NBA,
        **fields,
    }
    return xadd(r, ALERTS, {"data": orjson.dumps(alert)})


async def next_alert(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    """The next alert frame (a supervisor's stats frames are passed over)."""
    frame = orjson.loads(await asyncio.wait_for(ws.recv(), timeout))
    while frame["type"] == "stats":
        frame = orjson.loads(await asyncio.wait_for(ws.recv(), timeout))
    assert frame["type"] == "alert", frame
    return frame  # type: ignore[no-any-return]


async def stats_frame(
    ws: ClientConnection, ready: Callable[[dict[str, Any]], Any], timeout: float = 10.0
) -> dict[str, Any]:
    """The next stats frame for which ``ready`` holds (other frames are skipped)."""

    async def wait() -> dict[str, Any]:
        while True:
            frame: dict[str, Any] = orjson.loads(await ws.recv())
            if frame["type"] == "stats" and ready(frame):
                return frame

    return await asyncio.wait_for(wait(), timeout)


def test_agent_gets_its_queue_and_never_another_queues_alert(
    settings: Settings, r: redis.Redis
) -> None:
    async def body(server: AlertServer) -> None:
        ws = await signed_in(server)  # a1, granted care only
        add_alert(r, "other", queue="vip", agent_id="a7")
        add_alert(r, "mine", queue="care", agent_id="a7")
        # addressed to a1 but of a queue its token does not grant: ignored and counted
        first = add_alert(r, "direct-vip", queue="vip", agent_id="a1")
        add_alert(r, "direct-none", agent_id="a1")
        add_alert(r, "direct", queue="care", agent_id="a1")
        assert (await next_alert(ws))["alert"]["alert_id"] == "mine"
        assert (await next_alert(ws))["alert"]["alert_id"] == "direct"
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.3)
        assert server.metrics.ignored._value.get() == 2
        # nor on resume
        await ws.send(orjson.dumps({"type": "resume", "after": "0-0"}).decode())
        frames = [orjson.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(1)]
        assert frames == [{"type": "resumed", "through": frames[0]["through"]}]
        assert frames[0]["through"] > first
        await ws.close()

    run(settings, body)


def test_routes_follow_subscriptions_and_roles(settings: Settings, r: redis.Redis) -> None:
    async def body(server: AlertServer) -> None:
        agent = await signed_in(server, token("a1", ("care", "billing")))
        boss = await signed_in(server, token("s1", ("vip",), role="supervisor"))
        await agent.send(orjson.dumps({"type": "subscribe", "queues": ["billing"]}).decode())
        assert orjson.loads(await agent.recv())["queues"] == ["billing"]
        add_alert(r, "care-1", queue="care")
        add_alert(r, "trend-0", kind="trend", queue="nobody")  # a queue the boss lacks
        add_alert(r, "trend-1", kind="trend")
        add_alert(r, "billing-1", queue="billing")
        assert (await next_alert(agent))["alert"]["alert_id"] == "billing-1"
        assert (await next_alert(boss))["alert"]["alert_id"] == "trend-1"
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(agent.recv(), 0.3)  # care was left behind
        await agent.close()
        add_alert(r, "billing-2", queue="billing", agent_id="s1")  # not a queue it holds
        add_alert(r, "vip-2", queue="vip", agent_id="s1")
        assert (await next_alert(boss))["alert"]["alert_id"] == "vip-2"
        await boss.close()

    run(settings, body)


def test_wrong_token_is_closed_with_4001(settings: Settings) -> None:
    async def body(server: AlertServer) -> None:
        async with connect(url(server)) as ws:
            await ws.send(orjson.dumps({"type": "auth", "token": "forged"}).decode())
            error = orjson.loads(await ws.recv())
            assert error["code"] == "auth_failed"
            assert await close_code(ws) == 4001

    run(settings, body)


def test_no_auth_in_time_is_closed_with_4008(settings: Settings) -> None:
    async def body(server: AlertServer) -> None:
        async with connect(url(server)) as ws:
            assert orjson.loads(await ws.recv())["code"] == "auth_timeout"
            assert await close_code(ws) == 4008

    run(settings, body)


def test_browser_from_another_origin_is_refused(settings: Settings) -> None:
    async def body(server: AlertServer) -> None:
        with pytest.raises(InvalidStatus) as info:
            await connect(url(server), origin=Origin("http://evil.example"))
        assert info.value.response.status_code == 403
        ws = await signed_in(server, origin=Origin(f"http://127.0.0.1:{settings.port}"))
        await ws.close()

    run(settings, body)


def test_oversize_frame_closes_with_1009(settings: Settings) -> None:
    async def body(server: AlertServer) -> None:
        async with connect(url(server), max_size=None) as ws:
            await ws.send("x" * (70 * 1024))
            assert await close_code(ws) == 1009

    run(settings, body)


def test_resume_never_repeats_a_stream_id_and_keeps_stream_order(
    settings: Settings, r: redis.Redis
) -> None:
    """The finding: a live alert, then a resume from earlier gave the live one, the
    older ones, and the live one again.  Now a connection's stream ids only go up;
    signing in with ``after`` gets the older ones first, live ones during the replay
    after them."""

    async def body(server: AlertServer) -> None:
        older = [add_alert(r, f"old-{n}", queue="care") for n in range(3)]
        ws = await signed_in(server)
        add_alert(r, "live-1", queue="care")
        live = await next_alert(ws)
        await ws.send(orjson.dumps({"type": "resume", "after": older[0]}).decode())
        assert orjson.loads(await asyncio.wait_for(ws.recv(), 5)) == {
            "type": "resumed",
            "through": live["stream_id"],
        }
        await ws.close()
        # signing in with after: the replay first, a live alert during it after it
        ws = await connect(url(server))
        await ws.send(orjson.dumps({"type": "auth", "token": token(), "after": "0-0"}).decode())
        assert orjson.loads(await ws.recv())["type"] == "welcome"
        add_alert(r, "live-2", queue="care")
        seen = []
        while (frame := orjson.loads(await asyncio.wait_for(ws.recv(), 5)))["type"] != "resumed":
            seen.append(frame)
        if seen[-1]["alert"]["alert_id"] != "live-2":  # else the replay read it first
            seen.append(await next_alert(ws))
        ids = [f["stream_id"] for f in seen]
        assert [f["alert"]["alert_id"] for f in seen] == [
            "old-0",
            "old-1",
            "old-2",
            "live-1",
            "live-2",
        ]
        assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.3)
        # an id past what Redis holds is the client's mistake, not an outage
        await ws.send(orjson.dumps({"type": "resume", "after": "9" * 20 + "-0"}).decode())
        assert orjson.loads(await ws.recv())["code"] == "bad_message"
        await ws.close()

    run(settings, body)


def test_resume_after_disconnect_delivers_exactly_the_missed_alerts(
    settings: Settings, r: redis.Redis
) -> None:
    async def body(server: AlertServer) -> None:
        ws = await signed_in(server)
        add_alert(r, "a", queue="care")
        first = await next_alert(ws)
        await ws.close()
        add_alert(r, "b", queue="care")
        add_alert(r, "x", queue="vip")
        add_alert(r, "c", queue="care")
        ws = await signed_in(server)
        await ws.send(orjson.dumps({"type": "resume", "after": first["stream_id"]}).decode())
        got = [await next_alert(ws) for _ in range(2)]
        assert [g["alert"]["alert_id"] for g in got] == ["b", "c"]
        done = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        assert done == {"type": "resumed", "through": got[-1]["stream_id"]}
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.3)
        await ws.close()

    run(settings, body)


def test_outcome_is_written_back_to_the_event_stream(settings: Settings, r: redis.Redis) -> None:
    async def body(server: AlertServer) -> None:
        ws = await signed_in(server)
        add_alert(r, "al_9", queue="care", contact_id="ct9")
        await next_alert(ws)
        outcome = {
            "type": "outcome",
            "alert_id": "al_9",
            "action_id": "retention_offer",
            "response": "declined",
            "reason": "too expensive",
        }
        await ws.send(orjson.dumps(outcome).decode())
        stream = events_stream(shard_of("c1", settings.shards))
        for _ in range(100):
            got = entries(r, stream)
            if got:
                break
            await asyncio.sleep(0.02)
        event = parse_event(got[-1][1][b"data"])
        assert event.type == "offer_response"
        assert event.attrs["response"] == "declined"
        assert event.attrs["reason"] == "too expensive"
        await ws.close()

    run(settings, body)


def test_supervisors_get_risk_acceptance_and_trends_and_agents_do_not(
    settings: Settings, r: redis.Redis
) -> None:
    async def body(server: AlertServer) -> None:
        agent = await signed_in(server, token("a1", ("care",)))
        boss = await signed_in(server, token("s1", ("*",), role="supervisor"))
        add_alert(r, "al_1", queue="care", risk={"churn_probability": 0.72})
        add_alert(r, "al_2", queue="care", risk={"churn_probability": 0.12})
        add_alert(r, "tr_1", kind="trend", customer_id=None, trend={"series": "x|topic=outage"})
        assert (await next_alert(agent))["alert"]["alert_id"] == "al_1"
        assert (await next_alert(agent))["alert"]["alert_id"] == "al_2"
        for alert_id, response in (
            ("al_1", "accepted"),
            ("al_2", "declined"),
            ("al_1", "accepted"),
        ):
            outcome = {"type": "outcome", "alert_id": alert_id, "action_id": "retention_offer"}
            await agent.send(orjson.dumps({**outcome, "response": response}).decode())

        frame = await stats_frame(boss, lambda f: f["acceptance"]["by_agent"])
        assert frame["risk"]["bands"] == {"low": 1, "medium": 0, "high": 1}
        assert frame["risk"]["histogram"][7] == frame["risk"]["histogram"][1] == 1
        # the repeated answer is the same answer: counted once
        assert frame["acceptance"]["by_agent"] == {
            "a1": {"answered": 2, "accepted": 1, "rate": 0.5}
        }
        assert frame["acceptance"]["by_action"]["retention_offer"]["rate"] == 0.5
        assert [t["alert_id"] for t in frame["trends"]] == ["tr_1"]
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(agent.recv(), 0.5)  # no stats frame for an agent
        await agent.close()
        await boss.close()

    run(settings, body)


def test_a_supervisor_sees_the_figures_of_its_queues_only(
    settings: Settings, r: redis.Redis
) -> None:
    async def body(server: AlertServer) -> None:
        care_agent = await signed_in(server, token("a1", ("care",)))
        care_boss = await signed_in(server, token("s1", ("care",), role="supervisor"))
        vip_boss = await signed_in(server, token("s2", ("vip",), role="supervisor"))
        add_alert(r, "al_c", queue="care", risk={"churn_probability": 0.9})
        add_alert(r, "al_v", queue="vip", risk={"churn_probability": 0.1})
        examples = [{"queue": "care", "type": "complaint"}, {"queue": "vip", "type": "complaint"}]
        add_alert(r, "tr_q", kind="trend", trend={"dimension": "queue", "value": "vip"})
        add_alert(r, "tr_t", kind="trend", trend={"dimension": "topic", "examples": examples})
        assert (await next_alert(care_agent))["alert"]["alert_id"] == "al_c"
        outcome = {"type": "outcome", "alert_id": "al_c", "action_id": "retention_offer"}
        await care_agent.send(orjson.dumps({**outcome, "response": "accepted"}).decode())

        def ready(frame: dict[str, Any]) -> bool:
            return bool(len(frame["trends"]) and frame["risk"]["contacts"])

        care = await stats_frame(care_boss, ready)
        vip = await stats_frame(vip_boss, ready)
        assert care["risk"]["bands"] == {"low": 0, "medium": 0, "high": 1}
        assert vip["risk"]["bands"] == {"low": 1, "medium": 0, "high": 0}
        assert [t["alert_id"] for t in care["trends"]] == ["tr_t"]
        assert care["trends"][0]["trend"]["examples"] == examples[:1]
        assert [t["alert_id"] for t in vip["trends"]] == ["tr_q", "tr_t"]
        while not care["acceptance"]["by_agent"]:
            care = await stats_frame(care_boss, ready)
        assert care["acceptance"]["by_agent"]["a1"]["accepted"] == 1
        assert vip["acceptance"]["by_agent"] == {}
        for ws in (care_agent, care_boss, vip_boss):
            await ws.close()

    run(settings, body)


def test_a_server_started_later_reads_back_the_last_hour_for_supervisors(
    settings: Settings, r: redis.Redis
) -> None:
    import time

    old_ms = int(time.time() * 1000) - 2 * 3600 * 1000  # two hours ago: outside the window
    old = {"alert_id": "old", "kind": "contact", "risk": {"churn_probability": 0.9}}
    r.xadd(ALERTS, {"data": orjson.dumps(old)}, id=f"{old_ms}-0")
    for i, p in enumerate((0.1, 0.5, 0.7)):
        add_alert(r, f"al_{i}", queue="care", risk={"churn_probability": p})
    add_alert(r, "tr_0", kind="trend", customer_id=None, trend={"series": "x|topic=y"})

    async def body(server: AlertServer) -> None:
        boss = await signed_in(server, token("s1", ("*",), role="supervisor"))
        frame = orjson.loads(await asyncio.wait_for(boss.recv(), 5))
        assert frame["type"] == "stats"
        assert frame["risk"]["bands"] == {"low": 1, "medium": 1, "high": 1}
        assert [t["alert_id"] for t in frame["trends"]] == ["tr_0"]
        await boss.close()

    run(settings, body)


def test_http_routes_on_the_same_port(settings: Settings) -> None:
    async def body(server: AlertServer) -> None:
        base = f"http://127.0.0.1:{server.port}"

        def get(path: str) -> tuple[int, str, bytes]:
            try:
                with urllib.request.urlopen(base + path, timeout=5) as resp:  # noqa: S310
                    return resp.status, resp.headers["Content-Type"], resp.read()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.headers["Content-Type"], exc.read()

        loop = asyncio.get_running_loop()
        status, ctype, body_ = await loop.run_in_executor(None, get, "/healthz")
        health = orjson.loads(body_)
        assert (status, ctype) == (200, "application/json")
        # Redis answers, no flow runs here: the server serves, the flow is not seen
        assert (health["status"], health["redis"]["status"]) == ("degraded", "ok")
        assert health["flow"]["status"] == "not seen"
        status, ctype, body_ = await loop.run_in_executor(None, get, "/")
        assert status == 200
        assert ctype.startswith("text/html")
        assert b"agent console" in body_
        status, _, body_ = await loop.run_in_executor(None, get, "/metrics")
        assert status == 200
        assert b"cx_ws_connections" in body_
        assert b"cx_redis_up 1.0" in body_
        status, _, _ = await loop.run_in_executor(None, get, "/nope")
        assert status == 404

    run(settings, body)


def test_port_in_use_is_a_clear_error(settings: Settings) -> None:
    import socket
    from dataclasses import replace

    from operators.errors import CxError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = replace(settings, port=taken.getsockname()[1])

        async def main() -> None:
            assert busy.redis_url is not None
            server = AlertServer(busy, redis_url=busy.redis_url, secret=SECRET)
            with pytest.raises(
                CxError, match=r"127\.0\.0\.1:\d+: Address already in use; set CX_HOST"
            ):
                await server.start()

        asyncio.run(main())


def test_redis_unreachable_at_start_is_a_clear_error(settings: Settings) -> None:
    """No Redis where REDIS_URL points: one error naming it (its password hidden), and
    the server's client closed; `cxstream serve` prints it and exits 2."""
    from operators.errors import StoreError

    with socket.socket() as closed:  # a port with nothing listening on it
        closed.bind(("127.0.0.1", 0))
        nowhere = f"redis://user:s3cret@127.0.0.1:{closed.getsockname()[1]}/0"

    async def main() -> None:
        server = AlertServer(settings, redis_url=nowhere, secret=SECRET)
        with pytest.raises(StoreError, match=r"cannot reach redis at redis://\*\*\*@127") as e:
            await server.start()
        assert "s3cret" not in str(e.value)

    asyncio.run(main())


def test_a_stalled_client_is_dropped_and_the_others_get_every_alert(
    settings: Settings, r: redis.Redis
) -> None:
    n_alerts = 1500  # 500 a second of 8 KB frames: a stalled client's buffers fill in seconds

    async def body(server: AlertServer) -> None:
        stalled = await signed_in(server, max_queue=1)  # reads nothing from here on
        reader = await signed_in(server)
        feeding = asyncio.create_task(add_alerts_steadily(r, "a", n_alerts, per_s=500))
        got: set[str] = set()
        while len(got) < n_alerts:
            got.add((await next_alert(reader, timeout=20))["alert"]["alert_id"])
        await feeding
        assert len(got) == n_alerts
        assert await close_code(stalled) == 4029
        await reader.close()

    run(settings, body)


def test_dropped_clients_are_counted_in_metrics(settings: Settings, r: redis.Redis) -> None:
    async def body(server: AlertServer) -> None:
        stalled = await signed_in(server, max_queue=1)
        await add_alerts_steadily(r, "b", 1500, per_s=500)
        assert await close_code(stalled) == 4029
        assert server.metrics.dropped._value.get() == 1

    run(settings, body)


def test_garbage_after_auth_gets_an_error_and_the_connection_stays(settings: Settings) -> None:
    async def body(server: AlertServer) -> None:
        ws = await signed_in(server)
        await ws.send("{not json")
        assert orjson.loads(await ws.recv())["code"] == "bad_json"
        await ws.send(orjson.dumps({"type": "resume", "after": "0-0"}).decode())
        await ws.close()

    run(settings, body)


def test_a_burst_of_bad_messages_gets_every_error_and_the_connection_stays(
    settings: Settings,
) -> None:
    n = 600  # over the send queue's 256 frames: each gets its error as the client reads

    async def body(server: AlertServer) -> None:
        ws = await signed_in(server)
        bad = orjson.dumps({"type": "ack", "alert_id": "al_x"}).decode()
        await asyncio.gather(*(ws.send(bad) for _ in range(n)))
        codes = [orjson.loads(await asyncio.wait_for(ws.recv(), 10))["code"] for _ in range(n)]
        assert codes == ["unknown_alert"] * n
        await ws.ping()  # still open
        assert server.metrics.dropped._value.get() == 0
        await ws.close()

    run(settings, body)


def test_a_session_is_closed_when_its_token_expires_though_the_client_is_silent(
    settings: Settings, r: redis.Redis
) -> None:
    async def body(server: AlertServer) -> None:
        short = mint(SECRET, agent_id="a1", queues=["care"], role="agent", now=time.time(), ttl_s=3)
        expires = verify(SECRET, short, now=time.time()).expires_at  # (whole seconds)
        ws = await signed_in(server, short)
        add_alert(r, "before", queue="care")
        frames: list[dict[str, Any]] = []  # the client says nothing from here on
        while not frames or frames[-1]["type"] != "error":
            frames.append(orjson.loads(await asyncio.wait_for(ws.recv(), 10)))
        assert time.time() >= expires - 0.05  # closed at the expiry, not before
        assert [f["alert"]["alert_id"] for f in frames[:-1]] == ["before"]
        assert frames[-1]["code"] == "token_expired"
        assert await close_code(ws) == 4001

    run(settings, body)


def test_a_resuming_client_that_stops_reading_and_goes_away_is_cleaned_up(
    settings: Settings, r: redis.Redis
) -> None:
    async def body(server: AlertServer) -> None:
        for start in range(0, 2000, 100):  # 16 MB of alerts to resume from
            pipe = r.pipeline(transaction=False)
            for i in range(start, start + 100):
                alert = {"alert_id": f"old{i}", "customer_id": "c", "queue": "care"}
                pipe.xadd(ALERTS, {"data": orjson.dumps({**alert, "pad": "x" * 8000})})
            pipe.execute()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        ws = await connect(url(server), sock=sock, max_queue=2)  # then reads nothing
        await ws.send(orjson.dumps({"type": "auth", "token": token(), "after": "0-0"}).decode())

        def stuck() -> bool:
            return any(c.queue.full() for c in server.clients)

        for _ in range(500):
            if stuck():
                break
            await asyncio.sleep(0.02)
        assert stuck()  # the replay waits for queue space ...
        assert ws.transport is not None
        ws.transport.abort()  # ... and the client goes away, mid-replay
        for _ in range(500):
            if not server.clients:
                break
            await asyncio.sleep(0.02)
        assert not server.clients
        assert server.metrics.connections._value.get() == 0
        other = await signed_in(server)  # the server goes on
        add_alert(r, "live", queue="care")
        while (await next_alert(other))["alert"]["alert_id"] != "live":
            pass  # (the old ones came after the server started: live to it)
        await other.close()

    run(settings, body, timeout=60)


def test_a_resume_longer_than_the_send_queue_ends_with_resumed_for_a_slow_reader(
    settings: Settings, r: redis.Redis
) -> None:
    n = 3000  # 24 MB: past the sockets' buffers and the send queue's 256 frames
    live = 400  # more than the queue holds, all at once at the replay's end

    async def body(server: AlertServer) -> None:
        pipe = r.pipeline(transaction=False)
        for i in range(n):
            alert = {"alert_id": f"old{i}", "customer_id": "c", "queue": "care", "pad": "x" * 8000}
            pipe.xadd(ALERTS, {"data": orjson.dumps(alert)})
        pipe.execute()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        ws = await connect(url(server), sock=sock, max_queue=4)
        await ws.send(orjson.dumps({"type": "auth", "token": token(), "after": "0-0"}).decode())
        got: list[str] = []
        while True:
            frame = orjson.loads(await asyncio.wait_for(ws.recv(), 20))
            if frame["type"] == "resumed":
                break
            if frame["type"] == "alert":
                got.append(frame["alert"]["alert_id"])
                if len(got) == 100:  # live alerts meanwhile: held, sent after `resumed`
                    for i in range(live):
                        add_alert(r, f"live{i}", queue="care")
            await asyncio.sleep(0.001)  # a slow reader
        while len(got) < n + live:
            got.append((await next_alert(ws, timeout=20))["alert"]["alert_id"])
        assert got == [f"old{i}" for i in range(n)] + [f"live{i}" for i in range(live)]
        assert server.metrics.dropped._value.get() == 0
        await ws.close()

    run(settings, body, timeout=60)


def test_expired_token_is_refused_on_a_real_socket(settings: Settings) -> None:
    expired = mint(SECRET, agent_id="a1", queues=["care"], role="agent", now=1000.0, ttl_s=60)

    async def body(server: AlertServer) -> None:
        async with connect(url(server)) as ws:
            await ws.send(orjson.dumps({"type": "auth", "token": expired}).decode())
            error = orjson.loads(await ws.recv())
            assert (error["code"], error["message"].startswith("token expired")) == (
                "auth_failed",
                True,
            )
            assert await close_code(ws) == 4001

    run(settings, body)


def test_ingest_acknowledges_with_stream_ids_and_dead_letters_invalid_events(
    settings: Settings, r: redis.Redis
) -> None:
    import time as _time

    from tests.conftest import ev

    ingest_token = mint(
        SECRET, agent_id="web-shop", queues=[], role="ingest", now=_time.time(), ttl_s=600
    )

    async def body(server: AlertServer) -> None:
        async with connect(url(server, "/ingest")) as ws:
            await ws.send(orjson.dumps({"type": "auth", "token": ingest_token}).decode())
            assert orjson.loads(await ws.recv())["type"] == "welcome"
            batch = [ev(1, "page_view").to_json(), {"event_id": "bad"}, ev(2, "search").to_json()]
            await ws.send(orjson.dumps(batch).decode())
            ack = orjson.loads(await ws.recv())
            assert ack["type"] == "ack"
            assert len(ack["stream_ids"]) == 2
            assert ack["rejected"] == [
                {
                    "index": 1,
                    "reason": "customer_id missing: an event needs customer_id or anonymous_id",
                }
            ]
            await ws.send(orjson.dumps(ev(3, "purchase").to_json()).decode())
            assert len(orjson.loads(await ws.recv())["stream_ids"]) == 1
            await ws.send("{nope")
            assert orjson.loads(await ws.recv())["code"] == "bad_json"
        stream = events_stream(shard_of("c1", settings.shards))
        assert [parse_event(f[b"data"]).event_id for _, f in entries(r, stream)] == [
            "e1",
            "e2",
            "e3",
        ]
        [(_, dead)] = entries(r, "cx:dlq")
        assert (dead[b"source"], orjson.loads(dead[b"data"])) == (b"ingest", {"event_id": "bad"})

    run(settings, body)


def test_ingest_writes_the_rest_of_a_message_holding_an_event_nested_too_deep(
    settings: Settings, r: redis.Redis
) -> None:
    import time as _time

    from tests.conftest import ev

    ingest_token = mint(
        SECRET, agent_id="web-shop", queues=[], role="ingest", now=_time.time(), ttl_s=600
    )
    deep_event = orjson.dumps({**ev(2, "search").to_json(), "attrs": {"x": "HERE"}}).replace(
        b'"HERE"', b'{"a":' * 300 + b"1" + b"}" * 300
    )
    deep_list = b"[" * 600 + b"]" * 600  # not an object, and past what orjson encodes
    message = b"[%s,%s,%s,%s]" % (
        orjson.dumps(ev(1, "page_view").to_json()),
        deep_event,
        deep_list,
        orjson.dumps(ev(3, "purchase").to_json()),
    )

    async def body(server: AlertServer) -> None:
        async with connect(url(server, "/ingest")) as ws:
            await ws.send(orjson.dumps({"type": "auth", "token": ingest_token}).decode())
            assert orjson.loads(await ws.recv())["type"] == "welcome"
            for _ in range(2):  # a retry gets the same answer
                await ws.send(message.decode())
                ack = orjson.loads(await ws.recv())
                assert ack["type"] == "ack", ack
                assert len(ack["stream_ids"]) == 2
                assert [(x["index"], x["reason"].split(":")[0]) for x in ack["rejected"]] == [
                    (1, "attrs nested too deep"),
                    (2, "not an object"),
                ]
        stream = events_stream(shard_of("c1", settings.shards))
        assert [parse_event(f[b"data"]).event_id for _, f in entries(r, stream)] == [
            "e1",
            "e3",
            "e1",
            "e3",
        ]
        letters = [f for _, f in entries(r, "cx:dlq")]
        assert [f[b"reason"] for f in letters] == [b"attrs nested too deep", b"not an object"] * 2
        assert letters[0][b"customer"] == b"c1"
        assert all(len(f[b"data"]) <= 4096 for f in letters)
        assert b"digest" in letters[0]

    run(settings, body)


def test_erasure_through_ingest_needs_a_privacy_token(settings: Settings, r: redis.Redis) -> None:
    from operators.events import Event

    forget = Event("f1", "c-gone", None, 1767225600000, "crm", "forget", {}).to_json()
    page = {**forget, "event_id": "p1", "type": "page_view", "channel": "web"}

    async def body(server: AlertServer) -> None:
        async with connect(url(server, "/ingest")) as ws:
            await ws.send(orjson.dumps({"type": "auth", "token": token(role="ingest")}).decode())
            assert orjson.loads(await ws.recv())["role"] == "ingest"
            await ws.send(orjson.dumps([forget, page]).decode())
            ack = orjson.loads(await ws.recv())
            assert len(ack["stream_ids"]) == 1
            assert ack["rejected"] == [
                {"index": 0, "reason": "forbidden: forget needs a privacy token"}
            ]
        async with connect(url(server, "/ingest")) as ws:
            await ws.send(orjson.dumps({"type": "auth", "token": token(role="privacy")}).decode())
            assert orjson.loads(await ws.recv())["role"] == "privacy"
            await ws.send(orjson.dumps([forget, page]).decode())
            ack = orjson.loads(await ws.recv())
            assert len(ack["stream_ids"]) == 1
            assert ack["rejected"][0]["index"] == 1
        async with connect(url(server)) as ws:  # and it receives no alerts
            await ws.send(orjson.dumps({"type": "auth", "token": token(role="privacy")}).decode())
            assert orjson.loads(await ws.recv())["code"] == "forbidden"
        stream = events_stream(shard_of("c-gone", settings.shards))
        types = [parse_event(f[b"data"]).type for _, f in entries(r, stream)]
        assert types == ["page_view", "forget"]

    run(settings, body)


def test_connections_awaiting_auth_are_capped_per_server(settings: Settings) -> None:
    from dataclasses import replace

    capped = replace(settings, max_unauthenticated=3)

    async def body(server: AlertServer) -> None:
        idle = [await connect(url(server)) for _ in range(3)]
        extra = await connect(url(server, "/ingest"))
        assert await close_code(extra) == 1013
        assert server.metrics.refused._value.get() == 1
        # one signs in: its place is free again
        await idle[0].send(orjson.dumps({"type": "auth", "token": token()}).decode())
        assert orjson.loads(await idle[0].recv())["type"] == "welcome"
        ws = await signed_in(server)
        await ws.close()
        for conn in idle:
            await conn.close()

    run(capped, body)


def test_ingest_needs_an_ingest_token_and_agents_cannot_ingest(settings: Settings) -> None:
    async def body(server: AlertServer) -> None:
        async with connect(url(server, "/ingest")) as ws:
            await ws.send(orjson.dumps({"type": "auth", "token": token()}).decode())
            assert orjson.loads(await ws.recv())["code"] == "forbidden"
            assert await close_code(ws) == 4003

    run(settings, body)


def test_two_servers_on_one_redis_each_deliver_to_their_own_agents(
    settings: Settings, r: redis.Redis
) -> None:
    """Several server instances share one Redis: each reads the whole alerts stream and
    delivers to the agents connected to it; an answer through either lands in the stream."""

    async def main() -> None:
        assert settings.redis_url is not None
        servers = [
            AlertServer(settings, redis_url=settings.redis_url, secret=SECRET) for _ in range(2)
        ]
        for server in servers:
            await server.start()
        try:
            care = await signed_in(servers[0], token("a1", ("care",)))
            billing = await signed_in(servers[1], token("a2", ("billing",)))
            boss = await signed_in(servers[1], token("s1", ("care",), role="supervisor"))
            add_alert(r, "c-1", queue="care", agent_id="a1")
            add_alert(r, "b-1", queue="billing", agent_id="a2")
            add_alert(r, "c-2", queue="care")
            assert [(await next_alert(care))["alert"]["alert_id"] for _ in range(2)] == [
                "c-1",
                "c-2",
            ]
            assert (await next_alert(billing))["alert"]["alert_id"] == "b-1"
            assert [(await next_alert(boss))["alert"]["alert_id"] for _ in range(2)] == [
                "c-1",
                "c-2",
            ]
            for ws in (care, billing):
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(ws.recv(), 0.3)  # nothing of the other's
            answer = {
                "type": "outcome",
                "alert_id": "b-1",
                "action_id": "callback",
                "response": "accepted",
            }
            await billing.send(orjson.dumps(answer).decode())
            await asyncio.sleep(0.3)
            for ws in (care, billing, boss):
                await ws.close()
        finally:
            for server in servers:
                await server.stop()

    asyncio.run(asyncio.wait_for(main(), timeout=30))
    written = [
        parse_event(f[b"data"])
        for i in range(settings.shards)
        for _, f in entries(r, events_stream(i))
    ]
    assert [(e.type, e.attrs.get("alert_id")) for e in written] == [("offer_response", "b-1")]


def test_supervisors_get_the_live_experience_of_their_queues(
    settings: Settings, r: redis.Redis
) -> None:
    """The flow's experience counts (cx:experience, one field a flow process) reach the
    supervisors as figures: two processes' answers add up; a supervisor of one queue
    sees that queue's figures only."""
    hour = 3_600_000

    def counts(name: str, ces: list[int]) -> bytes:
        row = [0, 0, 0, 0, 0, len(ces), sum(ces), sum(c * c for c in ces)]
        windows = {"day": row, "day_previous": [0] * 8}
        series = {"overall": windows, "queue=care": windows, "queue=vip": windows}
        part = {"name": name, "hour": 10 * hour, "series": series, "transitions": []}
        return orjson.dumps({**part, "periods": [0, 0], "touched": {}})

    r.hset("cx:experience", "main@0", counts("main@0", [6, 7]))
    r.hset("cx:experience", "main@1", counts("main@1", [2]))
    r.hset("cx:experience", "broken", b"{not json")

    async def body(server: AlertServer) -> None:
        everyone = await signed_in(server, token("s1", ("*",), role="supervisor"))
        care = await signed_in(server, token("s2", ("care",), role="supervisor"))

        def experience(frame: dict[str, Any]) -> Any:
            return frame["experience"]

        seen = experience(await stats_frame(everyone, experience))
        ces = seen["kpis"]["overall"]["day"]["ces"]
        assert (ces["value"], ces["n"]) == (5.0, 3)  # 6, 7 and 2 from the two processes
        assert set(seen["kpis"]["by_queue"]) == {"care", "vip"}
        theirs = experience(await stats_frame(care, experience))
        assert set(theirs["kpis"]["by_queue"]) == {"care"}
        assert theirs["kpis"]["overall"] == seen["kpis"]["overall"]
        for ws in (everyone, care):
            await ws.close()

    run(settings, body)


GROUPED = "care,billing;sales;vip"


def add_grouped(r: redis.Redis, alert_id: str, **fields: Any) -> str:
    """An alert written as the flow writes it with CX_ALERT_GROUPS=GROUPED."""
    alert = {
        "alert_id": alert_id,
        "kind": "contact",
        "customer_id": "c1",
        "next_best_action": NBA,
        **fields,
    }
    command = xadd_alert(
        AlertGroups.parse(GROUPED), fields.get("queue"), 1000, "data", orjson.dumps(alert)
    )
    (entry_id,) = send_commands(r, [command], "test")
    return str(entry_id.decode())


def alerts_read(server: AlertServer) -> int:
    """What the server's ``cx_alerts_read_total`` says it read."""
    return int(server.metrics.registry.get_sample_value("cx_alerts_read_total") or 0)


async def alert_ids(ws: ClientConnection, n: int) -> list[str]:
    return [(await next_alert(ws))["alert"]["alert_id"] for _ in range(n)]


async def nothing_more(*clients: ClientConnection) -> None:
    for ws in clients:
        with pytest.raises(TimeoutError):
            await next_alert(ws, timeout=0.3)


@pytest.mark.parametrize("n_servers", [2, 3])
def test_servers_split_by_queue_group_each_read_only_their_groups(
    settings: Settings, r: redis.Redis, n_servers: int
) -> None:
    """CX_ALERT_GROUPS on one Redis: each server holds the agents of some groups and reads
    only those groups' streams (and, for its supervisor, the alerts of no queue); every
    agent gets each of its alerts once, in order, whichever server it is on."""
    grouped = dataclasses.replace(settings, alert_groups=parse_alert_groups(GROUPED))
    queues = {"care": 0, "billing": 0, "sales": 1, "vip": 2}  # queue -> its group

    async def main(servers: list[AlertServer]) -> None:
        agents = {
            q: await signed_in(servers[g % n_servers], token(f"agent-{q}", (q,)))
            for q, g in queues.items()
        }
        boss = await signed_in(servers[0], token("s1", ("care",), role="supervisor"))
        groups = AlertGroups.parse(GROUPED)
        for queue, g in queues.items():  # an agent's alerts start once they are read
            server = servers[g % n_servers]
            assert await server.feed.until_reading(groups.streams_for([queue]), 10)
        written: dict[str, list[str]] = {q: [] for q in queues}
        for n in range(24):
            queue = list(queues)[n % 4] if n % 5 else list(queues)[(n // 5) % 4]
            add_grouped(r, f"{queue}-{n}", queue=queue)
            written[queue].append(f"{queue}-{n}")
        add_grouped(r, "trend-1", kind="trend", customer_id=None)  # of no queue
        for queue, ws in agents.items():
            assert await alert_ids(ws, len(written[queue])) == written[queue]
        assert await alert_ids(boss, len(written["care"]) + 1) == [*written["care"], "trend-1"]
        await nothing_more(*agents.values(), boss)
        by_server = [0] * n_servers
        for queue, group in queues.items():
            by_server[group % n_servers] += len(written[queue])
        by_server[0] += 1  # the trend, for the supervisor
        assert [alerts_read(s) for s in servers] == by_server
        for ws in (*agents.values(), boss):
            await ws.close()

    run_servers(grouped, n_servers, main)


def test_an_agent_resumes_on_another_server_across_groups(
    settings: Settings, r: redis.Redis
) -> None:
    """An agent of queues in two groups leaves one server and resumes on another from
    its last stream id: what it missed of both groups comes once, in the order
    written, then the live alerts."""
    grouped = dataclasses.replace(settings, alert_groups=parse_alert_groups(GROUPED))

    async def main(servers: list[AlertServer]) -> None:
        tok = token("a1", ("care", "sales"))
        first = await signed_in(servers[0], tok)
        streams = AlertGroups.parse(GROUPED).streams_for(["care", "sales"])
        assert await servers[0].feed.until_reading(streams, 10)
        add_grouped(r, "c-1", queue="care")
        add_grouped(r, "s-1", queue="sales")
        frames = [await next_alert(first) for _ in range(2)]
        assert [f["alert"]["alert_id"] for f in frames] == ["c-1", "s-1"]
        await first.close()
        missed = ["s-2", "c-2", "s-3", "v-1", "c-3"]
        for alert_id in missed:
            queue = {"s": "sales", "c": "care", "v": "vip"}[alert_id[0]]
            add_grouped(r, alert_id, queue=queue)
        ws = await connect(url(servers[1]))
        await ws.send(
            orjson.dumps({"type": "auth", "token": tok, "after": frames[-1]["stream_id"]}).decode()
        )
        assert orjson.loads(await ws.recv())["type"] == "welcome"
        assert await alert_ids(ws, 4) == ["s-2", "c-2", "s-3", "c-3"]
        resumed = orjson.loads(await ws.recv())
        assert resumed["type"] == "resumed"
        add_grouped(r, "s-4", queue="sales")
        assert await alert_ids(ws, 1) == ["s-4"]
        await nothing_more(ws)
        await ws.close()

    run_servers(grouped, 2, main)


def test_a_supervisor_of_a_group_read_late_sees_its_last_hour(
    settings: Settings, r: redis.Redis
) -> None:
    """A server that starts reading a group when its supervisor signs in reads back the
    group's contacts it did not read meanwhile: the risk figures are those of a server
    that read them all."""
    grouped = dataclasses.replace(settings, alert_groups=parse_alert_groups(GROUPED))

    async def body(server: AlertServer) -> None:
        agent = await signed_in(server, token("a1", ("care",)))
        groups = AlertGroups.parse(GROUPED)
        assert await server.feed.until_reading(groups.streams_for(["care"]), 10)
        for n, p in enumerate([0.9, 0.8, 0.1]):
            add_grouped(r, f"s-{n}", queue="sales", risk={"churn_probability": p})
        add_grouped(r, "c-0", queue="care", risk={"churn_probability": 0.5})
        assert await alert_ids(agent, 1) == ["c-0"]
        assert alerts_read(server) == 1  # sales is nobody's here yet
        boss = await signed_in(server, token("s1", ("sales",), role="supervisor"))

        frame = await stats_frame(boss, lambda f: f["risk"]["contacts"])
        assert frame["risk"]["bands"] == {"low": 1, "medium": 0, "high": 2}
        await agent.close()
        await boss.close()

    run(grouped, body)


def test_an_agent_signing_in_while_alerts_flow_gets_them_in_order_with_no_gap(
    settings: Settings, r: redis.Redis
) -> None:
    """Alerts are written without pause to two groups while agents sign in, one of them
    needing a group the server does not read yet, one resuming from a point: each gets
    its alerts in id order, and from its first one (or its resume point) every alert of
    its queues, none missing."""
    grouped = dataclasses.replace(settings, alert_groups=parse_alert_groups(GROUPED))
    groups = AlertGroups.parse(GROUPED)
    written: list[tuple[str, str]] = []  # (stream id, queue) in write order

    async def write(client: aioredis.Redis, n: int) -> None:
        for i in range(n):
            queue = ("care", "sales", "vip")[i % 3]
            alert = {"alert_id": f"w-{i}", "kind": "contact", "queue": queue}
            command = xadd_alert(groups, queue, 10_000, "data", orjson.dumps(alert))
            entry = await client.execute_command(*command)  # type: ignore[no-untyped-call]
            written.append((entry.decode(), queue))
            await asyncio.sleep(0.002)

    async def frames(ws: ClientConnection) -> list[str]:
        got: list[str] = []
        with contextlib.suppress(TimeoutError):
            while True:
                frame = orjson.loads(await asyncio.wait_for(ws.recv(), 1.0))
                if frame["type"] == "alert":
                    got.append(frame["stream_id"])
        return got

    async def body(server: AlertServer) -> None:
        client = aioredis.Redis.from_url(str(grouped.redis_url))
        care_only = await signed_in(server, token("a0", ("care",)))
        assert await server.feed.until_reading(groups.streams_for(["care"]), 10)
        writer = asyncio.create_task(write(client, 600))
        await asyncio.sleep(0.4)
        both = await signed_in(server, token("a1", ("care", "sales")))  # sales: new here
        await asyncio.sleep(0.4)
        point = written[len(written) // 2][0]
        resuming = await connect(url(server))
        auth = {"type": "auth", "token": token("a2", ("care", "vip")), "after": point}
        await resuming.send(orjson.dumps(auth).decode())  # vip: new here too
        await writer
        for ws, start, queues in (
            (both, None, ("care", "sales")),
            (resuming, point, ("care", "vip")),
        ):
            mine = [i for i, q in written if q in queues]
            got = await frames(ws)
            assert got
            if start is None:  # live from its first alert on
                expected = [i for i in mine if stream_id(i) >= stream_id(got[0])]
            else:  # everything after the point
                expected = [i for i in mine if stream_id(i) > stream_id(start)]
            assert got == expected  # in id order, none twice, none missing
            await ws.close()
        await care_only.close()
        await client.aclose()

    run(grouped, body, timeout=60)
