"""Argument types shared by the commands: each turns a flag's text into a value or a
clear error."""

from __future__ import annotations

import argparse
import math
from typing import Any, TypeVar

from cxstream.settings import LONGEST
from operators.errors import ConfigError, CxError

LATEST_START_MARGIN_MS = round(LONGEST["profile_interval_ms"])  # a century, in ms


def addresses(text: str) -> list[str]:
    """``host:port;host:port`` -> a list, each checked for a port."""
    out = [a.strip() for a in text.split(";") if a.strip()]
    for address in out:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise argparse.ArgumentTypeError(f"{address!r} is not host:port")
        if not 0 < int(port) < 65536:
            raise argparse.ArgumentTypeError(f"{address!r}: port {port} is not a tcp port")
    if not out:
        raise argparse.ArgumentTypeError("no address given")
    return out


def event_time_ms(text: str) -> int:
    """Epoch ms from 1970 to the end of 2099: a start whose simulated events (up to a century
    after it) stay within the times an event may have (to 2200)."""
    from operators.events import MAX_TS_MS

    value = _integer(text)
    latest = MAX_TS_MS - LATEST_START_MARGIN_MS
    if not 0 <= value <= latest:
        raise argparse.ArgumentTypeError(
            f"{text!r}: not between 0 (1970) and {latest} (2099-12-31)"
        )
    return value


def incident(text: str) -> Any:
    from operators.simulate import Incident

    try:
        return Incident.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from exc


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from exc
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


N = TypeVar("N", int, float)


def _require(value: N, ok: bool, says: str) -> N:
    if not ok:
        raise argparse.ArgumentTypeError(f"{value:g} {says}")
    return value


def positive_int(text: str) -> int:
    value = _integer(text)
    return _require(value, value >= 1, "must be at least 1")


def non_negative_int(text: str) -> int:
    value = _integer(text)
    return _require(value, value >= 0, "must be 0 or more")


def positive_float(text: str) -> float:
    value = _number(text)
    return _require(value, value > 0, "must be positive")


def horizon_days(text: str) -> float:
    """A churn horizon in days: positive, at most a century (as CX_HORIZON_DAYS)."""
    value, longest = positive_float(text), LONGEST["horizon_days"]
    return _require(value, value <= longest, f"must be at most {longest:g} (a century)")


def simulator_gap_ms(speed: float, customers: int, rate: float) -> int:
    """The simulator's mean gap between a customer's events for ``--speed``, ``--customers``
    and ``--rate`` (:func:`operators.simulate.paced_gap_ms`), or a CxError naming them."""
    from operators.simulate import paced_gap_ms

    try:
        return paced_gap_ms(speed, customers, rate)
    except ConfigError as exc:
        raise CxError(
            f"--speed {speed:g} at --rate {rate:g} for {customers} customers: {exc}"
        ) from exc


def ttl_hours(text: str) -> float:
    """A token's lifetime: positive, at most a century (its expiry a date)."""
    value, longest = positive_float(text), LONGEST["token_ttl_hours"]
    return _require(value, value <= longest, f"must be at most {longest:g} (a century)")


def nonempty_name(text: str) -> str:
    """A name (an agent, a queue): not empty, surrounding spaces dropped."""
    value = text.strip()
    if not value:
        raise argparse.ArgumentTypeError("empty: give a name")
    return value


def non_negative_float(text: str) -> float:
    value = _number(text)
    return _require(value, value >= 0, "must be 0 or more")


def silence_ratio(text: str) -> float:
    value = _number(text)
    if value != 0 and not value >= 1:
        raise argparse.ArgumentTypeError(f"{value}: use 0 (off) or at least 1")
    return value


def share(text: str) -> float:
    """A share, from 0 to 1."""
    value = _number(text)
    return _require(value, 0 <= value <= 1, "must be from 0 to 1")


def add_log_input(p: argparse.ArgumentParser) -> None:
    """``--input FILE`` and ``--format``: a recorded log, as evaluate and report read it."""
    p.add_argument("--input", required=True, help="the log file (.gz allowed)")
    p.add_argument(
        "--format",
        choices=("auto", "stream-csv", "jsonl"),
        default="auto",
        help="(auto: jsonl if the file is named .jsonl or .json, else stream-csv)",
    )
