"""The Redis writes of cxstream as plain commands, one builder per kind of write.

Every writer (the flow's sinks, ``cxstream send`` and ``replay``, the server's
``/ingest`` and its agents' answers, the demo) builds its writes here and sends
them on its own client, synchronous or asyncio (``pipe.execute_command(*c)``):
one field layout and one trimming policy per stream (:mod:`state.keys`).

>>> from operators.events import Event
>>> names = KeyNames(shards=4)
>>> add_event(names, Event("e1", "c1", None, 5, "web", "page_view", {}))[:6]
('XADD', 'cx:events:1', 'MAXLEN', '~', 10000000, '*')
>>> answer = {"action_id": "offer", "agent_id": "a1", "response": "accepted"}
>>> count_answer(Event("e2", "c1", None, 9, "crm", "offer_response", answer))[0]
('HINCRBY', 'cx:nba:answers', 'action|offer|accepted', 1)
"""

from __future__ import annotations

from typing import Any

import orjson

from operators.events import Event, Rejected, dead_letter_fields, encode_event
from state.keys import (
    ANSWERED_PREFIX,
    ANSWERED_TTL_S,
    ANSWERS,
    DLQ,
    DLQ_MAXLEN,
    EVENTS_MAXLEN,
    FLOW,
    KeyNames,
    answer_fields,
)
from state.redis import Command


def xadd(stream: str, maxlen: int, *fields: str | bytes) -> Command:
    """XADD to ``stream``, trimmed to about ``maxlen``; ``fields`` as name, value, ..."""
    return ("XADD", stream, "MAXLEN", "~", maxlen, "*", *fields)


# XADD only if the marker is new (atomic): KEYS marker, stream; ARGV ttl, maxlen, fields...
_XADD_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
end
return false
"""


def xadd_once(stream: str, marker: str, ttl_s: int, maxlen: int, *fields: str | bytes) -> Command:
    """XADD to ``stream`` unless ``marker`` is set, setting it for ``ttl_s`` (one
    script: a replay or a retried batch writes an entry once)."""
    return ("EVAL", _XADD_ONCE, 2, marker, stream, max(1, ttl_s), maxlen, *fields)


def hset(key: str, fields: dict[str, Any], *extra: str | bytes) -> Command:
    """HSET ``fields`` (each value as JSON) and ``extra`` (name, value, ...) on ``key``."""
    args: list[str | bytes] = ["HSET", key]
    for name, value in fields.items():
        args += (name, orjson.dumps(value))
    return (*args, *extra)


def add_event(names: KeyNames, event: Event) -> Command:
    """An event into its customer's shard stream (field ``data``, the event's JSON)."""
    return xadd(names.events_of(event.key), EVENTS_MAXLEN, "data", encode_event(event))


def dead_letter(letter: Rejected, *, at_ms: int) -> Command:
    """A rejected input into the dead-letter stream (:func:`dead_letter_fields`)."""
    fields = dead_letter_fields(letter, at_ms=at_ms)
    return xadd(DLQ, DLQ_MAXLEN, *(x for kv in fields.items() for x in kv))


def flow_read(positions: dict[str, tuple[str, int]], *, at_ms: int) -> Command:
    """HSET ``cx:flow``: for each stream, the last entry the flow was handed, when
    (wall ms) and how many entries it has been handed so far (read by ``/healthz``).

    >>> flow_read({"cx:events:0": ("5-0", 7)}, at_ms=9)
    ('HSET', 'cx:flow', 'cx:events:0', b'{"id":"5-0","at":9,"events":7}')
    """
    args: list[str | bytes] = ["HSET", FLOW]
    for stream, (entry_id, events) in positions.items():
        args += (stream, orjson.dumps({"id": entry_id, "at": at_ms, "events": events}))
    return tuple(args)


def mark_answered(event_id: str) -> Command:
    """SET NX: replies OK only the first time this answer (its event id) is seen."""
    return ("SET", f"{ANSWERED_PREFIX}{event_id}", 1, "NX", "EX", ANSWERED_TTL_S)


def count_answer(event: Event) -> list[Command]:
    """The supervisors' counters an agent's answer (an ``offer_response``) increments
    (:func:`state.keys.answer_fields`: over all queues, and of its queue)."""
    a = event.attrs
    queue = a.get("queue")
    fields = answer_fields(
        str(a["action_id"]),
        str(a["agent_id"]),
        str(a["response"]),
        queue if isinstance(queue, str) else None,
    )
    return [("HINCRBY", ANSWERS, name, 1) for name in fields]
