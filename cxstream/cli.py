"""The ``cxstream`` command: run | serve | demo | token | send | simulate | replay |
evaluate | forget.

Settings come from the environment (docs/settings.md); flags only say what to do
this time.  Errors are printed as one line, ``cxstream: error: ...``, and exit 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from cxstream.commands import (
    demo,
    evaluate,
    forget,
    replay,
    run,
    send,
    serve,
    simulate,
    token,
)
from cxstream.launch import configure_logging
from cxstream.settings import Settings
from operators.errors import CxError

log = logging.getLogger("cxstream")

# in the order of ``cxstream --help``
COMMANDS = (run, serve, demo, evaluate, replay, token, send, simulate, forget)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cxstream",
        description="Real-time customer-experience engine. Settings come from environment "
        "variables (REDIS_URL, CX_SHARDS, CX_SECRET, CX_HOST, CX_PORT, ...; see docs/settings.md).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        configure_logging(settings)
        code: int = args.func(args, settings)
    except CxError as exc:
        print(f"cxstream: error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    raise SystemExit(main())
