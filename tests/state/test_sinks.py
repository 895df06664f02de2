from __future__ import annotations

import dataclasses
import time

import orjson
import redis

from cxstream.settings import Settings, parse_alert_groups
from operators.erasure import Forgotten
from operators.events import Rejected, Suppressed, shard_of
from operators.records import (
    Alert,
    Erase,
    ExperienceStatus,
    ModelStatus,
    Proactive,
    ProfileUpdate,
)
from state.erasure import erasure_record
from state.ingest import xadd_events
from state.keys import (
    ALERTS,
    DLQ,
    OUTBOUND,
    KeyNames,
    events_stream,
    profile_key,
    written_key,
)
from state.sinks import (
    alert_sink,
    dead_letter_sink,
    experience_sink,
    model_status_sink,
    profile_sink,
)
from tests.conftest import entries, ev, hash_of, xadd


def test_alerts_are_xadded_with_their_json(settings: Settings, r: redis.Redis) -> None:
    part = alert_sink(settings).build("out", 0, 1)
    part.write_batch(
        [Alert("al_1", {"alert_id": "al_1", "x": 1}), Alert("al_2", {"alert_id": "al_2"})]
    )
    got = entries(r, ALERTS)
    assert [orjson.loads(f[b"data"])["alert_id"] for _, f in got] == ["al_1", "al_2"]
    assert got[0][1][b"alert_id"] == b"al_1"


def test_dead_letters_keep_raw_bytes_reason_and_time(settings: Settings, r: redis.Redis) -> None:
    part = dead_letter_sink(settings).build("dlq", 0, 1)
    part.write_batch([Rejected("cx:events:1", "5-0", b"\xff{bad", "not json", "detail")])
    [(_, fields)] = entries(r, DLQ)
    assert fields[b"data"] == b"\xff{bad"
    assert fields[b"reason"] == b"not json"
    assert fields[b"source"] == b"cx:events:1"
    assert fields[b"entry_id"] == b"5-0"
    assert int(fields[b"at"]) > 0


def test_an_oversized_dead_letter_keeps_an_excerpt_its_digest_and_who_it_names(
    settings: Settings, r: redis.Redis
) -> None:
    """A 1 MB entry is dead-lettered as 4 KB, and an erasure of the customer it
    names (past the excerpt) still finds it."""
    from state.erasure import erase

    big = b'{"attrs":{"text":"' + b"x" * 1_000_000 + b'"},"customer_id":"c-big"}'
    part = dead_letter_sink(settings).build("dlq", 0, 1)
    part.write_batch([Rejected("cx:events:1", "5-0", big, "too large", "1000044 bytes")])
    [(_, fields)] = entries(r, DLQ)
    assert fields[b"data"] == big[:4096]
    assert fields[b"size"] == str(len(big)).encode()
    assert fields[b"customer"] == b"c-big"
    assert erase(r, "c-big", shards=settings.shards)["dead_letters"] == 1
    assert r.xlen(DLQ) == 0


def test_profile_updates_merge_per_customer_and_expire(settings: Settings, r: redis.Redis) -> None:
    part = profile_sink(settings).build("p", 0, 1)
    part.write_batch(
        [
            ProfileUpdate("c1", {"journey": {"n": 1}, "last_event_ts": 5}, refresh_ttl=True),
            ProfileUpdate("c1", {"journey": {"n": 2}}),
            ProfileUpdate("c1", {"risk": {"band": "high"}}),
            ProfileUpdate("c2", {"journey": {"n": 1}}),
        ]
    )
    h = hash_of(r, "cx:profile:c1")
    assert orjson.loads(h[b"journey"]) == {"n": 2}
    assert orjson.loads(h[b"risk"]) == {"band": "high"}
    assert orjson.loads(h[b"customer_id"]) == "c1"
    ttl = r.ttl("cx:profile:c1")
    assert 0 < ttl <= settings.retention_days * 86_400
    assert r.ttl("cx:profile:c2") == -1  # no update asked for the expiry to move


def test_model_status_hash(settings: Settings, r: redis.Redis) -> None:
    part = model_status_sink(settings).build("m", 0, 1)
    part.write_batch([ModelStatus("m0", {"version": "logreg-1@10", "roc_auc": 0.7})])
    assert orjson.loads(hash_of(r, "cx:model:m0")[b"roc_auc"]) == 0.7


def test_the_store_erases_after_its_profile_writes_and_drops_later_updates(
    settings: Settings, r: redis.Redis
) -> None:
    xadd_events(r, [ev(1, "page_view", customer="gone")], settings.shards)
    stray = xadd(r, events_stream(0), {"data": b"{}"})
    forgotten = Forgotten()
    part = profile_sink(settings, forgotten).build("p", 0, 1)
    part.write_batch(
        [
            ProfileUpdate("gone", {"journey": {"n": 1}}),
            Erase("gone"),
            ProfileUpdate("gone", {"risk": {"band": "high"}}),  # a trailing risk update
            ProfileUpdate("kept", {"journey": {"n": 1}}),
            Suppressed(events_stream(0), stray),
        ]
    )
    assert not r.exists(profile_key("gone"))
    assert r.exists(profile_key("kept"))
    assert "gone" in forgotten
    assert erasure_record(r, "gone") is not None
    assert entries(r, events_stream(0)) == []  # the suppressed entry is deleted
    assert r.xlen(events_stream(shard_of("gone", settings.shards))) == 0
    part.write_batch([ProfileUpdate("gone", {"risk": {"band": "low"}})])  # a later batch
    assert not r.exists(profile_key("gone"))


def test_a_profile_expires_in_redis_after_the_retention(settings: Settings, r: redis.Redis) -> None:
    from dataclasses import replace

    short = replace(settings, horizon_days=1 / 86_400, retention_days=1 / 86_400)  # one second
    part = profile_sink(short).build("p", 0, 1)
    part.write_batch([ProfileUpdate("brief", {"journey": {"n": 1}}, refresh_ttl=True)])
    assert r.exists(profile_key("brief"))
    deadline = time.monotonic() + 10
    while r.exists(profile_key("brief")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not r.exists(profile_key("brief"))


def _proactive(alert_id: str, *, control: bool = False, acted: bool = True) -> Proactive:
    outbound = {"alert_id": alert_id, "customer_id": "c1", "control": control}
    alert = None if control or not acted else {"alert_id": alert_id, "kind": "proactive"}
    return Proactive(
        alert_id,
        "c1",
        {"kind": "rule", "name": "r", "event_id": "e1"},
        0,
        "fix" if acted else None,
        control,
        1.0,
        alert,
        outbound if acted else None,
    )


def test_proactive_actions_are_written_once_per_alert_id(
    settings: Settings, r: redis.Redis
) -> None:
    part = alert_sink(settings).build("pro", 0, 1)
    part.write_batch([_proactive("al_1"), _proactive("al_2", control=True)])
    part.write_batch([_proactive("al_1"), _proactive("al_3", acted=False)])  # a replay; no action
    part.close()
    again = alert_sink(settings).build("pro", 0, 1)  # another process, after a restart
    again.write_batch([_proactive("al_1"), _proactive("al_2", control=True)])
    again.close()
    outbound = [orjson.loads(f[b"data"]) for _, f in entries(r, OUTBOUND)]
    assert [(o["alert_id"], o["control"]) for o in outbound] == [("al_1", False), ("al_2", True)]
    alerts = [orjson.loads(f[b"data"]) for _, f in entries(r, ALERTS)]
    assert [a["alert_id"] for a in alerts] == ["al_1"]  # the hold-out gets no alert
    ttl = r.ttl(written_key(OUTBOUND, "al_1"))
    assert 0 < ttl <= settings.retention_days * 86_400


def test_the_experience_counts_are_one_field_a_flow_process(
    settings: Settings, r: redis.Redis
) -> None:
    part = experience_sink(settings).build("x", 0, 1)
    part.write_batch(
        [
            ExperienceStatus("main", {"hour": 1}),
            ExperienceStatus("0-1", {"hour": 2}),
            ExperienceStatus("main", {"hour": 3}),  # the newest of a process wins
        ]
    )
    stored = hash_of(r, "cx:experience")
    assert {k: orjson.loads(v)["hour"] for k, v in stored.items()} == {b"main": 3, b"0-1": 2}


def test_with_queue_groups_each_alert_goes_to_its_groups_stream(
    settings: Settings, r: redis.Redis
) -> None:
    grouped = dataclasses.replace(settings, alert_groups=parse_alert_groups("care;sales,retention"))
    groups = KeyNames.of(grouped).alerts
    part = alert_sink(grouped).build("out", 0, 1)
    part.write_batch(
        [
            Alert("al_1", {"alert_id": "al_1", "queue": "sales"}),
            Alert("al_2", {"alert_id": "al_2", "queue": "care"}),
            Alert("al_3", {"alert_id": "al_3"}),  # no queue: the other stream
            Alert("al_4", {"alert_id": "al_4", "queue": "retention"}),
        ]
    )
    part.write_batch([_proactive("al_5"), _proactive("al_5")])  # written once
    part.close()
    got = {
        s: [orjson.loads(f[b"data"])["alert_id"] for _, f in entries(r, s)] for s in groups.streams
    }
    assert got == {
        "{cx:alerts}:0": ["al_2"],
        "{cx:alerts}:1": ["al_1", "al_4"],
        "{cx:alerts}:other": ["al_3", "al_5"],
    }
    assert r.exists(ALERTS) == 0
