"""The Bytewax source over the shard streams ``cx:events:<shard>``.

One partition per shard.  Each partition remembers the id of the last entry it
returned; Bytewax keeps that in its recovery snapshot and a resumed partition
reads on *after* it (at-least-once: anything after the snapshot is read again
and deduplicated downstream by ``event_id``).  Reads block for at most
``CX_READ_BLOCK_MS`` (never ``BLOCK 0``) so a worker serving several
partitions stays responsive.

The source also keeps the process's suppression list of erased customers up
to date: at most once a second it asks for the size of ``cx:forgotten`` (in
the same round trip as the read) and reloads it when it grew, so an erasure
done by another process stops that customer's events here within a second.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import redis
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from cxstream.settings import Settings
from operators.erasure import Forgotten
from operators.errors import StoreError
from operators.events import Read
from operators.values import record
from state.commands import flow_read
from state.erasure import stored_digests
from state.keys import FORGOTTEN, GAPS, KeyNames
from state.redis import Backoff, Command, Sent, connect, is_outage, stream_id

log = logging.getLogger(__name__)

START_ID = "0-0"
REFRESH_S = 1.0  # how often the suppression list's size is checked
FLOW_STATUS_S = 1.0  # how often a worker records how far it has read (cx:flow)
CLUSTER_BLOCK_MS = 10  # on a cluster, how long an idle worker blocks on one stream

_stop = threading.Event()


def request_stop() -> None:
    """Ask every partition of this process to end after its current batch.

    Safe to call from a signal handler.  The flow then drains and returns, the
    clean way to stop a running ``cxstream run``.
    """
    _stop.set()


def reset_stop() -> None:
    _stop.clear()


@record
class Entry:
    """One stream entry: where it came from and its ``data`` field (None if absent).

    The parse step takes these one by one (tests and the benchmarks hand them to a
    ``TestingSource``) as well as this source's whole reads."""

    stream: str
    entry_id: str
    data: bytes | None


@dataclass(frozen=True, slots=True)
class _Reading:
    """A read sent: its replies, how many of them are XREADs (the last ones), and
    whether the first is the size of the suppression list."""

    sent: Sent
    reads: int
    refresh: bool


class _WorkerReader:
    """One XREAD over every shard stream of one worker thread (on a cluster, one
    per stream, in one write per node).

    Bytewax calls all partitions of a worker in one input activation before
    any downstream step runs, so a partition that blocks after another one
    returned entries would hold those entries back.  The reader therefore
    blocks (for at most CX_READ_BLOCK_MS, never ``BLOCK 0``) only when the
    whole worker is idle: nothing buffered, and the last read found nothing.
    An entry on any shard then wakes it at once.

    One read serves a round of the partitions: a partition whose buffer is empty
    reads again only once it has been handed what the last read brought (which
    may be nothing); the others return empty.  So an activation makes one XREAD,
    not one per partition without entries (measured at 5,000 events/s over 8
    shards: 63% of reads were such extra reads, a round trip each).  Every
    partition asks to be polled at every activation (:meth:`next_awake`), so an
    entry read by another partition's read is handed over in the same one.

    While entries keep coming, the next read is sent as soon as one is taken, and
    its replies are read at the next activation: Redis answers while the flow works
    (profiled at full speed, 7.6% of the flow process's samples waited on its reads;
    0.2% with reads sent ahead).  A read
    sent ahead that brings nothing is followed at once by a read of the streams as
    they are then, so an entry that came meanwhile waits no longer than before.  On
    a cluster reads are not sent ahead.
    """

    def __init__(self, settings: Settings, forgotten: Forgotten | None) -> None:
        self.client = connect(settings)
        self.forgotten = forgotten
        self.stored = -1  # size of cx:forgotten when last reloaded
        self.refresh_at = 0.0
        self.backoff = Backoff("reading events")
        self.count = settings.read_count
        self.block_ms = settings.read_block_ms
        self.parts: dict[str, _StreamPartition] = {}
        self.empty_reads = 0
        self.cluster = settings.redis_cluster
        self.turn = 0  # on a cluster, the stream an idle worker blocks on next
        self.round = 0  # reads made; a partition reads when it has seen the last one
        self.ahead: _Reading | None = None  # the next read, sent while the flow works
        self.status_at = 0.0  # when to record how far this worker has read next

    def fill(self) -> None:
        self.round += 1
        ahead, self.ahead = self.ahead, None
        try:
            # the read sent ahead is taken first; if it found nothing, a read now (an
            # entry that came since is not held back an activation more)
            if ahead is None or not self._take(ahead):
                idle = ahead is None and self.empty_reads >= 1 and not self._buffered()
                self._take(self._send(idle))
            if self.empty_reads == 0 and not self.cluster and not _stop.is_set():
                self.ahead = self._send(idle=False)  # answered while the flow works
        except StoreError as exc:
            if not is_outage(exc):
                raise
            self.refresh_at = 0.0
            self.backoff.failed(exc)  # waits; Bytewax polls again, and the epochs go on
            return
        self.backoff.succeeded()

    def cancel_ahead(self) -> None:
        """Drop the read sent ahead, unread: a partition closed or built since it was
        sent (from other positions) reads again."""
        ahead, self.ahead = self.ahead, None
        if ahead is not None:
            ahead.sent.cancel()

    def _buffered(self) -> bool:
        return any(p.buffer for p in self.parts.values())

    def _send(self, idle: bool) -> _Reading:
        """Send one read of every stream (with the worker's status and the suppression
        list's size when due); its replies are taken by :meth:`_take`."""
        names = list(self.parts)
        commands: list[Command] = self._reads(names, idle)
        reads = len(commands)
        now = time.monotonic()
        if now >= self.status_at:  # for /healthz and /metrics: how far, and alive
            self.status_at = now + FLOW_STATUS_S
            positions = {n: (p.last_id, p.handed) for n, p in self.parts.items()}
            commands.insert(0, flow_read(positions, at_ms=int(time.time() * 1000)))
        refresh = self.forgotten is not None and now >= self.refresh_at
        if refresh:
            self.refresh_at = now + REFRESH_S
            commands.insert(0, ("SCARD", FORGOTTEN))
        sent = Sent(self.client, commands, f"reading {', '.join(names)}")
        return _Reading(sent, reads, refresh)

    def _take(self, reading: _Reading) -> int:
        """Hand what a read brought to its partitions' buffers: the number of entries."""
        replies = reading.sent.replies()
        if reading.refresh and self.forgotten is not None and int(replies[0]) > self.stored:
            size = int(replies[0])
            self.forgotten.update(stored_digests(self.client))
            self.stored = size  # (only once loaded: after an outage here it is loaded again)
        got = 0
        # RESP3 (redis-py's default with Redis 6+) gives a map, RESP2 a list of pairs
        streams = [
            pair
            for reply in replies[-reading.reads :]
            for pair in (reply.items() if isinstance(reply, dict) else reply or ())
        ]
        for name, entries in streams:
            if not entries:
                continue
            stream = name.decode()
            part = self.parts.get(stream)
            if part is None:  # (closed since the read was sent)
                continue
            part.buffer.append(Read(stream, entries))  # taken apart by the parse step
            part.fetched_id = entries[-1][0].decode()
            part.buffered += len(entries)
            got += len(entries)
        self.empty_reads = 0 if got else self.empty_reads + 1
        return got

    def _reads(self, names: list[str], idle: bool) -> list[Command]:
        """One XREAD of every stream; on a cluster one per stream (each shard's
        stream is in its own slot), an idle worker blocking on one of them in turn
        for at most CLUSTER_BLOCK_MS so an entry on another waits no longer."""
        fetched = [self.parts[n].fetched_id for n in names]
        if not self.cluster:
            block: tuple[str | int, ...] = ("BLOCK", self.block_ms) if idle else ()
            return [("XREAD", "COUNT", self.count, *block, "STREAMS", *names, *fetched)]
        commands: list[Command] = [
            ("XREAD", "COUNT", self.count, "STREAMS", n, f)
            for n, f in zip(names, fetched, strict=True)
        ]
        if idle and names:
            self.turn = (self.turn + 1) % len(names)
            n = names[self.turn]
            wait = min(self.block_ms, CLUSTER_BLOCK_MS)
            blocking = (
                "XREAD",
                "COUNT",
                self.count,
                "BLOCK",
                wait,
                "STREAMS",
                n,
                fetched[self.turn],
            )
            commands = [c for c in commands if c[4] != n] + [blocking]  # the blocking one last
        return commands

    def remove(self, stream: str) -> None:
        self.parts.pop(stream, None)
        self.cancel_ahead()
        if not self.parts:
            self.client.close()
            _readers.pop(threading.get_ident(), None)


_readers: dict[int, _WorkerReader] = {}
_ALWAYS = datetime(1970, 1, 1, tzinfo=UTC)


class _StreamPartition(StatefulSourcePartition[Read, str]):
    """One shard stream.  A batch is the reads not handed yet, each whole (a
    :class:`~operators.events.Read`: Bytewax moves one item a read, and the parse step
    takes its entries apart)."""

    def __init__(self, reader: _WorkerReader, stream: str, last_id: str) -> None:
        self.reader = reader
        self.stream = stream
        self.last_id = last_id  # the last entry handed to the flow: the resume point
        self.fetched_id = last_id  # the last entry read from redis (may be buffered)
        self.buffer: list[Read] = []
        self.buffered = 0  # entries in the buffer
        self.handed = 0  # entries handed to the flow since this process started
        self.round = reader.round  # the reader's last read this partition has seen
        reader.cancel_ahead()
        reader.parts[stream] = self

    def next_batch(self) -> list[Read]:
        if _stop.is_set():
            raise StopIteration
        if not self.buffer and self.round == self.reader.round:
            self.reader.fill()
        self.round = self.reader.round
        batch, self.buffer = self.buffer, []
        if batch:
            self.last_id = self.fetched_id  # (the buffer's last entry is the last read)
            self.handed += self.buffered
            self.buffered = 0
        return batch

    def next_awake(self) -> datetime:
        # Poll at every activation: Bytewax would otherwise wait 1 ms after an empty
        # batch, while another partition's read may have filled this one's buffer.
        return _ALWAYS

    def snapshot(self) -> str:
        return self.last_id

    def close(self) -> None:
        self.reader.remove(self.stream)


class RedisStreamSource(FixedPartitionedSource[Read, str]):
    """The event streams this process reads (CX_READ_SHARDS, else all ``CX_SHARDS``),
    one partition each."""

    def __init__(self, settings: Settings, forgotten: Forgotten | None = None) -> None:
        self.settings = settings
        self.forgotten = forgotten

    def list_parts(self) -> list[str]:
        names = KeyNames.of(self.settings)
        return [names.events(i) for i in self.settings.shard_set]

    def build_part(self, step_id: str, for_part: str, resume_state: str | None) -> _StreamPartition:
        start = resume_state or START_ID
        log.info("%s: reading %s after %s", step_id, for_part, start)
        reader = _readers.get(threading.get_ident())
        if reader is None:
            reader = _readers[threading.get_ident()] = _WorkerReader(self.settings, self.forgotten)
        if resume_state is not None:
            check_resume_point(reader.client, for_part, start)
        return _StreamPartition(reader, for_part, start)


def check_resume_point(client: redis.Redis, stream: str, resume_id: str) -> str | None:
    """Say so loudly, and count it in ``cx:gaps``, when ``stream`` was trimmed past the
    saved position: its oldest entry is newer than the last one read, so entries after
    that one may have been removed unread.  Returns the oldest entry's id then.

    Redis keeps no count of what a trim removed (before 7.0), so the gap is reported by
    its bounds.  The flow carries on from the oldest entry.
    """
    try:
        head = cast("list[tuple[bytes, Any]]", client.xrange(stream, count=1))
        info: dict[str, Any] = client.xinfo_stream(stream) if not head else {}
    except redis.ResponseError:
        return None  # no such stream yet: nothing was ever trimmed
    except redis.RedisError as exc:
        raise StoreError(f"checking {stream} at resume: {exc}") from exc
    if head:
        oldest = head[0][0].decode()
        if stream_id(oldest) <= stream_id(resume_id):
            return None
    else:  # empty: a gap if entries were added after the resume point and are gone
        last = info.get("last-generated-id", b"0-0")
        if stream_id(last) <= stream_id(resume_id):
            return None
        oldest = "(empty)"
    log.error(
        "%s was trimmed past the saved position %s: entries after it and before %s may "
        "have been removed before this flow read them (counted in %s); keep the flow "
        "running or raise the streams' MAXLEN",
        stream,
        resume_id,
        oldest,
        GAPS,
    )
    pipe = client.pipeline(transaction=False)
    pipe.hincrby(GAPS, stream, 1)
    pipe.hset(GAPS, f"{stream}:last", f"after {resume_id}, before {oldest}")
    pipe.execute()
    return oldest
