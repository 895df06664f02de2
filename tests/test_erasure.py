"""Erasure on real parts: a canary customer is forgotten and found nowhere afterwards.

The flow runs as a process with recovery snapshots, on a Redis that persists
with AOF and RDB.  The canary string is the customer id and sits in the text of
its events, in an alert, a profile and dead letters; it is also planted where a
naive sweep misses it: an event whose id is written with ``\\u`` escapes, a dead
letter naming it so, and anonymous ids (holding the canary) linked to the
customer by ``identify``, with their own events and profiles.  Once
``cxstream forget --wait`` returns, no Redis key or value and no file of Redis
holds it; after the next snapshots no recovery file and no log line holds it,
and a later event of that customer is suppressed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import cast

import orjson
import pytest
import redis

from operators.events import Event, shard_of
from state.erasure import persisted
from state.ingest import xadd_events
from state.keys import ALERTS, DLQ, FORGOTTEN, OUTBOUND, events_stream, profile_key
from tests.conftest import SECRET, T0, entries, ev, running_stack, wait_until

pytestmark = pytest.mark.timeout(180)


def keys_holding(client: redis.Redis, needle: bytes) -> list[str]:
    """The Redis keys whose name or any value holds ``needle``."""
    return sorted(
        key.decode(errors="replace")
        for key in client.scan_iter(count=1000)
        if needle in key_dump(client, key)
    )


def key_dump(client: redis.Redis, key: bytes) -> bytes:
    """A key's name and every value in it, as one blob of bytes."""
    out: list[bytes] = [key]
    kind = client.type(key)
    if kind == b"string":
        out.append(client.get(key) or b"")  # type: ignore[arg-type]
    elif kind == b"hash":
        for k, v in cast("dict[bytes, bytes]", client.hgetall(key)).items():
            out += (k, v)
    elif kind == b"set":
        out += list(client.smembers(key))  # type: ignore[arg-type]
    elif kind == b"list":
        out += list(client.lrange(key, 0, -1))  # type: ignore[arg-type]
    elif kind == b"zset":
        out += list(client.zrange(key, 0, -1))  # type: ignore[arg-type]
    elif kind == b"stream":
        for _, fields in entries(client, key.decode()):
            for k, v in fields.items():
                out += (k, v)
    else:
        raise AssertionError(f"unexpected key type {kind!r} of {key!r}")
    return b"\n".join(out)


def files_holding(folder: Path, needle: bytes) -> list[str]:
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and needle in p.read_bytes()
    )


def escaped(text: str) -> str:
    """``text`` with its last character written as a JSON ``\\u`` escape."""
    return text[:-1] + f"\\u{ord(text[-1]):04x}"


def test_forget_leaves_no_trace_of_the_canary_anywhere(
    persistent_redis: tuple[str, Path], tmp_path: Path
) -> None:
    redis_url, redis_files = persistent_redis
    r = redis.Redis.from_url(redis_url)
    canary = f"canary-{uuid.uuid4().hex}"
    needle = canary.encode()
    browsing, told = f"anon-{canary}", f"cookie-{canary}"
    folder = tmp_path / "stack"
    folder.mkdir()
    recovery = folder / "recovery"
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "CX_SECRET": SECRET.reveal(),
        "CX_DATA_DIR": str(folder),
    }
    with running_stack(
        redis_url, folder, run_args=("--epoch-ms", "200"), CX_RECOVERY_DIR=str(recovery)
    ):
        said = f"I am {canary} and I want to cancel"
        xadd_events(
            r,
            [
                ev(1, "page_view", customer=canary),
                ev(2, "complaint", customer=canary, channel="chat", text=said),
                ev(3, "contact_start", customer=canary, channel="voice", queue="care"),
                # two failed payments, days after the call: a proactive action (or hold-out)
                ev("pf1", "payment_failed", customer=canary, ts=T0 + 2 * 86_400_000),
                ev("pf2", "payment_failed", customer=canary, ts=T0 + 3 * 86_400_000),
                ev(4, "page_view", customer="bystander"),
                ev(5, "contact_start", customer="bystander", channel="voice", queue="care"),
            ],
            4,
        )
        shard = events_stream(0)
        r.xadd(shard, {"data": orjson.dumps({"customer_id": canary, "type": "page_view"})})
        # the id written with an escape: the same customer to the flow, other bytes in redis
        as_sent = (
            f'{{"event_id":"x1","customer_id":"{escaped(canary)}","ts":{T0 + 600_000},'
            f'"channel":"chat","type":"complaint","attrs":{{"text":"{said}"}}}}'
        )
        r.xadd(events_stream(shard_of(canary, 4)), {"data": as_sent.encode()})
        bad = f'{{"customer_id":"{escaped(canary)}","type":"page_view","attrs":{{"t":"{said}"}}}}'
        r.xadd(shard, {"data": bad.encode()})  # ts missing: a dead letter
        # anonymous history, linked to the customer by identify; one more id told only
        # to the flow, on an event of the customer
        xadd_events(
            r,
            [
                Event("a1", None, browsing, T0 + 60_000, "web", "page_view", {"text": said}),
                Event("a2", None, told, T0 + 60_000, "app", "page_view", {"text": said}),
            ],
            4,
        )
        wait_until(lambda: r.exists(profile_key(browsing)), "the anonymous profile")
        xadd_events(
            r,
            [
                Event("i1", canary, browsing, T0 + 700_000, "web", "identify", {}),
                Event("i2", canary, told, T0 + 710_000, "app", "page_view", {}),
            ],
            4,
        )
        wait_until(lambda: r.exists(profile_key(canary)), "the canary's profile")
        wait_until(
            lambda: sum(needle in f[b"data"] for _, f in entries(r, ALERTS)) >= 1,
            "the canary's alert",
        )
        wait_until(lambda: r.xlen(DLQ) >= 2, "the dead letters")
        wait_until(
            lambda: sum(needle in f[b"data"] for _, f in entries(r, OUTBOUND)) == 1,
            "the canary's outbound action",
        )
        wait_until(lambda: files_holding(recovery, needle), "a snapshot holding the canary")
        r.bgrewriteaof()  # the canary in every kind of file of redis: base, increment, rdb
        r.bgsave()
        wait_until(lambda: persisted(r, 0), "redis's files")
        assert files_holding(redis_files, needle)  # the test can see it there

        done = subprocess.run(
            [sys.executable, "-m", "cxstream", "forget", canary, "--wait", "60"],
            env=env,
            capture_output=True,
            timeout=90,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()
        record = orjson.loads(done.stdout)
        assert record["erased"] is True
        assert record["events"] >= 8  # its own, the escaped one, the anonymous ones, forgets
        assert record["alerts"] in (1, 2)  # its contact's, and its proactive one's if acted on
        assert record["outbound"] == 1
        assert record["dead_letters"] == 2
        assert record["profile"] == 3  # its own and both anonymous ones
        assert record["linked"] == 2
        assert needle not in done.stdout + done.stderr
        # forget --wait returned: the deletions are done and redis has rewritten its files
        assert keys_holding(r, needle) == []
        assert files_holding(redis_files, needle) == []

        # A later event of the forgotten customer is suppressed, and deleted unread.
        xadd_events(r, [ev(6, "contact_start", customer=canary, channel="voice")], 4)
        xadd_events(r, [ev(7, "page_view", customer="after")], 4)
        wait_until(lambda: r.exists(profile_key("after")), "the event after the canary's")
        wait_until(
            lambda: not keys_holding(r, needle),
            f"the suppressed event's deletion ({keys_holding(r, needle)})",
        )
        assert r.scard(FORGOTTEN) == 3  # the customer and both anonymous ids
        # Recovery files: the next snapshots no longer hold the canary.
        wait_until(lambda: not files_holding(recovery, needle), "snapshots without the canary")
        assert r.exists(profile_key("bystander"))  # nobody else was erased
    assert keys_holding(r, needle) == []
    assert files_holding(recovery, needle) == []
    assert files_holding(folder, needle) == []  # logs included
    r.close()
