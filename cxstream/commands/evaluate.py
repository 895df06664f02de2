"""``cxstream evaluate``: replay a recorded log through the same operators, in event time;
print the figures."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from cxstream.commands.args import add_log_input, horizon_days, positive_int, silence_ratio
from cxstream.commands.replay import log_format, rows_in_time_order
from cxstream.settings import Settings
from operators.errors import CxError


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    """Replay a recorded log through the same operators, in event time; print the figures."""
    from cxstream.components import model_factory
    from operators.evaluate import Evaluator
    from operators.journey import DAY_MS
    from state.replay import has_file_labels

    path = Path(args.input)
    fmt = log_format(path, args.format)
    labels = args.labels
    if labels == "auto":
        labels = "file" if fmt == "stream-csv" and has_file_labels(path) else "engine"
    if labels == "file" and fmt != "stream-csv":
        raise CxError(
            f"--labels file reads the label and label_ts columns of a stream-csv log; "
            f"{path} is read as {fmt}: use --labels engine, or a stream-csv log"
        )
    horizon_days = args.horizon or settings.horizon_days
    # the flow's model, from the same code: this run's flags over the settings
    chosen = replace(
        settings,
        challenger=args.challenger,
        label_mode=args.label_mode,
        horizon_days=horizon_days,
        retention_days=max(settings.retention_days, horizon_days),
    )
    evaluator = Evaluator(
        model_factory(chosen, external_labels=labels == "file")(),
        labels=labels,
        horizon_ms=int(horizon_days * DAY_MS),
        label_mode=args.label_mode,
        score_every=args.score_every,
        silence_ratio=settings.silence_ratio if args.silence_ratio is None else args.silence_ratio,
    )
    rejected: list[tuple[int, str]] = []
    started = time.perf_counter()
    kept = rows_in_time_order("evaluate", path, fmt, rejected, hold=True)
    for n, row in enumerate(kept, start=1):
        evaluator.feed(row)
        if n % args.progress_every == 0:
            rate = n / (time.perf_counter() - started)
            print(f"evaluate: {n} events ({rate:,.0f}/s)", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - started
    figures = evaluator.finish()
    figures.update(
        events_per_s=round(figures["n_events"] / elapsed, 1) if elapsed > 0 else None,
        labels=labels,
        horizon_days=horizon_days,
        score_every=args.score_every,
        rejected_rows=len(rejected),
    )
    for number, reason in rejected[:5]:
        print(f"evaluate: row {number} skipped: {reason}", file=sys.stderr)
    print(summary(figures), file=sys.stderr)
    print(orjson.dumps(figures).decode())
    return 0


def summary(figures: dict[str, Any]) -> str:
    """The figures a reader wants first, in words (the JSON line has them all).

    >>> print(summary({"roc_auc": 0.7203, "ece": 0.0371, "n_evaluated": 900, "n_events": 1000,
    ...          "positive_rate": 0.21, "best_single_feature": {"name": "x", "roc_auc": 0.56}}))
    ... # doctest: +NORMALIZE_WHITESPACE
    evaluate: ROC AUC 0.720 (best single feature x: 0.560), ECE 0.037,
    900 moments of known outcome (21.0% churned) in 1,000 events
    """
    auc, ece = figures.get("roc_auc"), figures.get("ece")
    if auc is None:
        return (
            f"evaluate: no figures: {figures.get('n_evaluated', 0)} moments of known outcome "
            f"in {figures.get('n_events', 0):,} events (both outcomes are needed)"
        )
    best = figures.get("best_single_feature") or {}
    than = f" (best single feature {best['name']}: {best['roc_auc']:.3f})" if best else ""
    rate = figures.get("positive_rate")
    churned = f" ({100 * rate:.1f}% churned)" if isinstance(rate, float) else ""
    return (
        f"evaluate: ROC AUC {auc:.3f}{than}, ECE {ece:.3f}, {figures['n_evaluated']:,} moments"
        f" of known outcome{churned} in {figures['n_events']:,} events"
    )


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The command's arguments."""
    p = sub.add_parser(
        "evaluate",
        help="prequential model check on a recorded log",
        description=cmd_evaluate.__doc__,
    )
    add_log_input(p)
    p.add_argument(
        "--labels",
        choices=("auto", "file", "engine"),
        default="auto",
        help="file: the rows' label/label_ts; engine: the engine's own rule; auto: file if present",
    )
    p.add_argument(
        "--label-mode",
        choices=("cancel", "inactivity"),
        default="inactivity",
        help="the engine's rule with --labels engine (inactivity)",
    )
    p.add_argument("--horizon", type=horizon_days, default=None, help="H in days (CX_HORIZON_DAYS)")
    p.add_argument(
        "--score-every",
        type=positive_int,
        default=1,
        help="score every K-th event of a customer (1)",
    )
    p.add_argument(
        "--silence-ratio",
        type=silence_ratio,
        default=None,
        help="also score silences this many times a customer's mean gap, learned from and "
        "reported apart (CX_SILENCE_RATIO, 2; 0: off; engine labels only)",
    )
    p.add_argument(
        "--challenger",
        choices=("none", "arf"),
        default="none",
        help="also run the tree-ensemble challenger (about 10x slower) (none)",
    )
    p.add_argument("--progress-every", type=positive_int, default=50_000, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_evaluate)
