"""The flow process's collector tuning: survivors frozen, and no cycles left per event."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import orjson
import pytest
from bytewax.testing import TestingSource, run_main
from threadpoolctl import threadpool_info, threadpool_limits

from cxstream.runtime import (
    BLAS_THREADS,
    GC_THRESHOLDS,
    ServerGc,
    freeze_survivors,
    limit_blas,
    stop_gc,
    tune_gc,
)
from cxstream.settings import Settings
from flows.journey import build_flow
from operators.events import encode_event
from operators.journey import DAY_MS
from operators.records import Erase
from operators.simulate import SimConfig, Simulator
from state.source import Entry
from tests.flows.test_journey import Captured


@pytest.fixture
def tuned() -> Iterator[None]:
    """tune_gc for one test; the collector as it was afterwards."""
    thresholds, enabled = gc.get_threshold(), gc.isenabled()
    tune_gc()
    try:
        yield
    finally:
        gc.callbacks.remove(freeze_survivors)
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        if not enabled:
            gc.disable()


def test_limit_blas_leaves_every_loaded_blas_one_thread() -> None:
    """numpy's BLAS (and any other loaded, such as scipy's): one thread each, and the
    products still right."""
    before = threadpool_info()
    try:
        limit_blas()
        blas = [lib for lib in threadpool_info() if lib["user_api"] == "blas"]
        assert blas  # numpy's, at least
        assert {lib["num_threads"] for lib in blas} == {BLAS_THREADS} == {1}
        a = np.arange(256 * 48, dtype=float).reshape(256, 48) / 1000.0
        assert np.allclose(a.T @ a, np.einsum("ij,ik->jk", a, a))
    finally:
        threadpool_limits(limits=before)


class Node:
    """A container the collector tracks, which a weak reference can watch."""

    def __init__(self) -> None:
        self.children: list[Node] = []


def test_survivors_of_a_young_collection_are_frozen_and_still_freed_by_refcount(
    tuned: None,
) -> None:
    assert gc.get_threshold() == GC_THRESHOLDS
    assert gc.callbacks.count(freeze_survivors) == 1
    tune_gc()  # twice: still one hook
    assert gc.callbacks.count(freeze_survivors) == 1
    frozen = gc.get_freeze_count()
    kept = [Node() for _ in range(3 * GC_THRESHOLDS[0])]  # enough for young collections
    assert gc.get_freeze_count() >= frozen + GC_THRESHOLDS[0]
    assert gc.get_count()[1] == gc.get_count()[2] == 0  # older generations stay empty
    watched = weakref.ref(kept[0])
    del kept
    assert watched() is None  # frozen, yet freed when the last reference goes


def test_stop_gc_leaves_the_collector_off_and_what_start_up_made_frozen() -> None:
    enabled, thresholds = gc.isenabled(), gc.get_threshold()
    try:
        kept = [Node() for _ in range(100)]
        stop_gc()
        assert not gc.isenabled()
        assert gc.get_count()[0] < 100  # collected, then frozen
        assert gc.get_freeze_count() >= len(kept)
        watched = weakref.ref(kept[0])
        del kept
        assert watched() is None  # freed by reference counting all the same
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        if enabled:
            gc.enable()


def run_flow(events: int) -> int:
    """Simulated events through the whole flow, collector off; the cyclic garbage left."""
    config = SimConfig(
        customers=500, seed=3, start_ms=1_767_225_600_000, customer_gap_ms=3 * DAY_MS
    )
    sim = Simulator(config)  # a customer's events days apart: labels mature in the run
    made = sim.take(events)
    raws = [encode_event(e) for e in made]
    # the rarer paths, every 50 events: rejected input, a duplicate, consent statements
    # (an objection to profiling among them), an erasure
    for i in range(0, events, 50):
        e = made[i]
        statement = {"purpose": ("profiling", "marketing")[i % 2], "granted": i % 3 == 0}
        raws += [
            b"not json",
            b'{"event_id": "x", "ts": "soon"}',
            raws[i],
            encode_event(replace(e, event_id=f"{e.event_id}-c", type="consent", attrs=statement)),
        ]
        if i % 500 == 0:
            raws.append(encode_event(replace(e, event_id=f"{e.event_id}-f", type="forget")))

    def ts(raw: bytes) -> int:
        t = orjson.loads(raw).get("ts") if raw[:1] == b"{" else None
        return t if isinstance(t, int) else 0

    raws.sort(key=ts)
    entries = [Entry(f"cx:events:{i % 4}", f"{i}-0", raw) for i, raw in enumerate(raws)]
    captured = Captured()
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        flow = build_flow(
            Settings(horizon_days=7, retention_days=30),
            source=TestingSource(entries, batch_size=500),
            sinks=captured.sinks(),
        )
        run_main(flow)
        assert captured.alerts
        assert captured.dead
        assert any(type(w) is Erase for w in captured.profiles)
        del flow
        return gc.collect()
    finally:
        if enabled:
            gc.enable()


def test_the_flow_leaves_no_cycles_per_event() -> None:
    """What stop_gc relies on (and tune_gc: cycles among frozen objects are never
    collected): processing events, bad input and erasures included, makes no reference
    cycles (the dataflow's structure, built once, does)."""
    few, many = run_flow(1_000), run_flow(12_000)
    assert many - few < 10, f"{few} cyclic objects after 1,000 events, {many} after 12,000"


def test_the_flow_on_redis_leaves_no_cycles_per_event(redis_url: str) -> None:
    """The same with the Redis source and sinks (reads sent ahead, packed writes, an
    erasure's scans and deletes) and a connection killed under the flow."""
    import threading
    import time

    import redis

    from operators.events import Event
    from state.ingest import xadd_events
    from state.keys import KeyNames
    from state.source import request_stop, reset_stop

    client = redis.Redis.from_url(redis_url)
    settings = Settings(redis_url=redis_url, horizon_days=7, retention_days=30)
    names = KeyNames.of(settings)

    def run(events: int, seed: int) -> int:
        client.flushall()
        sim = Simulator(SimConfig(customers=200, seed=seed, start_ms=1_767_225_600_000))
        made = sim.take(events)
        sent: list[Event] = []
        for i, e in enumerate(made):
            sent.append(e)
            if i % 100 == 50:  # bad input, and an erasure
                client.xadd(names.events(i % names.shards), {"data": b"not json"})
                sent.append(replace(e, event_id=f"{e.event_id}-f", type="forget"))
        last = replace(made[-1], event_id="end", customer_id="end-marker", type="page_view")
        xadd_events(client, [*sent, last], names)
        gc.collect()
        enabled = gc.isenabled()
        gc.disable()
        left: list[int] = []

        def watch() -> None:
            deadline = time.monotonic() + 60
            killed = False
            while not client.exists(names.profile("end-marker")):
                if time.monotonic() > deadline:
                    break
                if not killed and client.xlen("cx:alerts") > 0:
                    client.client_kill_filter(_type="normal", skipme=True)  # (an outage)
                    killed = True
                time.sleep(0.01)
            request_stop()

        watcher = threading.Thread(target=watch)
        try:
            flow = build_flow(settings)
            watcher.start()
            run_main(flow)
            watcher.join()
            del flow
            left.append(gc.collect())
        finally:
            reset_stop()
            if enabled:
                gc.enable()
        assert client.exists(names.profile("end-marker"))
        return left[0]

    few, many = run(300, 5), run(3_000, 6)
    client.close()
    assert many - few < 10, f"{few} cyclic objects after 300 events, {many} after 3,000"


def test_the_servers_sweep_collects_the_cycles_frozen_with_closed_connections(
    tuned: None,
) -> None:
    """What ServerGc is for: a cycle frozen with a connection outlives it (no collection
    looks at the frozen heap) until enough connections have closed; then one sweep
    collects it, and what still lives is frozen again."""
    collector = ServerGc(sweep_after=3)
    alive = Node()
    cycle = Node()
    cycle.children.append(cycle)
    watched = weakref.ref(cycle)
    gc.freeze()
    del cycle
    gc.collect()
    assert watched() is not None  # frozen: never collected
    assert not collector.closed(open_now=2)  # twice 2 open: 4 closes
    assert not collector.closed(open_now=2)
    assert collector.closed(open_now=1)  # 3: sweep_after, and twice those open
    assert watched() is None
    assert collector.sweeps == 1
    assert collector.since_sweep == 0
    assert gc.get_freeze_count() > 0  # the rest frozen again
    assert alive.children == []
    assert not collector.closed(open_now=100)  # now 200


def test_the_servers_hourly_sweep_comes_only_when_the_frozen_heap_grew(tuned: None) -> None:
    now = [0.0]
    collector = ServerGc(clock=lambda: now[0])
    collector.start()
    assert not collector.tick()  # not an hour yet
    now[0] = 3_700.0
    assert not collector.tick()  # an hour, but nothing grew
    kept = [Node() for _ in range(max(10_000, gc.get_freeze_count()))]
    gc.freeze()
    assert collector.tick()
    assert collector.sweeps == 1
    assert not collector.tick()  # swept just now
    assert kept
