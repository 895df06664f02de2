from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from operators.errors import ConfigError
from operators.events import Event, shard_of
from state.erasure import erase
from state.export import counts, export
from state.ingest import xadd_events
from state.keys import DLQ, KeyNames, events_stream
from tests.conftest import T0, ev, xadd
from tests.state.test_erasure import plant

NAMES = KeyNames(shards=4)


def test_export_shows_what_an_erasure_deletes_and_nothing_of_others(r: redis.Redis) -> None:
    plant(r, "me")
    plant(r, "other")
    other = events_stream((shard_of("me", 4) + 1) % 4)
    bad = orjson.dumps({"customer_id": "me", "channel": "pigeon"})
    original = xadd(r, other, {"data": bad})
    xadd(r, DLQ, {"data": bad, "reason": b"channel", "source": other.encode(),
                  "entry_id": original.encode()})  # fmt: skip
    # an anonymous history linked to the customer by its own identify event
    xadd_events(
        r,
        [
            Event("a1", None, "cookie-9", T0, "web", "page_view", {}),
            Event("i1", "me", "cookie-9", T0 + 1, "web", "identify", {}),
        ],
        4,
    )
    r.hset(NAMES.profile("cookie-9"), "journey", b'{"events": 1}')
    doc = export(r, "me", NAMES, at_ms=5)
    assert doc["erased"] is False
    assert doc["profile"] == {"journey": {}}
    held = counts(doc)
    assert held == {
        "events": 4,  # two planted, the identify, and the dead letter's original
        "alerts": 1,
        "outbound": 1,
        "dead_letters": 1,
        "profile": 1,
        "linked": 1,
    }
    assert b'"other"' not in orjson.dumps(doc)
    [linked] = doc["linked"]
    assert linked["anonymous_id"] == "cookie-9"
    assert linked["profile"] == {"journey": {"events": 1}}
    assert [e["data"]["event_id"] for e in linked["events"]] == ["a1"]
    erased = erase(r, "me", shards=4)  # its counts: the customer's and its linked ids'
    assert (erased["events"], erased["alerts"], erased["outbound"], erased["dead_letters"]) == (
        held["events"] + len(linked["events"]),
        held["alerts"],
        held["outbound"],
        held["dead_letters"],
    )
    after = export(r, "me", NAMES, at_ms=6)
    assert after["erased"] is True
    assert counts(after) == dict.fromkeys(held, 0)
    assert counts(export(r, "other", NAMES, at_ms=7))["events"] == 2


def test_an_anonymous_id_is_exported_by_itself(r: redis.Redis) -> None:
    xadd_events(r, [Event("a1", None, "dev-1", T0, "app", "page_view", {})], 4)
    doc = export(r, "dev-1", NAMES, anonymous=True, at_ms=1)
    assert (doc["customer_id"], doc["anonymous_id"]) == (None, "dev-1")
    assert len(doc["events"]) == 1


def test_an_entry_that_is_not_json_is_shown_as_text(r: redis.Redis) -> None:
    xadd(r, DLQ, {"data": b'\xff{"customer_id": "me"', "reason": b"not json", "customer": b"me"})
    [letter] = export(r, "me", NAMES, at_ms=1)["dead_letters"]
    assert letter["reason"] == "not json"
    assert isinstance(letter["data"], str)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(min_size=1, max_size=40).filter(lambda t: "\x00" not in t))
def test_any_customer_id_found_in_its_events_is_exported(r: redis.Redis, key: str) -> None:
    r.flushall()
    xadd_events(r, [ev("x", "page_view", customer=key, text=key)], 4)
    doc = export(r, key, NAMES, at_ms=1)
    assert len(doc["events"]) == 1
    assert doc["events"][0]["data"]["customer_id"] == key


def test_no_recovery_directory_no_recovery_section(r: redis.Redis, tmp_path: Path) -> None:
    assert export(r, "me", NAMES, at_ms=1, recovery_dir=tmp_path)["recovery"] == []
    assert export(r, "me", NAMES, at_ms=1, recovery_dir=tmp_path / "none")["recovery"] == []


def test_a_file_for_the_recovery_folder_is_an_error_not_an_empty_answer(
    r: redis.Redis, tmp_path: Path
) -> None:
    """A right of access answered "nothing held" must be true: a file where the folder
    should be says nothing of what the flow holds."""
    wrong = tmp_path / "recovery"
    wrong.write_text("not a folder")
    with pytest.raises(ConfigError, match=r"CX_RECOVERY_DIR=.*recovery: not a folder"):
        export(r, "me", NAMES, at_ms=1, recovery_dir=wrong)
