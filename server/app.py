"""The ``websockets`` adapter: moves bytes between sockets, Redis and the protocol.

One process serves, on one port: ``/ws`` (agents and supervisors), ``/ingest``
(channel systems), ``/`` (the agent console), ``/healthz`` and ``/metrics``; and on
a second port (``CX_HTTP_PORT``) the HTTP API: ``POST /v1/events``,
``POST /v1/segment``, ``GET /v1/customers/{id}``.
:class:`AlertServer` puts the parts together, one module a concern:

- :mod:`server.protocol`: what each message means (sans I/O);
- :mod:`server.connections`: a connection's bounded send queue, who gets which alert;
- :mod:`server.pump`: reading the alerts (live, by pages, the view's backfill);
- :mod:`server.replay`: resume after a reconnect;
- :mod:`server.ingest`: what clients write (events, answers);
- :mod:`server.stats`: the supervisors' view, every few seconds;
- :mod:`server.endpoints`: the HTTP endpoints on the same port;
- :mod:`server.rest_server` (and :mod:`server.rest`, sans I/O): the HTTP API.

Several servers can run on one Redis: each reads the alerts and delivers to its
own connections; with ``CX_ALERT_GROUPS``, only the alerts of the queue groups
its connections hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from cxstream.runtime import ServerGc
from cxstream.settings import Secret, Settings, shown_url
from operators.errors import CxError, StoreError
from server.connections import Connection, Routes
from server.endpoints import Endpoints
from server.health import HealthMonitor
from server.ingest import Writes
from server.metrics import GcPauses, Metrics
from server.protocol import (
    AUTH_TIMEOUT_S,
    CLOSE_TRY_AGAIN,
    Action,
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
from server.pump import Alert, AlertFeed
from server.replay import replay
from server.rest_server import RestServer, listen_error
from server.stats import STATS_INTERVAL_S, StatsSender
from server.supervisor import SupervisorView
from state.keys import KeyNames
from state.redis import connect_async

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024
STOP_TASKS_S = 3.0  # how long stop() waits for the background tasks
COLLECTOR_CHECK_S = 60.0  # how often the collector's hourly sweep is considered


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
        collector: ServerGc | None = None,
    ) -> None:
        self.settings = settings
        self.collector = collector  # the process's collector policy (`cxstream serve`'s)
        self.auth_timeout = auth_timeout
        self.secret = secret
        self.redis = connect_async(redis_url, cluster=settings.redis_cluster)
        self.redis_url = redis_url
        self.metrics = Metrics()
        self.clients: set[Connection] = set()  # agents' and supervisors' connections
        self.unauthenticated = 0  # connections open and not signed in yet
        self._routes: Routes | None = None  # rebuilt after any client change
        self.groups = KeyNames.of(settings).alerts
        self.view = SupervisorView()
        self.feed = AlertFeed(self.redis, self.groups, read_counter=self.metrics.read)
        self._gc_pauses = GcPauses(self.metrics.gc_pause)
        self.writes = Writes(self.redis, KeyNames.of(settings), self.metrics)
        self.stats = StatsSender(
            self.redis, self.view, interval_s=stats_interval_s, model_shards=settings.model_shards
        )
        self.health = HealthMonitor(
            self.redis, KeyNames.of(settings), model_shards=settings.model_shards
        )
        self.endpoints = Endpoints(self.metrics, lambda: len(self.clients), self.health)
        self.rest = RestServer(
            settings, redis=self.redis, writes=self.writes, secret=secret, metrics=self.metrics
        )
        self._server: Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.port = settings.port

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        try:  # (the server's first commands: Redis unreachable at start is an error)
            start_id = await self.feed.last_id()
            await self.feed.backfill(self.view, start_id)
        except (aioredis.RedisError, OSError) as exc:
            await self.redis.aclose()
            where = shown_url(self.redis_url)
            raise StoreError(f"cannot reach redis at {where}: {exc}") from exc
        try:
            self._server = await serve(
                self._handle,
                self.settings.host,
                self.settings.port,
                origins=[*(Origin(o) for o in self.settings.allowed_origins()), None],
                max_size=MAX_MESSAGE_BYTES,
                compression=None,
                process_request=self.endpoints,
                ping_interval=20,
                ping_timeout=20,
            )
        except OSError as exc:
            await self.redis.aclose()
            where = f"{self.settings.host}:{self.settings.port}"
            reason = listen_error(exc)
            raise CxError(f"cannot listen on {where}: {reason}; set CX_HOST/CX_PORT") from exc
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        try:
            await self.rest.start()
        except CxError:
            self._server.close()
            await self._server.wait_closed()
            await self.redis.aclose()
            raise
        gc.callbacks.append(self._gc_pauses)
        self._tasks = [
            asyncio.create_task(
                self.feed.follow(
                    start_id,
                    self._on_alert,
                    self.wanted,
                    on_reading=self._reading_changed,
                    view=self.view,
                    supervised=self.supervised,
                ),
                name="alert-pump",
            ),
            asyncio.create_task(self.stats.run(self.routes), name="supervisor-stats"),
        ]
        if self.collector is not None:
            self._tasks.append(asyncio.create_task(self._collect(), name="collector"))
        log.info(
            "serving on http://%s:%d, http api on http://%s:%d (alerts after %s)",
            self.settings.host,
            self.port,
            self.settings.host,
            self.http_port,
            start_id,
        )

    @property
    def http_port(self) -> int:
        """The HTTP API's port (the one bound, once started)."""
        return self.rest.port

    async def stop(self) -> None:
        if self._gc_pauses in gc.callbacks:
            gc.callbacks.remove(self._gc_pauses)
        self.feed.closing = self.stats.closing = True
        self._tasks += self.feed.tasks()  # the view's read-backs, if any are running
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # A cancellation that lands inside a redis-py command can be swallowed (a
            # known redis-py race): the loops also check `closing`, and the wait is bounded.
            _, pending = await asyncio.wait(self._tasks, timeout=STOP_TASKS_S)
            if pending:
                log.warning("%d background task(s) did not stop; going on", len(pending))
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await self.rest.stop()
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

    async def _collect(self) -> None:
        """The collector's hourly check (see ServerGc.tick)."""
        assert self.collector is not None
        while not self.feed.closing:
            await asyncio.sleep(COLLECTOR_CHECK_S)
            if self.collector.tick():
                log.info("swept the collector (hourly, the frozen heap had grown)")

    # -- alerts to connections -------------------------------------------------------------------

    def routes(self) -> Routes:
        """Who gets what, rebuilt after any change of the clients."""
        if self._routes is None:
            self._routes = Routes(self.clients, self.groups, self.feed.reading)
        return self._routes

    def wanted(self) -> frozenset[str]:
        """The alert streams the connections need now."""
        return self.routes().streams

    def supervised(self) -> frozenset[str]:
        """The alert streams the supervisors connected here need (their view's)."""
        return self.routes().supervised

    def _reading_changed(self) -> None:
        self._routes = None  # connections waiting for a stream become candidates

    def _on_alert(self, stream_id: str, alert: Alert) -> None:
        self.view.observe(alert, now=time.time())
        for client in self.routes().candidates(alert):
            client.deliver(stream_id, alert)

    # -- one connection --------------------------------------------------------------------------

    async def _handle(self, conn: ServerConnection) -> None:
        path = conn.request.path.split("?", 1)[0] if conn.request is not None else ""
        session: AgentSession | IngestSession
        if path == "/ingest":
            session = IngestSession(self.secret, now=time.time(), auth_timeout=self.auth_timeout)
        elif path == "/ws":
            session = AgentSession(
                self.secret,
                now=time.time(),
                auth_timeout=self.auth_timeout,
                currency=self.settings.currency,
                clock_speed=self.settings.clock_speed,
            )
        else:
            await conn.close(1008, "use /ws or /ingest")
            return
        if self.unauthenticated >= self.settings.max_unauthenticated:
            self.metrics.refused.inc()
            await conn.close(CLOSE_TRY_AGAIN, "too many connections awaiting auth")
            return
        client = Connection(conn, session, self.metrics)
        self.unauthenticated += 1
        if isinstance(session, AgentSession):
            self.clients.add(client)  # only agents receive alerts
            self._routes = None
        self.metrics.connections.inc()
        writer = asyncio.create_task(client.write())
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
            collector = self.collector
            if collector is not None and collector.closed(open_now=len(self.clients)):
                log.info(
                    "swept the collector after closed connections (sweep %d, %d open)",
                    collector.sweeps,
                    len(self.clients),
                )

    async def _read(self, client: Connection) -> None:
        session = client.session
        while not session.closed:
            # (woken at the sign-in deadline, then at the token's expiry)
            timeout = max(0.0, session.wake_at() - time.time())
            try:
                async with asyncio.timeout(timeout):
                    message = await client.conn.recv()
            except TimeoutError:
                await self._act(client, session.check_deadline(time.time()))
                continue
            except ConnectionClosed:
                return
            actions = session.receive(message, now=time.time())
            if isinstance(session, AgentSession):
                # auth or subscribe may have changed its queues: routed before a resume
                # runs, so that live alerts meanwhile are held, not missed
                self._routes = None
            await self._act(client, actions)
            if session.claims is not None:
                self._authenticated(client)
            # the writer runs before the next message is read when the replies pile up
            await client.drain(until=session.wake_at())

    def _authenticated(self, client: Connection) -> None:
        """The client no longer counts against CX_MAX_UNAUTHENTICATED (signed in, or gone)."""
        if client.pending:
            client.pending = False
            self.unauthenticated -= 1

    async def _act(self, client: Connection, actions: Sequence[Action | Ingest]) -> None:
        for action in actions:
            try:
                await self._act_one(client, action)
            except aioredis.RedisError as exc:
                # Redis is away: the client hears so and may retry; the session goes on.
                log.warning("redis unavailable for %s: %s", type(action).__name__.lower(), exc)
                if isinstance(action, Publish) and isinstance(client.session, AgentSession):
                    client.session.unanswered(action.event)  # (not recorded: not answered)
                frame = error("unavailable", "the store is unavailable; retry shortly")
                client.enqueue(frame.frame)

    async def _act_one(self, client: Connection, action: Any) -> None:
        if isinstance(action, Send):
            client.enqueue(action.frame)
        elif isinstance(action, Close):
            await client.flush()
            await client.conn.close(action.code, action.reason)
        elif isinstance(action, Replay):
            await replay(client, self.feed, action.after, self._act)
        elif isinstance(action, Ignored):
            self.metrics.ignored.inc()
            log.debug("alert %s not delivered: %s", action.alert_id[:40], action.reason)
        elif isinstance(action, Ingest):
            client.enqueue(await self.writes.ingest(action))
        elif isinstance(action, Publish):
            await self.writes.publish(action.event)
