"""One connection's outbound side, and who gets which alert.

Each connection has a bounded send queue drained by its own writer task; a
client that stops reading fills it and is closed with code 4029 instead of
slowing anyone else.  :class:`Routes` prefilters the connections an alert can
be for, so that an alert for one agent does not visit a thousand sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from asyncio import FIRST_COMPLETED
from collections.abc import Awaitable
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from server.metrics import Metrics
from server.protocol import (
    CLOSE_TOO_SLOW,
    AgentSession,
    Close,
    Ignored,
    IngestSession,
    Send,
)
from server.tokens import Claims
from state.keys import ALL_QUEUES, AlertGroups

log = logging.getLogger(__name__)

SEND_QUEUE_FRAMES = 256
DRAIN_FRAMES = SEND_QUEUE_FRAMES // 2  # a client's own messages wait above this many queued
DRAIN_WAIT_S = 1.0  # at most this long a message (a client whose alerts keep it over)
FLUSH_TRIES = 50  # how many times flush() waits 1 ms for the queue to drain


class Connection:
    """One client: its protocol session and its bounded outbound queue."""

    def __init__(
        self, conn: ServerConnection, session: AgentSession | IngestSession, metrics: Metrics
    ) -> None:
        self.conn = conn
        self.session = session
        self.metrics = metrics
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(SEND_QUEUE_FRAMES)
        self.slow = False
        self.pending = True  # not authenticated yet: counted against CX_MAX_UNAUTHENTICATED
        self.stats_seen: dict[str, Any] | None = None  # the last supervisor view sent
        self.drained = asyncio.Event()  # set by the writer once at most DRAIN_FRAMES are left

    def enqueue(self, frame: str) -> bool:
        """Queue ``frame``; a full queue closes the client as too slow (False)."""
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            if not self.slow:
                self.slow = True
                self.session.closed = True
                self.metrics.dropped.inc()
                log.warning(
                    "closing a client that stopped reading (%d frames queued)", SEND_QUEUE_FRAMES
                )
                self.close_soon(CLOSE_TOO_SLOW, "too slow")
            return False
        return True

    async def put(self, frame: str) -> bool:
        """Queue ``frame``, waiting for space while the client reads (a resuming client
        is not dropped for being slow); False once the connection has closed, when no
        writer drains the queue any more."""
        if not self.queue.full():
            self.queue.put_nowait(frame)
            return True
        put = await self._or_closed(self.queue.put(frame))
        return put.done() and not put.cancelled()

    async def drain(self, until: float) -> None:
        """Wait, at most until wall time ``until`` (the session's next deadline) and
        :data:`DRAIN_WAIT_S`, while the queue is over half full and the client is not
        given up: the replies to a burst of its messages (each bad one gets an error
        frame) then go out as it reads them, instead of filling the queue before the
        writer runs and closing a client that reads as too slow.  A client that stops
        reading still fills the queue with its alerts, and is closed."""
        if self.queue.qsize() <= DRAIN_FRAMES or self.slow or self.conn.state is not State.OPEN:
            return
        self.drained.clear()
        await self._or_closed(
            self.drained.wait(), timeout=max(0.0, min(until - time.time(), DRAIN_WAIT_S))
        )

    async def _or_closed(
        self, waiting: Awaitable[Any], timeout: float | None = None
    ) -> asyncio.Future[Any]:
        """Wait for ``waiting``, the connection's close or ``timeout``, whichever comes
        first; ``waiting`` is cancelled if it has not come (the future, to look at)."""
        task = asyncio.ensure_future(waiting)
        closed = asyncio.ensure_future(self.conn.wait_closed())
        try:
            await asyncio.wait((task, closed), timeout=timeout, return_when=FIRST_COMPLETED)
        finally:
            closed.cancel()
            if not task.done():
                task.cancel()
        return task

    def close_soon(self, code: int, reason: str) -> None:
        """Close without waiting (from code that must not block on this client)."""
        asyncio.get_running_loop().create_task(self.conn.close(code, reason))

    async def flush(self) -> None:
        """Let queued frames (e.g. the error before a close) go out first."""
        for _ in range(FLUSH_TRIES):
            if self.queue.empty():
                return
            await asyncio.sleep(0.001)

    async def write(self) -> None:
        """The writer task: queued frames to the socket, until ``None`` or a close."""
        queue, drained = self.queue, self.drained
        with contextlib.suppress(ConnectionClosed):
            while (frame := await queue.get()) is not None:
                await self.conn.send(frame)
                if queue.qsize() <= DRAIN_FRAMES:
                    drained.set()

    def deliver(self, stream_id: str, alert: dict[str, Any]) -> None:
        """A live alert through the session to the queue (counted, and timed from
        ``emitted_at``)."""
        session = self.session
        if not isinstance(session, AgentSession):
            return
        emitted = alert.get("emitted_at")
        for action in session.alert(stream_id, alert):
            if isinstance(action, Send):
                if self.enqueue(action.frame):
                    self.metrics.delivered.inc()
                    if isinstance(emitted, int):
                        self.metrics.latency.observe(max(0.0, time.time() - emitted / 1000))
            elif isinstance(action, Ignored):
                self.metrics.ignored.inc()
            elif isinstance(action, Close):  # too many held during a replay (error sent)
                self.close_soon(action.code, action.reason)


def streams_needed(groups: AlertGroups, claims: Claims) -> frozenset[str]:
    """The alert streams a token's holder needs: those of its queues, and a
    supervisor's also those of no queue (its proactive and trend alerts)."""
    return groups.streams_for(claims.queues, no_queue=claims.role == "supervisor")


class Routes:
    """Which connections an alert can be for: by agent id, by queue, supervisors.

    A prefilter; each candidate's :meth:`AgentSession.wants` still decides.
    """

    def __init__(
        self,
        clients: set[Connection],
        groups: AlertGroups | None = None,
        reading: frozenset[str] | None = None,
    ) -> None:
        """``reading``: the alert streams the pump reads (None: all).  With groups, a
        connection whose streams are not all read yet is no candidate until they are,
        so that its alerts start after a point, in id order, with no gap."""
        self.by_agent: dict[str, list[Connection]] = {}
        self.by_queue: dict[str, list[Connection]] = {}
        self.supervisors: list[Connection] = []
        groups = groups if groups is not None else AlertGroups()
        # the alert streams the connections need, and those their supervisors need
        streams: set[str] = set() if groups.split else set(groups.streams)
        supervised: set[str] = set()
        needs: dict[tuple[tuple[str, ...], bool], frozenset[str]] = {}
        for client in clients:
            session = client.session
            if not isinstance(session, AgentSession) or session.claims is None:
                continue
            claims = session.claims
            supervisor = claims.role == "supervisor"
            if groups.split:
                mine = needs.get((claims.queues, supervisor))
                if mine is None:
                    mine = needs[(claims.queues, supervisor)] = streams_needed(groups, claims)
                streams |= mine
                if supervisor:
                    supervised |= mine
                if reading is not None and not mine <= reading:
                    continue  # its alerts start once its streams are read
            self.by_agent.setdefault(claims.agent_id, []).append(client)
            for queue in session.queues:
                self.by_queue.setdefault(queue, []).append(client)
            if supervisor:
                self.supervisors.append(client)
        self.streams = frozenset(streams)
        self.supervised = frozenset(supervised)

    def candidates(self, alert: dict[str, Any]) -> list[Connection]:
        found: list[Connection] = []
        agent, queue = alert.get("agent_id"), alert.get("queue")
        if isinstance(agent, str):
            found += self.by_agent.get(agent, ())
        if isinstance(queue, str):
            found += self.by_queue.get(queue, ())
            found += self.by_queue.get(ALL_QUEUES, ())
        found += self.supervisors
        return list(dict.fromkeys(found)) if len(found) > 1 else found
