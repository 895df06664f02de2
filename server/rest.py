"""The HTTP API, sans I/O: bytes in, bytes and actions out.

One :class:`RestSession` per TCP connection of the HTTP port (``CX_HTTP_PORT``).
``h11`` reads and writes HTTP/1.1; the session decides what each request means.
The adapter (:mod:`server.rest_server`) feeds it the bytes it reads
(:meth:`RestSession.receive`, ``b""`` at the end) and carries out what it returns:
:class:`Output` bytes to the socket, :class:`Write` a batch of events (then
:meth:`~RestSession.written` with the stream ids), :class:`ReadProfile` (then
:meth:`~RestSession.profile`), :class:`Hangup` (close, once the output is sent).
When the store is away, :meth:`~RestSession.unavailable` answers instead.
Time is passed in.

- ``POST /v1/events``: one event object, a JSON array of them
  (``application/json``) or one a line (``application/x-ndjson``); a token of
  role ``ingest`` (or ``privacy``, for ``forget`` events only), as on ``/ingest``.
- ``POST /v1/segment``: the same with Segment calls (:mod:`operators.segment`),
  also Segment's ``{"batch": [...]}``; ``?channel=`` is the channel of calls
  that name none.
- ``GET /v1/customers/{id}``: the 360 profile; a token of role ``agent`` or
  ``supervisor``.

Every event goes through :func:`server.protocol.check_events`, as on
``/ingest``: the valid events of a batch are written, the others dead-lettered.
202 when every event was accepted, else 400 with the reasons (the valid ones
were written).  Errors are ``{"error": code, "message": ...}``.

>>> from cxstream.settings import Secret
>>> from server.tokens import mint
>>> key = Secret("k" * 32)
>>> tok = mint(key, agent_id="crm", queues=(), role="agent", now=0, ttl_s=60)
>>> s = RestSession(key)
>>> s.receive(b"GET /v1/customers/c1 HTTP/1.1\\r\\nHost: x\\r\\nAuthorization: Bearer "
...           + tok.encode() + b"\\r\\n\\r\\n", now=1.0)
[ReadProfile(customer_id='c1')]
>>> [out] = s.profile(None, now=1.0)
>>> out.status, out.data.split(b"\\r\\n")[0]
(404, b'HTTP/1.1 404 Not Found')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote

import h11
import orjson

from cxstream.settings import Secret
from operators.errors import AuthError
from operators.events import CHANNELS, MAX_ID_CHARS
from operators.segment import from_segment
from server.protocol import (
    INGEST_ROLES,
    MAX_EVENTS_PER_MESSAGE,
    Ingest,
    ack_fields,
    check_events,
)
from server.tokens import Claims, verify

MAX_BODY_BYTES = 1024 * 1024  # a request's body; more: 413
MAX_HEADER_BYTES = 16 * 1024  # the request line and headers; more: 431 (h11)
EVENTS_PATH = "/v1/events"
SEGMENT_PATH = "/v1/segment"
CUSTOMERS_PREFIX = "/v1/customers/"
READ_ROLES = ("agent", "supervisor")  # who may read a profile
JSON = "application/json"
NDJSON = "application/x-ndjson"


@dataclass(frozen=True, slots=True)
class Output:
    """Bytes for the socket; ``status`` when they hold a response (for the metrics)."""

    data: bytes
    status: int = 0
    route: str = ""


@dataclass(frozen=True, slots=True)
class Write:
    """XADD the batch's events, dead-letter its rejected items, then :meth:`written`."""

    batch: Ingest


@dataclass(frozen=True, slots=True)
class ReadProfile:
    """Read the customer's profile, then :meth:`profile`."""

    customer_id: str


@dataclass(frozen=True, slots=True)
class Hangup:
    """Close the connection once the output before it is sent."""


RestAction = Output | Write | ReadProfile | Hangup


@dataclass(frozen=True, slots=True)
class Reply:
    """A response to send: status, JSON body, extra headers."""

    status: HTTPStatus
    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(slots=True)
class _Request:
    """The request being read: where it goes, what it was allowed, its body so far."""

    route: str  # events, segment, customers, or "" (answered with `reply`)
    reply: Reply | None = None  # decided from the headers, sent at the end of the message
    claims: Claims | None = None
    media: str = ""
    customer_id: str = ""
    channel: str = "web"
    body: list[bytes] = field(default_factory=list)
    size: int = 0


def problem(status: HTTPStatus, code: str, message: str, **headers: str) -> Reply:
    return Reply(status, {"error": code, "message": message}, tuple(headers.items()))


class RestSession:
    """Protocol state of one HTTP connection: requests in, one response each, in order."""

    def __init__(self, secret: Secret, *, max_body: int = MAX_BODY_BYTES) -> None:
        self.secret = secret
        self.max_body = max_body
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        self.request: _Request | None = None
        self.pending: Ingest | None = None  # the batch being written
        self.waiting = False  # an action is out: nothing more is read until it is answered
        self.closed = False
        self.head = False  # the request is a HEAD: its response has headers only

    # -- bytes in ------------------------------------------------------------------------

    def receive(self, data: bytes, *, now: float) -> list[RestAction]:
        """What the client sent (``b""``: it closed its side)."""
        if self.closed:
            return []
        self.conn.receive_data(data)
        return self._events(now)

    def _events(self, now: float) -> list[RestAction]:
        out: list[RestAction] = []
        while not self.waiting and not self.closed:
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError as exc:
                status = HTTPStatus(exc.error_status_hint)
                out += self._respond(problem(status, "bad_request", _plain(exc)), close=True)
                break
            if event is h11.NEED_DATA or event is h11.PAUSED:
                break
            if isinstance(event, h11.Request):
                out += self._start(event, now)
            elif isinstance(event, h11.Data):
                out += self._data(event.data)
            elif isinstance(event, h11.EndOfMessage):
                out += self._complete()
            elif isinstance(event, h11.ConnectionClosed):
                self.closed = True
                out.append(Hangup())
        return out

    def _start(self, request: h11.Request, now: float) -> list[RestAction]:
        self.head = request.method == b"HEAD"
        if _framed_twice(request):  # where the body ends is ambiguous: refused, and closed
            message = "both content-length and transfer-encoding: send one"
            return self._respond(
                problem(HTTPStatus.BAD_REQUEST, "bad_request", message), close=True
            )
        route, reply = self._route(request, now)
        self.request = route
        if reply is None:
            if self.conn.they_are_waiting_for_100_continue:
                continue_ = h11.InformationalResponse(status_code=100, headers=[])
                return [Output(self.conn.send(continue_) or b"")]
            return []
        route.reply = reply
        if _has_body(request):  # answered now, and the body not read: the connection closes
            return self._respond(reply, close=True)
        return []  # answered at the end of the message: the connection stays open

    def _data(self, data: bytes) -> list[RestAction]:
        request = self.request
        if request is None or request.reply is not None:
            return []
        request.size += len(data)
        if request.size > self.max_body:
            message = f"the body is over {self.max_body} bytes"
            reply = problem(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "too_large", message)
            return self._respond(reply, close=True)  # the rest of the body is not read
        request.body.append(data)
        return []

    def _complete(self) -> list[RestAction]:
        request = self.request
        if request is None:
            return []
        if request.reply is not None:
            return self._respond(request.reply)
        if request.route == "customers":
            self.waiting = True
            return [ReadProfile(request.customer_id)]
        assert request.claims is not None
        body = b"".join(request.body)
        items = self._items(request, body)
        if isinstance(items, Reply):
            return self._respond(items)
        decoded, broken = items
        convert: Callable[[object], object] | None = None
        if request.route == "segment":
            convert = partial(from_segment, default_channel=request.channel)
        batch = check_events(decoded, role=request.claims.role, convert=convert)
        if broken:
            batch = Ingest(batch.events, tuple(sorted((*batch.rejected, *broken))))
        self.pending = batch
        self.waiting = True
        return [Write(batch)]

    # -- what the adapter found ------------------------------------------------------------

    def written(self, stream_ids: list[str], *, now: float) -> list[RestAction]:
        """The batch is written: 202, or 400 with the rejected items' reasons."""
        batch, self.pending = self.pending, None
        assert batch is not None, "written() without a Write"
        body = ack_fields(batch, stream_ids)
        if not batch.rejected:
            return self._answer(Reply(HTTPStatus.ACCEPTED, body), now)
        n, sent = len(batch.rejected), len(batch.rejected) + len(batch.events)
        message = f"{n} of {sent} events rejected, {len(batch.events)} written"
        invalid = {"error": "invalid_events", "message": message, **body}
        return self._answer(Reply(HTTPStatus.BAD_REQUEST, invalid), now)

    def profile(self, found: dict[str, Any] | None, *, now: float) -> list[RestAction]:
        """The profile read (None: no such customer, or erased)."""
        if found is None:
            return self._answer(problem(HTTPStatus.NOT_FOUND, "not_found", "no such customer"), now)
        return self._answer(Reply(HTTPStatus.OK, found), now)

    def unavailable(self, *, now: float) -> list[RestAction]:
        """The store did not answer: 503, retry (a retried batch is deduplicated)."""
        self.pending = None
        reply = problem(
            HTTPStatus.SERVICE_UNAVAILABLE,
            "unavailable",
            "the store is unavailable; retry shortly",
            **{"Retry-After": "1"},
        )
        return self._answer(reply, now)

    def busy(self) -> list[RestAction]:
        """Refuse a connection at once (too many are open)."""
        reply = problem(
            HTTPStatus.SERVICE_UNAVAILABLE,
            "too_many",
            "too many connections; retry shortly",
            **{"Retry-After": "1"},
        )
        return self._respond(reply, close=True)

    def _answer(self, reply: Reply, now: float) -> list[RestAction]:
        self.waiting = False
        return [*self._respond(reply), *self._events(now)]

    # -- requests --------------------------------------------------------------------------

    def _route(self, request: h11.Request, now: float) -> tuple[_Request, Reply | None]:
        """Where a request goes, or the reply it gets, from its line and headers."""
        target = request.target.decode("ascii", errors="replace")
        path, _, query = target.partition("?")
        method = request.method.decode("ascii", errors="replace")
        headers = {name.decode(): value.decode("latin-1") for name, value in request.headers}
        if path in (EVENTS_PATH, SEGMENT_PATH):
            route, allowed, roles = path.rsplit("/", 1)[1], "POST", INGEST_ROLES
        elif path.startswith(CUSTOMERS_PREFIX):
            route, allowed, roles = "customers", "GET", READ_ROLES
        else:
            return _Request(""), problem(HTTPStatus.NOT_FOUND, "not_found", f"no {path[:80]} here")
        if method != allowed and not (method == "HEAD" and allowed == "GET"):
            return _Request(route), problem(
                HTTPStatus.METHOD_NOT_ALLOWED,
                "method_not_allowed",
                f"{path[:80]} takes {allowed}, not {method[:10]}",
                Allow="GET, HEAD" if allowed == "GET" else allowed,
            )
        claims = self._authorize(headers.get("authorization"), roles, now)
        if isinstance(claims, Reply):
            return _Request(route), claims
        found = _Request(route, claims=claims)
        if route == "customers":
            try:
                customer_id = unquote(path[len(CUSTOMERS_PREFIX) :], errors="strict")
            except UnicodeDecodeError:
                customer_id = ""  # no id is that
            if not 1 <= len(customer_id) <= MAX_ID_CHARS:
                return found, problem(HTTPStatus.NOT_FOUND, "not_found", "no such customer")
            found.customer_id = customer_id
            return found, None
        return found, self._body_rules(found, headers, query)

    def _authorize(self, header: str | None, roles: tuple[str, ...], now: float) -> Claims | Reply:
        if header is None:
            return problem(
                HTTPStatus.UNAUTHORIZED,
                "auth_required",
                "send Authorization: Bearer <token>",
                **{"WWW-Authenticate": 'Bearer realm="cxstream"'},
            )
        scheme, _, token = header.strip().partition(" ")
        try:
            if scheme.lower() != "bearer":
                raise AuthError(f"authorization scheme {scheme[:20]!r}: use bearer")
            claims = verify(self.secret, token.strip(), now=now)
        except AuthError as exc:
            return problem(
                HTTPStatus.UNAUTHORIZED,
                "auth_failed",
                str(exc),
                **{"WWW-Authenticate": 'Bearer realm="cxstream", error="invalid_token"'},
            )
        if claims.role not in roles:
            return problem(
                HTTPStatus.FORBIDDEN,
                "forbidden",
                f"a token of role {claims.role} cannot do this; it needs {' or '.join(roles)}",
            )
        return claims

    def _body_rules(self, request: _Request, headers: dict[str, str], query: str) -> Reply | None:
        """A POST's content type, declared size and query, from its headers."""
        media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media not in (JSON, NDJSON):
            return problem(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                f"content type {media[:60] or 'missing'!r}: send {JSON} or {NDJSON}",
            )
        request.media = media
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body:
            return problem(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                "too_large",
                f"the body is {int(length)} bytes, limit {self.max_body}",
            )
        if request.route == "segment":
            channel = parse_qs(query).get("channel", ["web"])[-1]
            if channel not in CHANNELS:
                return problem(
                    HTTPStatus.BAD_REQUEST,
                    "bad_request",
                    f"channel {channel[:40]!r}: use one of {', '.join(sorted(CHANNELS))}",
                )
            request.channel = channel
        return None

    def _items(
        self, request: _Request, body: bytes
    ) -> tuple[list[tuple[int, object]], list[tuple[int, str, bytes]]] | Reply:
        """The body's items, numbered, and (NDJSON) the lines that are not JSON; or
        the reply when the body as a whole is wrong."""
        decoded: list[tuple[int, object]] = []
        broken: list[tuple[int, str, bytes]] = []
        if request.media == NDJSON:
            for index, line in enumerate(body.split(b"\n")):
                if not line.strip():
                    continue
                try:
                    decoded.append((index, orjson.loads(line)))
                except orjson.JSONDecodeError as exc:
                    broken.append((index, f"not json: {str(exc)[:120].lower()}", line))
        else:
            try:
                obj = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                return problem(
                    HTTPStatus.BAD_REQUEST, "bad_json", f"the body is not json: {str(exc)[:120]}"
                )
            if request.route == "segment" and isinstance(obj, dict) and "batch" in obj:
                obj = obj["batch"]  # Segment's batch call
            if isinstance(obj, dict):
                decoded = [(0, obj)]
            elif isinstance(obj, list):
                decoded = list(enumerate(obj))
            else:
                return problem(
                    HTTPStatus.BAD_REQUEST,
                    "bad_request",
                    "the body must be an event object or an array of them",
                )
        n = len(decoded) + len(broken)
        if n == 0:
            return problem(HTTPStatus.BAD_REQUEST, "bad_request", "the body holds no event")
        if n > MAX_EVENTS_PER_MESSAGE:
            return problem(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                "too_many",
                f"{n} events: at most {MAX_EVENTS_PER_MESSAGE} a request",
            )
        return decoded, broken

    # -- bytes out -------------------------------------------------------------------------

    def _respond(self, reply: Reply, *, close: bool = False) -> list[RestAction]:
        """The response's bytes; then the next request, or the end of the connection."""
        route = self.request.route if self.request is not None else ""
        self.request = None
        if self.conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            self.closed = True  # no response can go out any more
            return [Hangup()]
        body = orjson.dumps(reply.body)
        headers = [
            ("Content-Type", JSON),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
            *reply.headers,
        ]
        if close:
            headers.append(("Connection", "close"))
        data = b"".join(
            self.conn.send(event) or b""
            for event in (
                h11.Response(
                    status_code=reply.status.value,
                    headers=headers,
                    reason=reply.status.phrase.encode(),
                ),
                *(() if self.head else (h11.Data(data=body),)),  # (HEAD: the length only)
                h11.EndOfMessage(),
            )
        )
        self.head = False
        out: list[RestAction] = [Output(data, reply.status.value, route)]
        ours = self._our_state()  # after the response
        if ours is h11.MUST_CLOSE:
            self.closed = True
            out.append(Hangup())
        elif ours is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        return out

    def _our_state(self) -> object:
        return self.conn.our_state


def _plain(exc: h11.RemoteProtocolError) -> str:
    """What was wrong with a request, in words (h11's text, without the bytes it quotes).

    >>> _plain(h11.RemoteProtocolError("illegal request line: bytearray(b'get / x')"))
    'illegal request line'
    """
    text = str(exc).lower()
    return text.split(": bytearray(", 1)[0].split(": b'", 1)[0].split(': b"', 1)[0] or "bad request"


def _framed_twice(request: h11.Request) -> bool:
    """Whether a request gives both a Content-Length and a Transfer-Encoding.

    Its body's end is then ambiguous (RFC 9112, 6.3: a proxy in front may have read
    it by the other header, the way requests are smuggled), so it is refused rather
    than read by the Transfer-Encoding, and the connection closed.
    """
    names = {name for name, _ in request.headers}
    return b"transfer-encoding" in names and b"content-length" in names


def _has_body(request: h11.Request) -> bool:
    """Whether a request announces a body (which is not read when it is refused)."""
    for name, value in request.headers:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False
