from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime

import hypothesis
import pytest
import redis
from bytewax.testing import poll_next_batch
from hypothesis import strategies as st

from cxstream.settings import Settings
from operators.errors import StoreError
from operators.events import Read, data_field
from state.keys import GAPS, events_stream
from state.source import (
    Entry,
    RedisStreamSource,
    check_resume_point,
    request_stop,
    reset_stop,
)
from tests.conftest import hash_of, xadd


def entries(reads: list[Read]) -> list[Entry]:
    """The entries of a partition's batch (its reads, each handed whole)."""
    return [Entry(r.stream, eid.decode(), data_field(f)) for r in reads for eid, f in r.entries]


def test_one_partition_per_shard(settings: Settings) -> None:
    assert RedisStreamSource(settings).list_parts() == [f"cx:events:{i}" for i in range(4)]
    owner = replace(settings, read_shards=(1, 3))
    assert RedisStreamSource(owner).list_parts() == ["cx:events:1", "cx:events:3"]


def test_reads_in_order_and_resumes_after_the_snapshot(settings: Settings, r: redis.Redis) -> None:
    stream = events_stream(2)
    ids = [xadd(r, stream, {"data": f"{i}".encode()}) for i in range(5)]
    xadd(r, stream, {"other": b"x"})
    source = RedisStreamSource(settings)
    part = source.build_part("in", stream, None)
    batch = entries(poll_next_batch(part))
    assert [e.data for e in batch] == [b"0", b"1", b"2", b"3", b"4", None]
    assert batch[0] == Entry(stream, ids[0], b"0")
    part.close()

    resumed = source.build_part("in", stream, ids[2])
    assert [e.data for e in entries(poll_next_batch(resumed))] == [b"3", b"4", None]
    assert resumed.next_batch() == []
    resumed.close()


def test_reads_gathered_before_a_poll_are_handed_in_order_and_resume_after_the_last(
    settings: Settings, r: redis.Redis
) -> None:
    """Another partition's reads fill this one's buffer with several reads before it is
    polled: all are handed at once, and its resume point is the last of them."""
    source = RedisStreamSource(replace(settings, read_count=2))
    first, second = (source.build_part("in", name, None) for name in source.list_parts()[:2])
    ids = [xadd(r, events_stream(1), {"data": f"{i}".encode()}) for i in range(5)]
    try:
        first.next_batch()  # one read of every stream: two of shard 1's entries
        first.next_batch()  # (this one's buffer is empty: it reads again) two more
        batch = second.next_batch()
        assert len(batch) == 2
        assert [e.data for e in entries(batch)] == [b"0", b"1", b"2", b"3"]
        assert (second.snapshot(), second.handed) == (ids[3], 4)
        assert [e.data for e in entries(poll_next_batch(second))] == [b"4"]
        assert (second.snapshot(), second.handed) == (ids[4], 5)
    finally:
        first.close()
        second.close()


def test_idle_read_returns_within_the_block_timeout(settings: Settings) -> None:
    import time

    part = RedisStreamSource(settings).build_part("in", events_stream(0), None)
    started = time.monotonic()
    assert part.next_batch() == []
    assert time.monotonic() - started < 1.0
    part.close()


def test_stop_request_ends_the_partition(settings: Settings) -> None:
    part = RedisStreamSource(settings).build_part("in", events_stream(0), None)
    request_stop()
    try:
        try:
            part.next_batch()
        except StopIteration:
            pass
        else:
            raise AssertionError("next_batch should raise StopIteration after a stop request")
    finally:
        reset_stop()
        part.close()


def test_an_entry_on_one_shard_is_not_held_back_by_idle_shards(
    settings: Settings, r: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One worker owns all shards: it blocks only when idle, never right after data."""
    from dataclasses import replace
    from typing import Any

    source = RedisStreamSource(replace(settings, read_block_ms=50))
    parts = [source.build_part("in", name, None) for name in source.list_parts()]
    import state.erasure
    import state.redis
    import state.source

    blocks: list[Any] = []

    class RecordingSent(state.redis.Sent):
        def __init__(self, client: Any, commands: list[Any], what: str) -> None:
            (command,) = [c for c in commands if c[0] == "XREAD"]  # beside it: cx:flow, once a s
            blocks.append(command[command.index("BLOCK") + 1] if "BLOCK" in command else None)
            super().__init__(client, commands, what)

    monkeypatch.setattr(state.source, "Sent", RecordingSent)
    assert [part.next_batch() for part in parts] == [[]] * 4
    assert blocks == [None]  # one read a round, not one per partition without entries
    xadd(r, events_stream(1), {"data": b"x"})
    blocks.clear()
    got = [len(entries(part.next_batch())) for part in parts]
    # The idle worker's read may block (the entry is there, so it returns at once), and
    # what it brought for shard 1 is handed over in the same round; having found an
    # entry, it sends the next read ahead.
    assert got == [0, 1, 0, 0]
    assert blocks == [50, None]
    blocks.clear()
    assert [part.next_batch() for part in parts] == [[]] * 4
    assert blocks == [None]  # the read ahead found nothing: one more read, not blocking
    blocks.clear()
    assert [part.next_batch() for part in parts] == [[]] * 4
    assert blocks == [50]  # idle now
    assert all(part.next_awake() <= datetime.now(UTC) for part in parts)  # polled every time
    for part in parts:
        part.close()
    for part in parts:
        part.close()


def test_a_read_is_sent_ahead_while_entries_come_and_none_is_held_back(
    settings: Settings, r: redis.Redis
) -> None:
    """After a read that found entries the next one is on its way; what it brings is
    handed at the next poll, and if it brought nothing the stream is read again then."""
    source = RedisStreamSource(replace(settings, read_count=2))
    part = source.build_part("in", events_stream(0), None)

    def add(i: int) -> str:
        return xadd(r, events_stream(0), {"data": f"{i}".encode()})

    try:
        ids = [add(i) for i in range(4)]
        assert [e.data for e in entries(part.next_batch())] == [b"0", b"1"]
        assert part.reader.ahead is not None  # sent: it will bring 2 and 3
        ids.append(add(4))
        assert [e.data for e in entries(part.next_batch())] == [b"2", b"3"]
        assert part.snapshot() == ids[3]
        assert [e.data for e in entries(part.next_batch())] == [b"4"]
        assert part.reader.ahead is not None  # sent when 4 was read: nothing after it yet
        ids.append(add(5))
        # the read ahead finds nothing; the read made then finds 5 in the same poll
        assert [e.data for e in entries(part.next_batch())] == [b"5"]
        assert (part.snapshot(), part.handed) == (ids[5], 6)
        assert part.next_batch() == []
        assert part.reader.ahead is None  # nothing came: nothing sent ahead
    finally:
        part.close()


@hypothesis.settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
)
@hypothesis.given(
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("add"), st.integers(0, 3), st.integers(1, 7)),
            st.tuples(st.just("poll"), st.integers(0, 3), st.just(0)),
        ),
        max_size=40,
    ),
    count=st.integers(1, 5),
)
def test_every_entry_is_handed_once_in_order_however_adds_and_polls_interleave(
    settings: Settings, r: redis.Redis, steps: list[tuple[str, int, int]], count: int
) -> None:
    """Whatever the reads sent ahead bring, each partition hands its stream's entries
    exactly once, in order, and its resume point is the last one handed."""
    streams = [events_stream(i) for i in range(4)]
    r.delete(*streams)
    source = RedisStreamSource(replace(settings, read_count=count, read_block_ms=1))
    parts = [source.build_part("in", name, None) for name in streams]
    added: list[list[str]] = [[] for _ in streams]
    handed: list[list[str]] = [[] for _ in streams]
    try:
        for what, shard, n in steps:
            if what == "add":
                added[shard] += [xadd(r, streams[shard], {"data": b"x"}) for _ in range(n)]
            else:
                handed[shard] += [e.entry_id for e in entries(parts[shard].next_batch())]
        for _ in range(sum(map(len, added)) + 2):  # drain: every partition polled in turn
            for shard, part in enumerate(parts):
                handed[shard] += [e.entry_id for e in entries(part.next_batch())]
        assert handed == added
        for shard, part in enumerate(parts):
            assert part.snapshot() == (added[shard][-1] if added[shard] else "0-0")
            assert part.handed == len(added[shard])
    finally:
        for part in parts:
            part.close()


def test_a_stream_trimmed_past_the_resume_point_is_reported_and_counted(
    settings: Settings, r: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    stream = events_stream(1)
    ids = [xadd(r, stream, {"data": f"{i}".encode()}) for i in range(10)]
    source = RedisStreamSource(settings)
    assert check_resume_point(r, stream, ids[3]) is None  # nothing lost
    r.xtrim(stream, maxlen=4, approximate=False)  # 0..5 go; 4 and 5 were never read
    assert check_resume_point(r, stream, ids[3]) == ids[6]
    caplog.clear()
    part = source.build_part("in", stream, ids[3])
    assert "trimmed past the saved position" in caplog.text
    assert [e.data for e in entries(poll_next_batch(part))] == [b"6", b"7", b"8", b"9"]
    part.close()
    assert r.hget(GAPS, stream) == b"2"
    assert r.hget(GAPS, f"{stream}:last") == f"after {ids[3]}, before {ids[6]}".encode()
    assert check_resume_point(r, stream, ids[9]) is None  # read to the end: no gap
    r.xtrim(stream, maxlen=0, approximate=False)
    assert check_resume_point(r, stream, ids[9]) is None  # emptied after everything was read
    assert check_resume_point(r, stream, ids[8]) == "(empty)"
    assert check_resume_point(r, "cx:events:missing", "5-0") is None


def test_the_source_records_how_far_it_has_read_each_stream(
    settings: Settings, r: redis.Redis
) -> None:
    """cx:flow, for /healthz: per stream the last entry handed to the flow, and a count."""
    import orjson

    from state.keys import FLOW

    source = RedisStreamSource(settings)
    parts = [source.build_part("in", name, None) for name in source.list_parts()]
    last = [xadd(r, events_stream(2), {"data": b"x"}) for _ in range(3)][-1]
    try:
        handed = sum(len(entries(part.next_batch())) for part in parts)
        assert handed == 3
        parts[0].reader.status_at = 0.0  # the next read records again (at most once a second)
        for part in parts:
            part.next_batch()
        flow = {k.decode(): orjson.loads(v) for k, v in hash_of(r, FLOW).items()}
        assert flow[events_stream(2)]["id"] == last
        assert flow[events_stream(2)]["events"] == 3
        assert flow[events_stream(0)]["events"] == 0
        assert abs(flow[events_stream(2)]["at"] / 1000 - time.time()) < 60
    finally:
        for part in parts:
            part.close()


def test_a_suppression_list_whose_reload_failed_is_loaded_at_the_next_check(
    settings: Settings, r: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis went away while the erased customers were read: nothing is lost, and
    the next check loads them (the size seen is kept only once they are loaded)."""
    import state.erasure
    import state.source
    from operators.erasure import Forgotten, forget_digest
    from state.keys import FORGOTTEN

    forgotten = Forgotten()
    source = RedisStreamSource(settings, forgotten)
    part = source.build_part("in", events_stream(0), None)
    reader = part.reader
    reader.backoff.sleep = lambda _s: None  # (no wait for the outage's backoff)
    real = state.erasure.stored_digests
    calls: list[int] = []

    def failing_once(client: redis.Redis) -> set[bytes]:
        calls.append(1)
        if len(calls) == 1:
            raise StoreError("reading cx:forgotten: connection lost") from ConnectionError()
        return real(client)

    monkeypatch.setattr(state.source, "stored_digests", failing_once)
    try:
        r.sadd(FORGOTTEN, forget_digest("gone"))
        xadd(r, events_stream(0), {"data": b"x"})
        assert part.next_batch() == []  # the outage: waited out, the read not handed
        assert "gone" not in forgotten
        reader.refresh_at = 0.0
        assert [e.data for e in entries(poll_next_batch(part))] == [b"x"]
        assert "gone" in forgotten
        assert len(calls) == 2
    finally:
        part.close()


def test_a_partition_built_or_closed_drops_the_read_sent_ahead(
    settings: Settings, r: redis.Redis
) -> None:
    """A read sent ahead from other positions is never taken, and its connection is
    not put back in the pool with its replies unread."""
    source = RedisStreamSource(replace(settings, read_count=1))
    first = source.build_part("in", events_stream(0), None)
    ids = [xadd(r, events_stream(0), {"data": f"{i}".encode()}) for i in range(3)]
    reader = first.reader
    try:
        assert [e.data for e in entries(first.next_batch())] == [b"0"]
        sent = reader.ahead
        assert sent is not None
        second = source.build_part("in", events_stream(1), None)  # (a rebuild, a resume)
        assert reader.ahead is None
        assert sent.sent.conn is None  # dropped: its replies unread
        assert [e.data for e in entries(first.next_batch())] == [b"1"]  # read again
        assert first.snapshot() == ids[1]
        second.close()
        assert reader.ahead is None
        assert [e.data for e in entries(poll_next_batch(first))] == [b"2"]
    finally:
        first.close()
    assert reader.client.connection_pool._in_use_connections == set()
