"""The dataflow as a Bytewax cluster of two processes on 127.0.0.1 gives what one gives.

The same simulated journeys go through ``cxstream run`` alone and through two
``cxstream run -i I -a "A;B"`` processes (shards and customers spread over
both).  Both runs must publish the same alerts (same ids, customers, agents,
queues, contacts) and leave every customer the same journey.  Risk scores are
not compared: with two processes the model shard learns the matured examples
in another interleaving.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
import redis

from cxstream.settings import read_shards_of
from operators.events import Event
from operators.simulate import SimConfig, Simulator
from state.ingest import xadd_events
from state.keys import ALERTS, profile_key
from tests.conftest import SECRET, entries, free_port, wait_until

pytestmark = pytest.mark.timeout(180)

EVENTS = 4000


def journeys() -> list[Event]:
    return Simulator(SimConfig(customers=200, seed=3, customer_gap_ms=3_600_000)).take(EVENTS)


def contact_alerts(r: redis.Redis) -> list[tuple[Any, ...]]:
    """The contact alerts (trend alerts depend on the order shards are read in)."""
    return sorted(
        (a["alert_id"], a["customer_id"], a.get("agent_id"), a.get("queue"), a.get("contact_id"))
        for a in (orjson.loads(f[b"data"]) for _, f in entries(r, ALERTS))
        if a["kind"] == "contact"
    )


def outcome(r: redis.Redis, events: list[Event]) -> dict[str, Any]:
    alerts = contact_alerts(r)
    journeys = {}
    for key in {e.key for e in events}:
        raw = cast("bytes | None", r.hget(profile_key(key), "journey"))
        journeys[key] = None if raw is None else orjson.loads(raw)
    models = sorted(k.decode() for k in r.scan_iter("cx:model:*"))
    return {"alerts": alerts, "journeys": journeys, "models": models}


def flow_env(redis_url: str, folder: Path) -> dict[str, str]:
    """The environment every flow process of these tests runs with."""
    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "CX_SECRET": SECRET.reveal(),
        "CX_DATA_DIR": str(folder),
        "CX_PROFILE_INTERVAL_MS": "0",
        "CX_CHALLENGER": "none",
        "CX_MODEL_SHARDS": "2",
    }


def journeys_done(
    r: redis.Redis, per_customer: Counter[str], procs: list[tuple[subprocess.Popen[bytes], Path]]
) -> bool:
    """Every process still runs, and every customer's journey counts all its events."""
    for proc, log in procs:
        assert proc.poll() is None, log.read_text()[-3000:]
    return all(
        (raw := cast("bytes | None", r.hget(profile_key(k), "journey"))) is not None
        and orjson.loads(raw)["events"] == n
        for k, n in per_customer.items()
    )


def stop_cleanly(procs: list[tuple[subprocess.Popen[bytes], Path]]) -> None:
    """SIGINT every process; each must drain and exit 0."""
    for proc, _ in procs:
        proc.send_signal(signal.SIGINT)
    for proc, log in procs:
        assert proc.wait(timeout=30) == 0, log.read_text()[-3000:]


def run_flow(
    redis_url: str, folder: Path, events: list[Event], processes: int, *, own_shards: bool = False
) -> dict[str, Any]:
    """Run the flow as one process, or ``processes`` of one Bytewax cluster, or (with
    ``own_shards``) as that many independent processes each reading its own shards."""
    r = redis.Redis.from_url(redis_url)
    r.flushall()
    xadd_events(r, events, 4)
    expected_contacts = sum(e.type == "contact_start" for e in events)
    per_customer = Counter(e.key for e in events)
    env = flow_env(redis_url, folder)
    addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(processes))
    procs = []
    for i in range(processes):
        cluster = ["-i", str(i), "-a", addresses] if processes > 1 and not own_shards else []
        own = {"CX_READ_SHARDS": read_shards_of(i, processes, 4)}
        log = folder / f"run-{processes}-{i}-{own_shards}.log"
        procs.append(
            (
                subprocess.Popen(
                    [sys.executable, "-m", "cxstream", "run", *cluster],
                    env={**env, **own} if own_shards else env,
                    stdout=log.open("wb"),
                    stderr=subprocess.STDOUT,
                ),
                log,
            )
        )

    def complete() -> bool:
        return journeys_done(r, per_customer, procs) and len(contact_alerts(r)) >= expected_contacts

    try:
        wait_until(complete, f"{processes} process(es) to process every event", timeout=120)
        time.sleep(0.5)  # anything still in flight would show up as a difference
        # The shards were spread: each process read its own.
        read = [set(re.findall(r"reading (cx:events:\d+)", log.read_text())) for _, log in procs]
        assert sorted(s for shards in read for s in shards) == [f"cx:events:{i}" for i in range(4)]
        assert all(read)
        return outcome(r, events)
    finally:
        stop_cleanly(procs)
        r.close()


def test_two_processes_publish_the_same_alerts_and_keep_the_same_journeys(
    redis_url: str, tmp_path: Path
) -> None:
    events = journeys()
    one = run_flow(redis_url, tmp_path, events, 1)
    two = run_flow(redis_url, tmp_path, events, 2)
    assert len(one["alerts"]) == sum(e.type == "contact_start" for e in events)
    assert two["alerts"] == one["alerts"]
    assert two["journeys"] == one["journeys"]


def test_processes_that_own_their_shards_give_the_same_too(redis_url: str, tmp_path: Path) -> None:
    events = journeys()
    one = run_flow(redis_url, tmp_path, events, 1)
    owners = run_flow(redis_url, tmp_path, events, 2, own_shards=True)
    assert owners["alerts"] == one["alerts"]
    assert owners["journeys"] == one["journeys"]
    assert owners["models"] == [  # each process spreads its customers over its own models
        "cx:model:m0@0,2",
        "cx:model:m0@1,3",
        "cx:model:m1@0,2",
        "cx:model:m1@1,3",
    ]


def test_processes_owning_shards_recover_each_from_its_own_directory(
    redis_url: str, tmp_path: Path
) -> None:
    """Two processes own two shards each, each with its own CX_RECOVERY_DIR; one is
    killed (SIGKILL) while it works and started again on its directory.  The alerts and
    journeys are those of one uninterrupted process (alerts of the replayed stretch are
    published again with the same ids)."""
    events = journeys()
    one = run_flow(redis_url, tmp_path, events, 1)
    r = redis.Redis.from_url(redis_url)
    r.flushall()
    per_customer = Counter(e.key for e in events)
    env = flow_env(redis_url, tmp_path)

    def start(i: int) -> tuple[subprocess.Popen[bytes], Path]:
        log = tmp_path / f"owner-{i}.log"
        started = log.read_text().count("reading cx:events:") if log.exists() else 0
        own = {
            "CX_READ_SHARDS": f"{i},{i + 2}",
            "CX_RECOVERY_DIR": str(tmp_path / f"recovery-{i}"),
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "cxstream", "run", "--epoch-ms", "200"],
            env={**env, **own},
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_until(lambda: log.read_text().count("reading cx:events:") >= started + 2, "a start")
        return proc, log

    procs = [start(0), start(1)]
    try:
        xadd_events(r, events[: EVENTS // 2], 4)
        time.sleep(1.0)  # process 0 is mid-stream
        procs[0][0].send_signal(signal.SIGKILL)
        procs[0][0].wait()
        xadd_events(r, events[EVENTS // 2 :], 4)
        procs[0] = start(0)
        assert "after 0-0" not in procs[0][1].read_text().split("reading cx:events:")[-1]
        wait_until(
            lambda: journeys_done(r, per_customer, procs), "both owners to process every event", 120
        )
        wait_until(
            lambda: {a[0] for a in contact_alerts(r)} >= {a[0] for a in one["alerts"]}, "alerts"
        )
        time.sleep(0.5)
        after = outcome(r, events)
        assert sorted(set(after["alerts"])) == one["alerts"]  # re-published, same ids
        assert after["journeys"] == one["journeys"]
    finally:
        stop_cleanly(procs)
        r.close()
