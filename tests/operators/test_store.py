from __future__ import annotations

import copy
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from operators.records import ProfileUpdate
from operators.store import hset, profile_commands

updates = st.lists(
    st.builds(
        ProfileUpdate,
        st.sampled_from(["c1", "c2", "c3"]),
        st.dictionaries(
            st.sampled_from(["journey", "risk", "persona", "duplicates"]),
            st.one_of(st.none(), st.integers(-(2**53), 2**53), st.text(max_size=3)),
            max_size=3,
        ),
        refresh_ttl=st.booleans(),
    ),
    max_size=12,
)


def applied(commands: list[tuple[Any, ...]]) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """What Redis would hold after the commands: each hash decoded, and the keys given
    an expiry."""
    hashes: dict[str, dict[str, Any]] = {}
    expiring: set[str] = set()
    for command in commands:
        if command[0] == "HSET":
            pairs = command[2:]
            fields = hashes.setdefault(command[1], {})
            for name, value in zip(pairs[::2], pairs[1::2], strict=True):
                fields[name] = orjson.loads(value)
        else:
            assert command[0] == "EXPIRE"
            assert command[1] in hashes
            expiring.add(command[1])
    return hashes, expiring


@given(updates, st.sets(st.sampled_from(["c1", "c2", "c3"]), max_size=1))
def test_a_batch_written_merged_is_the_updates_written_one_by_one(
    batch: list[ProfileUpdate], erased: set[str]
) -> None:
    before = copy.deepcopy([u.fields for u in batch])
    merged = profile_commands(batch, key_of=lambda c: f"p:{c}", now_ms=7, ttl_s=60, skip=erased)
    one_by_one = [
        c
        for u in batch
        for c in profile_commands([u], key_of=lambda c: f"p:{c}", now_ms=7, ttl_s=60)
        if u.customer_id not in erased
    ]
    assert applied(merged) == applied(one_by_one)
    assert sum(c[0] == "HSET" for c in merged) == len({u.customer_id for u in batch} - erased)
    assert [u.fields for u in batch] == before  # no update's fields are changed
    for fields in applied(merged)[0].values():
        assert fields["updated_at"] == 7
        assert fields["customer_id"] in {"c1", "c2", "c3"}


def test_values_are_json_and_extra_fields_follow() -> None:
    assert hset("k", {"a": [1, None], "b": "x"}, "at", b"1") == (
        "HSET",
        "k",
        "a",
        b"[1,null]",
        "b",
        b'"x"',
        "at",
        b"1",
    )
