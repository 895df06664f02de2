"""The agent WebSocket protocol, sans I/O: messages in, frames and actions out.

One :class:`AgentSession` per ``/ws`` connection.  The adapter feeds it each
text message (``receive``) and each alert read from ``cx:alerts`` (``alert``)
and carries out what it returns: :class:`Send` a frame, :class:`Close` the
connection, :class:`Replay` alerts after a stream id, :class:`Publish` an
event back into the event streams.  Time is passed in.

Client to server: ``auth`` {token, after?} first; ``subscribe`` {queues};
``resume`` {after}; ``ack`` {alert_id}; ``outcome`` {alert_id, action_id,
response, reason}.  Server to client: ``welcome`` {agent_id, queues, role, currency,
clock_speed},
``alert`` {stream_id, alert}, ``resumed`` {through}, ``error`` {code,
message}, and to supervisors ``stats`` (see :mod:`server.supervisor`).
Nothing about an alert is sent before a valid ``auth``.

The resume contract: a connection gets each stream id at most once, and its
alert frames in stream order.  A replay (``resume``, or ``after`` in ``auth``)
sends the alerts after ``after`` that are for this connection, then
``resumed`` {through: the last stream id sent, or null}; live alerts that come
meanwhile are held and follow it.  A ``resume`` after live alerts replays only
what is newer than the last one sent: to catch up from a point, sign in with
``after`` (no live alert can come first), so the last stream id a client saw
is always a safe point to resume from.

>>> from cxstream.settings import Secret
>>> from server.tokens import mint
>>> key = Secret("k" * 32)
>>> s = AgentSession(key, now=0.0)
>>> s.alert("1-0", {"alert_id": "al_1", "agent_id": "a1", "queue": "care"})
[]
>>> tok = mint(key, agent_id="a1", queues=("care",), role="agent", now=0, ttl_s=60)
>>> s.receive('{"type": "auth", "token": "%s"}' % tok, now=1.0)
[Send(frame='{"type":"welcome","agent_id":"a1","queues":["care"],"role":"agent","currency":"EUR",\
"clock_speed":1.0}')]
>>> [type(a).__name__ for a in s.alert("2-0", {"alert_id": "al_2", "queue": "care"})]
['Send']
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from cxstream.settings import Secret
from operators.errors import AuthError, InvalidEvent
from operators.events import (
    RESPONSES,
    Event,
    encodable,
    sendable_event,
)
from server.tokens import Claims, verify
from state.keys import ALL_QUEUES  # in a token's queues: every queue

AUTH_TIMEOUT_S = 10.0
REMEMBERED_ALERTS = 2000
HELD_DURING_REPLAY = 10_000  # live alerts held while a replay runs; more: closed as too slow
STREAM_ID = re.compile(r"^\d{1,20}(-\d{1,20})?$")
MAX_ID_PART = 2**64 - 1  # each part of a Redis stream id is an unsigned 64-bit number

# Close codes (4000-4999 are the application's own).
CLOSE_AUTH_FAILED = 4001
CLOSE_FORBIDDEN = 4003
CLOSE_AUTH_TIMEOUT = 4008
CLOSE_TOO_SLOW = 4029
CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN = 1013  # too many connections awaiting auth on this server


@dataclass(frozen=True, slots=True)
class Send:
    frame: str


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Replay:
    """Deliver the alerts stored after stream id ``after`` (through :meth:`alert`)."""

    after: str


@dataclass(frozen=True, slots=True)
class Ignored:
    """An alert addressed to this agent that its token does not grant (counted)."""

    alert_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Publish:
    """XADD this event to its shard stream (outcomes and acks close the loop)."""

    event: Event


Action = Send | Close | Replay | Publish | Ignored


def parse_stream_id(text: str) -> tuple[int, int] | None:
    """A stream id as (ms, seq), or None if it is not one Redis could hold.

    >>> parse_stream_id("1700000000000-3"), parse_stream_id("17")
    ((1700000000000, 3), (17, 0))
    >>> parse_stream_id("99999999999999999999-0"), parse_stream_id("1-x")
    (None, None)
    """
    if not STREAM_ID.match(text):
        return None
    ms, _, seq = text.partition("-")
    parts = int(ms), int(seq or 0)
    return parts if max(parts) <= MAX_ID_PART else None


def _frame(obj: dict[str, Any]) -> str:
    return orjson.dumps(obj).decode()


def error(code: str, message: str) -> Send:
    return Send(_frame({"type": "error", "code": code, "message": message}))


class AgentSession:
    """Protocol state of one agent or supervisor connection."""

    def __init__(
        self,
        secret: Secret,
        *,
        now: float,
        auth_timeout: float = AUTH_TIMEOUT_S,
        currency: str = "EUR",
        clock_speed: float = 1.0,
    ):
        self.secret = secret
        self.deadline = now + auth_timeout
        self.currency = currency  # told in the welcome: the money on the cards is in it
        # told in the welcome: event time runs this many times the wall clock's (the
        # console shows times to come in the viewer's time)
        self.clock_speed = clock_speed
        self.claims: Claims | None = None
        self.queues: frozenset[str] = frozenset()
        self.closed = False
        self._delivered: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.last_sent: tuple[int, int] = (0, 0)  # the highest stream id sent, (0, 0): none
        self.replaying = False
        self._held: list[tuple[str, dict[str, Any]]] = []  # live alerts during a replay

    @property
    def authenticated(self) -> bool:
        return self.claims is not None and not self.closed

    # -- client messages ---------------------------------------------------------------------

    def receive(self, message: str | bytes, *, now: float) -> list[Action]:
        if self.closed:
            return []
        try:
            msg = orjson.loads(message)
        except orjson.JSONDecodeError:
            return self._reject("bad_json", "message is not json")
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            return self._reject("bad_message", "message must be an object with a type")
        kind = msg["type"]
        if self.claims is None:
            if kind != "auth":
                return self._fail(
                    CLOSE_AUTH_FAILED, "auth_required", f"send auth first, not {kind}"
                )
            return self._auth(msg, now)
        if now >= self.claims.expires_at:
            return self._fail(CLOSE_AUTH_FAILED, "token_expired", "token expired; sign in again")
        handler = {
            "subscribe": self._subscribe,
            "resume": self._resume,
            "ack": self._ack,
            "outcome": self._outcome,
        }.get(kind)
        if handler is None:
            return [error("bad_message", f"unknown message type {kind[:40]!r}")]
        return handler(msg, now)

    def check_deadline(self, now: float) -> list[Action]:
        """Close a connection that has not authenticated in time, or whose token has
        expired (it gets nothing more, whether or not it sends anything)."""
        due = _deadline(self, now)
        return [] if due is None else self._fail(*due)

    def wake_at(self) -> float:
        """When :meth:`check_deadline` is due: the sign-in deadline, then the token's expiry."""
        return self.deadline if self.claims is None else self.claims.expires_at

    def _reject(self, code: str, message: str) -> list[Action]:
        if self.claims is None:  # garbage before auth: no second chance
            return self._fail(CLOSE_POLICY, code, message)
        return [error(code, message)]

    def _fail(self, close_code: int, code: str, message: str) -> list[Action]:
        self.closed = True
        return [error(code, message), Close(close_code, code)]

    def _welcome(self) -> Send:
        assert self.claims is not None
        return Send(
            _frame(
                {
                    "type": "welcome",
                    "agent_id": self.claims.agent_id,
                    "queues": sorted(self.queues),
                    "role": self.claims.role,
                    "currency": self.currency,
                    "clock_speed": self.clock_speed,
                }
            )
        )

    def _auth(self, msg: dict[str, Any], now: float) -> list[Action]:
        token = msg.get("token")
        after = msg.get("after")
        if after is not None and (not isinstance(after, str) or parse_stream_id(after) is None):
            return self._fail(CLOSE_AUTH_FAILED, "bad_message", "after: a stream id like 1-0")
        if now >= self.deadline:
            return self._fail(CLOSE_AUTH_TIMEOUT, "auth_timeout", "auth came after the deadline")
        try:
            claims = verify(self.secret, token, now=now)
        except AuthError as exc:
            return self._fail(CLOSE_AUTH_FAILED, "auth_failed", str(exc))
        if claims.role in ("ingest", "privacy"):
            return self._fail(
                CLOSE_FORBIDDEN,
                "forbidden",
                f"{'an' if claims.role[0] in 'aeiou' else 'a'} {claims.role} token cannot "
                "receive alerts",
            )
        self.claims = claims
        self.queues = frozenset(claims.queues)
        if after is not None:  # resume at sign-in: no live alert comes before the replay
            return [self._welcome(), *self._resume({"after": after}, now)]
        return [self._welcome()]

    def _subscribe(self, msg: dict[str, Any], now: float) -> list[Action]:
        assert self.claims is not None
        queues = msg.get("queues")
        if not isinstance(queues, list) or not all(isinstance(q, str) for q in queues):
            return [error("bad_message", "subscribe needs queues: a list of strings")]
        allowed = set(self.claims.queues)
        denied = [] if ALL_QUEUES in allowed else sorted(set(queues) - allowed)
        if denied:
            return [error("forbidden", f"token does not grant queues {denied[:5]}")]
        self.queues = frozenset(queues)
        return [self._welcome()]

    def _resume(self, msg: dict[str, Any], now: float) -> list[Action]:
        after = msg.get("after")
        point = parse_stream_id(after) if isinstance(after, str) else None
        if point is None:
            return [error("bad_message", "resume needs after: a stream id like 1700000000000-0")]
        if self.replaying:
            return [error("bad_message", "a resume is running; wait for its resumed frame")]
        # what this connection was sent already is not sent again
        start = max(point, self.last_sent)
        self.replaying = True
        return [Replay(f"{start[0]}-{start[1]}")]

    def replayed(self) -> list[Action]:
        """The replay is done: the ``resumed`` frame, then the live alerts held meanwhile."""
        if not self.replaying:
            return []
        self.replaying = False
        held, self._held = self._held, []
        through = f"{self.last_sent[0]}-{self.last_sent[1]}" if self.last_sent != (0, 0) else None
        actions: list[Action] = [Send(_frame({"type": "resumed", "through": through}))]
        for stream_id, alert in held:
            actions += self.alert(stream_id, alert)
        return actions

    def _ack(self, msg: dict[str, Any], now: float) -> list[Action]:
        alert = self._known(msg.get("alert_id"))
        if isinstance(alert, Send):
            return [alert]
        return [Publish(self._feedback(alert, "alert_ack", {}, now))]

    def _outcome(self, msg: dict[str, Any], now: float) -> list[Action]:
        alert = self._known(msg.get("alert_id"))
        if isinstance(alert, Send):
            return [alert]
        response, action_id, reason = msg.get("response"), msg.get("action_id"), msg.get("reason")
        if response not in RESPONSES:
            return [error("bad_message", f"response must be one of {sorted(RESPONSES)}")]
        if not isinstance(action_id, str) or not 1 <= len(action_id) <= 128:
            return [error("bad_message", "outcome needs action_id")]
        if reason is not None and (not isinstance(reason, str) or len(reason) > 500):
            return [error("bad_message", "reason must be a string of at most 500 characters")]
        alert_id = alert["alert_id"]
        if action_id not in alert["actions"]:
            named = ", ".join(alert["actions"][:5]) or "none"
            return [
                error(
                    "bad_message",
                    f"action_id {action_id[:40]!r} is not an action of alert {alert_id[:40]!r}"
                    f" (its actions: {named})",
                )
            ]
        answered = alert["answered"]
        if answered is not None and answered != (action_id, response):
            return [
                error(
                    "bad_message",
                    f"alert {alert_id[:40]!r} was answered already ({answered[1]} to "
                    f"{answered[0]}): one answer an alert",
                )
            ]
        alert["answered"] = (action_id, response)  # (the same answer again: a retry)
        attrs = {"action_id": action_id, "response": response}
        if reason:
            attrs["reason"] = reason
        return [Publish(self._feedback(alert, "offer_response", attrs, now))]

    def unanswered(self, event: Event) -> None:
        """An answer (an ``offer_response`` this session made) was not written (the store
        was away): the alert may be answered again, differently too."""
        a = event.attrs
        alert = self._delivered.get(str(a.get("alert_id")))
        if alert is not None and alert["answered"] == (a.get("action_id"), a.get("response")):
            alert["answered"] = None

    def _known(self, alert_id: object) -> dict[str, Any] | Send:
        if not isinstance(alert_id, str):
            return error("bad_message", "alert_id missing")
        alert = self._delivered.get(alert_id)
        if alert is None:
            return error("unknown_alert", f"alert {alert_id[:40]!r} was not delivered here")
        return alert

    def _feedback(
        self, alert: dict[str, Any], type_: str, attrs: dict[str, Any], now: float
    ) -> Event:
        assert self.claims is not None
        agent = self.claims.agent_id
        digest = hashlib.blake2b(
            f"{alert['alert_id']}\x00{agent}\x00{type_}\x00{attrs.get('response', '')}".encode(),
            digest_size=12,
        ).hexdigest()
        return Event(
            event_id=f"fb_{digest}",
            customer_id=alert["customer_id"],
            anonymous_id=None,
            ts=int(now * 1000),
            channel="crm",
            type=type_,
            attrs={
                **attrs,
                "alert_id": alert["alert_id"],
                "agent_id": agent,
                **({"contact_id": alert["contact_id"]} if alert.get("contact_id") else {}),
                **({"queue": alert["queue"]} if isinstance(alert.get("queue"), str) else {}),
            },
        )

    # -- from the server ----------------------------------------------------------------------

    def stats_queues(self) -> frozenset[str] | None:
        """The queues whose figures this supervisor sees: its token's (None: every queue)."""
        assert self.claims is not None
        if ALL_QUEUES in self.claims.queues:
            return None
        return frozenset(self.claims.queues)

    def stats(self, frame: str) -> list[Action]:
        """The supervisor view's ``stats`` frame: sent to supervisors only."""
        claims = self.claims
        if claims is None or self.closed or claims.role != "supervisor":
            return []
        return [Send(frame)]

    # -- alerts from the stream ----------------------------------------------------------------

    def grants(self, queue: object) -> bool:
        """Whether this session's token grants ``queue``."""
        assert self.claims is not None
        return queue in self.claims.queues or ALL_QUEUES in self.claims.queues

    def wants(self, alert: dict[str, Any]) -> bool:
        """Of one of its subscribed queues, or addressed to this agent and of a queue its
        token grants; supervisors also get proactive and trend alerts of no queue or of
        a queue they hold."""
        claims = self.claims
        if claims is None or self.closed:
            return False
        queue = alert.get("queue")
        if queue in self.queues or (queue is not None and ALL_QUEUES in self.queues):
            return True
        if alert.get("agent_id") == claims.agent_id and self.grants(queue):
            return True
        return (
            claims.role == "supervisor"
            and alert.get("kind") in ("proactive", "trend")
            and (queue is None or self.grants(queue))
        )

    def alert(self, stream_id: str, alert: dict[str, Any], *, replay: bool = False) -> list[Action]:
        """The frames for one alert of the stream: none if not for this connection, if
        this connection was sent that stream id or a later one already, or (held until
        :meth:`replayed`) if it is live and a replay is running.  So a connection gets
        each stream id once, in stream order."""
        if not self.wants(alert):
            claims = self.claims
            if claims is not None and not self.closed and alert.get("agent_id") == claims.agent_id:
                return [Ignored(str(alert.get("alert_id")), "queue not in token")]
            return []
        if self.replaying and not replay:
            if len(self._held) >= HELD_DURING_REPLAY:
                return self._fail(CLOSE_TOO_SLOW, "too_slow", "too many alerts during a replay")
            self._held.append((stream_id, alert))
            return []
        point = parse_stream_id(stream_id)
        if point is None or point <= self.last_sent:
            return []
        self.last_sent = point
        alert_id = alert.get("alert_id")
        if isinstance(alert_id, str) and isinstance(alert.get("customer_id"), str):
            self._delivered[alert_id] = {
                "alert_id": alert_id,
                "customer_id": alert["customer_id"],
                "contact_id": alert.get("contact_id"),
                "queue": alert.get("queue"),
                "actions": _action_ids(alert),  # what an outcome may name
                "answered": None,  # (action_id, response) of this connection's answer
            }
            self._delivered.move_to_end(alert_id)
            if len(self._delivered) > REMEMBERED_ALERTS:
                self._delivered.popitem(last=False)
        return [Send(_frame({"type": "alert", "stream_id": stream_id, "alert": alert}))]


def _deadline(session: AgentSession | IngestSession, now: float) -> tuple[int, str, str] | None:
    """Either session's sign-in deadline or token expiry, if passed: the close's code,
    reason and message (for the session's ``_fail``); None before, or once closed."""
    if session.closed:
        return None
    claims = session.claims
    if claims is None:
        if now < session.deadline:
            return None
        return CLOSE_AUTH_TIMEOUT, "auth_timeout", "no auth within the deadline"
    if now >= claims.expires_at:
        return CLOSE_AUTH_FAILED, "token_expired", "token expired; sign in again"
    return None


def _action_ids(alert: dict[str, Any]) -> tuple[str, ...]:
    """The actions an agent may answer for an alert: its recommendation, then the
    alternatives it lists (none for an alert that recommends nothing).

    >>> _action_ids({"next_best_action": {"action_id": "a", "alternatives": [{"action_id": "b"}]}})
    ('a', 'b')
    >>> _action_ids({"next_best_action": None})
    ()
    """
    nba = alert.get("next_best_action")
    if not isinstance(nba, dict):
        return ()
    ids = [nba.get("action_id")]
    alternatives = nba.get("alternatives")
    if isinstance(alternatives, list):
        ids += [a.get("action_id") for a in alternatives if isinstance(a, dict)]
    return tuple(i for i in ids if isinstance(i, str))


# -- /ingest: channel systems sending events -----------------------------------------------------

MAX_EVENTS_PER_MESSAGE = 500


@dataclass(frozen=True, slots=True)
class Ingest:
    """XADD ``events``, dead-letter ``rejected`` (index, reason, raw JSON), then acknowledge."""

    events: tuple[Event, ...]
    rejected: tuple[tuple[int, str, bytes], ...]


class IngestSession:
    """Protocol state of one ``/ingest`` connection (a token of role ``ingest`` or
    ``privacy``).

    After ``auth``, each message is one event object or a JSON array of them.  The
    reply is ``ack`` {stream_ids, rejected: [{index, reason}]}; rejected events also
    go to the dead-letter stream.  Erasure is its own right: a ``forget`` event
    needs a ``privacy`` token, which sends nothing else.

    >>> from cxstream.settings import Secret
    >>> from server.tokens import mint
    >>> key = Secret("k" * 32)
    >>> s = IngestSession(key, now=0.0)
    >>> tok = mint(key, agent_id="web", queues=(), role="ingest", now=0, ttl_s=60)
    >>> [type(a).__name__ for a in s.receive('{"type": "auth", "token": "%s"}' % tok, now=1.0)]
    ['Send']
    >>> [a] = s.receive('[{"event_id": "e1"}]', now=2.0)
    >>> a.rejected[0][:2]
    (0, 'customer_id missing: an event needs customer_id or anonymous_id')
    """

    def __init__(self, secret: Secret, *, now: float, auth_timeout: float = AUTH_TIMEOUT_S):
        self.secret = secret
        self.deadline = now + auth_timeout
        self.claims: Claims | None = None
        self.closed = False

    @property
    def authenticated(self) -> bool:
        return self.claims is not None and not self.closed

    def _fail(self, close_code: int, code: str, message: str) -> list[Action | Ingest]:
        self.closed = True
        return [error(code, message), Close(close_code, code)]

    def check_deadline(self, now: float) -> list[Action | Ingest]:
        """Close a connection that has not authenticated in time, or whose token has
        expired."""
        due = _deadline(self, now)
        return [] if due is None else self._fail(*due)

    def wake_at(self) -> float:
        """When :meth:`check_deadline` is due: the sign-in deadline, then the token's expiry."""
        return self.deadline if self.claims is None else self.claims.expires_at

    def receive(self, message: str | bytes, *, now: float) -> list[Action | Ingest]:
        if self.closed:
            return []
        try:
            msg = orjson.loads(message)
        except orjson.JSONDecodeError:
            if self.claims is None:
                return self._fail(CLOSE_POLICY, "bad_json", "message is not json")
            return [error("bad_json", "message is not json")]
        if self.claims is None:
            if not isinstance(msg, dict) or msg.get("type") != "auth":
                return self._fail(CLOSE_AUTH_FAILED, "auth_required", "send auth first")
            if now >= self.deadline:
                return self._fail(CLOSE_AUTH_TIMEOUT, "auth_timeout", "auth came too late")
            try:
                claims = verify(self.secret, msg.get("token"), now=now)
            except AuthError as exc:
                return self._fail(CLOSE_AUTH_FAILED, "auth_failed", str(exc))
            if claims.role not in INGEST_ROLES:
                return self._fail(
                    CLOSE_FORBIDDEN, "forbidden", "/ingest needs an ingest or privacy token"
                )
            self.claims = claims
            return [
                Send(_frame({"type": "welcome", "agent_id": claims.agent_id, "role": claims.role}))
            ]
        if now >= self.claims.expires_at:
            return self._fail(CLOSE_AUTH_FAILED, "token_expired", "token expired")
        items = msg if isinstance(msg, list) else [msg]
        if len(items) > MAX_EVENTS_PER_MESSAGE:
            return [error("too_many", f"at most {MAX_EVENTS_PER_MESSAGE} events per message")]
        return [check_events(enumerate(items), role=self.claims.role)]


INGEST_ROLES = ("ingest", "privacy")  # who may send events: /ingest and POST /v1/events


def check_events(
    items: Iterable[tuple[int, object]],
    *,
    role: str,
    convert: Callable[[object], object] | None = None,
) -> Ingest:
    """The events of one batch sent by a channel system, validated: every writer of
    events from outside (``/ingest``, ``POST /v1/events``, ``POST /v1/segment``) goes
    through here, so each event meets one contract and one access rule.

    ``items``: (index, decoded JSON value); ``role``: the sender's token role (a
    ``forget`` needs ``privacy``, which sends nothing else); ``convert``: a mapping
    applied to each item first (e.g. :func:`operators.segment.from_segment`), which
    raises :class:`InvalidEvent`.  Each event's size is checked as it will be written
    (its JSON as the engine encodes it, which may be longer than as sent: ``1e9`` is
    written ``1000000000.0``), so that what is accepted is read back, not dead-lettered
    as too large.  A rejected item keeps its JSON as sent, for the dead-letter stream.

    >>> ok = {"event_id": "e1", "customer_id": "c1", "ts": 1, "channel": "web", "type": "x"}
    >>> batch = check_events(enumerate([ok, {**ok, "channel": "fax"}]), role="ingest")
    >>> [e.event_id for e in batch.events], [r[:2] for r in batch.rejected]
    (['e1'], [(1, "channel unknown: 'fax'")])
    >>> check_events([(0, {**ok, "type": "forget"})], role="ingest").rejected[0][1]
    'forbidden: forget needs a privacy token'
    """
    events: list[Event] = []
    rejected: list[tuple[int, str, bytes]] = []
    privacy = role == "privacy"
    for index, item in items:
        try:
            event = sendable_event(item if convert is None else convert(item))
        except InvalidEvent as exc:
            rejected.append((index, str(exc), encodable(item)))
            continue
        if (event.type == "forget") != privacy:
            reason = (
                "forbidden: a privacy token sends forget events only"
                if privacy
                else "forbidden: forget needs a privacy token"
            )
            rejected.append((index, reason, encodable(item)))
            continue
        events.append(event)
    return Ingest(tuple(events), tuple(rejected))


def ack_fields(batch: Ingest, stream_ids: Sequence[str]) -> dict[str, Any]:
    """What a sender is told of a written batch: the stream ids of its accepted events,
    in order, and the index and reason of each rejected one.

    >>> ack_fields(Ingest((), ((2, "not json", b"{"),)), [])
    {'stream_ids': [], 'rejected': [{'index': 2, 'reason': 'not json'}]}
    """
    return {
        "stream_ids": list(stream_ids),
        "rejected": [{"index": i, "reason": reason} for i, reason, _ in batch.rejected],
    }
