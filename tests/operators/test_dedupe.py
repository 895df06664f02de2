from hashlib import blake2b

from hypothesis import given, settings
from hypothesis import strategies as st

from operators.dedupe import RecentIds, _digest_bytes, id_digest


def test_duplicates_within_the_window_are_caught() -> None:
    seen = RecentIds(size=3)
    assert [seen.add(x) for x in "abcab"] == [True, True, True, False, False]


def test_window_is_bounded_and_old_ids_are_forgotten() -> None:
    seen = RecentIds(size=2)
    for x in "abc":
        seen.add(x)
    assert len(seen.snapshot()) == 2
    assert seen.add("a") is True


@given(st.lists(st.text(max_size=5), max_size=200), st.integers(1, 40))
def test_memory_never_exceeds_size_and_snapshot_restores(ids: list[str], size: int) -> None:
    seen = RecentIds(size=size)
    for i in ids:
        seen.add(i)
        assert len(seen.snapshot()) <= size
    restored = RecentIds(size=size, digests=seen.snapshot())
    assert restored.snapshot() == seen.snapshot()
    if ids:
        assert restored.add(ids[-1]) is False


@given(st.text(max_size=8), st.integers(1, 7), st.binary(min_size=16, max_size=16))
def test_a_digest_across_two_stored_digests_is_not_a_duplicate(
    event_id: str, cut: int, filler: bytes
) -> None:
    from operators.dedupe import id_digest

    digest = id_digest(event_id).to_bytes(8, "little")
    # two stored digests whose bytes, end to end, hold this id's digest at offset ``cut``
    first = filler[:cut] + digest[: 8 - cut]
    second = digest[8 - cut :] + filler[8 + cut - 8 : 8]
    stored = (int.from_bytes(first, "little"), int.from_bytes(second, "little"))
    seen = RecentIds(size=4, digests=stored)
    assert seen.snapshot() == stored
    assert seen.add(event_id) is (id_digest(event_id) not in stored)
    assert seen.add(event_id) is False


def test_the_snapshot_is_the_digests_as_integers_oldest_first() -> None:
    from operators.dedupe import id_digest

    seen = RecentIds(size=2)
    for x in "abc":
        seen.add(x)
    assert seen.snapshot() == (id_digest("b"), id_digest("c"))


def test_a_window_of_no_ids_is_refused() -> None:
    import pytest

    from operators.errors import ConfigError

    with pytest.raises(ConfigError, match="dedupe window of 0 ids"):
        RecentIds(size=0, digests=(1, 2))


@settings(max_examples=300)
@given(st.lists(st.text(max_size=80), max_size=20))
def test_the_digest_is_the_ids_blake2b_whatever_came_before(ids: list[str]) -> None:
    """The ready hasher is copied, never changed: each id's digest is its own."""
    for event_id in ids:
        expected = blake2b(event_id.encode(), digest_size=8).digest()
        assert _digest_bytes(event_id) == expected
        assert id_digest(event_id) == int.from_bytes(expected, "little")
