"""Contact-to-agent latency under background load.

Starts embedded Redis, `cxstream run` and `cxstream serve`; a `cxstream simulate`
process adds background load at --load events/s; after --warmup seconds of it (every
load customer seen once, the flow in its steady state), a connected agent (queue
"probe") times each probe contact_start from its XADD to the alert frame.

The probes carry the wall clock's time, and the load's event time starts there too (a day
of it every four seconds: each load customer's events are a day apart).  Before 0.6.3 the
load started at the simulator's 2026-01-01, so once the first probe came every load event
was months behind the worker's event time: every pending label matured at once, and the
flow ran as if replaying a backlog (``--load-start-ms 1767225600000`` runs it so).
Prints JSON as the last line and appends it to benchmarks/RESULTS.md.

    python benchmarks/latency.py            # 5,000 events/s load, 500 probes
    python benchmarks/latency.py --quick    # 500 events/s load, 100 probes
    python benchmarks/latency.py -p 2       # two flow processes, each owning half the shards
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson
from websockets.asyncio.client import connect

from benchmarks._harness import Stack, cpu_s, record
from operators.events import Event
from server.tokens import mint
from state.ingest import xadd_events

FLOW_PARTS: list[float] = []  # XADD -> the alert built in the flow (ms, wall clocks)


def percentile(sorted_values: list[float], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


async def probe(stack: Stack, contacts: int, interval_s: float) -> list[float]:
    token = mint(
        stack.secret,
        agent_id="probe-agent",
        queues=["probe"],
        role="agent",
        now=time.time(),
        ttl_s=3600,
    )
    latencies: list[float] = []
    flow_parts: list[float] = []
    async with connect(f"ws://127.0.0.1:{stack.port}/ws", max_size=None) as ws:
        await ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
        orjson.loads(await ws.recv())
        for i in range(contacts):
            event = Event(
                f"probe-{i}",
                f"probe-customer-{i}",
                None,
                int(time.time() * 1000),
                "voice",
                "contact_start",
                {"queue": "probe", "agent_id": "probe-agent", "contact_id": f"probe-call-{i}"},
            )
            sent = time.perf_counter()
            sent_wall = time.time()
            xadd_events(stack.client, [event], stack.shards)
            while True:
                frame = orjson.loads(await asyncio.wait_for(ws.recv(), timeout=30))
                if frame["alert"]["customer_id"] == event.customer_id:
                    break
            latencies.append((time.perf_counter() - sent) * 1000)
            flow_parts.append(frame["alert"]["emitted_at"] - sent_wall * 1000)
            if (i + 1) % 100 == 0:
                print(f"latency: {i + 1}/{contacts} probes", file=sys.stderr, flush=True)
            await asyncio.sleep(interval_s)
    FLOW_PARTS.extend(flow_parts)
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--load", type=float, default=5000.0, help="background events/s (5000)")
    parser.add_argument("--contacts", type=int, default=500, help="probe contacts (500)")
    parser.add_argument("--interval-ms", type=float, default=20.0, help="between probes (20)")
    parser.add_argument(
        "--load-customers", type=int, default=20_000, help="customers of the load (20,000)"
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=10.0,
        help="seconds of load before the probes (10): the load's customers are new at first, "
        "and a new customer's profile is written at once",
    )
    parser.add_argument(
        "-p",
        "--processes",
        type=int,
        default=1,
        help="flow processes, each owning its shards (CX_READ_SHARDS) (1)",
    )
    parser.add_argument(
        "--load-start-ms",
        type=int,
        default=None,
        help="event time of the load's first events, epoch ms (default: now, as the probes'; "
        "before 0.6.3 the simulator's 1767225600000, 2026-01-01)",
    )
    parser.add_argument("--quick", action="store_true", help="500 events/s, 100 probes")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    if args.quick:
        args.load, args.contacts = 500.0, 100
    now_ms = int(time.time() * 1000)
    with Stack(processes=args.processes) as stack:
        load = None
        if args.load > 0:
            load = stack.spawn(
                "simulate",
                "--rate",
                str(args.load),
                "--customers",
                str(args.load_customers),
                "--duration",
                "3600",
                "--start-ms",
                str(args.load_start_ms if args.load_start_ms is not None else now_ms),
            )
            _wait_for_load(stack, args.warmup)
        start_events = _events(stack)
        flows = [p.pid for p in stack.procs[: args.processes]]
        others = {  # what shares the cores with the flow
            "server": [p.pid for p in stack.servers],
            "load": [] if load is None else [load.pid],
            "redis": [int(stack.redis_server.pid)],
        }
        start_cpu = sum(map(cpu_s, flows))
        start_others = {name: sum(map(cpu_s, pids)) for name, pids in others.items()}
        started = time.monotonic()
        latencies = asyncio.run(probe(stack, args.contacts, args.interval_ms / 1000))
        elapsed = time.monotonic() - started
        flow_cpu = (sum(map(cpu_s, flows)) - start_cpu) / elapsed / args.processes
        other_cpu = {
            name: (sum(map(cpu_s, pids)) - start_others[name]) / elapsed
            for name, pids in others.items()
        }
        load_rate = (_events(stack) - start_events - args.contacts) / elapsed
        if load is not None:
            load.terminate()
    latencies.sort()
    figures = {
        "p50_ms": round(percentile(latencies, 0.50), 2),
        "p95_ms": round(percentile(latencies, 0.95), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "max_ms": round(latencies[-1], 2),
        "mean_ms": round(statistics.fmean(latencies), 2),
        "load_events_per_s": round(load_rate, 1),
        "contacts": len(latencies),
        "flow_p50_ms": round(percentile(sorted(FLOW_PARTS), 0.50), 2),
        "flow_p99_ms": round(percentile(sorted(FLOW_PARTS), 0.99), 2),
        # a flow process's CPU time over the probes' wall time (1.0: a core busy)
        "flow_cpu_share": round(flow_cpu, 3),
        # the same for what shares the machine with it (all servers; the load's simulator)
        **{f"{name}_cpu_share": round(share, 3) for name, share in other_cpu.items()},
        "warmup_s": args.warmup if args.load > 0 else 0.0,
        "processes": args.processes,
    }
    if not args.no_record:
        command = "python benchmarks/latency.py" + (" --quick" if args.quick else "")
        if args.load_customers != 20_000:
            command += f" --load-customers {args.load_customers}"
        if args.processes != 1:
            command += f" -p {args.processes}"
        if args.warmup != 10.0:
            command += f" --warmup {args.warmup:g}"
        record("latency", command, figures)
    print(orjson.dumps(figures).decode())
    return 0


def _wait_for_load(stack: Stack, seconds: float) -> None:
    """Let the load run ``seconds`` (at least 2), saying how far it got."""
    deadline = time.monotonic() + max(2.0, seconds)
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 5.0))
        events = _events(stack)
        print(f"latency: warm-up, {events:,} load events so far", file=sys.stderr, flush=True)


def _events(stack: Stack) -> int:
    return sum(int(stack.client.xlen(f"cx:events:{i}")) for i in range(stack.shards))


if __name__ == "__main__":
    raise SystemExit(main())
