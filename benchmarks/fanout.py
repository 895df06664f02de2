"""Delivery latency with many agents connected, on one server or several.

Starts embedded Redis and ``--servers`` ``cxstream serve`` processes (no flow:
alerts are written as the flow writes them, at a fixed rate, by a separate
producer process).  --agents agents connect over WebSocket from ``--clients``
client processes; each alert (a realistic ~1.5 KB payload) is addressed to one
agent, round robin, as a contact routed to that agent would be.  With one server
every alert goes to ``cx:alerts``; with N servers the alerts are split by queue
group (``CX_ALERT_GROUPS=site0-*;site1-*;...``): agent i holds queue
``site<i mod N>-desk-<i>`` and connects to server i mod N, so each server's agents
are one site's and it reads only that site's alerts.

The latency is from the producer's write to the frame received by the agent, for
the alerts sent after a first second of warm-up (connections and tasks settling);
each of those is checked delivered exactly once, by alert id (``missing``,
``duplicates``: a run with either is not recorded).  The clients run with the
flow's GC tuning and report their own collector pauses (``client_gc_*``).  Each
server reports, over the measured seconds, the alerts it read (``cx_alerts_read_total``
on its ``/metrics``), its CPU per alert read and its own collector pauses
(``cx_gc_pause_seconds``), and those while every agent disconnects at the end
(``gc_on_close_*``: the sweeps of :class:`cxstream.runtime.ServerGc`).  Prints
JSON as the last line and appends it to benchmarks/RESULTS.md.

    python benchmarks/fanout.py            # 1,000 agents, 2,000 alerts/s for 10 s
    python benchmarks/fanout.py --agents 10000 --servers 2 --clients 2
    python benchmarks/fanout.py --quick    # 200 agents, 500 alerts/s for 5 s
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import queue
import sys
import time
import urllib.request
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson
import redis
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect

from benchmarks._harness import Stack, collector_pauses, cpu_s, pct, record
from cxstream.runtime import tune_gc
from cxstream.settings import Secret
from server.tokens import mint
from state.commands import xadd_alert
from state.keys import AlertGroups

TICK_S = 0.005
WARMUP_S = 1.0
QUIET_S = 0.5  # a client stops once the producer is done and no frame came for this long


def log(message: str) -> None:
    print(f"fanout: {message}", file=sys.stderr, flush=True)


def groups_of(servers: int) -> str:
    """CX_ALERT_GROUPS for ``servers`` servers, one site each ("": one stream)."""
    return ";".join(f"site{n}-*" for n in range(servers)) if servers > 1 else ""


def queue_of(agent: int, servers: int) -> str:
    """Agent ``agent``'s queue: its own desk, in the site of its server."""
    return f"site{agent % servers}-desk-{agent}"


def payload(i: int, agent: int, servers: int) -> dict[str, Any]:
    """An alert shaped like the flow's (same fields and sizes), stamped with its send time."""
    return {
        "alert_id": f"al_fanout_{i}",
        "kind": "contact",
        "customer_id": f"c{i % 50_000}",
        "channel": "voice",
        "contact_id": f"call-{i}",
        "agent_id": f"agent-{agent}",
        "queue": queue_of(agent, servers),  # a queue the agent's token grants: its own
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


def produce(
    redis_url: str, agents: int, servers: int, rate: float, seconds: float, start_at: float
) -> None:
    """Run in its own process: write ``rate`` alerts/s as the flow does, paced every 5 ms."""
    client = redis.Redis.from_url(redis_url)
    groups = AlertGroups.parse(groups_of(servers))
    while time.time() < start_at:
        time.sleep(0.001)
    started = time.perf_counter()
    sent = 0
    total = int(rate * seconds)
    while sent < total:
        due = min(total, int((time.perf_counter() - started) * rate) + 1)
        pipe = client.pipeline(transaction=False)
        while sent < due:
            alert = payload(sent, sent % agents, servers)
            fields = ("data", orjson.dumps(alert), "alert_id", alert["alert_id"])
            command = xadd_alert(groups, alert["queue"], 100_000, *fields)
            pipe.execute_command(*command)  # type: ignore[no-untyped-call]
            sent += 1
        pipe.execute()
        time.sleep(TICK_S)
    client.close()


async def connect_agent(secret: Secret, port: int, i: int, servers: int) -> ClientConnection:
    token = mint(
        secret,
        agent_id=f"agent-{i}",
        queues=[queue_of(i, servers)],
        role="agent",
        now=time.time(),
        ttl_s=3600,
    )
    ws = await connect(f"ws://127.0.0.1:{port}/ws", max_size=None, open_timeout=60)
    await ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
    welcome = orjson.loads(await ws.recv())
    if welcome.get("type") != "welcome":
        raise RuntimeError(f"agent-{i}: no welcome: {welcome}")
    return ws


def client(
    ports: list[int],
    agents: list[int],
    servers: int,
    secret: str,
    connected: Any,
    produced: EventType,
    results: Any,
) -> None:
    """Run in its own process: connect ``agents`` (agent i to server i mod servers), read
    their frames until the producer is done and they stop, then put (sent, received at,
    alert id) of every alert frame and the process's GC pauses on ``results``."""
    results.put(asyncio.run(_client(ports, agents, servers, Secret(secret), connected, produced)))


async def _client(
    ports: list[int],
    agents: list[int],
    servers: int,
    secret: Secret,
    connected: Any,
    produced: EventType,
) -> dict[str, Any]:
    sockets: list[ClientConnection] = []
    for start in range(0, len(agents), 50):
        batch = agents[start : start + 50]
        sockets += await asyncio.gather(
            *(connect_agent(secret, ports[i % servers], i, servers) for i in batch)
        )
    # The client holds thousands of connections for the whole run: without the flow's GC
    # tuning (survivors frozen) its own full collections paused it for hundreds of ms
    # (p99 640 ms at 10,000 agents, 9.4 ms with its collector off), a tail of the
    # benchmark's, not of the server's.  Its pauses are reported.
    tune_gc()
    with collector_pauses() as pauses:
        frames = await _read_frames(sockets, connected, produced)
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return {"frames": frames, "pauses": pauses.pauses}


async def _read_frames(
    sockets: list[ClientConnection], connected: Any, produced: EventType
) -> list[tuple[float, float, str]]:
    """Every alert frame the agents get, (sent, received at, alert id), until the
    producer is done and the frames stop."""
    frames: list[tuple[float, float, str]] = []

    async def read(ws: ClientConnection) -> None:
        while True:
            frame = orjson.loads(await ws.recv())
            if frame.get("type") == "alert":
                alert = frame["alert"]
                frames.append((alert["sent"], time.time(), alert["alert_id"]))

    readers = [asyncio.create_task(read(ws)) for ws in sockets]
    connected.put(len(sockets))
    heard, quiet_since = 0, time.time()
    while True:
        await asyncio.sleep(0.1)
        if len(frames) != heard:
            heard, quiet_since = len(frames), time.time()
        elif produced.is_set() and time.time() - quiet_since > QUIET_S:
            break
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    return frames


def server_figures(port: int) -> dict[str, float]:
    """What a server's ``/metrics`` says: alerts read, GC pauses (count, seconds, over 10 ms)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    out = {"read": 0.0, "gc_count": 0.0, "gc_s": 0.0, "gc_over_10ms": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "cx_alerts_read_total":
                out["read"] = sample.value
            elif sample.name == "cx_gc_pause_seconds_count":
                out["gc_count"] = sample.value
            elif sample.name == "cx_gc_pause_seconds_sum":
                out["gc_s"] = sample.value
            elif sample.name == "cx_gc_pause_seconds_bucket" and sample.labels["le"] == "0.01":
                out["gc_over_10ms"] = -sample.value  # minus those up to 10 ms
    out["gc_over_10ms"] += out["gc_count"]
    return out


def sent_from(client: redis.Redis, servers: int, since: float) -> set[str]:
    """The ids of the alerts in the alert streams sent at or after ``since`` (wall s)."""
    ids = set()
    for stream in AlertGroups.parse(groups_of(servers)).streams:
        entries = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(stream))
        for _, fields in entries:
            alert = orjson.loads(fields[b"data"])
            if alert["sent"] >= since:
                ids.add(alert["alert_id"])
    return ids


def run(stack: Stack, agents: int, rate: float, seconds: float, clients: int) -> dict[str, Any]:
    servers = len(stack.ports)
    spawn = multiprocessing.get_context("spawn")
    connected, results = spawn.Queue(), spawn.Queue()
    produced = spawn.Event()
    procs = [
        spawn.Process(
            target=client,
            args=(
                stack.ports,
                list(range(n, agents, clients)),
                servers,
                stack.secret.reveal(),
                connected,
                produced,
                results,
            ),
        )
        for n in range(clients)
    ]
    for proc in procs:
        proc.start()
    total = 0
    for _ in procs:
        total += connected.get(timeout=600)
    log(f"{total} agents connected to {servers} server(s) from {clients} client process(es)")
    start_at = time.time() + 1.0
    measure_from = start_at + WARMUP_S
    producer = spawn.Process(
        target=produce,
        args=(stack.redis_url, agents, servers, rate, WARMUP_S + seconds, start_at),
    )
    producer.start()
    pids = [p.pid for p in stack.servers]
    while time.time() < measure_from:
        time.sleep(0.01)
    cpu_from = [cpu_s(pid) for pid in pids]
    metrics_from = [server_figures(port) for port in stack.ports]
    producer.join(timeout=seconds + 60)
    time.sleep(QUIET_S)  # the last frames go out; the agents are still connected
    sent_to = time.time()
    cpu_to = [cpu_s(pid) for pid in pids]
    metrics_to = [server_figures(port) for port in stack.ports]
    produced.set()  # the clients stop, and close their connections
    outs: list[dict[str, Any]] = []
    for _ in procs:
        try:
            outs.append(results.get(timeout=120))
        except queue.Empty:
            raise RuntimeError("a client process did not report") from None
    for proc in procs:
        proc.join(timeout=30)
    time.sleep(1.0)  # the servers see every connection close (and sweep: see ServerGc)
    closed = [server_figures(port) for port in stack.ports]
    window = sent_to - measure_from  # the measured seconds, and the quiet after them
    latencies: list[float] = []
    received: list[str] = []
    for out in outs:
        for sent, at, alert_id in out["frames"]:
            if sent >= measure_from:
                latencies.append((at - sent) * 1000)
                received.append(alert_id)
    pauses = [p for out in outs for p in out["pauses"]]
    sent_ids = sent_from(stack.client, servers, measure_from)
    unique = set(received)
    per_server = []
    for n in range(servers):
        was, now = metrics_from[n], metrics_to[n]
        read = now["read"] - was["read"]
        cpu = cpu_to[n] - cpu_from[n]
        per_server.append(
            {
                "agents": len(range(n, agents, servers)),
                "read": int(read),
                "cpu_percent": round(100 * cpu / window, 1),
                "cpu_us_per_alert_read": round(1e6 * cpu / max(1, read), 1),
                "gc_pauses": int(now["gc_count"] - was["gc_count"]),
                "gc_total_ms": round(1000 * (now["gc_s"] - was["gc_s"]), 1),
                "gc_over_10ms": int(now["gc_over_10ms"] - was["gc_over_10ms"]),
                # while every agent disconnected: the collector's sweeps of the closed ones
                "gc_on_close_ms": round(1000 * (closed[n]["gc_s"] - now["gc_s"]), 1),
                "gc_on_close_over_10ms": int(closed[n]["gc_over_10ms"] - now["gc_over_10ms"]),
            }
        )
    return {
        "p50_ms": pct(latencies, 0.50),
        "p95_ms": pct(latencies, 0.95),
        "p99_ms": pct(latencies, 0.99),
        "max_ms": round(max(latencies), 2) if latencies else float("nan"),
        "agents": total,
        "servers": servers,
        "clients": clients,
        "alerts_per_s": rate,
        "delivered": len(unique & sent_ids),
        "expected": len(sent_ids),  # sent in the measured seconds (about rate x seconds)
        "missing": len(sent_ids - unique),
        "duplicates": len(received) - len(unique),
        "seconds": round(window - QUIET_S, 1),
        # the servers' CPU per alert sent: what one more alert a second costs them all
        "server_cpu_us_per_alert": round(
            1e6 * sum(b - a for a, b in zip(cpu_from, cpu_to, strict=True)) / max(1, len(sent_ids)),
            1,
        ),
        "per_server": per_server,
        "client_gc_pauses": len(pauses),
        "client_gc_max_ms": round(max(pauses, default=0.0), 2),
        "client_gc_total_ms": round(sum(pauses), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=1000, help="connected agents (1000)")
    parser.add_argument("--rate", type=float, default=2000.0, help="alerts per second (2000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long (10)")
    parser.add_argument(
        "--servers", type=int, default=1, help="servers, split by queue group when more than 1 (1)"
    )
    parser.add_argument("--clients", type=int, default=1, help="client processes (1)")
    parser.add_argument("--quick", action="store_true", help="200 agents, 500 alerts/s, 5 s")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    if args.quick:
        args.agents, args.rate, args.seconds = 200, 500.0, 5.0
    for name in ("agents", "servers", "clients"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.servers > args.agents:
        parser.error("--servers must not exceed --agents (each server holds a site's agents)")
    extra = {"CX_ALERT_GROUPS": groups_of(args.servers)} if args.servers > 1 else None
    with Stack(flow=False, servers=args.servers, extra_env=extra) as stack:
        figures = run(stack, args.agents, args.rate, args.seconds, args.clients)
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
