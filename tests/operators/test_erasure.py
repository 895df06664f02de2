from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from operators.erasure import DIGEST_BYTES, Forgotten, forget_digest


def test_membership_is_by_digest_and_the_id_is_not_kept() -> None:
    f = Forgotten()
    assert "c1" not in f
    assert len(f) == 0
    f.add("c1")
    assert "c1" in f
    assert "c2" not in f
    assert f.digests == {forget_digest("c1")}
    assert all(b"c1" not in d for d in f.digests)


def test_the_stored_list_is_loaded_once_at_the_first_question() -> None:
    calls: list[int] = []

    def load() -> list[bytes]:
        calls.append(1)
        return [forget_digest("gone")]

    f = Forgotten(load=load)
    assert calls == []  # building costs no I/O
    assert "gone" in f
    assert "kept" not in f
    assert len(f) == 1
    f.update([forget_digest("later")])
    assert "later" in f
    assert calls == [1]


def test_non_strings_are_never_members() -> None:
    f = Forgotten([forget_digest("1")])
    assert 1 not in f
    assert None not in f


@given(st.text(min_size=1, max_size=128), st.text(min_size=1, max_size=128))
def test_digests_are_fixed_size_and_tell_ids_apart(a: str, b: str) -> None:
    assert len(forget_digest(a)) == DIGEST_BYTES
    assert (forget_digest(a) == forget_digest(b)) == (a == b)
