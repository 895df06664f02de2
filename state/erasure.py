"""Erasing a customer from Redis, and the suppression list.

:func:`erase` deletes a customer key's profile hash and its entries in its
event shard stream, the alerts stream and the dead-letter stream (a dead
letter is matched by the id's JSON string anywhere in its raw bytes, and its
original in whichever stream it came from goes too), then adds
the key's digest to ``cx:forgotten`` (the suppression list, loaded by every
flow process at start and refreshed while it runs) and records the erasure,
without the id, in ``cx:erasures`` (digest hex -> counts and time).  An entry
in ``cx:erasures`` is what ``cxstream forget --wait`` waits for.

Every step is idempotent: erasing twice deletes nothing more and records the
later time.  The streams are read in pages of :data:`PAGE` entries; a stream
of a million entries takes a few seconds, which an erasure can afford.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, cast

import orjson
import redis

from cxstream.errors import StoreError
from cxstream.settings import Settings
from operators.erasure import Forgotten, forget_digest
from state.keys import ALERTS, DLQ, EVENTS_PREFIX, KeyNames
from state.redis import connect

log = logging.getLogger(__name__)

FORGOTTEN = "cx:forgotten"
ERASURES = "cx:erasures"
PAGE = 1000


def stored_digests(client: redis.Redis) -> set[bytes]:
    """The suppression list as stored (digests only)."""
    try:
        return cast(set[bytes], client.smembers(FORGOTTEN))
    except redis.RedisError as exc:
        raise StoreError(f"reading {FORGOTTEN}: {exc}") from exc


def forgotten_from(settings: Settings) -> Forgotten:
    """The flow's suppression list, read from Redis when it is first needed."""

    def load() -> set[bytes]:
        client = connect(settings)
        try:
            digests = stored_digests(client)
        finally:
            client.close()
        if digests:
            log.info("%d erased customer(s) on the suppression list", len(digests))
        return digests

    return Forgotten(load=load)


def erasure_record(client: redis.Redis, key: str) -> dict[str, Any] | None:
    """What :func:`erase` recorded for ``key``, or None if it was never erased."""
    try:
        raw = client.hget(ERASURES, forget_digest(key).hex())
    except redis.RedisError as exc:
        raise StoreError(f"reading {ERASURES}: {exc}") from exc
    return None if raw is None else dict(orjson.loads(cast(bytes, raw)))


def erase(
    client: redis.Redis, key: str, *, shards: int | KeyNames, forgotten: Forgotten | None = None
) -> dict[str, Any]:
    """Delete everything stored of customer key ``key``; return the counts.

    ``shards``: the number of event shards, or the key names (hash-tagged on a cluster).
    """
    names = shards if isinstance(shards, KeyNames) else KeyNames(shards=shards)
    digest = forgotten.add(key) if forgotten is not None else forget_digest(key)
    needle = orjson.dumps(key)  # the id as a JSON string, as it sits in raw bytes

    # An id of plain ASCII is never escaped in JSON: entries without its JSON string
    # are skipped without parsing (other ids may come \u-escaped: every entry is parsed).
    plain = key.isascii() and key.isprintable() and not any(c in key for c in '"\\/')

    def mentions(data: bytes | None, names: tuple[str, ...]) -> bool:
        if data is None or (plain and needle not in data):
            return False
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return False
        return isinstance(obj, dict) and any(obj.get(n) == key for n in names)

    what = f"erasing a customer ({digest.hex()[:12]})"
    try:
        letters = _sweep(
            client,
            DLQ,
            lambda d: (
                d is not None and (needle in d or mentions(d, ("customer_id", "anonymous_id")))
            ),
        )
        # A dead letter's original stays in the stream it came from (any shard's).
        originals = 0
        for fields in letters:
            source, entry_id = fields.get(b"source", b""), fields.get(b"entry_id", b"")
            if source.startswith(EVENTS_PREFIX.encode()) and entry_id:
                originals += int(client.xdel(source, entry_id))
        events = _sweep(
            client,
            names.events_of(key),
            lambda d: mentions(d, ("customer_id", "anonymous_id")),
        )
        counts: dict[str, Any] = {
            "profile": int(client.delete(names.profile(key))),
            "events": len(events) + originals,
            "alerts": len(_sweep(client, ALERTS, lambda d: mentions(d, ("customer_id",)))),
            "dead_letters": len(letters),
        }
        counts["at"] = int(time.time() * 1000)
        pipe = client.pipeline(transaction=False)
        pipe.sadd(FORGOTTEN, digest)
        pipe.hset(ERASURES, digest.hex(), orjson.dumps(counts))
        pipe.execute()
    except redis.RedisError as exc:
        raise StoreError(f"{what}: {exc}") from exc
    log.info(
        "erased a customer (%s): %d event(s), %d alert(s), %d dead letter(s), profile %s",
        digest.hex()[:12],
        counts["events"],
        counts["alerts"],
        counts["dead_letters"],
        "deleted" if counts["profile"] else "absent",
    )
    return counts


def _sweep(
    client: redis.Redis, stream: str, matches: Callable[[bytes | None], bool]
) -> list[dict[bytes, bytes]]:
    """XDEL every entry of ``stream`` whose ``data`` field ``matches``; return their fields."""
    deleted: list[dict[bytes, bytes]] = []
    start: bytes | str = "-"
    while True:
        page = cast(
            "list[tuple[bytes, dict[bytes, bytes] | None]]",
            client.xrange(stream, min=start, max="+", count=PAGE),
        )
        if not page:
            return deleted
        doomed = [(eid, f or {}) for eid, f in page if matches((f or {}).get(b"data"))]
        if doomed:
            client.xdel(stream, *(eid for eid, _ in doomed))
            deleted += (fields for _, fields in doomed)
        if len(page) < PAGE:
            return deleted
        start = b"(" + page[-1][0]
