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

import hashlib

import orjson

from operators.events import Event, Rejected, dead_letter_fields, encode_event
from state.keys import (
    ALERT_LAST,
    ALERT_STREAMS,
    ALERTS,
    ANSWERED_PREFIX,
    ANSWERED_TTL_S,
    ANSWERS,
    DLQ,
    DLQ_MAXLEN,
    EVENTS_MAXLEN,
    FLOW,
    AlertGroups,
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


# An alert into its group's stream, its id the next of one sequence over every group
# (the later of Redis's clock and both the last id given and the stream's own last id),
# so a client's resume point orders the alerts of all groups; the stream's name joins
# the set of alert streams (what an erasure searches).  With a marker, only if the marker
# is new, and it is set once the entry is written.  KEYS last id, stream, streams set
# [, marker]; ARGV maxlen, ttl, fields...
_XADD_ALERT = """
if KEYS[4] and redis.call('EXISTS', KEYS[4]) == 1 then
  return false
end
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local seq = 0
local function after(id)
  local m, s = string.match(id, '^(%d+)-(%d+)$')
  m = tonumber(m)
  if m > ms or (m == ms and tonumber(s) >= seq) then ms = m; seq = tonumber(s) + 1 end
end
local last = redis.call('GET', KEYS[1])
if last then after(last) end
if redis.call('EXISTS', KEYS[2]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[2])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then after(info[i + 1]) end
  end
end
local id = string.format('%.0f-%.0f', ms, seq)
local added = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], id, unpack(ARGV, 3))
redis.call('SET', KEYS[1], id)
redis.call('SADD', KEYS[3], KEYS[2])
if KEYS[4] then redis.call('SET', KEYS[4], '1', 'EX', ARGV[2]) end
return added
"""


def xadd_alert(
    groups: AlertGroups,
    queue: object,
    maxlen: int,
    *fields: str | bytes,
    marker: str | None = None,
    ttl_s: int = 0,
) -> Command:
    """An alert of ``queue`` into its stream (:class:`AlertGroups`), trimmed to about
    ``maxlen``; with ``marker``, only if the marker is new (set for ``ttl_s``).

    >>> xadd_alert(AlertGroups(), "care", 10, "data", b"{}")
    ('XADD', 'cx:alerts', 'MAXLEN', '~', 10, '*', 'data', b'{}')
    >>> xadd_alert(AlertGroups.parse("care"), "care", 10, "data", b"{}")[2:6]
    (3, '{cx:alerts}:last', '{cx:alerts}:0', '{cx:alerts}:streams')
    """
    if not groups.split:
        if marker is None:
            return xadd(ALERTS, maxlen, *fields)
        return xadd_once(ALERTS, marker, ttl_s, maxlen, *fields)
    stream = groups.stream_of(queue)
    keys = (ALERT_LAST, stream, ALERT_STREAMS, *(() if marker is None else (marker,)))
    return ("EVAL", _XADD_ALERT, len(keys), *keys, maxlen, max(1, ttl_s), *fields)


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


def answer_key(alert_id: str, agent_id: str) -> str:
    """One agent's answer to one alert, as a key (a digest: ids may hold any character).

    >>> answer_key("a:b", "c") != answer_key("a", "b:c")
    True
    """
    pair = orjson.dumps([alert_id, agent_id])
    return hashlib.blake2b(pair, digest_size=16).hexdigest()


def mark_answered(answer: str) -> Command:
    """SET NX: replies OK only the first time ``answer`` (an alert and its agent) is seen."""
    return ("SET", f"{ANSWERED_PREFIX}{answer}", 1, "NX", "EX", ANSWERED_TTL_S)


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
