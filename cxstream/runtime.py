"""Process-wide tuning for the long-running flow process, and the pace of a load."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

from threadpoolctl import threadpool_limits

# Young collections every 1,000 net new container objects: each looks at no more than
# that many, about 0.1 ms (2.4 ms at most in a 300,000-event run).  The middle and
# old generations stay empty, because survivors are frozen (below).
GC_THRESHOLDS = (1_000, 1_000, 1_000)


def freeze_survivors(phase: str, info: dict[str, int]) -> None:
    """A ``gc.callbacks`` hook: after each collection, move what survived it to the
    permanent generation, which no collection looks at again."""
    if phase == "stop":
        gc.freeze()


def tune_gc() -> None:
    """Keep the cyclic garbage collector's pauses short in a process holding many live
    objects.

    The flow keeps every customer's journey (tens of objects each) alive for
    days.  Python's generational collector moves what survives a young
    collection to older generations and scans those again, ever larger: with
    the defaults a full collection paused the flow for 160 to 400 ms; with
    rare, large young collections (50,000) a young one paused for 9 ms
    (median) and a middle one for 360 ms, in the same 300,000-event run.
    Here the state that survives a young collection is frozen instead, so no
    collection scans the long-lived heap: pauses stay at about a millisecond.

    Reference counting still frees frozen objects when they die, so memory is
    returned as before.  What freezing gives up is collecting reference cycles
    among objects that had survived once: the flow makes none per event (the
    test suite checks it: only the dataflow's own structure, built once, is a
    cycle), so nothing accumulates.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    if freeze_survivors not in gc.callbacks:
        gc.callbacks.append(freeze_survivors)


def stop_gc() -> None:
    """The flow process's cyclic garbage collector: off, once what start-up made is
    collected and the rest frozen (so a collection asked for later scans none of it).

    Under :func:`tune_gc` the flow's young collections found nothing to collect:
    2,416 of them over 300,000 simulated events (the whole dataflow in one process)
    collected 0 objects, and cost about 1.2 us an event (the bare loop's collector
    time), 0.6 and 2.7 us of CPU an event in all (two pairs of 1M-event bare loops in
    turns).
    The flow makes no reference cycles as it goes: the test suite runs the simulator's
    mix with rejected input, duplicates, consent statements and erasures through the
    flow, in one process and on Redis (its source and sinks, a connection killed under
    them), and finds none left per event (redis-py's parser of ``INFO`` left one an
    erasure: the erasure parses it itself).  Reference counting frees everything as
    before; only a cycle made on some path not checked would be kept (under
    :func:`tune_gc` it was kept too once it had survived one young collection).
    """
    gc.collect()
    gc.freeze()
    gc.disable()


BLAS_THREADS = 1  # numpy's (and scipy's) BLAS: its threads, in the flow process


def limit_blas() -> None:
    """One BLAS thread in the flow process: the refit's matrix products are small
    (1,024 rows a step, a few dozen columns), and OpenBLAS's extra threads spin for a
    while after each product, waiting for the next.

    On two cores such a thread took a core from Redis, the server and the other
    processes for nothing: measured at 5,000 events/s, the flow process used 0.74 of
    a core with the spinning thread and 0.62 without, and the contact-to-alert p99 went
    from 19 to 13 ms.  Call it once the libraries are loaded (it sets the libraries
    loaded at the time).
    """
    threadpool_limits(limits=BLAS_THREADS, user_api="blas")


SWEEP_AFTER_CLOSED = 1_000  # closed connections before the server's frozen heap is swept
SWEEP_EVERY_S = 3_600.0  # at most this long between sweeps while the frozen heap grows


class ServerGc:
    """The server's collector: survivors frozen as in the flow (:func:`tune_gc`), and the
    frozen heap swept after enough connections have closed.

    With 10,000 agents connected, the default collector paused the server for
    0.8 to 1 s in every 10 s at 2,000 alerts/s, up to 250 ms at a time (full
    collections over every connection's objects): delivery's p99 was 600 to 690 ms
    (``benchmarks/fanout.py``).  Frozen, the connections are never scanned again:
    30 ms of pauses in 10 s, none over 10 ms, p99 5 to 9 ms.  Unlike the flow's
    state, a closed connection leaves its transport and socket in a reference cycle
    (about 2 KB; its file descriptor is closed), which frozen is never collected:
    :meth:`closed` sweeps them in one full collection once ``sweep_after``
    connections have closed or twice as many as are open, whichever is more
    (:meth:`tick`: and hourly if the frozen heap grew by a quarter).  A sweep is one pause
    over the whole heap (about 250 ms with 10,000 connections), so sweeps come
    rarely where many are open (every 20,000 closes at 10,000 open: 40 MB held at
    most); when all 10,000 agents leave at once the server pauses for 1.0 s in all
    (2.0 s when it swept after half as many closes as were open).

    >>> sweeper = ServerGc(sweep_after=1_000)
    >>> sweeper.closed(open_now=5_000), sweeper.since_sweep  # sweeps at 10,000
    (False, 1)
    """

    def __init__(
        self, *, sweep_after: int = SWEEP_AFTER_CLOSED, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.sweep_after = sweep_after
        self.clock = clock
        self.since_sweep = 0  # connections closed since the last sweep
        self.sweeps = 0
        self.swept_at = clock()
        self.frozen_after_sweep = 0  # objects frozen right after the last sweep

    def start(self) -> None:
        """Tune this process's collector (once the server is built)."""
        tune_gc()
        self.swept_at = self.clock()
        self.frozen_after_sweep = gc.get_freeze_count()

    def closed(self, *, open_now: int) -> bool:
        """A connection closed; sweep (True) when enough have since the last sweep."""
        self.since_sweep += 1
        if self.since_sweep < max(self.sweep_after, 2 * open_now):
            return False
        self.sweep()
        return True

    def tick(self) -> bool:
        """A check now and then (the server's, every minute): sweep (True) once an hour
        when the frozen heap has grown by a quarter since the last sweep, whatever left
        it (cycles of other origins than closed connections: an outage's tracebacks)."""
        grown = gc.get_freeze_count() > 1.25 * self.frozen_after_sweep
        if self.clock() - self.swept_at < SWEEP_EVERY_S or not grown:
            return False
        self.sweep()
        return True

    def sweep(self) -> None:
        """Collect the cycles among frozen objects, and freeze what survives again."""
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self.since_sweep = 0
        self.sweeps += 1
        self.swept_at = self.clock()
        self.frozen_after_sweep = gc.get_freeze_count()


class Pacer:
    """How many events are due at ``rate`` per second, in ticks of ``tick`` seconds.

    Ticks are short (5 ms) so the load arrives as many channel systems would send
    it, not in bursts: with 50 ms ticks, 5,000 events/s came as 250 at once and a
    contact behind such a burst waited for all of it (measured: +15 ms at p50).
    """

    def __init__(self, rate: float, tick: float = 0.005) -> None:
        self.rate = rate
        self.tick = tick
        self.started = time.monotonic()
        self.emitted = 0

    def due(self) -> int:
        target = int((time.monotonic() - self.started) * self.rate)
        n = max(0, target - self.emitted)
        self.emitted += n
        return n

    def wait(self) -> None:
        time.sleep(self.tick)
