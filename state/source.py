"""The Bytewax source over the shard streams ``cx:events:<shard>``.

One partition per shard.  Each partition remembers the id of the last entry it
returned; Bytewax keeps that in its recovery snapshot and a resumed partition
reads on *after* it (at-least-once: anything after the snapshot is read again
and deduplicated downstream by ``event_id``).  Reads block for at most
``CX_READ_BLOCK_MS`` (never ``BLOCK 0``) so a worker serving several
partitions stays responsive.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import redis
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from cxstream.errors import StoreError
from cxstream.settings import Settings
from state.keys import events_stream
from state.redis import connect, xread_entries

log = logging.getLogger(__name__)

START_ID = "0-0"

_stop = threading.Event()


def request_stop() -> None:
    """Ask every partition of this process to end after its current batch.

    Safe to call from a signal handler.  The flow then drains and returns, the
    clean way to stop a running ``cxstream run``.
    """
    _stop.set()


def reset_stop() -> None:
    _stop.clear()


@dataclass(frozen=True, slots=True)
class Entry:
    """One stream entry: where it came from and its ``data`` field (None if absent)."""

    stream: str
    entry_id: str
    data: bytes | None


class _StreamPartition(StatefulSourcePartition[Entry, str]):
    def __init__(self, client: redis.Redis, stream: str, last_id: str, settings: Settings):
        self.client = client
        self.stream = stream
        self.last_id = last_id
        self.count = settings.read_count
        self.block_ms = settings.read_block_ms

    def next_batch(self) -> list[Entry]:
        if _stop.is_set():
            raise StopIteration
        try:
            reply = self.client.xread(
                {self.stream: self.last_id}, count=self.count, block=self.block_ms
            )
        except redis.RedisError as exc:
            raise StoreError(f"reading {self.stream} after {self.last_id}: {exc}") from exc
        batch = [
            Entry(self.stream, entry_id, fields.get(b"data"))
            for _stream, entries in xread_entries(reply)
            for entry_id, fields in entries
        ]
        if batch:
            self.last_id = batch[-1].entry_id
        return batch

    def snapshot(self) -> str:
        return self.last_id

    def close(self) -> None:
        self.client.close()


class RedisStreamSource(FixedPartitionedSource[Entry, str]):
    """All ``CX_SHARDS`` event streams, one partition each."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def list_parts(self) -> list[str]:
        return [events_stream(i) for i in range(self.settings.shards)]

    def build_part(self, step_id: str, for_part: str, resume_state: str | None) -> _StreamPartition:
        start = resume_state or START_ID
        log.info("%s: reading %s after %s", step_id, for_part, start)
        return _StreamPartition(connect(self.settings), for_part, start, self.settings)
