"""The live experience's state and cost: bytes per KPI series, per transition, per
customer, the whole state at its caps, and the microseconds it adds to an event.

* memory: ``tracemalloc`` around the operators' own structures (a KPI series' ring, a
  transition with its gap sample full, a customer's period and latest touchpoint, one
  :class:`LiveExperience` filled to every cap);
* cost: the customer step over the throughput benchmark's synthetic log, without and
  with the worker's tally (in turns, the median of each), and the experience step over
  the tallies that run made.

Run: ``python benchmarks/experience.py [--quick] [--no-record]``; the figures are the
last line of stdout (JSON) and a row of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from benchmarks._harness import record
from benchmarks.throughput import customer_logic, flow_env, synthetic
from cxstream.components import customer_config
from cxstream.settings import Settings
from operators.customer import CustomerLogic, Watermark
from operators.events import Event, parse_entry
from operators.experience import (
    LIVE_GAP_SAMPLE,
    MAX_SERIES,
    MAX_TRANSITIONS,
    CustomerExperience,
    LiveExperience,
    TallyBuffer,
    _Transition,
    step_id,
)
from operators.journey import JourneyState
from operators.records import Rating, Tally
from state.catalog import load_catalog

HOUR_MS = 3_600_000
T0 = 1_767_225_600_000


def allocated(build: Callable[[], Any]) -> tuple[int, Any]:
    """Bytes that ``build()`` leaves allocated, and what it built."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    made = build()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return after - before, made


def memory() -> dict[str, Any]:
    def series() -> LiveExperience:
        exp = LiveExperience(None, clock=time.time, keep_snapshots=False)
        for i in range(MAX_SERIES):  # one answer a series, each its own channel
            exp.rate(Rating(T0, f"e{i}", f"ch{i}", "web·survey", None, 9.0, None, None))
        exp.windows(24)  # the answers added to the rings
        return exp

    full_series, exp = allocated(series)
    assert isinstance(exp, LiveExperience)

    def transition() -> _Transition:
        t = _Transition(cap=LIVE_GAP_SAMPLE)
        for gap in range(10_000):
            t.add(60_000 + gap * 997)
        return t

    per_transition, _ = allocated(transition)

    def transitions() -> LiveExperience:
        steps = tuple(
            ((f"ch{i % 64}·t{i}", f"ch{i % 32}·u{i}"), 200, tuple(range(16)))
            for i in range(MAX_TRANSITIONS)
        )
        for _ in range(8):  # 128 gaps each: their samples full
            exp.tally(Tally(steps, ()))
        return exp

    full_transitions, _ = allocated(transitions)

    def customers() -> list[CustomerExperience]:
        out = []
        tally, journey = TallyBuffer(), JourneyState()
        for c in range(10_000):
            cx = CustomerExperience()
            for i in range(10):  # ten touchpoints, nine steps in the period
                event = Event(f"e{i}", "c", None, T0 + i, "web", f"type{(c + i) % 12}", {})
                cx.observe(event, tally, journey, T0 + i, True, HOUR_MS, "cancel")
            out.append(cx)
        return out

    ten_thousand, _ = allocated(customers)
    step_id(0, 1)
    return {
        "bytes_per_series": round(full_series / MAX_SERIES),
        "series_ring_bytes": int(exp.rings[0].nbytes),
        "bytes_per_transition": per_transition,
        "state_bytes_at_caps": full_series + full_transitions,
        "series_cap": MAX_SERIES,
        "transition_cap": MAX_TRANSITIONS,
        "bytes_per_customer": round(ten_thousand / 10_000),
    }


def cost(events: int, customers: int, rounds: int) -> dict[str, Any]:
    settings = Settings.from_env(flow_env())
    config = customer_config(settings, load_catalog(settings.catalog_path))
    parsed = [
        parse_entry("cx:events:0", f"1-{i}", raw)
        for i, raw in enumerate(synthetic(events, customers, 1))
    ]
    log = [e for e in parsed if isinstance(e, Event)]
    tallies: list[Tally] = []

    def run(with_tally: bool) -> float:
        watermark, tally = Watermark(), (TallyBuffer() if with_tally else None)
        logics: dict[str, CustomerLogic] = {}
        tallies.clear()
        started = time.perf_counter()
        for e in log:
            logic = logics.get(e.key)
            if logic is None:
                logic = logics[e.key] = customer_logic(config, watermark, tally)
            out, _ = logic.on_item(e)
            tallies.extend(o for o in out if type(o) is Tally)
        spent = time.perf_counter() - started
        if tally is not None:
            left = tally.take(0.0, force=True)
            tallies.extend([left] if left is not None else [])
        return spent / len(log) * 1e6

    off: list[float] = []
    on: list[float] = []
    for i in range(rounds):
        print(f"experience: round {i + 1}/{rounds}", file=sys.stderr, flush=True)
        off.append(run(False))
        on.append(run(True))
    exp = LiveExperience(None, clock=time.time, keep_snapshots=False)
    started = time.perf_counter()
    for t in tallies:
        exp.on_item(t)
    live = (time.perf_counter() - started) / len(log) * 1e6
    return {
        "events": len(log),
        "customer_step_us_without": round(statistics.median(off), 2),
        "customer_step_us_with": round(statistics.median(on), 2),
        "customer_step_added_us": round(statistics.median(on) - statistics.median(off), 2),
        "experience_step_us": round(live, 2),
        "tallies": len(tallies),
        "rounds": rounds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="30,000 events, 3 rounds")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    figures = memory()
    if args.quick:
        figures |= cost(30_000, 3_000, 3)
    else:
        figures |= cost(100_000, 10_000, 7)
    print(orjson.dumps(figures).decode())
    if not args.no_record:
        command = "python benchmarks/experience.py" + (" --quick" if args.quick else "")
        record("experience", command, figures)


if __name__ == "__main__":
    main()
