"""The event contract: bytes from a channel system in, a validated :class:`Event` out.

Anything else raises :class:`~operators.errors.InvalidEvent` with a short reason,
which the flow writes to the dead-letter stream together with the raw bytes.

>>> e = parse_event(b'{"event_id":"e1","customer_id":"c1","ts":1700000000000,'
...                 b'"channel":"web","type":"page_view"}')
>>> e.key, e.ts, e.channel, e.type
('c1', 1700000000000, 'web', 'page_view')
>>> parse_event(b'{"event_id":"e1","ts":1,"channel":"web","type":"x"}')
Traceback (most recent call last):
...
operators.errors.InvalidEvent: customer_id missing: an event needs customer_id or anonymous_id
>>> shard_of("c1", 4)
1
"""

from __future__ import annotations

import hashlib
import sys
import zlib
from collections.abc import Callable, Iterable
from dataclasses import field
from datetime import datetime
from typing import Any, Final, Protocol, TypeGuard

import orjson

from operators.erasure import Forgotten, named_keys
from operators.errors import InvalidEvent
from operators.proactive import zone
from operators.values import CONTAINER, json_type, record

MAX_EVENT_BYTES: Final = 64 * 1024
# Containers nested in attrs, attrs itself counted: well within what orjson decodes
# (1024) and encodes (254), so whatever is accepted can be written and read back.
MAX_ATTRS_DEPTH: Final = 32
DEAD_LETTER_BYTES: Final = 4096  # a dead letter keeps this much of its raw input, and a digest
MAX_ID_CHARS: Final = 128
MAX_TYPE_CHARS: Final = 64
# 1970-01-01 .. 2200-01-01 in epoch milliseconds.
MIN_TS_MS: Final = 0
MAX_TS_MS: Final = 7_258_118_400_000

CHANNELS: Final = frozenset(
    ("web", "app", "chat", "voice", "ivr", "email", "sms", "social", "store", "crm", "survey")
)
KNOWN_TYPES: Final[tuple[str, ...]] = (
    "page_view",
    "search",
    "cart_abandon",
    "purchase",
    "payment_failed",
    "complaint",
    "complaint_resolved",
    "contact_start",
    "contact_end",
    "survey",
    "review",
    "offer_response",
    "identify",
    "subscription_change",
    "cancel",
    "forget",
    "outbound_delivered",
    "outbound_opened",
    "outbound_clicked",
    "consent",
)
KNOWN_TYPE_SET: Final = frozenset(KNOWN_TYPES)
# One str object per channel and known type: the journey keeps these in every
# touchpoint, so parsed copies would cost ~1 KB per customer.
_CANONICAL: Final[dict[str, str]] = {name: name for name in (*CHANNELS, *KNOWN_TYPES)}
RESPONSES: Final = frozenset(("accepted", "declined", "not_relevant"))
CONSENT_PURPOSES: Final[tuple[str, ...]] = ("marketing", "profiling", "contact")
CONSENT_CHANNELS: Final = CHANNELS | {"push"}  # where a customer may be reached, push included

# Typed attributes: name -> (low, high).  Others are kept as sent.
_NUMERIC_ATTRS: Final[dict[str, tuple[float, float]]] = {
    "sentiment": (-1.0, 1.0),
    "nps": (0.0, 10.0),
    "csat": (1.0, 5.0),
    "ces": (1.0, 7.0),
    "rating": (0.0, 5.0),
    "amount": (-1e9, 1e9),
}
_STRING_ATTRS: Final[tuple[str, ...]] = (
    "contact_id",
    "agent_id",
    "queue",
    "action_id",
    "alert_id",
    "topic",
)
_CHECKED_ATTRS: Final = frozenset((*_NUMERIC_ATTRS, *_STRING_ATTRS, "response", "tz"))


@record
class Event:
    """One validated interaction event.  ``ts`` is event time in epoch milliseconds."""

    event_id: str
    customer_id: str | None
    anonymous_id: str | None
    ts: int
    channel: str
    type: str
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The id this event's journey is kept under: customer_id, else anonymous_id."""
        key = self.customer_id or self.anonymous_id
        assert key is not None  # parse_event guarantees one of them
        return key

    def to_json(self) -> dict[str, Any]:
        """The contract's JSON shape (``ts`` as epoch milliseconds)."""
        out: dict[str, Any] = {"event_id": self.event_id}
        if self.customer_id is not None:
            out["customer_id"] = self.customer_id
        if self.anonymous_id is not None:
            out["anonymous_id"] = self.anonymous_id
        out.update(ts=self.ts, channel=self.channel, type=self.type, attrs=dict(self.attrs))
        return out


@record
class Rejected:
    """Raw input that broke the event contract, bound for the dead-letter stream."""

    source: str  # where it came from, e.g. "cx:events:3" or "ingest"
    entry_id: str
    raw: bytes
    reason: str
    detail: str


@record
class Suppressed:
    """A stream entry of an erased customer: deleted unprocessed, and counted."""

    source: str
    entry_id: str


def number(value: object) -> float | None:
    """An attr's value as a float if it is a number (a bool is not), else None.

    >>> number(2), number(2.5), number(True), number("2"), number(None)
    (2.0, 2.5, None, None, None)
    """
    # (one type check each, in C: ``isinstance(v, (int, float))`` walks a tuple)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return None


def shard_of(key: str, shards: int) -> int:
    """The event shard of a customer: crc32 of the UTF-8 id, mod ``shards``."""
    return zlib.crc32(key.encode("utf-8")) % shards


def _id(obj: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = obj.get(name)
    if type(value) is str and 0 < len(value) <= MAX_ID_CHARS:  # the common case first
        return value
    if value is None:
        if required:
            raise InvalidEvent(f"{name} missing")
        return None
    if not isinstance(value, str):
        raise InvalidEvent(f"{name} not a string", f"got {json_type(value)}")
    if not 1 <= len(value) <= MAX_ID_CHARS:
        raise InvalidEvent(f"{name} length", f"{len(value)} chars, allowed 1-{MAX_ID_CHARS}")
    return value


def parse_ts(value: object) -> int:
    """Event time as epoch milliseconds, from epoch ms or an RFC 3339 string.

    >>> parse_ts("2024-03-01T12:00:00Z")
    1709294400000
    >>> parse_ts("2024-03-01T13:00:00.250+01:00")
    1709294400250
    >>> parse_ts(1709294400000)
    1709294400000
    """
    if type(value) is int and MIN_TS_MS <= value <= MAX_TS_MS:  # the common case first
        return value
    if isinstance(value, bool) or value is None:
        raise InvalidEvent("ts missing" if value is None else "ts not a time", repr(value))
    if isinstance(value, int):
        ms = value
    elif isinstance(value, str):
        if not 10 <= len(value) <= 40:
            raise InvalidEvent("ts not rfc 3339", repr(value[:40]))
        try:
            dt = datetime.fromisoformat(value)
        except ValueError as exc:
            raise InvalidEvent("ts not rfc 3339", repr(value)) from exc
        if dt.tzinfo is None:
            raise InvalidEvent("ts has no utc offset", repr(value))
        ms = round(dt.timestamp() * 1000)
    else:
        raise InvalidEvent("ts not a time", f"got {json_type(value)}")
    if not MIN_TS_MS <= ms <= MAX_TS_MS:
        raise InvalidEvent("ts out of range", str(ms))
    return ms


def _attrs(value: object) -> dict[str, Any]:
    """The typed attributes checked (in the order sent: the first fault is reported)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidEvent("attrs not an object", f"got {json_type(value)}")
    for name, v in value.items():
        if v is None or name not in _CHECKED_ATTRS:
            continue
        bounds = _NUMERIC_ATTRS.get(name)
        if bounds is not None:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise InvalidEvent(f"attrs.{name} not a number", repr(v)[:40])
            low, high = bounds
            if not low <= v <= high:
                raise InvalidEvent(f"attrs.{name} out of range", f"{v} not in {low:g}..{high:g}")
        elif name == "response":
            if not isinstance(v, str) or v not in RESPONSES:
                raise InvalidEvent("attrs.response unknown", repr(v)[:40])
        elif name == "tz":
            if not isinstance(v, str) or len(v) > 64 or zone(v) is None:
                raise InvalidEvent("attrs.tz not a time zone", f"{str(v)[:40]!r}: use an IANA name")
        elif not isinstance(v, str) or not 1 <= len(v) <= MAX_ID_CHARS:
            raise InvalidEvent(f"attrs.{name} not an id", repr(v)[:40])
    return value


def _consent(attrs: object) -> None:
    """A ``consent`` event's attributes: ``purpose``, ``granted`` (a bool), optional
    ``channel`` and ``source``.

    >>> _consent({"purpose": "marketing", "granted": False, "channel": "sms"})
    >>> _consent({"purpose": "marketing", "granted": "no"})
    Traceback (most recent call last):
    ...
    operators.errors.InvalidEvent: attrs.granted not a boolean: 'no'
    """
    if attrs is None:
        raise InvalidEvent("attrs.purpose missing", "a consent event needs purpose and granted")
    if not isinstance(attrs, dict):
        raise InvalidEvent("attrs not an object", f"got {json_type(attrs)}")
    purpose = attrs.get("purpose")
    if purpose is None:
        raise InvalidEvent("attrs.purpose missing", "a consent event needs purpose and granted")
    if purpose not in CONSENT_PURPOSES:
        raise InvalidEvent(
            "attrs.purpose unknown", f"{str(purpose)[:40]!r}: use {', '.join(CONSENT_PURPOSES)}"
        )
    granted = attrs.get("granted")
    if not isinstance(granted, bool):
        reason = "attrs.granted missing" if granted is None else "attrs.granted not a boolean"
        raise InvalidEvent(reason, repr(granted)[:40])
    channel = attrs.get("channel")
    if channel is not None and (not isinstance(channel, str) or channel not in CONSENT_CHANNELS):
        raise InvalidEvent(
            "attrs.channel unknown",
            f"{str(channel)[:40]!r}: use one of {', '.join(sorted(CONSENT_CHANNELS))}",
        )
    source = attrs.get("source")
    if source is not None and (not isinstance(source, str) or not 1 <= len(source) <= 64):
        detail = f"{len(source)} chars" if isinstance(source, str) else json_type(source)
        raise InvalidEvent("attrs.source not a short string", f"{detail}, allowed 1-64 chars")


def _too_deep(attrs: dict[str, Any]) -> bool:
    """Whether containers nest deeper than :data:`MAX_ATTRS_DEPTH` in ``attrs``.

    >>> _too_deep({"a": 1, "b": [1, {"c": "d"}]})
    False
    >>> nested: dict[str, Any] = {}
    >>> for _ in range(MAX_ATTRS_DEPTH): nested = {"a": nested}
    >>> _too_deep(nested["a"]), _too_deep(nested)
    (False, True)
    """
    # (the types written out: compiled, two checks in C, where the global tuple
    # ``CONTAINER`` is looked up and walked at each value)
    stack = [(v, 2) for v in attrs.values() if isinstance(v, (dict, list))]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_ATTRS_DEPTH:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack += [(c, depth + 1) for c in children if isinstance(c, (dict, list))]
    return False


def event_from_obj(obj: object) -> Event:
    """Validate an already-decoded JSON value against the event contract."""
    if not isinstance(obj, dict):
        raise InvalidEvent("not an object", f"got {json_type(obj)}")
    event_id = _id(obj, "event_id", required=True)
    customer_id = _id(obj, "customer_id", required=False)
    anonymous_id = _id(obj, "anonymous_id", required=False)
    if customer_id is None and anonymous_id is None:
        raise InvalidEvent("customer_id missing", "an event needs customer_id or anonymous_id")
    ts = parse_ts(obj.get("ts"))
    channel = obj.get("channel")
    if not isinstance(channel, str) or channel not in CHANNELS:
        raise InvalidEvent("channel unknown", repr(channel)[:40])
    type_ = obj.get("type")
    if not isinstance(type_, str) or not 1 <= len(type_) <= MAX_TYPE_CHARS:
        raise InvalidEvent("type missing" if type_ is None else "type not a short string")
    attrs = obj.get("attrs")
    if type(attrs) is dict and _too_deep(attrs):
        raise InvalidEvent("attrs nested too deep", f"more than {MAX_ATTRS_DEPTH} levels")
    assert event_id is not None
    if type_ == "consent":
        _consent(attrs)
    return Event(
        event_id,
        customer_id,
        anonymous_id,
        ts,
        _CANONICAL[channel],
        _CANONICAL.get(type_) or sys.intern(type_),
        attrs if type(attrs) is dict and _CHECKED_ATTRS.isdisjoint(attrs) else _attrs(attrs),
    )


def sendable_event(obj: object) -> Event:
    """An event a channel system may send: the contract's checks
    (:func:`event_from_obj`) and its size as the flow will read it (:func:`check_size`).

    >>> sendable_event({"event_id": "e1", "customer_id": "c1", "ts": 1, "channel": "web",
    ...     "type": "page_view", "attrs": {"note": "x" * 70_000}})
    Traceback (most recent call last):
    ...
    operators.errors.InvalidEvent: too large: 70098 bytes as json, limit 65536
    """
    event = event_from_obj(obj)
    check_size(event)
    return event


def check_size(event: Event) -> None:
    """Refuse an event whose JSON, as the engine writes it, is over the limit (it may be
    longer than as sent: ``1e9`` is written ``1000000000.0``): accepted, the flow would
    dead-letter it as too large."""
    size = len(encode_event(event))
    if size > MAX_EVENT_BYTES:
        raise InvalidEvent("too large", f"{size} bytes as json, limit {MAX_EVENT_BYTES}")


def parse_event(raw: bytes) -> Event:
    """Decode and validate one event; raise :class:`InvalidEvent` with the reason."""
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEvent("too large", f"{len(raw)} bytes, limit {MAX_EVENT_BYTES}")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent("not json", str(exc)[:120]) from exc
    return event_from_obj(obj)


def encode_event(event: Event) -> bytes:
    """The wire form of an event (what channel systems XADD as field ``data``)."""
    return orjson.dumps(event.to_json())


def dead_letter_fields(rejected: Rejected, *, at_ms: int) -> dict[str, bytes]:
    """The fields of ``rejected``'s entry in the dead-letter stream.

    ``data`` is the raw input up to its first :data:`DEAD_LETTER_BYTES` bytes;
    ``size`` and ``digest`` (SHA-256 hex) are those of the whole; ``customer`` and
    ``anonymous`` are the ids it names (:func:`operators.erasure.named_keys`), so
    that an erasure finds it however little of it is kept.

    >>> f = dead_letter_fields(Rejected("ingest", "0", b'{"customer_id":"c1"' + b" " * 5000,
    ...     "not json", "eof"), at_ms=1)
    >>> len(f["data"]), f["size"], f["customer"], f["reason"]
    (4096, b'5019', b'c1', b'not json')
    """
    raw = rejected.raw
    fields = {
        "data": raw[:DEAD_LETTER_BYTES],
        "reason": rejected.reason.encode(),
        "detail": rejected.detail.encode(),
        "source": rejected.source.encode(),
        "entry_id": rejected.entry_id.encode(),
        "at": str(at_ms).encode(),
        "size": str(len(raw)).encode(),
        "digest": hashlib.sha256(raw).hexdigest().encode(),
    }
    named = named_keys(raw)
    for name, store_as in (("customer_id", "customer"), ("anonymous_id", "anonymous")):
        if name in named:
            fields[store_as] = named[name].encode()
    return fields


def encodable(obj: object) -> bytes:
    """``obj`` as JSON, containers nested deeper than :data:`MAX_ATTRS_DEPTH` written
    as ``"..."``: raw input to keep when the bytes it came in are not at hand.

    >>> encodable({"a": [1, {"b": None}]})
    b'{"a":[1,{"b":null}]}'
    >>> deep: list[Any] = []
    >>> for _ in range(300): deep = [deep]
    >>> encodable(deep).count(b"[") == MAX_ATTRS_DEPTH
    True
    """

    def clip(item: object, depth: int) -> object:
        if not isinstance(item, CONTAINER):
            return item
        if depth > MAX_ATTRS_DEPTH:
            return "..."
        if isinstance(item, dict):
            return {k: clip(v, depth + 1) for k, v in item.items()}
        return [clip(v, depth + 1) for v in item]

    try:
        return orjson.dumps(obj)
    except orjson.JSONEncodeError:
        return orjson.dumps(clip(obj, 1))


def parse_entry(source: str, entry_id: str | bytes, data: bytes | None) -> Event | Rejected:
    """Parse one stream entry; a contract breach becomes a :class:`Rejected` value.

    >>> parse_entry("cx:events:0", "1-0", b"{oops").reason
    'not json'
    >>> parse_entry("cx:events:0", b"1-1", None).entry_id
    '1-1'
    """
    if data is None:
        return Rejected(
            source, id_text(entry_id), b"", "no data field", "the entry has no field 'data'"
        )
    try:
        return parse_event(data)
    except InvalidEvent as exc:
        return Rejected(source, id_text(entry_id), data, exc.reason, exc.detail)


def id_text(entry_id: str | bytes) -> str:
    """A stream entry's id as text (Redis gives bytes: decoded only when it is kept)."""
    return entry_id if isinstance(entry_id, str) else entry_id.decode()


@record
class Read:
    """What one read of a shard stream brought, as Redis gives it: each entry its id
    and its flat ``[field, value, ...]`` list (bytes).  The source hands a read whole,
    so Bytewax moves one item a read and no object is made for an entry until
    :func:`parse_batch` takes it apart."""

    stream: str
    entries: list[Any]  # [(id, [field, value, ...] | None), ...] as the Redis client reads them


def data_field(fields: list[bytes] | None) -> bytes | None:
    """The ``data`` field of an entry's flat ``[field, value, ...]`` list, if any.

    >>> data_field([b"data", b"{}"]), data_field([b"other", b"1", b"data", b"{}"]), data_field(None)
    (b'{}', b'{}', None)
    """
    if not fields:
        return None
    if fields[0] == b"data":
        return fields[1]
    for i in range(0, len(fields) - 1, 2):
        if fields[i] == b"data":
            return fields[i + 1]
    return None


class StreamEntry(Protocol):
    """What a source hands over: the stream, the entry id and the ``data`` field."""

    @property
    def stream(self) -> str: ...

    @property
    def entry_id(self) -> str: ...

    @property
    def data(self) -> bytes | None: ...


Keyed = tuple[str, Event]


def parse_batch(
    entries: Iterable[StreamEntry | Read],
    forgotten: Forgotten | None = None,
    enrich: Callable[[Event], Event] | None = None,
) -> list[Keyed | Rejected | Suppressed]:
    """Parse a batch of entries (or whole :class:`Read` s): each event keyed by its
    customer, or a Rejected.

    One call per batch (Bytewax's ``flat_map_batch``) instead of a parse, a
    filter and a key step for every event.  An event of an erased customer
    (in ``forgotten``) becomes a :class:`Suppressed`, except a ``forget``
    itself (erasing again does no harm, and finishes an interrupted erasure).
    ``enrich`` may add to an event with text (``attrs.text``: its sentiment and topic);
    the others are not handed to it (a call each, with nothing to do, was a tenth of the
    parse).

    >>> from types import SimpleNamespace as E
    >>> ok = (b'{"event_id":"e1","customer_id":"c1","ts":1767225600000,'
    ...       b'"channel":"web","type":"page_view"}')
    >>> [type(x).__name__ for x in parse_batch([E(stream="s", entry_id="1-0", data=ok),
    ...                                          E(stream="s", entry_id="1-1", data=b"{")])]
    ['tuple', 'Rejected']
    >>> parse_batch([E(stream="s", entry_id="1-0", data=ok)])[0][0]
    'c1'
    >>> [type(x).__name__ for x in parse_batch([Read("s", [(b"1-0", [b"data", ok]),
    ...                                                    (b"1-1", None)])])]
    ['tuple', 'Rejected']
    """
    out: list[Keyed | Rejected | Suppressed] = []
    erased = forgotten if forgotten is not None and len(forgotten) else None
    for entry in entries:
        if isinstance(entry, Read):
            stream = entry.stream
            for entry_id, fields in entry.entries:
                _parse_into(out, stream, entry_id, data_field(fields), erased, enrich)
        else:
            _parse_into(out, entry.stream, entry.entry_id, entry.data, erased, enrich)
    return out


def _parse_into(
    out: list[Keyed | Rejected | Suppressed],
    stream: str,
    entry_id: str | bytes,
    data: bytes | None,
    erased: Forgotten | None,
    enrich: Callable[[Event], Event] | None,
) -> None:
    parsed = parse_entry(stream, entry_id, data)
    if not isinstance(parsed, Event):
        out.append(parsed)
    elif erased is not None and parsed.type != "forget" and parsed.key in erased:
        erased.suppressed += 1
        out.append(Suppressed(stream, id_text(entry_id)))
    elif enrich is not None and "text" in parsed.attrs:
        out.append((parsed.key, enrich(parsed)))
    else:
        out.append((parsed.key, parsed))


def is_keyed(item: Keyed | Rejected | Suppressed) -> TypeGuard[Keyed]:
    return type(item) is tuple


def is_rejected(item: object) -> TypeGuard[Rejected]:
    return type(item) is Rejected
