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
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson

DIGEST_BYTES = 16
_PERSON = b"cx-forget"
KEY_FIELDS = ("customer_id", "anonymous_id")  # the fields of an event that name a customer
_STRING = re.compile(rb'"((?:[^"\\]|\\.)*)"', re.DOTALL)  # a JSON string literal
# "name": "value", two string literals
_PAIR = re.compile(rb'"((?:[^"\\]|\\.)*)"\s*:\s*"((?:[^"\\]|\\.)*)"', re.DOTALL)
SCAN_BYTES = 1 << 20  # raw input longer than this is searched in its first SCAN_BYTES only


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


def mentions(data: bytes | None, key: str, *, anywhere: bool = False) -> bool:
    r"""Whether raw JSON bytes name customer key ``key``, however the id is written.

    By default the id must be the value of a field that names a customer
    (:data:`KEY_FIELDS`, at the top of an object); with ``anywhere``, any string
    of the document counts (a dead letter: whatever it was meant to be).  JSON
    may write any character of the id as a ``\u`` escape, so bytes holding a
    backslash are always decoded; bytes that do not decode (broken JSON, nested
    too deep) are searched string literal by string literal.

    >>> mentions(b'{"customer_id":"c-1","type":"x"}', "c-1")
    True
    >>> mentions(b'{"customer_id":"c-\\u0031"}', "c-1")  # an escaped "1"
    True
    >>> mentions(b'{"customer_id":"c-2","text":"c-1"}', "c-1"), mentions(
    ...     b'{"customer_id":"c-2","text":"c-1"}', "c-1", anywhere=True)
    (False, True)
    >>> mentions(b'{"customer_id":"c-\\u0031", "ts": oops', "c-1")  # not JSON at all
    True
    """
    if not data:
        return False
    needle = orjson.dumps(key)
    if needle not in data and b"\\" not in data:
        return False  # no escape anywhere: the id would appear as it is
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return any(_unescape(m) == key for m in _STRING.findall(data))
    if anywhere:
        return any(s == key for s in _strings(obj))
    return isinstance(obj, dict) and any(obj.get(name) == key for name in KEY_FIELDS)


def named_keys(data: bytes) -> dict[str, str]:
    r"""The customer keys raw input names, by field (:data:`KEY_FIELDS`), however
    they are written; for a dead letter, whose raw bytes may be kept only in part.

    JSON is decoded (the fields at the top of the object); broken JSON, JSON
    nested too deep to decode and input past :data:`SCAN_BYTES` are searched for
    ``"field": "id"`` pairs anywhere.

    >>> named_keys(b'{"customer_id":"c-\\u0031","anonymous_id":"a1","ts":1}')
    {'customer_id': 'c-1', 'anonymous_id': 'a1'}
    >>> named_keys(b'{"anonymous_id" : "a1", "ts": oops')
    {'anonymous_id': 'a1'}
    >>> named_keys(b'[1, 2]'), named_keys(b'{"customer_id": 7}')
    ({}, {})
    """
    if len(data) <= SCAN_BYTES:
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # broken or too deep: searched below
        else:
            if not isinstance(obj, dict):
                return {}
            return {f: v for f in KEY_FIELDS if isinstance(v := obj.get(f), str) and v}
    found: dict[str, str] = {}
    for name, value in _PAIR.findall(data[:SCAN_BYTES]):
        field = _unescape(name)
        if field in KEY_FIELDS and field not in found:
            found[field] = _unescape(value)
    return found


def _unescape(body: bytes) -> str:
    try:
        return str(orjson.loads(b'"' + body + b'"'))
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace")


def _strings(obj: Any) -> Iterator[str]:
    """Every string of a decoded JSON value, object keys included (no recursion limit)."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            yield from item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
