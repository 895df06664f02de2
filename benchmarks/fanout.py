"""Delivery latency with many agents connected.

Starts embedded Redis and ``cxstream serve`` (no flow: alerts are written to
``cx:alerts`` directly, at a fixed rate, by a separate producer process).
--agents agents connect over WebSocket from this process; each alert (a
realistic ~1.5 KB payload) is addressed to one agent, round robin, as a
contact routed to that agent would be.  The latency is from the producer's
XADD to the frame received by the agent, for the alerts sent after a first
second of warm-up (connections and tasks settling); each of those is checked
delivered exactly once, by alert id (``missing``, ``duplicates``: a run with
either is not recorded).  The client runs with the flow's GC tuning and reports
its own collector pauses (``client_gc_*``).  The server's CPU over the
measured seconds is reported too (per alert: what one more alert a second costs
a server, every server reading the whole alerts stream).  Prints JSON as the last line and
appends it to benchmarks/RESULTS.md.

    python benchmarks/fanout.py            # 1,000 agents, 2,000 alerts/s for 10 s
    python benchmarks/fanout.py --quick    # 200 agents, 500 alerts/s for 5 s
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson
import redis
from websockets.asyncio.client import ClientConnection, connect

from benchmarks._harness import Stack, cpu_s, pct, record
from cxstream.runtime import tune_gc
from server.tokens import mint
from state.keys import ALERTS

TICK_S = 0.005
WARMUP_S = 1.0


def log(message: str) -> None:
    print(f"fanout: {message}", file=sys.stderr, flush=True)


def payload(i: int, agent: str) -> dict[str, Any]:
    """An alert shaped like the flow's (same fields and sizes), stamped with its send time."""
    return {
        "alert_id": f"al_fanout_{i}",
        "kind": "contact",
        "customer_id": f"c{i % 50_000}",
        "channel": "voice",
        "contact_id": f"call-{i}",
        "agent_id": agent,
        "queue": f"desk-{agent}",  # a queue the agent's token grants: its own
        "risk": {
            "churn_probability": 0.61,
            "band": "high",
            "trend": "rising",
            "previous_probability": 0.44,
            "model": "logreg-1@120000",
            "reasons": [
                {"feature": "complaints_open", "text": "2 open complaints", "weight": 0.83},
                {"feature": "payment_failures_30d", "text": "payment failed twice", "weight": 0.4},
                {"feature": "sentiment_trend", "text": "sentiment falling", "weight": 0.21},
            ],
        },
        "journey": {
            "last_touchpoints": [
                {"ts": 1_767_225_600_000 + k, "channel": "web", "type": "page_view"}
                for k in range(10)
            ],
            "open_complaints": 2,
            "sentiment": -0.42,
            "repeat_contacts_7d": 1,
            "channels": {"web": 12, "voice": 2, "chat": 3},
        },
        "next_best_action": {
            "action_id": "retention_discount_10",
            "script": "Offer 10% off the next three months and confirm the billing fix.",
            "expected_value": 42.5,
            "p_accept": 0.37,
            "excluded": [{"action_id": "upsell_premium", "reason": "complaint open"}],
            "policy": "catalog-1",
        },
        "control": False,
        "emitted_at": int(time.time() * 1000),
        "sent": time.time(),
    }


def produce(redis_url: str, agents: int, rate: float, seconds: float, start_at: float) -> None:
    """Run in its own process: XADD ``rate`` alerts/s, paced every 5 ms."""
    client = redis.Redis.from_url(redis_url)
    while time.time() < start_at:
        time.sleep(0.001)
    started = time.perf_counter()
    sent = 0
    total = int(rate * seconds)
    while sent < total:
        due = min(total, int((time.perf_counter() - started) * rate) + 1)
        pipe = client.pipeline(transaction=False)
        while sent < due:
            alert = payload(sent, f"agent-{sent % agents}")
            pipe.xadd(ALERTS, {"data": orjson.dumps(alert), "alert_id": alert["alert_id"]})
            sent += 1
        pipe.execute()
        time.sleep(TICK_S)
    client.close()


async def connect_agent(stack: Stack, i: int) -> ClientConnection:
    token = mint(
        stack.secret,
        agent_id=f"agent-{i}",
        queues=[f"desk-agent-{i}"],
        role="agent",
        now=time.time(),
        ttl_s=3600,
    )
    ws = await connect(f"ws://127.0.0.1:{stack.port}/ws", max_size=None, open_timeout=60)
    await ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
    welcome = orjson.loads(await ws.recv())
    if welcome.get("type") != "welcome":
        raise RuntimeError(f"agent-{i}: no welcome: {welcome}")
    return ws


class Pauses:
    """The client's own garbage-collector pauses (``gc.callbacks``): a pause of the
    process that reads the frames delays every frame behind it, server or not."""

    def __init__(self) -> None:
        self.started = 0.0
        self.pauses: list[float] = []  # ms

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        else:
            self.pauses.append((time.perf_counter() - self.started) * 1000)

    def figures(self) -> dict[str, Any]:
        return {
            "client_gc_pauses": len(self.pauses),
            "client_gc_max_ms": round(max(self.pauses, default=0.0), 2),
            "client_gc_total_ms": round(sum(self.pauses), 1),
        }


def sent_from(client: redis.Redis, since: float) -> set[str]:
    """The ids of the alerts in ``cx:alerts`` sent at or after ``since`` (wall s)."""
    ids = set()
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(ALERTS))
    for _, fields in entries:
        alert = orjson.loads(fields[b"data"])
        if alert["sent"] >= since:
            ids.add(alert["alert_id"])
    return ids


async def run(stack: Stack, agents: int, rate: float, seconds: float) -> dict[str, Any]:
    sockets: list[ClientConnection] = []
    for start in range(0, agents, 50):
        sockets += await asyncio.gather(
            *(connect_agent(stack, i) for i in range(start, min(agents, start + 50)))
        )
    log(f"{len(sockets)} agents connected")
    # The client holds thousands of connections for the whole run: without the flow's GC
    # tuning (survivors frozen) its own full collections paused it for hundreds of ms
    # (p99 640 ms at 10,000 agents, 9.4 ms with its collector off), a tail of the
    # benchmark's, not of the server's.  Its pauses are reported.
    tune_gc()
    pauses = Pauses()
    latencies: list[float] = []
    received: list[str] = []

    async def read(ws: ClientConnection) -> None:
        while True:
            frame = orjson.loads(await ws.recv())
            if frame.get("type") == "alert":
                sent = frame["alert"]["sent"]
                if sent >= measure_from:
                    latencies.append((time.time() - sent) * 1000)
                    received.append(frame["alert"]["alert_id"])

    readers = [asyncio.create_task(read(ws)) for ws in sockets]
    start_at = time.time() + 1.0
    measure_from = start_at + WARMUP_S
    producer = multiprocessing.get_context("spawn").Process(
        target=produce, args=(stack.redis_url, agents, rate, WARMUP_S + seconds, start_at)
    )
    producer.start()
    server = stack.procs[-1].pid  # `cxstream serve`
    while time.time() < measure_from:
        await asyncio.sleep(0.01)
    cpu_from = cpu_s(server)
    gc.callbacks.append(pauses)
    deadline = measure_from + seconds + 10
    heard, quiet_since = 0, time.time()
    produced: tuple[float, float] | None = None  # (server CPU s, time) once all are sent
    while time.time() < deadline:  # until the producer is done and the frames stop
        await asyncio.sleep(0.1)
        if produced is None and not producer.is_alive():
            produced = (cpu_s(server), time.time())
        if len(latencies) != heard:
            heard, quiet_since = len(latencies), time.time()
        elif produced is not None and time.time() - quiet_since > 0.5:
            break
    cpu_to, sent_to = produced or (cpu_s(server), time.time())
    sent_for = sent_to - measure_from
    server_cpu = (cpu_to - cpu_from) / sent_for
    gc.callbacks.remove(pauses)
    producer.join(timeout=30)
    sent_ids = sent_from(stack.client, measure_from)
    unique = set(received)
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return {
        "p50_ms": pct(latencies, 0.50),
        "p95_ms": pct(latencies, 0.95),
        "p99_ms": pct(latencies, 0.99),
        "max_ms": round(max(latencies), 2) if latencies else float("nan"),
        "agents": len(sockets),
        "alerts_per_s": rate,
        "delivered": len(unique & sent_ids),
        "expected": len(sent_ids),  # sent in the measured seconds (about rate x seconds)
        "missing": len(sent_ids - unique),
        "duplicates": len(received) - len(unique),
        "seconds": round(sent_for, 1),
        "server_cpu_percent": round(100 * server_cpu, 1),
        "server_cpu_us_per_alert": round(1e6 * server_cpu / rate, 1),
        **pauses.figures(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=1000, help="connected agents (1000)")
    parser.add_argument("--rate", type=float, default=2000.0, help="alerts per second (2000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long (10)")
    parser.add_argument("--quick", action="store_true", help="200 agents, 500 alerts/s, 5 s")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    if args.quick:
        args.agents, args.rate, args.seconds = 200, 500.0, 5.0
    with Stack(flow=False) as stack:
        figures = asyncio.run(run(stack, args.agents, args.rate, args.seconds))
    if figures["missing"] or figures["duplicates"]:
        print(orjson.dumps(figures).decode())
        log(
            f"{figures['missing']} of {figures['expected']} alerts missing and "
            f"{figures['duplicates']} delivered twice; not recorded"
        )
        return 1
    if not args.no_record:
        given = " ".join(a for a in sys.argv[1:] if a != "--no-record")
        record("fanout", f"python benchmarks/fanout.py {given}".strip(), figures)
    print(orjson.dumps(figures).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
