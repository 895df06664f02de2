from hypothesis import given
from hypothesis import strategies as st

from operators.dedupe import RecentIds


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
