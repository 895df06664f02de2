"""The ``websockets`` adapter: moves bytes between sockets, Redis and the protocol.

One process serves, on one port: ``/ws`` (agents and supervisors), ``/`` (the
agent console), ``/healthz`` and ``/metrics``.  A single pump reads
``cx:alerts`` and hands each alert to every session; each connection has a
bounded send queue, and a client that stops reading is closed with code 4029
instead of slowing anyone else.  Several servers can run on one Redis: each
reads the whole alert stream and delivers to its own connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from importlib import resources
from typing import Any, cast

import orjson
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Origin

from cxstream.settings import Secret, Settings
from operators.errors import CxError
from operators.events import Event, Rejected
from server.protocol import (
    ALL_QUEUES,
    AUTH_TIMEOUT_S,
    CLOSE_TOO_SLOW,
    CLOSE_TRY_AGAIN,
    AgentSession,
    Close,
    Ignored,
    Ingest,
    IngestSession,
    Publish,
    Replay,
    Send,
    error,
)
from server.supervisor import SupervisorView, answer_fields
from state.commands import add_event, count_answer, dead_letter, mark_answered
from state.keys import ALERTS, ANSWERS, KeyNames
from state.redis import Backoff, stream_entries, xread_entries

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024
SEND_QUEUE_FRAMES = 256
PUMP_BLOCK_MS = 1000
REPLAY_PAGE = 500
STATS_INTERVAL_S = 2.0  # how often supervisors get the stats frame
BACKFILL_LIMIT = 100_000  # alerts of the last hour read back into the view at start
STOP_TASKS_S = 3.0  # how long stop() waits for the background tasks


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.connections = Gauge("cx_ws_connections", "open agent connections", registry=r)
        self.delivered = Counter("cx_alerts_delivered", "alert frames queued to agents", registry=r)
        self.refused = Counter(
            "cx_ws_refused",
            "connections closed at once: CX_MAX_UNAUTHENTICATED were awaiting auth",
            registry=r,
        )
        self.ignored = Counter(
            "cx_alerts_ignored",
            "alerts addressed to an agent whose token does not grant their queue",
            registry=r,
        )
        self.dropped = Counter(
            "cx_ws_slow_clients_dropped", "clients closed as too slow", registry=r
        )
        self.published = Counter("cx_feedback_events", "acks and outcomes written back", registry=r)
        self.latency = Histogram(
            "cx_alert_delivery_seconds",
            "alert emitted_at to frame queued",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )


class _Client:
    """One connection: its protocol session and its bounded outbound queue."""

    def __init__(self, conn: ServerConnection, session: AgentSession | IngestSession) -> None:
        self.conn = conn
        self.session = session
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(SEND_QUEUE_FRAMES)
        self.slow = False
        self.pending = True  # not authenticated yet: counted against CX_MAX_UNAUTHENTICATED
        self.stats_seen: dict[str, Any] | None = None  # the last supervisor view sent


class AlertServer:
    """WebSocket + HTTP server delivering alerts from Redis to connected agents."""

    def __init__(
        self,
        settings: Settings,
        *,
        redis_url: str,
        secret: Secret,
        auth_timeout: float = AUTH_TIMEOUT_S,
        stats_interval_s: float = STATS_INTERVAL_S,
    ) -> None:
        self.settings = settings
        self.auth_timeout = auth_timeout
        self.stats_interval_s = stats_interval_s
        self.secret = secret
        self.redis: aioredis.Redis = (
            # redis-py's cluster client, typed as the plain one: the commands used here
            # take one key each, which it routes by itself.
            cast(aioredis.Redis, AsyncRedisCluster.from_url(redis_url))
            if settings.redis_cluster
            # A connection idle for a second is checked (PING) before use, and a command
            # that meets a dead one is sent again on a new one: after a Redis restart no
            # stale connection answers for it.
            else aioredis.Redis.from_url(
                redis_url,
                health_check_interval=1,
                retry=AsyncRetry(ExponentialBackoff(cap=0.25, base=0.01), 5),
                retry_on_error=[aioredis.ConnectionError, aioredis.TimeoutError],
            )
        )
        self.names = KeyNames.of(settings)
        self.metrics = Metrics()
        self.clients: set[_Client] = set()
        self.unauthenticated = 0  # connections open and not signed in yet
        self._routes: _Routes | None = None  # rebuilt after any client change
        self.console = resources.files("server").joinpath("static/console.html").read_bytes()
        self._server: Server | None = None
        self._pump: asyncio.Task[None] | None = None
        self._stats: asyncio.Task[None] | None = None
        self._closing = False
        self.view = SupervisorView()
        self.port = settings.port

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        last = stream_entries(await self.redis.xrevrange(ALERTS, count=1))
        start_id = last[0][0] if last else "0-0"
        await self._backfill_view(start_id)
        try:
            self._server = await serve(
                self._handle,
                self.settings.host,
                self.settings.port,
                origins=[*(Origin(o) for o in self.settings.allowed_origins()), None],
                max_size=MAX_MESSAGE_BYTES,
                compression=None,
                process_request=self._http,
                ping_interval=20,
                ping_timeout=20,
            )
        except OSError as exc:
            await self.redis.aclose()
            where = f"{self.settings.host}:{self.settings.port}"
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise CxError(f"cannot listen on {where}: {reason}; set CX_HOST/CX_PORT") from exc
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        self._pump = asyncio.create_task(self._pump_alerts(start_id), name="alert-pump")
        self._stats = asyncio.create_task(self._send_stats(), name="supervisor-stats")
        log.info(
            "serving on http://%s:%d (alerts after %s)", self.settings.host, self.port, start_id
        )

    async def _backfill_view(self, last_id: str) -> None:
        """Feed the supervisor view the alerts of its window already in the stream, so
        that every server shows the same figures whenever it started."""
        if last_id == "0-0":
            return
        now = time.time()
        since_ms = int((now - self.view.window_s) * 1000)
        end: str = last_id
        alerts: list[tuple[float, dict[str, Any]]] = []
        while len(alerts) < BACKFILL_LIMIT:
            page = stream_entries(
                await self.redis.xrevrange(ALERTS, max=end, min=f"{since_ms}-0", count=REPLAY_PAGE)
            )
            for entry_id, fields in page:
                alert = _alert(entry_id, fields)
                if alert is not None:
                    alerts.append((int(entry_id.split("-")[0]) / 1000, alert))
            if len(page) < REPLAY_PAGE:
                break
            end = f"({page[-1][0]}"
        for read_at, alert in reversed(alerts):  # oldest first, by when it was written
            self.view.observe(alert, now=read_at)
        log.info("supervisor view: %d alerts of the last hour read back", len(alerts))

    async def stop(self) -> None:
        self._closing = True
        tasks = [t for t in (self._pump, self._stats) if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            # A cancellation that lands inside a redis-py command can be swallowed (a
            # known redis-py race): the loops also check _closing, and the wait is bounded.
            _, pending = await asyncio.wait(tasks, timeout=STOP_TASKS_S)
            if pending:
                log.warning("%d background task(s) did not stop; going on", len(pending))
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        try:
            await asyncio.wait_for(self.redis.aclose(), STOP_TASKS_S)
        except TimeoutError:
            log.warning("the redis connections did not close in %.0f s; going on", STOP_TASKS_S)

    async def serve_forever(self) -> None:
        await self.start()
        try:
            await asyncio.Future()
        finally:
            await self.stop()

    # -- HTTP on the same port -------------------------------------------------------------------

    def _http(self, conn: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path in ("/ws", "/ingest"):
            return None
        if path in ("/", "/index.html"):
            return _response(HTTPStatus.OK, "text/html; charset=utf-8", self.console)
        if path == "/healthz":
            body = orjson.dumps({"status": "ok", "connections": len(self.clients)})
            return _response(HTTPStatus.OK, "application/json", body)
        if path == "/metrics":
            return _response(
                HTTPStatus.OK, "text/plain; version=0.0.4", generate_latest(self.metrics.registry)
            )
        return _response(HTTPStatus.NOT_FOUND, "text/plain", b"not found\n")

    # -- one connection --------------------------------------------------------------------------

    async def _handle(self, conn: ServerConnection) -> None:
        path = conn.request.path.split("?", 1)[0] if conn.request is not None else ""
        session: AgentSession | IngestSession
        if path == "/ingest":
            session = IngestSession(self.secret, now=time.time(), auth_timeout=self.auth_timeout)
        elif path == "/ws":
            session = AgentSession(self.secret, now=time.time(), auth_timeout=self.auth_timeout)
        else:
            await conn.close(1008, "use /ws or /ingest")
            return
        if self.unauthenticated >= self.settings.max_unauthenticated:
            self.metrics.refused.inc()
            await conn.close(CLOSE_TRY_AGAIN, "too many connections awaiting auth")
            return
        client = _Client(conn, session)
        self.unauthenticated += 1
        if isinstance(session, AgentSession):
            self.clients.add(client)  # only agents receive alerts
            self._routes = None
        self.metrics.connections.inc()
        writer = asyncio.create_task(self._write(client))
        try:
            await self._read(client)
        finally:
            self._authenticated(client)
            self.clients.discard(client)
            self._routes = None
            self.metrics.connections.dec()
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def _read(self, client: _Client) -> None:
        session = client.session
        while not session.closed:
            timeout = None if session.authenticated else max(0.0, session.deadline - time.time())
            try:
                async with asyncio.timeout(timeout):
                    message = await client.conn.recv()
            except TimeoutError:
                await self._act(client, session.check_deadline(time.time()))
                continue
            except ConnectionClosed:
                return
            await self._act(client, session.receive(message, now=time.time()))
            if session.claims is not None:
                self._authenticated(client)
            if isinstance(session, AgentSession):
                self._routes = None  # auth or subscribe may have changed its queues

    def _authenticated(self, client: _Client) -> None:
        """The client no longer counts against CX_MAX_UNAUTHENTICATED (signed in, or gone)."""
        if client.pending:
            client.pending = False
            self.unauthenticated -= 1

    async def _write(self, client: _Client) -> None:
        with contextlib.suppress(ConnectionClosed):
            while (frame := await client.queue.get()) is not None:
                await client.conn.send(frame)

    async def _act(self, client: _Client, actions: list[Any]) -> None:
        for action in actions:
            try:
                await self._act_one(client, action)
            except aioredis.RedisError as exc:
                # Redis is away: the client hears so and may retry; the session goes on.
                log.warning("redis unavailable for %s: %s", type(action).__name__.lower(), exc)
                frame = error("unavailable", "the store is unavailable; retry shortly")
                self._enqueue(client, frame.frame)

    async def _act_one(self, client: _Client, action: Any) -> None:
        if isinstance(action, Send):
            self._enqueue(client, action.frame)
        elif isinstance(action, Close):
            await self._flush(client)
            await client.conn.close(action.code, action.reason)
        elif isinstance(action, Replay):
            await self._replay(client, action.after)
        elif isinstance(action, Ignored):
            self.metrics.ignored.inc()
            log.debug("alert %s not delivered: %s", action.alert_id[:40], action.reason)
        elif isinstance(action, Ingest):
            await self._ingest(client, action)
        elif isinstance(action, Publish):
            event = action.event
            await self.redis.execute_command(*add_event(self.names, event))  # type: ignore[no-untyped-call]
            self.metrics.published.inc()
            if event.type == "offer_response":
                await self._count_answer(event)

    async def _count_answer(self, event: Event) -> None:
        """Count an agent's answer for the supervisors' view, once per answer (a retry
        of the same answer has the same event id)."""
        a = event.attrs
        first = mark_answered(event.event_id)
        if not await self.redis.execute_command(*first):  # type: ignore[no-untyped-call]
            return
        pipe = self.redis.pipeline(transaction=False)
        queue = a.get("queue")
        fields = answer_fields(
            str(a["action_id"]),
            str(a["agent_id"]),
            str(a["response"]),
            queue if isinstance(queue, str) else None,
        )
        for command in count_answer(fields):
            pipe.execute_command(*command)
        await pipe.execute()

    async def _ingest(self, client: _Client, action: Ingest) -> None:
        """XADD the valid events, dead-letter the others, acknowledge with the stream ids."""
        pipe = self.redis.pipeline(transaction=False)
        for event in action.events:
            pipe.execute_command(*add_event(self.names, event))
        at = int(time.time() * 1000)
        for index, reason, raw in action.rejected:
            letter = Rejected("ingest", str(index), raw, reason.split(":", 1)[0], reason)
            pipe.execute_command(*dead_letter(letter, at_ms=at))
        results = await pipe.execute()
        ids = [
            r.decode() if isinstance(r, bytes) else str(r) for r in results[: len(action.events)]
        ]
        self.metrics.published.inc(len(action.events))
        ack = {
            "type": "ack",
            "stream_ids": ids,
            "rejected": [{"index": i, "reason": reason} for i, reason, _ in action.rejected],
        }
        self._enqueue(client, orjson.dumps(ack).decode())

    async def _flush(self, client: _Client) -> None:
        """Let queued frames (e.g. the error before a close) go out first."""
        for _ in range(50):
            if client.queue.empty():
                return
            await asyncio.sleep(0.001)

    def _enqueue(self, client: _Client, frame: str) -> bool:
        try:
            client.queue.put_nowait(frame)
        except asyncio.QueueFull:
            if not client.slow:
                client.slow = True
                client.session.closed = True
                self.metrics.dropped.inc()
                log.warning(
                    "closing a client that stopped reading (%d frames queued)", SEND_QUEUE_FRAMES
                )
                asyncio.get_running_loop().create_task(
                    client.conn.close(CLOSE_TOO_SLOW, "too slow")
                )
            return False
        return True

    async def _replay(self, client: _Client, after: str) -> None:
        """Alerts after ``after`` for this client, page by page until the stream's end
        (the session holds the live ones meanwhile), then :meth:`AgentSession.replayed`."""
        session = client.session
        assert isinstance(session, AgentSession)
        start = f"({after}"
        try:
            while not session.closed:
                page = stream_entries(
                    await self.redis.xrange(ALERTS, min=start, max="+", count=REPLAY_PAGE)
                )
                for entry_id, fields in page:
                    alert = _alert(entry_id, fields)
                    if alert is None:
                        continue
                    for action in session.alert(entry_id, alert, replay=True):
                        if isinstance(action, Send):
                            # a resuming client waits for queue space, it is not dropped
                            await client.queue.put(action.frame)
                            self.metrics.delivered.inc()
                if len(page) < REPLAY_PAGE:
                    break
                start = f"({page[-1][0]}"
        finally:
            # on an outage too: the live alerts held go out, after what was replayed
            await self._act(client, session.replayed())

    # -- the alert pump --------------------------------------------------------------------------

    async def _pump_alerts(self, last_id: str) -> None:
        # An outage is logged when it starts and when it ends; retried every 0.25 s.
        backoff = Backoff(f"reading {ALERTS}", first=0.1, most=0.25)
        while not self._closing:
            try:
                reply = await self.redis.xread({ALERTS: last_id}, count=500, block=PUMP_BLOCK_MS)
            except aioredis.RedisError as exc:
                await asyncio.sleep(backoff.next_delay(exc))
                continue
            backoff.succeeded()
            for _stream, entries in xread_entries(reply):
                for entry_id, fields in entries:
                    last_id = entry_id
                    alert = _alert(entry_id, fields)  # decoded once, for every client
                    if alert is not None:
                        self.view.observe(alert, now=time.time())
                        for client in self.routes().candidates(alert):
                            self._deliver(client, entry_id, alert)
                    # Let the writers run between entries: a client that reads keeps up,
                    # only one that stopped reading fills its queue and is dropped.
                    await asyncio.sleep(0)

    def routes(self) -> _Routes:
        """Who gets what, rebuilt after any change of the clients."""
        if self._routes is None:
            self._routes = _Routes(self.clients)
        return self._routes

    async def _send_stats(self) -> None:
        """Every STATS_INTERVAL_S, the supervisor view to the supervisors connected here
        (to each, when it differs from what that supervisor saw last)."""
        while not self._closing:
            await asyncio.sleep(self.stats_interval_s)
            supervisors = self.routes().supervisors
            if not supervisors:
                continue
            try:
                counts = await self.redis.hgetall(ANSWERS)
                self.view.answers(cast("dict[bytes, bytes]", counts))
            except aioredis.RedisError as exc:
                log.debug("answers not read (%s); the last ones are sent", exc)
            now = time.time()
            frames: dict[frozenset[str] | None, tuple[dict[str, Any], str]] = {}
            for client in supervisors:
                assert isinstance(client.session, AgentSession)
                queues = client.session.stats_queues()
                if queues not in frames:
                    view = self.view.frame(now=now, queues=queues)
                    figures = {k: v for k, v in view.items() if k != "at"}
                    frames[queues] = figures, orjson.dumps(view).decode()
                figures, frame = frames[queues]
                if client.stats_seen == figures:
                    continue  # sent only when something changed
                client.stats_seen = figures
                for action in client.session.stats(frame):
                    if isinstance(action, Send):
                        self._enqueue(client, action.frame)

    def _deliver(self, client: _Client, stream_id: str, alert: dict[str, Any]) -> None:
        session = client.session
        if not isinstance(session, AgentSession):
            return
        emitted = alert.get("emitted_at")
        for action in session.alert(stream_id, alert):
            if isinstance(action, Send):
                if self._enqueue(client, action.frame):
                    self.metrics.delivered.inc()
                    if isinstance(emitted, int):
                        self.metrics.latency.observe(max(0.0, time.time() - emitted / 1000))
            elif isinstance(action, Ignored):
                self.metrics.ignored.inc()
            elif isinstance(action, Close):  # too many held during a replay (error sent)
                asyncio.get_running_loop().create_task(
                    client.conn.close(action.code, action.reason)
                )


class _Routes:
    """Which clients an alert can be for: by agent id, by queue, supervisors.

    A prefilter so that an alert for one agent does not visit a thousand
    sessions; each candidate's :meth:`AgentSession.wants` still decides.
    """

    def __init__(self, clients: set[_Client]) -> None:
        self.by_agent: dict[str, list[_Client]] = {}
        self.by_queue: dict[str, list[_Client]] = {}
        self.supervisors: list[_Client] = []
        for client in clients:
            session = client.session
            if not isinstance(session, AgentSession) or session.claims is None:
                continue
            self.by_agent.setdefault(session.claims.agent_id, []).append(client)
            for queue in session.queues:
                self.by_queue.setdefault(queue, []).append(client)
            if session.claims.role == "supervisor":
                self.supervisors.append(client)

    def candidates(self, alert: dict[str, Any]) -> list[_Client]:
        found: list[_Client] = []
        agent, queue = alert.get("agent_id"), alert.get("queue")
        if isinstance(agent, str):
            found += self.by_agent.get(agent, ())
        if isinstance(queue, str):
            found += self.by_queue.get(queue, ())
            found += self.by_queue.get(ALL_QUEUES, ())
        found += self.supervisors
        return list(dict.fromkeys(found)) if len(found) > 1 else found


def _alert(stream_id: str, fields: dict[bytes, bytes]) -> dict[str, Any] | None:
    data = fields.get(b"data")
    if data is None:
        return None
    try:
        alert = orjson.loads(data)
    except orjson.JSONDecodeError:
        log.warning("alert %s in %s is not json; skipped", stream_id, ALERTS)
        return None
    return alert if isinstance(alert, dict) else None


def _response(status: HTTPStatus, content_type: str, body: bytes) -> Response:
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
        ]
    )
    return Response(status.value, status.phrase, headers, body)
