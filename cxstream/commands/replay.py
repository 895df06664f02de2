"""``cxstream replay``: send a recorded log (stream-CSV or JSON lines) into the event streams."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from cxstream.commands.args import positive_float, positive_int
from cxstream.settings import Settings
from state.keys import KeyNames

if TYPE_CHECKING:
    from operators.evaluate import Row
    from operators.events import Event


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    """Send a recorded log (stream-CSV or JSON lines) into the event streams."""
    from state.ingest import xadd_events
    from state.redis import connect

    path = Path(args.file)
    fmt = log_format(path, args.format)
    rejected: list[tuple[int, str]] = []
    # the whole file is checked before anything is sent; a file out of order is sorted
    rows = rows_in_time_order(
        "replay", path, fmt, rejected, hold=False, progress="checked {n:,} rows"
    )
    client = connect(settings)
    started = time.perf_counter()
    first_ts: int | None = None
    sent = 0
    batch: list[Event] = []
    last_report = started
    back = "\r" if sys.stderr.isatty() else ""  # progress overwrites itself on a terminal
    for row in rows:
        event = row.event
        if first_ts is None:
            first_ts = event.ts
        if args.speed:  # keep event time and wall time in step, sped up
            due = started + (event.ts - first_ts) / 1000 / args.speed
            if batch and due > time.perf_counter():
                xadd_events(client, batch, KeyNames.of(settings))
                sent += len(batch)
                batch = []
            while (wait := due - time.perf_counter()) > 0:
                time.sleep(min(wait, 0.5))
        batch.append(event)
        if len(batch) >= 1000:
            xadd_events(client, batch, KeyNames.of(settings))
            sent += len(batch)
            batch = []
        if args.limit and sent + len(batch) >= args.limit:
            break
        now = time.perf_counter()
        if now - last_report >= 0.5:
            last_report = now
            rate = (sent + len(batch)) / (now - started)
            line = f"{back}replay: {sent + len(batch):,} events ({rate:,.0f}/s)"
            print(line, end="" if back else "\n", file=sys.stderr, flush=True)
    xadd_events(client, batch, KeyNames.of(settings))
    sent += len(batch)
    elapsed = time.perf_counter() - started
    summary = {
        "sent": sent,
        "rejected": len(rejected),
        "events_per_s": round(sent / elapsed, 1) if elapsed > 0 else None,
        "seconds": round(elapsed, 2),
        "format": fmt,
    }
    print(
        f"{back}replay: sent {sent:,} events, rejected {len(rejected):,} rows, "
        f"{summary['events_per_s']:,} events/s in {elapsed:.1f} s",
        file=sys.stderr,
    )
    for number, reason in rejected[:5]:
        print(f"replay: row {number} rejected: {reason}", file=sys.stderr)
    print(orjson.dumps(summary).decode())
    return 0


def rows_in_time_order(
    command: str,
    path: Path,
    fmt: str,
    rejected: list[tuple[int, str]],
    *,
    hold: bool,
    progress: str = "read {n} rows",
) -> Iterable[Row]:
    """A recorded log's rows in event time (``state.replay.in_time_order``), saying on
    stderr, as ``command``, how far the check has read and whether it had to sort."""
    from state.replay import in_time_order

    def read(n: int) -> None:
        print(f"{command}: {progress.format(n=n)}", file=sys.stderr, flush=True)

    rows, in_order = in_time_order(path, fmt, rejected, hold=hold, progress=read)
    if not in_order:
        print(f"{command}: the file is not in time order; sorted by ts", file=sys.stderr)
    return rows


def log_format(path: Path, fmt: str) -> str:
    """``auto``: JSON lines if the file is named so (``.jsonl``, ``.json``, ``.ndjson``),
    stream-csv if named ``.csv``; otherwise JSON lines if its text starts with ``{``."""
    if fmt != "auto":
        return fmt
    name = path.name.lower()
    if any(kind in name for kind in (".jsonl", ".json", ".ndjson")):
        return "jsonl"
    if ".csv" in name:
        return "stream-csv"
    from state.replay import starts_with

    return "jsonl" if starts_with(path, "{") else "stream-csv"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The command's arguments."""
    p = sub.add_parser(
        "replay", help="send a recorded log into the streams", description=cmd_replay.__doc__
    )
    p.add_argument("file", help="stream-CSV (plain or .gz) or JSON lines of events")
    p.add_argument(
        "--format", choices=("auto", "stream-csv", "jsonl"), default="auto", help="(by file name)"
    )
    p.add_argument(
        "--speed",
        type=positive_float,
        default=None,
        help="replay at this many times event time (default: as fast as possible)",
    )
    p.add_argument("--limit", type=positive_int, default=None, help="stop after N events")
    p.set_defaults(func=cmd_replay, follows_demo=True)  # while the demo runs: its folder
