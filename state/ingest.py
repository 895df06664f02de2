"""Writing events into the shard streams (what ``cxstream send`` and /ingest do)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import orjson
import redis

from operators.errors import InvalidEvent, StoreError
from operators.events import Event, sendable_event
from state.commands import add_event
from state.keys import KeyNames


@dataclass(frozen=True, slots=True)
class SendResult:
    sent: int
    rejected: list[tuple[int, str]]  # (line number, reason)
    stream_ids: list[str]


def xadd_events(client: redis.Redis, events: Iterable[Event], shards: int | KeyNames) -> list[str]:
    """XADD events to their shard streams in one pipeline; return the stream ids.

    ``shards``: the number of event shards, or the key names (hash-tagged on a cluster).
    """
    names = shards if isinstance(shards, KeyNames) else KeyNames(shards=shards)
    pipe = client.pipeline(transaction=False)
    n = 0
    for event in events:
        pipe.execute_command(*add_event(names, event))  # type: ignore[no-untyped-call]
        n += 1
    if n == 0:
        return []
    try:
        ids = pipe.execute()
    except redis.RedisError as exc:
        raise StoreError(f"adding {n} events to redis: {exc}") from exc
    return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]


def parse_lines(lines: Iterable[bytes]) -> Iterator[tuple[int, Event | InvalidEvent]]:
    """JSON lines to events, numbered from 1; blank lines are skipped."""
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line:
            continue
        item: Event | InvalidEvent
        try:
            item = sendable_event(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            item = InvalidEvent("not json", str(exc)[:120])
        except InvalidEvent as exc:
            item = exc
        yield number, item


def send_lines(
    client: redis.Redis, lines: Iterable[bytes], shards: int | KeyNames, *, batch: int = 500
) -> SendResult:
    """Validate JSON lines and XADD the valid ones; report each rejected line."""
    sent = 0
    rejected: list[tuple[int, str]] = []
    ids: list[str] = []
    buffer: list[Event] = []
    for number, item in parse_lines(lines):
        if isinstance(item, InvalidEvent):
            rejected.append((number, str(item)))
            continue
        buffer.append(item)
        if len(buffer) >= batch:
            ids.extend(xadd_events(client, buffer, shards))
            sent += len(buffer)
            buffer.clear()
    ids.extend(xadd_events(client, buffer, shards))
    sent += len(buffer)
    return SendResult(sent, rejected, ids)
