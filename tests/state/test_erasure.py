from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import orjson
import pytest
import redis

from cxstream.settings import Settings
from operators.erasure import Forgotten, forget_digest
from operators.events import Event, shard_of
from state.commands import xadd_alert
from state.erasure import (
    compact,
    erase,
    erasure_record,
    forgotten_from,
    persisted,
    stored_digests,
)
from state.export import export
from state.ingest import xadd_events
from state.keys import (
    ALERTS,
    DLQ,
    ERASURES,
    FORGOTTEN,
    OUTBOUND,
    AlertGroups,
    KeyNames,
    events_stream,
    profile_key,
)
from state.redis import send_commands
from tests.conftest import T0, entries, ev, xadd


def plant(r: redis.Redis, who: str) -> None:
    xadd_events(
        r, [ev(f"{who}-1", "page_view", customer=who), ev(f"{who}-2", "complaint", customer=who)], 4
    )
    xadd(r, ALERTS, {"data": orjson.dumps({"customer_id": who, "alert_id": f"al-{who}"})})
    xadd(r, OUTBOUND, {"data": orjson.dumps({"customer_id": who, "alert_id": f"pro-{who}"})})
    r.hset(profile_key(who), "journey", b"{}")


def test_erase_deletes_every_trace_and_only_that_customers(r: redis.Redis) -> None:
    plant(r, "gone")
    plant(r, "kept")
    # A dead letter mentioning the customer, whose original sits in another shard's stream.
    other = events_stream((shard_of("gone", 4) + 1) % 4)
    bad = orjson.dumps({"customer_id": "gone", "channel": "pigeon"})
    original = xadd(r, other, {"data": bad})
    xadd(
        r,
        DLQ,
        {
            "data": bad,
            "reason": b"channel",
            "source": other.encode(),
            "entry_id": original.encode(),
        },
    )
    xadd(r, DLQ, {"data": b"\xffnot json", "reason": b"not json", "source": other.encode()})
    forgotten = Forgotten()
    counts = erase(r, "gone", shards=4, forgotten=forgotten)
    assert {k: counts[k] for k in ("profile", "events", "alerts", "outbound", "dead_letters")} == {
        "profile": 1,
        "events": 3,  # two in its shard, the dead letter's original in another
        "alerts": 1,
        "outbound": 1,
        "dead_letters": 1,
    }
    assert "gone" in forgotten
    blob = b"".join(
        b"".join(k + v for k, v in fields.items())
        for stream in (ALERTS, OUTBOUND, DLQ, *(events_stream(i) for i in range(4)))
        for _, fields in entries(r, stream)
    )
    assert b"gone" not in blob
    assert blob.count(b'"customer_id":"kept"') == 4  # two events, the alert, the outbound
    assert not r.exists(profile_key("gone"))
    assert r.exists(profile_key("kept"))
    assert r.xlen(DLQ) == 1  # the other dead letter stays
    assert stored_digests(r) == {forget_digest("gone")}
    record = erasure_record(r, "gone")
    assert record is not None
    assert record["events"] == 3
    assert b"gone" not in b"".join(cast("dict[bytes, bytes]", r.hgetall(ERASURES)))


def test_erasing_twice_deletes_nothing_more(r: redis.Redis) -> None:
    plant(r, "gone")
    erase(r, "gone", shards=4)
    again = erase(r, "gone", shards=4)
    assert (again["profile"], again["events"], again["alerts"], again["dead_letters"]) == (
        0,
        0,
        0,
        0,
    )
    assert r.scard(FORGOTTEN) == 1
    assert erasure_record(r, "never") is None


def test_the_flow_reads_the_suppression_list_when_first_needed(
    settings: Settings, r: redis.Redis
) -> None:
    forgotten = forgotten_from(settings)
    erase(r, "gone", shards=settings.shards)
    assert "gone" in forgotten  # loaded now, after the erasure
    assert "kept" not in forgotten


def test_erase_pages_through_long_streams(r: redis.Redis) -> None:
    from state import erasure

    stream = events_stream(shard_of("gone", 4))
    pipe = r.pipeline(transaction=False)
    for i in range(2 * erasure.PAGE + 500):
        if i == erasure.PAGE + 7:
            pipe.xadd(stream, {"data": orjson.dumps({"customer_id": "gone", "n": i})})
        pipe.xadd(stream, {"data": orjson.dumps({"customer_id": f"other-{i}"})})
    pipe.execute()
    counts = erase(r, "gone", shards=4)
    assert counts["events"] == 1
    assert r.xlen(stream) == 2 * erasure.PAGE + 500


def test_an_id_escaped_in_json_is_found_too(r: redis.Redis) -> None:
    import json

    who = "J\u00f6rg \U0001f600"
    stream = events_stream(shard_of(who, 4))
    escaped = json.dumps({"customer_id": who, "type": "page_view"}).encode()  # ensure_ascii
    assert who.encode() not in escaped
    xadd(r, stream, {"data": escaped})
    xadd(r, DLQ, {"data": escaped, "reason": b"x", "source": stream.encode(), "entry_id": b"0-1"})
    counts = erase(r, who, shards=4)
    assert (counts["events"], counts["dead_letters"]) == (1, 1)


def escaped(text: str) -> str:
    """``text`` with every character as a JSON \\u escape."""
    return "".join(f"\\u{ord(c):04x}" for c in text)


def test_an_id_written_with_escapes_is_erased_in_the_stream_and_the_dead_letters(
    r: redis.Redis,
) -> None:
    who = "cnry-71339"
    shard = events_stream(shard_of(who, 4))
    as_sent = (
        b'{"event_id":"x1","customer_id":"cnry-7133\\u0039","ts":1767225600000,'
        b'"channel":"chat","type":"complaint","attrs":{"text":"my secret"}}'
    )
    xadd(r, shard, {"data": as_sent})
    # dead letters: escaped and broken JSON, escaped and deep, and one naming it in an attr
    broken = f'{{"customer_id":"{escaped(who)}","ts": oops'.encode()
    original = xadd(r, events_stream(0), {"data": broken})
    xadd(
        r, DLQ, {"data": broken, "source": events_stream(0).encode(), "entry_id": original.encode()}
    )
    deep = b'{"customer_id":"cnry-7133\\u0039","attrs":' + b'{"a":' * 1100 + b"1" + b"}" * 1101
    xadd(r, DLQ, {"data": deep, "source": b"ingest"})
    xadd(r, DLQ, {"data": b'{"attrs":{"who":"' + escaped(who).encode() + b'"}}'})
    xadd(r, DLQ, {"data": b"{}", "customer": who.encode()})  # an excerpt too short to tell
    xadd(r, DLQ, {"data": b'{"customer_id":"cnry-71338"}'})  # someone else
    counts = erase(r, who, shards=4)
    assert (counts["events"], counts["dead_letters"]) == (2, 4)
    assert r.xlen(shard) == 0 or b"secret" not in b"".join(f[b"data"] for _, f in entries(r, shard))
    assert [f[b"data"] for _, f in entries(r, DLQ)] == [b'{"customer_id":"cnry-71338"}']


def test_anonymous_ids_linked_to_the_customer_are_erased_with_it(r: redis.Redis) -> None:
    anon_events = [
        Event("a1", None, "ck-found", T0, "web", "page_view", {"text": "found secret"}),
        Event("a2", None, "ck-told", T0, "web", "page_view", {"text": "told secret"}),
        Event("a3", None, "ck-other", T0, "web", "page_view", {}),
    ]
    identify = Event("i1", "c1", "ck-found", T0, "voice", "identify", {})
    xadd_events(r, [*anon_events, identify], 4)
    for key in ("c1", "ck-found", "ck-told", "ck-other"):
        r.hset(profile_key(key), "journey", b"{}")
    counts = erase(r, "c1", shards=4, linked=["ck-told"])
    assert counts["linked"] == 2
    assert counts["profile"] == 3
    assert counts["events"] == 3
    blob = b"".join(
        f[b"data"]
        for i in range(4)
        for _, f in entries(r, events_stream(i))
        if b"forget" not in f[b"data"]
    )
    assert b"secret" not in blob
    assert b"ck-other" in blob
    assert r.exists(profile_key("ck-other"))
    assert not r.exists(profile_key("ck-found"))
    # each linked id is suppressed, and has a forget queued for the flow to drop its state
    assert {forget_digest(k) for k in ("c1", "ck-found", "ck-told")} == stored_digests(r)
    forgets = [
        orjson.loads(f[b"data"])
        for i in range(4)
        for _, f in entries(r, events_stream(i))
        if b'"forget"' in f[b"data"]
    ]
    assert sorted((e["anonymous_id"], e.get("customer_id")) for e in forgets) == [
        ("ck-found", None),
        ("ck-told", None),
    ]
    assert erasure_record(r, "ck-found") is not None


def test_erasure_has_redis_rewrite_its_files(persistent_redis: tuple[str, Path]) -> None:
    url, folder = persistent_redis
    client = redis.Redis.from_url(url)
    canary = f"canary-{uuid.uuid4().hex}"
    plant(client, canary)
    plant(client, "kept")
    client.save()  # an RDB snapshot holding the canary, and the AOF holds it too

    def files_holding(needle: bytes) -> list[str]:
        return [p.name for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]

    assert files_holding(canary.encode())
    counts = erase(client, canary, shards=4)
    assert counts["persistence"] == ["aof", "rdb"]
    deadline = time.monotonic() + 30
    while not persisted(client, counts["at"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert persisted(client, counts["at"])
    assert files_holding(canary.encode()) == []
    assert files_holding(b"kept")  # the rest is still persisted


@pytest.fixture
def dumps_readable(r: redis.Redis) -> Iterator[None]:
    """DUMP (as RDB files) without compression, so a test can find a value in it."""
    r.config_set("rdbcompression", "no")
    yield
    r.config_set("rdbcompression", "yes")


def last_id(r: redis.Redis, stream: str) -> bytes:
    return cast("dict[str, bytes]", r.xinfo_stream(stream))["last-generated-id"]


@pytest.mark.usefixtures("dumps_readable")
def test_xdel_leaves_the_bytes_and_compact_removes_them(r: redis.Redis) -> None:
    stream = "cx:alerts"
    secrets = [uuid.uuid4().hex.encode() for _ in range(5)]
    ids = [xadd(r, stream, {"data": b"entry " + secret}) for secret in secrets]
    r.xdel(stream, ids[2], ids[4])
    assert secrets[2] in cast(bytes, r.dump(stream))  # XDEL only flags it
    before = last_id(r, stream)
    assert compact(r, stream)
    dumped = cast(bytes, r.dump(stream))
    assert secrets[2] not in dumped
    assert secrets[4] not in dumped
    assert secrets[3] in dumped
    assert [eid for eid, _ in entries(r, stream)] == [ids[0], ids[1], ids[3]]
    assert last_id(r, stream) == before  # the next id follows the old ones
    assert xadd(r, stream, {"data": b"later"}) > ids[4]
    assert not list(r.scan_iter("*compacting*"))


def test_compact_of_a_stream_whose_entries_are_all_deleted_keeps_its_last_id(
    r: redis.Redis,
) -> None:
    stream = "cx:dlq"
    ids = [xadd(r, stream, {"data": b"secret"}) for _ in range(3)]
    r.xdel(stream, *ids)
    assert compact(r, stream)
    assert r.xlen(stream) == 0
    assert last_id(r, stream) == ids[-1].encode()


def test_compact_keeps_a_stream_with_consumer_groups(r: redis.Redis) -> None:
    stream = "cx:grouped"
    ids = [xadd(r, stream, {"data": b"x"}) for _ in range(3)]
    r.xgroup_create(stream, "g", id="0")
    r.xdel(stream, ids[1])
    assert not compact(r, stream)
    assert r.xinfo_groups(stream)


@pytest.mark.usefixtures("dumps_readable")
def test_erase_compacts_what_it_deleted_from(r: redis.Redis) -> None:
    who = f"c{uuid.uuid4().hex}"
    plant(r, who)
    plant(r, "c2")
    erase(r, who, shards=4)
    assert r.xlen(events_stream(shard_of("c2", 4))) >= 2
    for key in r.scan_iter(_type="stream"):
        assert who.encode() not in cast(bytes, r.dump(key)), key


def test_erase_finds_alerts_in_every_group_stream_and_in_old_ones(r: redis.Redis) -> None:
    """With CX_ALERT_GROUPS the customer's alerts sit in their queues' streams; streams
    of an earlier value of the setting are searched too, and the export lists them."""
    names = KeyNames(shards=4, alerts=AlertGroups.parse("care;sales"))
    send_commands(
        r,
        [
            xadd_alert(names.alerts, queue, 1000, "data", orjson.dumps(body))
            for queue, body in [
                ("care", {"customer_id": "gone", "alert_id": "a1", "queue": "care"}),
                ("sales", {"customer_id": "gone", "alert_id": "a2", "queue": "sales"}),
                (None, {"customer_id": "gone", "alert_id": "a3"}),
                ("sales", {"customer_id": "kept", "alert_id": "a4", "queue": "sales"}),
            ]
        ],
        "test",
    )
    earlier = KeyNames(shards=4, alerts=AlertGroups.parse("a;b;c;d;e;f;g;vip"))  # an old value
    send_commands(
        r,
        [
            xadd_alert(
                earlier.alerts, "vip", 1000, "data", b'{"customer_id":"gone","alert_id":"a5"}'
            )
        ],
        "test",
    )
    xadd(r, ALERTS, {"data": orjson.dumps({"customer_id": "gone", "alert_id": "a6"})})
    exported = export(r, "gone", names, at_ms=0)
    assert sorted(a["data"]["alert_id"] for a in exported["alerts"]) == [
        "a1",
        "a2",
        "a3",
        "a5",
        "a6",
    ]
    counts = erase(r, "gone", shards=names)
    assert counts["alerts"] == 5
    left = [
        orjson.loads(f[b"data"])["alert_id"]
        for stream in (ALERTS, "{cx:alerts}:7", *names.alerts.streams)
        for _, f in entries(r, stream)
    ]
    assert left == ["a4"]
