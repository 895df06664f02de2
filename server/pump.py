"""Reading ``cx:alerts``: the live pump, the pages behind it, the view's backfill.

A server runs one pump: it reads the alert stream once and hands each alert,
decoded once, to every connection it can be for.  Several servers on one Redis
each read the whole stream and deliver to their own connections.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any

import orjson
import redis.asyncio as aioredis

from server.supervisor import SupervisorView
from state.keys import ALERTS
from state.redis import Backoff, stream_entries, stream_id, xread_entries

log = logging.getLogger(__name__)

PUMP_BLOCK_MS = 1000
PUMP_COUNT = 500
PAGE = 500  # alerts a page when reading back (replay, backfill)
BACKFILL_LIMIT = 100_000  # alerts of the view's window read back into it at start

Alert = dict[str, Any]


def decode_alert(stream_id: str, fields: dict[bytes, bytes]) -> Alert | None:
    """The alert in a stream entry, or None (logged) when it holds none.

    >>> decode_alert("1-0", {b"data": b'{"alert_id": "a"}'})
    {'alert_id': 'a'}
    >>> decode_alert("1-0", {b"data": b"[1]"}) is None
    True
    """
    data = fields.get(b"data")
    if data is None:
        return None
    try:
        alert = orjson.loads(data)
    except orjson.JSONDecodeError:
        log.warning("alert %s in %s is not json; skipped", stream_id, ALERTS)
        return None
    return alert if isinstance(alert, dict) else None


class AlertFeed:
    """The alert stream as the server reads it."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.closing = False

    async def last_id(self) -> str:
        """The id of the newest alert ("0-0" when there is none): live starts after it."""
        last = stream_entries(await self.redis.xrevrange(ALERTS, count=1))
        return last[0][0] if last else "0-0"

    async def after(self, after: str) -> AsyncGenerator[list[tuple[str, Alert]], None]:
        """The alerts after ``after``, page by page, to the stream's end."""
        start = f"({after}"
        while True:
            entries = stream_entries(
                await self.redis.xrange(ALERTS, min=start, max="+", count=PAGE)
            )
            yield [(i, a) for i, f in entries if (a := decode_alert(i, f)) is not None]
            if len(entries) < PAGE:
                return
            start = f"({entries[-1][0]}"

    async def backfill(self, view: SupervisorView, last_id: str) -> None:
        """Feed the supervisor view the alerts of its window already in the stream, so
        that every server shows the same figures whenever it started."""
        if last_id == "0-0":
            return
        now = time.time()
        since_ms = int((now - view.window_s) * 1000)
        end: str = last_id
        alerts: list[tuple[float, Alert]] = []
        while len(alerts) < BACKFILL_LIMIT:
            page = stream_entries(
                await self.redis.xrevrange(ALERTS, max=end, min=f"{since_ms}-0", count=PAGE)
            )
            for entry_id, fields in page:
                alert = decode_alert(entry_id, fields)
                if alert is not None:
                    alerts.append((stream_id(entry_id)[0] / 1000, alert))
            if len(page) < PAGE:
                break
            end = f"({page[-1][0]}"
        for read_at, alert in reversed(alerts):  # oldest first, by when it was written
            view.observe(alert, now=read_at)
        log.info("supervisor view: %d alerts of the last hour read back", len(alerts))

    async def follow(self, last_id: str, on_alert: Callable[[str, Alert], None]) -> None:
        """Every alert after ``last_id`` to ``on_alert``, until :attr:`closing`.

        An outage is logged when it starts and when it ends; retried every 0.25 s.
        """
        backoff = Backoff(f"reading {ALERTS}", first=0.1, most=0.25)
        while not self.closing:
            try:
                reply = await self.redis.xread(
                    {ALERTS: last_id}, count=PUMP_COUNT, block=PUMP_BLOCK_MS
                )
            except aioredis.RedisError as exc:
                await asyncio.sleep(backoff.next_delay(exc))
                continue
            backoff.succeeded()
            for _stream, entries in xread_entries(reply):
                for entry_id, fields in entries:
                    last_id = entry_id
                    alert = decode_alert(entry_id, fields)  # decoded once, for every client
                    if alert is not None:
                        on_alert(entry_id, alert)
                    # Let the writers run between entries: a client that reads keeps up,
                    # only one that stopped reading fills its queue and is dropped.
                    await asyncio.sleep(0)
