"""Erasure: who was forgotten, remembered without remembering who.

A ``forget`` event erases a customer from every store the engine writes and
suppresses that id's later events.  To suppress them the engine must
recognise the id again, but keeping the id would defeat the erasure: it keeps
a 16-byte BLAKE2b digest of it instead (:func:`forget_digest`).  A
:class:`Forgotten` set of digests is shared by the steps of one process.

>>> f = Forgotten()
>>> "c1" in f, f.add("c1") == forget_digest("c1"), "c1" in f, "c2" in f
(False, True, True, False)
>>> forget_digest("c1").hex()[:8] != "c1"
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

DIGEST_BYTES = 16
_PERSON = b"cx-forget"


def forget_digest(key: str) -> bytes:
    """The digest kept for an erased customer key (customer id or anonymous id)."""
    return hashlib.blake2b(key.encode("utf-8"), digest_size=DIGEST_BYTES, person=_PERSON).digest()


class Forgotten:
    """The digests of the erased customer keys of this process.

    ``load`` (given by the flow's wiring) reads the stored list; it is called
    once, at the first question, so building a flow does no I/O.
    ``suppressed`` counts the events dropped because their customer was erased.

    >>> f = Forgotten(load=lambda: [forget_digest("gone")])
    >>> "gone" in f, len(f)
    (True, 1)
    """

    __slots__ = ("_digests", "_load", "suppressed")

    def __init__(
        self, digests: Iterable[bytes] = (), *, load: Callable[[], Iterable[bytes]] | None = None
    ) -> None:
        self._digests: set[bytes] = set(digests)
        self._load = load
        self.suppressed = 0

    @property
    def digests(self) -> set[bytes]:
        if self._load is not None:
            load, self._load = self._load, None
            self._digests.update(load())
        return self._digests

    def add(self, key: str) -> bytes:
        digest = forget_digest(key)
        self.digests.add(digest)
        return digest

    def update(self, digests: Iterable[bytes]) -> None:
        """Digests learned elsewhere (another process erased them)."""
        self.digests.update(digests)

    def __contains__(self, key: object) -> bool:
        digests = self.digests
        # The common case, nobody erased, costs no hashing.
        return bool(digests) and isinstance(key, str) and forget_digest(key) in digests

    def __len__(self) -> int:
        return len(self.digests)
