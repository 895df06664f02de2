"""Instructions per event of the engine's operators: a cost figure that does not move
with the machine's load.

Wall-clock figures on a shared machine drift by 10-15% between runs, more than most
changes worth measuring.  This benchmark runs the throughput benchmark's bare loop (the
flow's operators without Bytewax or Redis, :func:`benchmarks.throughput.bare_loop`)
under Valgrind's ``cachegrind`` and counts the CPU instructions it executes per event,
with the live experience on and off.  The loop's wall clock is replaced by a virtual one
that advances 20 us per reading, so what depends on time (the tally every quarter second,
written-behind profiles, notifications) happens at the same events in every run, and
``PYTHONHASHSEED`` is fixed.  The count of a short run (2,000 events) is taken from the
count of the full run, so start-up (imports, model set-up) is left out; so is the loop's
measure of each customer's state at its end (size and snapshot: work per customer, not
per event, counted in the figures before 0.6.2).

Two checkouts compare by running this file from each (copied into the older one if it
has none): their figures differ by what their code executes, to about 1%.  Counted
instructions are not time (a cache miss costs more than an add): keep the wall-clock
benchmarks for speed, use this one to see which way a change goes.

``--flow`` also counts the dataflow itself, in one process and without Redis: Bytewax's
``run_main`` over the same events (a ``TestingSource`` handing them 100 at a time, as a
worker's read of its streams does, and testing sinks), with the live experience on and
a virtual clock of the same step.  Bytewax wakes a step by the system clock, so the
customers' timers (written-behind profiles, matured labels, expiry, silences) do not
fire in the flow's count; in the bare loop's they cost about 24 instructions an event
(20,000 events are a few seconds of virtual time), so the two compare.
``flow_instructions_per_event`` against the bare loop's shows what Bytewax and the
flow's own steps add per event (``flow_over_bare``; Redis's commands and the sinks'
encoding are not in it); ``flow_one_step_instructions_per_event``
(``flow_one_step_over_bare``) the same for the flow with its keyed steps in one, as
``cxstream run`` runs a single worker (``build_flow``'s ``one_worker``).

Run: ``python benchmarks/instructions.py [--events N] [--flow] [--no-record]`` (needs
``valgrind``; about a minute per 10,000 events).  The figures are the last line of stdout
(JSON) and a row of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from benchmarks._harness import record
from benchmarks.throughput import synthetic

ROOT = Path(__file__).resolve().parent.parent
SHORT = 2_000  # events of the run whose count is start-up's
CUSTOMERS_PER_EVENT = 0.1  # about ten events a customer, as the throughput benchmark
TICK_S = 20e-6  # the virtual clock's step per reading


def _with_clock(start: float, body: str) -> str:
    """A child's code: ``body`` after a virtual clock that starts at ``start`` (epoch
    seconds) and advances :data:`TICK_S` per reading, as ``time.time`` (argv: log file,
    N events, the checkout)."""
    return (
        f"""
import gc
import itertools
import pickle
import sys
import time

sys.path.insert(0, sys.argv[3])
tick = itertools.count()
start = {start!r}

def clock():
    return start + next(tick) * {TICK_S!r}

time.time = clock
"""
        + body
    )


# What runs under Valgrind: the bare loop over the first N events of a log.
_CHILD = _with_clock(
    1.8e9,
    """
import datetime as _dt

class _Datetime(_dt.datetime):
    @classmethod
    def now(cls, tz=None):
        return _dt.datetime.fromtimestamp(clock(), tz)

import benchmarks.throughput as throughput

throughput.datetime = _Datetime
throughput.stop_gc = gc.disable  # no collector pauses in the count
with open(sys.argv[1], "rb") as f:
    data = pickle.load(f)[: int(sys.argv[2])]
throughput.bare_loop(data, measure_state=False)  # (each customer's state: not per event)
""",
)

# The same, through the dataflow (``--flow``): Bytewax's run_main in this process, the
# events from a TestingSource, every output into a list.  Bytewax wakes a step when the
# system clock passes its notify_at, which no patch here moves: a start far ahead keeps
# the customers' timers from firing in any year (at 20 us a reading few come due within
# the count anyway: 24 instructions an event of the bare loop's are its customers'
# notifications).
_FLOW_CHILD = _with_clock(
    4.1e9,
    """
from bytewax.testing import TestingSink, TestingSource, run_main

from benchmarks.throughput import SHARDS, flow_env
from cxstream.settings import Settings
from flows.journey import Sinks, build_flow
from operators.erasure import Forgotten
from state.source import Entry

with open(sys.argv[1], "rb") as f:
    data = pickle.load(f)[: int(sys.argv[2])]
entries = [Entry(f"cx:events:{i % SHARDS}", f"{i + 1}-0", raw) for i, raw in enumerate(data)]
out = []
sink = TestingSink(out)
sinks = Sinks(alerts=sink, dead_letters=sink, profiles=sink, models=sink, experience=sink)
flow = build_flow(
    Settings.from_env(flow_env()),
    source=TestingSource(entries, batch_size=100),
    sinks=sinks,
    clock=clock,
    forgotten=Forgotten(),
    **({"one_worker": True} if sys.argv[4:] == ["one"] else {}),
)
gc.disable()  # no collector pauses in the count
run_main(flow)
print(f"outputs {len(out)}", file=sys.stderr)
""",
)


def log(message: str) -> None:
    print(f"instructions: {message}", file=sys.stderr, flush=True)


def count(
    valgrind: str,
    log_file: Path,
    events: int,
    experience: bool,
    *,
    child: str = _CHILD,
    shape: tuple[str, ...] = (),
) -> int:
    """Instructions of the bare loop (``child``: or the flow's, ``shape`` ``("one",)``:
    its keyed steps in one) over the log's first ``events`` events."""
    env = {
        **os.environ,
        "PYTHONHASHSEED": "0",
        # no BLAS thread besides the main one: an idle OpenBLAS thread spins, and under
        # Valgrind (one thread at a time) its spin counted 10% of the total, more or less
        "OPENBLAS_NUM_THREADS": "1",
        "CX_EXPERIENCE": "1" if experience else "0",
        "CX_LOG_LEVEL": "WARNING",
    }
    done = subprocess.run(
        [
            valgrind,
            "--tool=cachegrind",
            "--cache-sim=no",
            "--cachegrind-out-file=/dev/null",
            sys.executable,
            "-c",
            child,
            str(log_file),
            str(events),
            str(ROOT),
            *shape,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if done.returncode != 0 or found is None:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise SystemExit(f"instructions: the run under valgrind failed: {tail}")
    return int(found.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="events counted (20,000)")
    parser.add_argument(
        "--flow", action="store_true", help="also count the dataflow (Bytewax, no Redis)"
    )
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    if args.events <= SHORT:
        parser.error(f"--events {args.events}: must be more than {SHORT:,}")
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("instructions: valgrind not found (install it, e.g. apt install valgrind)")
    customers = max(100, int(args.events * CUSTOMERS_PER_EVENT))
    figures: dict[str, object] = {"events": args.events}
    with tempfile.TemporaryDirectory() as tmp:
        log_file = Path(tmp) / "log.pkl"
        log_file.write_bytes(pickle.dumps(synthetic(args.events, customers, 1)))
        for experience in (True, False):
            name = "experience_on" if experience else "experience_off"
            log(f"{name}: {SHORT:,} then {args.events:,} events under valgrind")
            short = count(valgrind, log_file, SHORT, experience)
            full = count(valgrind, log_file, args.events, experience)
            figures[f"{name}_instructions_per_event"] = round(
                (full - short) / (args.events - SHORT)
            )
        if args.flow:
            log(f"flow: {SHORT:,} then {args.events:,} events under valgrind")
            short = count(valgrind, log_file, SHORT, True, child=_FLOW_CHILD)
            full = count(valgrind, log_file, args.events, True, child=_FLOW_CHILD)
            flow = round((full - short) / (args.events - SHORT))
            figures["flow_instructions_per_event"] = flow
            bare = figures["experience_on_instructions_per_event"]
            assert isinstance(bare, int)
            figures["flow_over_bare"] = round(flow / bare, 3)
            log(f"flow, its keyed steps in one: {SHORT:,} then {args.events:,} events")
            short = count(valgrind, log_file, SHORT, True, child=_FLOW_CHILD, shape=("one",))
            full = count(valgrind, log_file, args.events, True, child=_FLOW_CHILD, shape=("one",))
            one = round((full - short) / (args.events - SHORT))
            figures["flow_one_step_instructions_per_event"] = one
            figures["flow_one_step_over_bare"] = round(one / bare, 3)
    print(orjson.dumps(figures).decode())
    if not args.no_record:
        command = "python benchmarks/instructions.py" + (
            f" --events {args.events}" if args.events != 20_000 else ""
        )
        command += " --flow" if args.flow else ""
        record("instructions", command, figures)


if __name__ == "__main__":
    main()
