"""The right of access: everything cxstream holds about one customer, as one document.

:func:`export` finds what an erasure would delete (:func:`state.erasure.locate`, the
same search) and what the flow keeps in Redis for the customer:

- ``profile``: the customer's profile hash (the 360 view: the journey summary, the
  latest risk and action, the consents, the pending examples' times), which the flow
  writes from the state it holds in memory;
- ``journey``, ``consent``, ``pending_examples``: taken from it, for reading;
- ``events``: the customer's entries in its event shard stream (and a dead letter's
  original, in whichever shard it came), each decoded;
- ``alerts``, ``outbound``, ``dead_letters``: its entries in those streams;
- ``recovery``: with ``CX_RECOVERY_DIR``, its snapshots there (its journey state, and
  the identity step's links of its anonymous ids);
- ``linked``: the anonymous ids the customer's own events name, each exported alike.

An erased customer (its digest on the suppression list) has nothing: every section
is empty and ``erased`` is true.  The audit trail's entries about the customer are
not part of the export: they hold no personal data, only a keyed digest, and are
kept as the record that the rights were honoured.
"""

from __future__ import annotations

import pickle
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import redis

from operators.erasure import forget_digest
from operators.errors import ConfigError, StoreError
from state.erasure import locate
from state.keys import FORGOTTEN, KeyNames
from state.profiles import decode_profile
from state.recovery import IDENTITY_STEP, JOURNEY_STEP, partitions

SECTIONS = ("events", "alerts", "outbound", "dead_letters")


_NUMBERS = frozenset(("at", "size"))  # a dead letter's numeric fields


def _decode(fields: dict[bytes, bytes]) -> dict[str, Any]:
    """An entry's fields: ``data`` decoded as JSON where it is JSON, ``at`` and ``size``
    as numbers, the rest as text."""
    out: dict[str, Any] = {}
    for name, value in sorted(fields.items()):
        text = name.decode(errors="replace")
        if text == "data":
            try:
                out[text] = orjson.loads(value)
                continue
            except orjson.JSONDecodeError:
                pass
        elif text in _NUMBERS and value.isdigit():
            out[text] = int(value)
            continue
        out[text] = value.decode(errors="replace")
    return out


def _key_export(client: redis.Redis, key: str, names: KeyNames) -> dict[str, Any]:
    held = locate(client, key, names)
    raw = client.hgetall(names.profile(key))
    profile = decode_profile(raw) if raw else None  # type: ignore[arg-type]
    events = [
        {"stream": held.stream, "id": eid.decode(), **_decode(fields)}
        for eid, fields in held.events
    ]
    events += [
        {"stream": stream, "id": eid.decode(), **_decode(fields)}
        for stream, eid, fields in held.originals
        if not (stream == held.stream and any(e["id"] == eid.decode() for e in events))
    ]
    return {
        "profile": profile,
        "journey": (profile or {}).get("journey"),
        "consent": (profile or {}).get("consent") or {},
        "pending_examples": {
            "count": int((profile or {}).get("pending_examples") or 0),
            "snapshot_ts": list((profile or {}).get("pending_snapshot_ts") or []),
        },
        "events": events,
        "alerts": [
            {"stream": stream, "id": eid.decode(), **_decode(f)} for stream, eid, f in held.alerts
        ],
        "outbound": [{"id": eid.decode(), **_decode(f)} for eid, f in held.outbound],
        "dead_letters": [{"id": eid.decode(), **_decode(f)} for eid, f in held.dead_letters],
        "anonymous_ids": sorted(held.anonymous - {key}),
    }


def recovery_state(directory: Path, key: str) -> list[dict[str, Any]]:
    """The customer's snapshots in the recovery partitions (its journey; the links of
    anonymous ids to it), newest epoch first, decoded into plain JSON values.  A folder
    not made yet holds none; a file where the folder should be is an error (an answer
    of "nothing held" would not be known true)."""
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"CX_RECOVERY_DIR={directory}: not a folder")
    out: list[dict[str, Any]] = []
    for path in partitions(directory):
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as conn:
            rows = conn.execute(
                "SELECT step_id, snap_epoch, ser_change FROM snaps"
                " WHERE step_id LIKE ? AND state_key = ?",
                (JOURNEY_STEP, key),
            ).fetchall()
            # the identity step: an anonymous id's link to its customer (keyed by the
            # anonymous id, holding the customer's id)
            rows += conn.execute(
                "SELECT step_id, snap_epoch, ser_change FROM snaps WHERE step_id LIKE ?"
                " AND (state_key = ? OR instr(ser_change, ?) > 0)",
                (IDENTITY_STEP, key, key.encode()),
            ).fetchall()
        for step_id, epoch, blob in rows:
            if blob is None:
                continue
            snapshot = pickle.loads(blob)  # noqa: S301 (written by this flow)
            out.append({"step": step_id, "epoch": epoch, "state": _plain(snapshot)})
    out.sort(key=lambda s: s["epoch"], reverse=True)
    return out


def _plain(value: Any) -> Any:
    """A snapshot as JSON values (tuples as lists, bytes as hex)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def export(
    client: redis.Redis,
    key: str,
    names: KeyNames,
    *,
    anonymous: bool = False,
    recovery_dir: Path | None = None,
    at_ms: int,
) -> dict[str, Any]:
    """Everything held about customer key ``key`` (a customer id, or with ``anonymous``
    an anonymous id), as one JSON-ready document."""
    try:
        erased = bool(client.sismember(FORGOTTEN, forget_digest(key)))  # type: ignore[arg-type]
        doc: dict[str, Any] = {
            "customer_id": None if anonymous else key,
            "anonymous_id": key if anonymous else None,
            "exported_at": at_ms,
            "exported_at_utc": datetime.fromtimestamp(at_ms / 1000, tz=UTC).isoformat(
                timespec="seconds"
            ),
            "erased": erased,
        }
        if erased:
            doc.update(_empty())
            doc["linked"] = []
            doc["recovery"] = []
            return doc
        own = _key_export(client, key, names)
        others = own.pop("anonymous_ids")
        doc.update(own)
        doc["linked"] = []
        for other in others:
            if client.sismember(FORGOTTEN, forget_digest(other)):  # type: ignore[arg-type]
                continue
            theirs = _key_export(client, other, names)
            theirs.pop("anonymous_ids")
            doc["linked"].append({"anonymous_id": other, **theirs})
    except redis.RedisError as exc:
        raise StoreError(f"exporting a customer: {exc}") from exc
    doc["recovery"] = recovery_state(recovery_dir, key) if recovery_dir is not None else []
    return doc


def _empty() -> dict[str, Any]:
    return {
        "profile": None,
        "journey": None,
        "consent": {},
        "pending_examples": {"count": 0, "snapshot_ts": []},
        **{name: [] for name in SECTIONS},
    }


def counts(doc: dict[str, Any]) -> dict[str, int]:
    """How much an export held, by section (for the audit trail: no ids, no content)."""
    out = {name: len(doc.get(name) or []) for name in SECTIONS}
    out["profile"] = int(doc.get("profile") is not None)
    out["linked"] = len(doc.get("linked") or [])
    return out
