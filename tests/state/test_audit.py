from __future__ import annotations

import time

import redis

from operators.audit import audit_digest, right_entry
from state.audit import append, audit_command, entries_of
from state.keys import AUDIT
from tests.conftest import entries

KEY = b"k" * 32
DAY_MS = 86_400_000


def test_an_entry_with_a_reference_is_written_once(r: redis.Redis) -> None:
    now = int(time.time() * 1000)
    entry = right_entry("consent", audit_digest(KEY, "c1"), at_ms=now)
    for _ in range(3):
        command = audit_command(entry, retention_days=30, now_ms=now, once="ref-1")
        r.execute_command(*command)  # type: ignore[no-untyped-call]
    command = audit_command(entry, retention_days=30, now_ms=now, once="ref-2")
    r.execute_command(*command)  # type: ignore[no-untyped-call]
    assert r.xlen(AUDIT) == 2


def test_entries_are_found_by_the_keyed_digest_only(r: redis.Redis) -> None:
    now = int(time.time() * 1000)
    append(r, right_entry("export", audit_digest(KEY, "c1"), at_ms=now), retention_days=30)
    append(r, right_entry("export", audit_digest(KEY, "c2"), at_ms=now), retention_days=30)
    [found] = entries_of(r, KEY, "c1")
    assert found["what"] == "export"
    assert entries_of(r, b"j" * 32, "c1") == []  # another key: another digest
    for _, fields in entries(r, AUDIT):
        assert b"c1" not in fields[b"data"]


def test_entries_past_retention_are_trimmed(r: redis.Redis) -> None:
    old = int(time.time() * 1000) - 40 * DAY_MS
    for i in range(300):  # old entries, written with their own time as the stream id
        r.xadd(AUDIT, {"data": b"{}"}, id=f"{old + i}-0")
    append(r, right_entry("export", "d", at_ms=int(time.time() * 1000)), retention_days=30)
    # MINID ~ drops whole nodes of old entries: at most a node's worth (100) may stay
    assert r.xlen(AUDIT) <= 101
    append(r, right_entry("export", "d", at_ms=old + 41 * DAY_MS), retention_days=1000)
    assert r.xlen(AUDIT) >= 2
