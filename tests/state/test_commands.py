"""The Redis writes with a real server: alerts split by queue group share one id sequence."""

from __future__ import annotations

import dataclasses

import orjson
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from state.commands import xadd_alert
from state.keys import ALERT_LAST, ALERT_STREAMS, ALERTS, AlertGroups, written_key
from state.redis import send_commands, stream_id
from tests.conftest import entries

GROUPS = AlertGroups.parse("care,billing;sales")
QUEUES = ["care", "billing", "sales", "fraud", None]


def alert(n: int, queue: str | None) -> tuple[str | bytes, ...]:
    body = orjson.dumps({"alert_id": f"al_{n}", "queue": queue})
    return ("data", body, "alert_id", f"al_{n}")


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(st.sampled_from(QUEUES), min_size=1, max_size=30), max_size=6))
def test_alert_ids_follow_the_writes_over_every_group(
    redis_server: str, batches: list[list[str | None]]
) -> None:
    """Whatever the mix of queues and batches: each alert lands in its group's stream,
    and the ids over all groups increase in the order of the writes (one sequence), so
    one resume point orders every group."""
    r = redis.Redis.from_url(redis_server)  # the session's: its alert keys emptied each time
    r.delete(ALERT_LAST, *GROUPS.streams)
    written: list[tuple[str, str | None]] = []  # (alert id, queue) in write order
    n = 0
    for batch in batches:
        commands = []
        for queue in batch:
            commands.append(xadd_alert(GROUPS, queue, 1000, *alert(n, queue)))
            written.append((f"al_{n}", queue))
            n += 1
        send_commands(r, commands, "test")
    stored = [
        (stream, entry_id, orjson.loads(fields[b"data"]))
        for stream in GROUPS.streams
        for entry_id, fields in entries(r, stream)
    ]
    for stream, _, body in stored:
        assert stream == GROUPS.stream_of(body["queue"])
    in_id_order = sorted(stored, key=lambda s: stream_id(s[1]))
    assert [(b["alert_id"], b["queue"]) for _, _, b in in_id_order] == written
    assert len({i for _, i, _ in stored}) == len(stored)  # no id twice over the groups
    r.close()


def test_an_alert_follows_a_stream_written_past_the_sequence(r: redis.Redis) -> None:
    """A group stream written to by other means (an id ahead of the sequence), its
    newest entry deleted (an erasure), the sequence key lost: the next alert still
    takes an id after every one the stream has had, and is written."""
    sales = GROUPS.stream_of("sales")
    ahead = "99999999999999-5"
    r.xadd(sales, {"data": b"{}"}, id=ahead)
    send_commands(r, [xadd_alert(GROUPS, "sales", 1000, *alert(1, "sales"))], "test")
    assert [i for i, _ in entries(r, sales)] == [ahead, "99999999999999-6"]
    r.xdel(sales, "99999999999999-6")
    r.delete(ALERT_LAST)
    send_commands(r, [xadd_alert(GROUPS, "sales", 1000, *alert(2, "sales"))], "test")
    assert [i for i, _ in entries(r, sales)] == [ahead, "99999999999999-7"]
    send_commands(r, [xadd_alert(GROUPS, "care", 1000, *alert(3, "care"))], "test")
    (care,) = [stream_id(i) for i, _ in entries(r, GROUPS.stream_of("care"))]
    assert care == (99999999999999, 8)  # after the sequence, whatever the clock
    assert r.smembers(ALERT_STREAMS) == {sales.encode(), GROUPS.stream_of("care").encode()}


@pytest.mark.parametrize("groups", [AlertGroups(), GROUPS])
def test_a_marked_alert_is_written_once(r: redis.Redis, groups: AlertGroups) -> None:
    marker = written_key(ALERTS, "al_7")
    command = xadd_alert(groups, "sales", 1000, *alert(7, "sales"), marker=marker, ttl_s=60)
    replies = send_commands(r, [command, command], "test")
    assert replies[0] is not None
    assert replies[1] is None
    assert len(entries(r, groups.stream_of("sales"))) == 1
    assert 0 < int(r.ttl(marker)) <= 60


def test_groups_compare_by_their_queues() -> None:
    again = AlertGroups.parse("care, billing ; sales")
    assert again == GROUPS
    assert hash(again) == hash(GROUPS)
    assert dataclasses.replace(GROUPS, groups=(("x",),)).stream_of("x") == "{cx:alerts}:0"
