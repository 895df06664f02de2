"""How long the model step holds a contact back: its activations, timed one by one.

A contact's alert leaves the model step only when the activation it came in ends, and a
contact that arrives during another activation (learning matured examples, a step of a
refit) waits for that one first.  This benchmark replays what the throughput
benchmark's bare loop gives the model step (simulator events, about ten per customer,
about 100 days of event time: labels mature and the model refits) through a fresh model
shard in batches of the size the flow hands it at a few thousand events a second
(``--batch`` items), asks for the notifications it wants after each batch, as Bytewax
does, and times every call: batches that scored contacts, the others, notifications.

Prints JSON as the last line and appends it to benchmarks/RESULTS.md.

    python benchmarks/model_step.py                 # 100,000 events, batches of 20 items
    python benchmarks/model_step.py --quick         # 20,000 events
    python benchmarks/model_step.py --events 300000 --batch 50
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from benchmarks._harness import pct, record
from benchmarks.throughput import bare_loop, flow_env, log, model_shard, synthetic
from cxstream.settings import Settings
from operators.records import DecideIn, ScoreRequest
from operators.refit import HazardRefit
from state.catalog import load_catalog


def replay(batches: list[list[DecideIn]], size: int) -> dict[str, Any]:
    """The model step's inputs through a fresh shard, ``size`` items a batch; each call's
    time (ms) by kind."""
    settings = Settings.from_env(flow_env())
    logic = model_shard(settings, load_catalog(settings.catalog_path))
    contact_ms: list[float] = []
    other_ms: list[float] = []
    notify_ms: list[float] = []
    for whole in batches:
        for start in range(0, len(whole), size):
            part = whole[start : start + size]
            began = time.perf_counter()
            logic.on_batch(part)
            spent = (time.perf_counter() - began) * 1000
            contacts = any(type(v) is ScoreRequest and v.moment == "contact" for v in part)
            (contact_ms if contacts else other_ms).append(spent)
            while logic.notify_at() is not None:  # Bytewax notifies at once when due now
                began = time.perf_counter()
                logic.on_notify()
                notify_ms.append((time.perf_counter() - began) * 1000)
                if not logic.backlog and not logic.model.due():
                    break
    every = contact_ms + other_ms + notify_ms
    champion = logic.model.champion
    return {
        "contact_batch_p50_ms": pct(contact_ms, 0.5),
        "contact_batch_p99_ms": pct(contact_ms, 0.99),
        "contact_batch_max_ms": pct(contact_ms, 1.0),
        "notify_p50_ms": pct(notify_ms, 0.5),
        "notify_p99_ms": pct(notify_ms, 0.99),
        "notify_max_ms": pct(notify_ms, 1.0),
        "over_3ms": sum(ms > 3.0 for ms in every),
        "calls": len(every),
        "refits": champion.n_fits if isinstance(champion, HazardRefit) else 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="events (100,000)")
    parser.add_argument("--batch", type=int, default=20, help="items a model batch (20)")
    parser.add_argument("--seed", type=int, default=1, help="simulator seed (1)")
    parser.add_argument("--quick", action="store_true", help="20,000 events")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    if args.quick:
        args.events = 20_000
    if args.events < 1000 or args.batch < 1:
        parser.error("--events must be at least 1,000 and --batch at least 1")
    data = synthetic(args.events, max(1, args.events // 10), args.seed)
    batches: list[list[DecideIn]] = []
    log("the bare loop, for the model step's inputs")
    bare_loop(data, measure_state=False, model_batches=batches)
    log(f"replaying {sum(map(len, batches)):,} inputs, {args.batch} a batch")
    figures = {"events": args.events, "batch": args.batch, **replay(batches, args.batch)}
    print(orjson.dumps(figures).decode())
    if not args.no_record:
        command = "python benchmarks/model_step.py"
        if args.quick:
            command += " --quick"
        elif args.events != 100_000:
            command += f" --events {args.events}"
        if args.batch != 20:
            command += f" --batch {args.batch}"
        record("model_step", command, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
