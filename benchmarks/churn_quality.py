"""Churn model quality, prequential, on simulated journeys and on a real log.

Simulated: journeys from the channel simulator, whose latent churn propensity
is known.  Each scored snapshot is labelled by the engine's own rule (cancel
within H), and the model's prequential ROC AUC is compared with the AUC of the
true propensity on the same snapshots (``oracle_roc_auc``).

Real: with ``--bpic FILE`` (the BPI Challenge 2012 stream CSV), the same
replay as ``cxstream evaluate --input FILE`` (scored at every event strictly
before the outcome is known).

    python benchmarks/churn_quality.py                     # 600,000 simulated events
    python benchmarks/churn_quality.py --quick             # 100,000
    python benchmarks/churn_quality.py --bpic data/bpic2012_stream.csv.gz  # a BPIC 2012 stream CSV

Prints JSON as its last line and appends it to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from benchmarks._harness import record
from cxstream.settings import Settings
from operators.churn import ChurnModel
from operators.evaluate import Evaluator, Row
from operators.journey import DAY_MS
from operators.simulate import SimConfig, Simulator


def simulated(
    events: int, customers: int, horizon_days: float, seed: int, silence_ratio: float
) -> dict[str, object]:
    sim = Simulator(SimConfig(customers=customers, seed=seed))
    truth: dict[str, float] = {}
    evaluator = Evaluator(
        ChurnModel(challenger=None),
        labels="engine",
        label_mode="cancel",
        horizon_ms=int(horizon_days * DAY_MS),
        score_every=5,
        oracle=truth.get,
        silence_ratio=silence_ratio,
    )
    started = time.perf_counter()
    for n in range(1, events + 1):
        event = sim.next_event()
        p = sim.propensity(event.key)
        if p is not None:
            truth[event.key] = p
        evaluator.feed(Row(event))
        if n % 100_000 == 0:
            print(f"churn_quality: {n}/{events} simulated events", file=sys.stderr, flush=True)
    out = evaluator.finish()
    out["events_per_s"] = round(events / (time.perf_counter() - started), 1)
    auc, oracle = out["roc_auc"], out["oracle_roc_auc"]
    out["gap_to_oracle"] = round(oracle - auc, 4) if auc is not None and oracle else None
    out["days_simulated"] = round((event.ts - SimConfig().start_ms) / DAY_MS, 1)
    return out


def bpic(path: Path) -> dict[str, object]:
    from state.replay import read_stream_csv

    # as cxstream evaluate does with a file's labels: known at their label_ts, not censored
    evaluator = Evaluator(
        ChurnModel(challenger=None, label_mode="external"), labels="file", horizon_ms=30 * DAY_MS
    )
    started = time.perf_counter()
    for row in read_stream_csv(path):
        evaluator.feed(row)
    out = evaluator.finish()
    out["events_per_s"] = round(out["n_events"] / (time.perf_counter() - started), 1)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=600_000)
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--horizon-days", type=float, default=7.0)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--quick", action="store_true", help="100,000 events")
    parser.add_argument(
        "--silence-ratio",
        type=float,
        default=Settings().silence_ratio,
        help="score silences too, as the flow does (CX_SILENCE_RATIO's default; 0: off)",
    )
    parser.add_argument("--bpic", type=Path, default=None, help="also replay this BPIC 2012 CSV")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.events = 100_000
    figures: dict[str, object] = {
        "simulated": simulated(
            args.events, args.customers, args.horizon_days, args.seed, args.silence_ratio
        )
    }
    if args.bpic is not None:
        figures["bpic2012"] = bpic(args.bpic)
    if not args.no_record:
        command = "python benchmarks/churn_quality.py" + (" --quick" if args.quick else "")
        if args.silence_ratio != Settings().silence_ratio:
            command += f" --silence-ratio {args.silence_ratio:g}"
        if args.bpic is not None:
            command += f" --bpic {args.bpic.name}"
        record("churn_quality", command, figures)
    print(orjson.dumps(figures).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
