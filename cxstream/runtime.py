"""Process-wide tuning for the long-running flow process, and the pace of a load."""

from __future__ import annotations

import gc
import time

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
