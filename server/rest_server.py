"""The asyncio adapter of the HTTP API: moves bytes between sockets, Redis and
:class:`server.rest.RestSession`.

It listens on ``CX_HOST:CX_HTTP_PORT`` (the WebSocket library's request hook
cannot read a request's body, so the API has a port of its own) and is started
and stopped by :class:`server.app.AlertServer` with the WebSocket server.  Writes
go through :class:`server.ingest.Writes` (as ``/ingest``'s), profiles are read
with :func:`state.profiles.read_profile`.

A connection idle for :data:`IDLE_TIMEOUT_S` is closed; at most
:data:`MAX_CONNECTIONS` are open at once (more get 503).  A connection closed
while the client may still be sending (a refused body) is half-closed first and
its input read and dropped for up to :data:`LINGER_S`, so that the client reads
the response instead of a reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Sequence

import redis.asyncio as aioredis

from cxstream.settings import Secret, Settings
from operators.errors import CxError
from server.ingest import Writes
from server.metrics import Metrics
from server.rest import Hangup, Output, ReadProfile, RestAction, RestSession, Write
from state.keys import KeyNames
from state.profiles import read_profile

log = logging.getLogger(__name__)

READ_BYTES = 64 * 1024
IDLE_TIMEOUT_S = 30.0  # no byte from the client for this long: the connection is closed
LINGER_S = 2.0
MAX_CONNECTIONS = 1000


def listen_error(exc: OSError) -> str:
    """Why a server could not listen: the system's words for a failed bind (asyncio's own
    message wraps them), the resolver's for a host name that does not resolve (its
    error numbers are negative)."""
    if exc.errno is not None and exc.errno > 0:
        return os.strerror(exc.errno)
    return exc.strerror or str(exc)


class RestServer:
    """The HTTP API's listener and its connections."""

    def __init__(
        self,
        settings: Settings,
        *,
        redis: aioredis.Redis,
        writes: Writes,
        secret: Secret,
        metrics: Metrics,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.writes = writes
        self.secret = secret
        self.metrics = metrics
        self.names = KeyNames.of(settings)
        self.port = settings.api_port
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        host, port = self.settings.host, self.settings.api_port
        try:
            self._server = await asyncio.start_server(self._connection, host, port)
        except OSError as exc:
            reason = listen_error(exc)
            raise CxError(
                f"cannot listen on {host}:{port} for the http api: {reason}; "
                "set CX_HOST/CX_HTTP_PORT"
            ) from exc
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("http api on http://%s:%d/v1/", host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.wait(self._connections, timeout=LINGER_S)

    # -- one connection --------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        session = RestSession(self.secret)
        try:
            if len(self._connections) > MAX_CONNECTIONS:
                await self._act(session, writer, reader, session.busy())
                return
            while not session.closed:
                try:
                    async with asyncio.timeout(IDLE_TIMEOUT_S):
                        data = await reader.read(READ_BYTES)
                except TimeoutError:
                    return
                actions = session.receive(data, now=time.time())
                if not await self._act(session, writer, reader, actions):
                    return
                if not data:
                    return
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            log.debug("http connection lost: %s", exc)
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _act(
        self,
        session: RestSession,
        writer: asyncio.StreamWriter,
        reader: asyncio.StreamReader,
        actions: Sequence[RestAction],
    ) -> bool:
        """Carry out ``actions`` (and what answering them brings); False once the
        connection is to close."""
        todo = list(actions)
        while todo:
            action = todo.pop(0)
            if isinstance(action, Output):
                if action.status:  # counted before the client can read it
                    self.metrics.http.labels(action.route or "other", str(action.status)).inc()
                writer.write(action.data)
                await writer.drain()
            elif isinstance(action, Write):
                todo += await self._write(session, action)
            elif isinstance(action, ReadProfile):
                todo += await self._read(session, action)
            elif isinstance(action, Hangup):
                await self._linger(writer, reader)
                return False
        return True

    async def _write(self, session: RestSession, action: Write) -> list[RestAction]:
        try:
            ids = await self.writes.write_batch(action.batch)
        except aioredis.RedisError as exc:
            log.warning("redis unavailable for an http batch: %s", exc)
            return session.unavailable(now=time.time())
        return session.written(ids, now=time.time())

    async def _read(self, session: RestSession, action: ReadProfile) -> list[RestAction]:
        try:
            found = await read_profile(self.redis, self.names, action.customer_id)
        except aioredis.RedisError as exc:
            log.warning("redis unavailable for a profile: %s", exc)
            return session.unavailable(now=time.time())
        return session.profile(found, now=time.time())

    async def _linger(self, writer: asyncio.StreamWriter, reader: asyncio.StreamReader) -> None:
        """Half-close, then drop what the client still sends, for a while."""
        if writer.is_closing() or not writer.can_write_eof():
            return
        with contextlib.suppress(OSError):  # a reset, or the time is up (TimeoutError)
            writer.write_eof()
            async with asyncio.timeout(LINGER_S):
                while await reader.read(READ_BYTES):
                    pass
