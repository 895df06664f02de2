"""Writing and reading the audit trail ``cx:audit`` (see :mod:`operators.audit`).

Each entry is one field ``data`` (JSON).  Every write trims the entries older than
``CX_AUDIT_RETENTION_DAYS`` (``MINID ~``: Redis drops whole nodes, so a few older
entries may stay a little longer).  A consent change is written once per event
(a marker, kept as long as the trail, in the same cluster slot as the stream).

>>> audit_command({"what": "export"}, retention_days=1.0, now_ms=86_400_000 + 5)[:6]
('XADD', 'cx:audit', 'MINID', '~', '5-0', '*')
"""

from __future__ import annotations

from typing import Any, cast

import orjson
import redis

from cxstream.settings import Settings
from operators.audit import audit_digest, audit_key
from operators.errors import StoreError
from state.keys import AUDIT, written_key
from state.redis import Command

DAY_MS = 86_400_000

# XADD once: KEYS marker, stream; ARGV ttl, minid, fields...
_AUDIT_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return redis.call('XADD', KEYS[2], 'MINID', '~', ARGV[2], '*', unpack(ARGV, 3))
end
return false
"""


def _minid(retention_days: float, now_ms: int) -> str:
    return f"{max(0, now_ms - int(retention_days * DAY_MS))}-0"


def audit_command(
    entry: dict[str, Any], *, retention_days: float, now_ms: int, once: str | None = None
) -> Command:
    """XADD ``entry`` to the trail, trimming what is past retention; with ``once`` (the
    entry's reference), only if it was not written before."""
    data = orjson.dumps(entry)
    minid = _minid(retention_days, now_ms)
    if once is None:
        return ("XADD", AUDIT, "MINID", "~", minid, "*", "data", data)
    ttl = max(1, int(retention_days * 86_400))
    marker = written_key(AUDIT, once)
    return ("EVAL", _AUDIT_ONCE, 2, marker, AUDIT, ttl, minid, "data", data)


def secret_key(settings: Settings) -> bytes:
    """The key of the trail's digests, from CX_SECRET (or the data directory's key)."""
    return audit_key(settings.signing_secret().reveal())


def append(client: redis.Redis, entry: dict[str, Any], *, retention_days: float) -> None:
    """Write one entry now (an erasure, an export)."""
    now_ms = int(entry.get("at", 0))
    command = audit_command(entry, retention_days=retention_days, now_ms=now_ms)
    try:
        client.execute_command(*command)  # type: ignore[no-untyped-call]
    except redis.RedisError as exc:
        raise StoreError(f"writing the audit trail {AUDIT}: {exc}") from exc


def entries_of(client: redis.Redis, key: bytes, customer: str) -> list[dict[str, Any]]:
    """The trail's entries about ``customer`` (found by its keyed digest), oldest first."""
    digest = audit_digest(key, customer)
    out: list[dict[str, Any]] = []
    start: bytes | str = "-"
    while True:
        try:
            page = cast(
                "list[tuple[bytes, dict[bytes, bytes]]]",
                client.xrange(AUDIT, min=start, max="+", count=1000),
            )
        except redis.RedisError as exc:
            raise StoreError(f"reading the audit trail {AUDIT}: {exc}") from exc
        for entry_id, fields in page:
            try:
                obj = orjson.loads(fields.get(b"data", b""))
            except orjson.JSONDecodeError:
                continue
            if isinstance(obj, dict) and obj.get("customer") == digest:
                out.append({"id": entry_id.decode(), **obj})
        if len(page) < 1000:
            return out
        start = b"(" + page[-1][0]
