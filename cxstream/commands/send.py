"""``cxstream send``: xADD JSON-lines events from a file or stdin; report rejected lines on
stderr."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cxstream.settings import Settings
from operators.errors import CxError
from state.keys import KeyNames


def cmd_send(args: argparse.Namespace, settings: Settings) -> int:
    """XADD JSON-lines events from a file or stdin; report rejected lines on stderr."""
    from state.ingest import send_lines
    from state.redis import connect

    client = connect(settings)
    if args.file == "-":
        result = send_lines(client, sys.stdin.buffer, KeyNames.of(settings))
    else:
        path = Path(args.file)
        try:
            with path.open("rb") as f:
                result = send_lines(client, f, KeyNames.of(settings))
        except OSError as exc:
            raise CxError(f"cannot read {path}: {exc.strerror}") from exc
    for number, reason in result.rejected[:20]:
        print(f"line {number}: rejected: {reason}", file=sys.stderr)
    if len(result.rejected) > 20:
        print(f"... and {len(result.rejected) - 20} more rejected lines", file=sys.stderr)
    events = "event" if result.sent == 1 else "events"
    print(f"sent {result.sent} {events}, rejected {len(result.rejected)}", file=sys.stderr)
    return 1 if result.rejected else 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The command's arguments."""
    p = sub.add_parser("send", help="send JSON-lines events", description=cmd_send.__doc__)
    p.add_argument("file", nargs="?", default="-", help="file of JSON lines, or - for stdin")
    p.set_defaults(func=cmd_send, follows_demo=True)  # while the demo runs: its folder
