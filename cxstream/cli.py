"""The ``cxstream`` command: run | serve | demo | token | send | simulate | replay |
evaluate | forget | export | report.

Settings come from the environment (docs/settings.md); flags only say what to do
this time.  Errors are printed as one line, ``cxstream: error: ...``, and exit 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from types import FrameType
from typing import Any, NoReturn

from cxstream import __version__
from cxstream.commands import (
    demo,
    evaluate,
    export,
    forget,
    replay,
    report,
    run,
    send,
    serve,
    simulate,
    token,
)
from cxstream.demo import follow_running_demo
from cxstream.launch import configure_logging, warn_of_unknown_variables
from cxstream.settings import Settings
from operators.errors import CxError

log = logging.getLogger("cxstream")

# in the order of ``cxstream --help``
COMMANDS = (run, serve, demo, evaluate, report, replay, token, send, simulate, forget, export)


class _Parser(argparse.ArgumentParser):
    """A usage error in one line, as every other error: ``cxstream: error: ...``, exit 2."""

    def error(self, message: str) -> NoReturn:
        where = self.prog.removeprefix("cxstream").strip()
        self.exit(
            2,
            f"cxstream: error: {where + ': ' if where else ''}{message} (see {self.prog} --help)\n",
        )


_TOP_LEVEL = ("-h", "--help", "--version")  # the options before a command


class _Commands(_Parser):
    """The top-level parser: an argument no command knows is reported by its command."""

    commands: Mapping[str, argparse.ArgumentParser]

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: None = None
    ) -> argparse.Namespace:
        given = list(sys.argv[1:] if args is None else args)
        if not any(a in self.commands for a in given):  # no command: name what is unknown
            options = [a for a in given if a.startswith("-") and a not in _TOP_LEVEL]
            if options:
                self.error(f"unrecognized arguments: {' '.join(options)}")
        parsed, extra = self.parse_known_args(given, namespace)
        if extra:
            unknown = f"unrecognized arguments: {' '.join(extra)}"
            if given.index(extra[0]) < given.index(parsed.command):
                self.error(unknown)  # (before the command: the top level's)
            self.commands[parsed.command].error(unknown)
        return parsed


def build_parser() -> argparse.ArgumentParser:
    parser = _Commands(
        prog="cxstream",
        description="Real-time customer-experience engine. Settings come from environment "
        "variables (REDIS_URL, CX_SHARDS, CX_SECRET, CX_HOST, CX_PORT, ...; see docs/settings.md).",
    )
    parser.add_argument("--version", action="version", version=f"cxstream {__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    for command in COMMANDS:
        command.add_parser(sub)
    parser.commands = sub.choices
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    previous = _exit_on_signals()
    try:
        warn_of_unknown_variables()
        settings = Settings.from_env()
        if getattr(args, "follows_demo", False):
            settings = follow_running_demo(settings, dict(os.environ))
        configure_logging(settings)
        code: int = args.func(args, settings)
    except CxError as exc:
        print(f"cxstream: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"cxstream: {args.command} interrupted ({exc or 'SIGINT'})", file=sys.stderr)
        return 130
    except BrokenPipeError as exc:
        if _stdout_open():  # another pipe than the output: say so
            print(f"cxstream: error: {args.command}: {exc}", file=sys.stderr)
            return 1
        return 141  # the reader of the output went away (`... --output - | head`): as SIGPIPE
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return code


def _stdout_open() -> bool:
    """Whether stdout still has a reader; if not (a pipe whose reader closed it), it is
    pointed at the null device so that the interpreter's last flush does not fail."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):  # (replaced by an object without a descriptor)
        return True
    poll = select.poll()
    poll.register(fd, select.POLLOUT)
    if not any(events & select.POLLERR for _, events in poll.poll(0)):
        return True
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
    return False


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _exit_on_signals() -> dict[int, Any]:
    """SIGINT, SIGTERM and SIGHUP end a command as Ctrl-C does, so that it cleans up
    (the embedded Redis it was the last to use stops), even when it was started with
    SIGINT ignored (in the background of a shell).  Commands that stop in their own
    way (run, serve, demo) install their handlers over these."""
    if threading.current_thread() is not threading.main_thread():
        return {}  # signals can only be set from the main thread (tests call main() too)
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    return {s: signal.signal(s, _interrupt) for s in signals}


if __name__ == "__main__":
    raise SystemExit(main())
