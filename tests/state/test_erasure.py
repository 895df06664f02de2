from __future__ import annotations

from typing import cast

import orjson
import redis

from cxstream.settings import Settings
from operators.erasure import Forgotten, forget_digest
from operators.events import shard_of
from state.erasure import (
    ERASURES,
    FORGOTTEN,
    erase,
    erasure_record,
    forgotten_from,
    stored_digests,
)
from state.ingest import xadd_events
from state.keys import ALERTS, DLQ, events_stream, profile_key
from tests.conftest import entries, ev, xadd


def plant(r: redis.Redis, who: str) -> None:
    xadd_events(
        r, [ev(f"{who}-1", "page_view", customer=who), ev(f"{who}-2", "complaint", customer=who)], 4
    )
    xadd(r, ALERTS, {"data": orjson.dumps({"customer_id": who, "alert_id": f"al-{who}"})})
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
    assert {k: counts[k] for k in ("profile", "events", "alerts", "dead_letters")} == {
        "profile": 1,
        "events": 3,  # two in its shard, the dead letter's original in another
        "alerts": 1,
        "dead_letters": 1,
    }
    assert "gone" in forgotten
    blob = b"".join(
        b"".join(k + v for k, v in fields.items())
        for stream in (ALERTS, DLQ, *(events_stream(i) for i in range(4)))
        for _, fields in entries(r, stream)
    )
    assert b"gone" not in blob
    assert blob.count(b'"customer_id":"kept"') == 3  # two events and the alert
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
