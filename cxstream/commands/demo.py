"""``cxstream demo``: everything on the embedded default: Redis, dataflow, server, simulator."""

from __future__ import annotations

import argparse

from cxstream.commands.args import (
    non_negative_float,
    nonempty_name,
    positive_float,
    positive_int,
)
from cxstream.settings import Settings


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Everything on the embedded default: Redis, dataflow, server, simulator."""
    from cxstream.demo import Demo

    return Demo(settings, args).run()


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The command's arguments."""
    p = sub.add_parser(
        "demo",
        help="everything in one command on the embedded default",
        description=(cmd_demo.__doc__ or "")
        + " Prints the console URL with a ready token; Ctrl-C stops every process it started.",
    )
    p.add_argument("--rate", type=positive_float, default=40.0, help="events per second (40)")
    p.add_argument("--customers", type=positive_int, default=400, help="simulated customers (400)")
    p.add_argument("--seed", type=int, default=7, help="simulator seed (7)")
    p.add_argument(
        "--speed",
        type=positive_float,
        default=21_600.0,
        help="event-time seconds per wall second (21600: 6 hours of customer life a second)",
    )
    p.add_argument(
        "--history-days",
        type=non_negative_float,
        default=60.0,
        help=(
            "days of simulated history sent at once before going live (60: the first 30 "
            "days' contacts have their labels, cancelled or not within the 30-day horizon, "
            "when it goes live; 0 for none)"
        ),
    )
    p.add_argument(
        "--duration", type=positive_float, default=None, help="stop after this many seconds"
    )
    p.add_argument(
        "--queue",
        action="append",
        type=nonempty_name,
        default=None,
        help="queue(s) of the console agent's token (retention); repeatable",
    )
    p.add_argument(
        "--status-every", type=positive_float, default=2.0, help="status line interval, s (2)"
    )
    p.add_argument(
        "--incident-after",
        type=non_negative_float,
        default=60.0,
        help="seconds after going live when an outage starts (6 hours of event time, 80%% of "
        "steps become outage complaints): the supervisor view shows its trend alert (60; "
        "0 for none)",
    )
    p.add_argument(
        "--bad-step-after",
        type=non_negative_float,
        default=90.0,
        help="seconds after going live when the app's checkout starts failing for a third of "
        "the digital steps (more churn, harder surveys): the supervisor view's experience "
        "shows the CES drop and its trend alert (90; 0 for none)",
    )
    p.set_defaults(func=cmd_demo)
