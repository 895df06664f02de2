"""``cxstream simulate``: stream simulated customer journeys into Redis (or as JSON lines
with --output)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import orjson

from cxstream.commands.args import (
    event_time_ms,
    incident,
    positive_float,
    positive_int,
    share,
    simulator_gap_ms,
)
from cxstream.runtime import Pacer
from cxstream.settings import Settings
from operators.errors import CxError
from state.keys import KeyNames

if TYPE_CHECKING:
    from operators.events import Event


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    """Stream simulated customer journeys into Redis (or as JSON lines with --output)."""
    from operators.simulate import SimConfig, Simulator

    if args.purchases is not None:
        return _purchases(args)
    if args.output is not None and args.duration is not None:
        raise CxError(
            "simulate --duration paces the sending into Redis; with --output the events are "
            "written at once: give --events N instead"
        )
    config = SimConfig(
        customers=args.customers,
        seed=args.seed,
        incidents=tuple(args.incident),
        consent=args.consent,
    )
    if args.speed is not None:  # event-time seconds per wall second at --rate
        gap = simulator_gap_ms(args.speed, args.customers, args.rate)
        config = replace(config, customer_gap_ms=gap)
    if args.start_ms is not None:
        config = replace(config, start_ms=args.start_ms)
    sim = Simulator(config)
    with contextlib.ExitStack() as stack:
        # (both files opened first: a path that cannot be written stops the command before
        # the work)
        out = _output(args.output, stack)
        truth = None if args.truth is None else stack.enter_context(_create(args.truth, "--truth"))
        try:
            code = _simulate(args, settings, sim, out)
        except KeyboardInterrupt:  # the truth of the customers so far, then the usual end
            _write_truth(truth, sim, args.truth)
            raise
        except CxError:  # (Redis away: no truth file of a run that did not happen)
            if truth is not None:
                truth.close()
                os.remove(args.truth)
            raise
        _write_truth(truth, sim, args.truth)
        return code


def _create(path: str, flag: str) -> TextIO:
    """The file ``path`` (of option ``flag``) opened for writing, or a one-line error."""
    try:
        return Path(path).open("w")
    except OSError as exc:
        raise CxError(f"simulate {flag} {path}: cannot write: {exc.strerror or exc}") from exc


def _output(output: str | None, stack: contextlib.ExitStack) -> TextIO | None:
    """Where ``--output`` goes: nowhere (None: into Redis), stdout (``-``) or its file."""
    if output is None or output == "-":
        return None if output is None else sys.stdout
    return stack.enter_context(_create(output, "--output"))


def _write_truth(truth: TextIO | None, sim: Any, path: str | None) -> None:
    if truth is None:
        return
    for row in sim.ground_truth():
        truth.write(orjson.dumps(row).decode() + "\n")
    print(f"simulate: ground truth of {sim.joined} customers in {path}", file=sys.stderr)


def _write_jsonl(out: TextIO, events: Iterable[Event]) -> None:
    """Events as JSON lines to ``out``."""
    from operators.events import encode_event

    for event in events:
        out.write(encode_event(event).decode() + "\n")


def _purchases(args: argparse.Namespace) -> int:
    """A purchases-only log (see :func:`operators.simulate.purchase_log`) as JSON lines."""
    from operators.simulate import purchase_log

    if args.output is None:
        raise CxError("simulate --purchases writes a file: give --output FILE (- = stdout)")
    if args.truth is not None or args.incident:
        raise CxError("simulate --purchases takes no --truth or --incident")
    kwargs: dict[str, Any] = {"start_ms": args.start_ms} if args.start_ms is not None else {}
    log = purchase_log(customers=args.customers, days=args.purchases, seed=args.seed, **kwargs)
    if args.events is not None:
        log = log[: args.events]
    with contextlib.ExitStack() as stack:
        out = _output(args.output, stack)
        assert out is not None  # (checked above)
        _write_jsonl(out, log)
    print(
        f"simulate: {len(log)} purchases of {args.customers} customers over {args.purchases} days"
        + ("" if args.output == "-" else f" in {args.output}"),
        file=sys.stderr,
    )
    return 0


def _simulate(args: argparse.Namespace, settings: Settings, sim: Any, out: TextIO | None) -> int:
    if out is not None:
        _write_jsonl(out, sim.take(args.events or 10_000))
        return 0
    from state.ingest import xadd_events
    from state.redis import connect

    client = connect(settings)
    pace = Pacer(args.rate)
    sent = 0
    deadline = time.monotonic() + args.duration if args.duration else None
    last_report = time.monotonic()
    try:
        while (args.events is None or sent < args.events) and (
            deadline is None or time.monotonic() < deadline
        ):
            n = pace.due()
            if args.events is not None:
                n = min(n, args.events - sent)
            if n:
                xadd_events(client, sim.take(n), KeyNames.of(settings))
                sent += n
            if time.monotonic() - last_report >= 5:
                last_report = time.monotonic()
                print(f"simulate: {sent} events sent", file=sys.stderr)
            pace.wait()
    finally:  # (Ctrl-C too, then reported as every command's interruption)
        print(
            f"simulate: sent {sent} events ({sim.cancelled} cancellations, {sim.joined} customers)",
            file=sys.stderr,
        )
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The command's arguments."""
    p = sub.add_parser(
        "simulate", help="simulate customer journeys", description=cmd_simulate.__doc__
    )
    p.add_argument(
        "--events",
        type=positive_int,
        default=None,
        help="stop after N events (with --output: 10,000; into Redis: none, until Ctrl-C)",
    )
    p.add_argument("--duration", type=positive_float, default=None, help="stop after S seconds")
    p.add_argument("--rate", type=positive_float, default=100.0, help="events per second (100)")
    p.add_argument("--customers", type=positive_int, default=500, help="customers (500)")
    p.add_argument("--seed", type=int, default=7, help="random seed (7)")
    p.add_argument(
        "--start-ms",
        type=event_time_ms,
        default=None,
        help="event time of the start, epoch ms (from 1970 to 2099)",
    )
    p.add_argument(
        "--speed",
        type=positive_float,
        default=None,
        help="event-time seconds per wall second at --rate (default: each customer acts about "
        "once a day of event time)",
    )
    p.add_argument(
        "--incident",
        type=incident,
        action="append",
        default=[],
        metavar="TOPIC@START+MINUTES[xSHARE]",
        help="an outage, billing error...: from START minutes of event time after the start, "
        "for MINUTES, a SHARE (0.3) of the customers' steps become a complaint on TOPIC; "
        "repeatable",
    )
    p.add_argument(
        "--consent",
        type=share,
        default=0.0,
        metavar="SHARE",
        help="a SHARE of the customers state a consent choice as they join (most withdraw "
        "marketing, some refuse SMS, a few object to profiling); 0: none (0)",
    )
    p.add_argument(
        "--output", default=None, help="write JSON lines to this file (- = stdout), not Redis"
    )
    p.add_argument(
        "--truth",
        default=None,
        help="also write each customer's latent churn propensity and action tastes (JSON lines)",
    )
    p.add_argument(
        "--purchases",
        type=positive_int,
        default=None,
        metavar="DAYS",
        help="instead, a purchases-only log (a retailer's order history: --customers join in "
        "the first 90 days, buy at rates of their own, stop for good, the rate moves with the "
        "season) over DAYS days, to --output; check the model on it with cxstream evaluate",
    )
    p.set_defaults(func=cmd_simulate, follows_demo=True)  # while the demo runs: its folder
