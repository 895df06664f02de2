"""Bounded memory of recently seen event ids, per customer.

Input is at-least-once: a channel system may XADD the same event twice, and a
restarted flow re-reads what came after its last snapshot.  Each customer keeps
the 64-bit digests of its last ``size`` event ids; an id seen among them is a
duplicate.

>>> seen = RecentIds(size=2)
>>> seen.add("a"), seen.add("a"), seen.add("b"), seen.add("c"), seen.add("a")
(True, False, True, True, True)
"""

from __future__ import annotations

from hashlib import blake2b
from typing import Final

from operators.errors import ConfigError

WIDTH: Final = 8  # bytes a digest


def id_digest(event_id: str) -> int:
    """A 64-bit digest of an event id (collisions ~1 in 10^17 per pair).

    >>> id_digest("e1") == int.from_bytes(_digest_bytes("e1"), "little")
    True
    """
    return int.from_bytes(_digest_bytes(event_id), "little")


# (a copy of a ready hasher, then the id: the constructor's keyword parsing and set-up
# took as long as the hashing; the digest is the same)
_HASHER: Final = blake2b(digest_size=WIDTH)


def _digest_bytes(event_id: str) -> bytes:
    """``blake2b(event_id.encode(), digest_size=8).digest()``.

    >>> _digest_bytes("e1") == blake2b(b"e1", digest_size=WIDTH).digest()
    True
    """
    h = _HASHER.copy()
    h.update(event_id.encode())
    return h.digest()


class RecentIds:
    """The last ``size`` distinct event ids of one customer, as digests.

    The digests are kept end to end in one ``bytearray`` (8 bytes each, oldest
    first): a lookup is a byte search in C, where the membership test of an
    ``array`` of integers makes a Python int of each entry.  The snapshot is
    their integer values (:func:`id_digest`), as before.
    """

    __slots__ = ("_ring", "size")

    def __init__(self, *, size: int = 32, digests: tuple[int, ...] = ()) -> None:
        if size < 1:
            raise ConfigError(f"dedupe window of {size} ids: it must hold at least 1")
        self.size = size
        kept = digests[-size:]
        self._ring = bytearray(b"".join([d.to_bytes(WIDTH, "little") for d in kept]))

    def add(self, event_id: str) -> bool:
        """Remember ``event_id``; return False when it was already seen."""
        digest = _digest_bytes(event_id)
        ring = self._ring
        at = ring.find(digest)
        while at >= 0:
            if at % WIDTH == 0:  # (a match across two digests is not one)
                return False
            at = ring.find(digest, at + 1)
        ring += digest
        if len(ring) > self.size * WIDTH:
            del ring[:WIDTH]  # (a bytearray drops its head without moving the rest)
        return True

    def snapshot(self) -> tuple[int, ...]:
        ring = self._ring
        return tuple(
            [int.from_bytes(ring[i : i + WIDTH], "little") for i in range(0, len(ring), WIDTH)]
        )
