"""What the customer store is sent: a batch's profile updates, merged per customer, as
Redis commands (plain tuples; ``state.sinks`` sends them).

No I/O and no clock: the key of a customer's profile and the time are passed in.  The
commands are built here, compiled with the operators (a batch of a thousand events
makes about three hundred of them, each value JSON): as interpreted code this was the
profile sink's largest part.

>>> hset("cx:profile:c1", {"risk": {"band": "low"}}, "updated_at", b"9")
('HSET', 'cx:profile:c1', 'risk', b'{"band":"low"}', 'updated_at', b'9')
>>> updates = [ProfileUpdate("c1", {"a": 1}, refresh_ttl=True), ProfileUpdate("c1", {"b": 2})]
>>> for c in profile_commands(updates, key_of=lambda c: f"p:{c}", now_ms=5, ttl_s=60):
...     print(c)
('HSET', 'p:c1', 'a', b'1', 'b', b'2', 'customer_id', b'"c1"', 'updated_at', b'5')
('EXPIRE', 'p:c1', 60)
"""

from __future__ import annotations

from collections.abc import Callable, Container
from typing import Any

import orjson

from operators.records import ProfileUpdate

Command = tuple[str | bytes | int | float, ...]  # as ``state.redis.Command``


def hset(key: str, fields: dict[str, Any], *extra: str | bytes) -> Command:
    """HSET ``fields`` (each value as JSON) and ``extra`` (name, value, ...) on ``key``."""
    args: list[str | bytes | int | float] = ["HSET", key]
    for name, value in fields.items():
        args.append(name)
        args.append(orjson.dumps(value))
    args.extend(extra)
    return tuple(args)


def profile_commands(
    updates: list[ProfileUpdate],
    *,
    key_of: Callable[[str], str],
    now_ms: int,
    ttl_s: int,
    skip: Container[str] = (),
) -> list[Command]:
    """One ``HSET`` a customer of ``updates`` (each update's fields over the earlier
    ones', in order), with its ``customer_id`` and ``updated_at``; an ``EXPIRE`` of
    ``ttl_s`` after it when an update asks for one.  Customers in ``skip`` (erased)
    are left out."""
    merged: dict[str, dict[str, Any]] = {}
    refresh: set[str] = set()
    for u in updates:
        customer = u.customer_id
        if customer in skip:
            continue
        fields = merged.get(customer)
        # (an update's own dict, never changed: a customer's later ones make a new one)
        merged[customer] = u.fields if fields is None else fields | u.fields
        if u.refresh_ttl:
            refresh.add(customer)
    now = orjson.dumps(now_ms)
    commands: list[Command] = []
    for customer, fields in merged.items():
        key = key_of(customer)
        commands.append(hset(key, fields, "customer_id", orjson.dumps(customer), "updated_at", now))
        if customer in refresh:
            commands.append(("EXPIRE", key, ttl_s))
    return commands
