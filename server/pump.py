"""Reading the alerts: the live pump, the pages behind it, the view's backfill.

A server runs one pump: it reads each alert once and hands it, decoded once, to
every connection it can be for.  Several servers on one Redis each read the
alerts and deliver to their own connections.  With one stream (``cx:alerts``)
every server reads every alert.  With queue groups (``CX_ALERT_GROUPS``) a server
reads only the streams its connections need (:meth:`AlertFeed.follow`'s
``wanted``); the ids of all groups are one sequence, so the streams are merged
in id order (:func:`in_order`) and a client's resume point holds on any server.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable, Collection, Mapping
from typing import Any, cast

import orjson
import redis.asyncio as aioredis

from server.supervisor import SupervisorView
from state.keys import AlertGroups
from state.redis import Backoff, StreamEntry, stream_entries, stream_id, xread_entries

log = logging.getLogger(__name__)

PUMP_BLOCK_MS = 1000
# With groups: how long a read waits for the streams it has, before it looks at the
# wanted ones again (a group wanted meanwhile is read from when it was wanted).
GROUPS_BLOCK_MS = 100
WANTED_BEFORE_MS = 1000  # a group newly wanted is read from this long before it was
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
        log.warning("alert %s is not json; skipped", stream_id)
        return None
    return alert if isinstance(alert, dict) else None


def in_order(
    pages: Mapping[str, list[StreamEntry]], full: int
) -> tuple[list[StreamEntry], dict[str, str]]:
    """The entries of several streams' pages in id order, as far as all are known, and
    the last id taken of each stream.

    A page of ``full`` entries may have more behind it: nothing after its last id is
    taken (it comes again with the next page), so that no entry is handed on after a
    later one of another stream.

    >>> pages = {"a": [("1-0", {}), ("4-0", {})], "b": [("2-0", {}), ("3-0", {}), ("5-0", {})]}
    >>> taken, last = in_order(pages, full=2)
    >>> [i for i, _ in taken], last
    (['1-0', '2-0', '3-0', '4-0'], {'a': '4-0', 'b': '3-0'})
    """
    bound = min((stream_id(p[-1][0]) for p in pages.values() if len(p) >= full), default=None)
    taken: list[tuple[tuple[int, int], StreamEntry]] = []
    last: dict[str, str] = {}
    for stream, page in pages.items():
        for entry in page:
            key = stream_id(entry[0])
            if bound is not None and key > bound:
                break
            taken.append((key, entry))
            last[stream] = entry[0]
    if len(last) > 1:
        taken.sort(key=lambda t: t[0])
    return [entry for _, entry in taken], last


def later(a: str, b: str) -> str:
    """The later of two stream ids.

    >>> later("5-1", "10-0"), later("7-2", "7-1")
    ('10-0', '7-2')
    """
    return a if stream_id(a) >= stream_id(b) else b


class AlertFeed:
    """The alert streams as the server reads them."""

    def __init__(self, redis: aioredis.Redis, groups: AlertGroups | None = None) -> None:
        self.redis = redis
        self.groups = groups if groups is not None else AlertGroups()
        self.closing = False
        self.read = 0  # alerts read by the live pump
        self.observed: dict[str, str] = {}  # stream -> the last id the view was fed

    async def _tops(self, streams: Collection[str]) -> dict[str, str]:
        """The id of each stream's newest entry ("0-0" when it has none)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream in streams:
                pipe.xrevrange(stream, count=1)
            replies = await pipe.execute()
        tops: dict[str, str] = {}
        for stream, reply in zip(streams, replies, strict=True):
            last = stream_entries(reply)
            tops[stream] = last[0][0] if last else "0-0"
        return tops

    async def last_id(self) -> str:
        """The id of the newest alert ("0-0" when there is none): live starts after it."""
        newest = "0-0"
        for top in (await self._tops(self.groups.streams)).values():
            newest = later(newest, top)
        return newest

    async def after(
        self, after: str, streams: Collection[str] | None = None
    ) -> AsyncGenerator[list[tuple[str, Alert]], None]:
        """The alerts after ``after`` (of ``streams``, default all), page by page, in id
        order, to the streams' end."""
        cursors = dict.fromkeys(self.groups.streams if streams is None else streams, f"({after}")
        while cursors:
            async with self.redis.pipeline(transaction=False) as pipe:
                for stream, start in cursors.items():
                    pipe.xrange(stream, min=start, max="+", count=PAGE)
                replies = await pipe.execute()
            pages = {s: stream_entries(r) for s, r in zip(cursors, replies, strict=True)}
            taken, last = in_order(pages, PAGE)
            cursors.update((s, f"({i}") for s, i in last.items())
            yield [(i, a) for i, f in taken if (a := decode_alert(i, f)) is not None]
            if all(len(p) < PAGE for p in pages.values()):
                return

    async def backfill(self, view: SupervisorView, last_id: str) -> None:
        """Feed the supervisor view the alerts of its window already in the streams, so
        that every server shows the same figures whenever it started."""
        self.observed = dict.fromkeys(self.groups.streams, last_id)
        if last_id == "0-0":
            return
        alerts = await self._window(view, self.groups.streams, "0-0", last_id)
        for read_at, alert in alerts:
            view.observe(alert, now=read_at)
        log.info("supervisor view: %d alerts of the last hour read back", len(alerts))

    async def _window(
        self, view: SupervisorView, streams: Collection[str], since: str, through: str
    ) -> list[tuple[float, Alert]]:
        """The alerts of ``streams`` after ``since`` and through ``through`` within the
        view's window, oldest first, with when each was written (at most BACKFILL_LIMIT
        of each stream, the newest)."""
        since_ms = int((time.time() - view.window_s) * 1000)
        low = later(since, f"{since_ms}-0")
        found: list[tuple[tuple[int, int], float, Alert]] = []
        for stream in streams:
            end, count = through, 0
            while count < BACKFILL_LIMIT:
                start = low if low == f"{since_ms}-0" else f"({low}"
                page = stream_entries(
                    await self.redis.xrevrange(stream, max=end, min=start, count=PAGE)
                )
                for entry_id, fields in page:
                    alert = decode_alert(entry_id, fields)
                    if alert is not None:
                        key = stream_id(entry_id)
                        found.append((key, key[0] / 1000, alert))
                        count += 1
                if len(page) < PAGE:
                    break
                end = f"({page[-1][0]}"
        found.sort(key=lambda t: t[0])  # oldest first, by when it was written
        return [(read_at, alert) for _, read_at, alert in found]

    async def follow(
        self,
        last_id: str,
        on_alert: Callable[[str, Alert], None],
        wanted: Callable[[], Mapping[str, float]] | None = None,
        view: SupervisorView | None = None,
    ) -> None:
        """Every alert after ``last_id`` of the wanted streams to ``on_alert``, in id
        order, until :attr:`closing`.

        ``wanted`` gives the streams to read and since when (wall seconds) each is
        wanted (default: every stream, always).  A stream newly wanted is read from
        just before that time, and ``view`` is fed what it missed of it meanwhile
        (within its window).  An outage is logged when it starts and when it ends;
        retried every 0.25 s.
        """
        backoff = Backoff("reading the alerts", first=0.1, most=0.25)
        cursors: dict[str, str] = {}
        position = last_id  # the newest id handed on
        block = GROUPS_BLOCK_MS if self.groups.split else PUMP_BLOCK_MS
        while not self.closing:
            streams = wanted() if wanted is not None else dict.fromkeys(self.groups.streams, 0.0)
            try:
                await self._follow_streams(cursors, streams, position, view)
                if not cursors:
                    await asyncio.sleep(block / 1000)
                    continue
                reply = await self.redis.xread(
                    cast("dict[Any, Any]", cursors), count=PUMP_COUNT, block=block
                )
            except aioredis.RedisError as exc:
                await asyncio.sleep(backoff.next_delay(exc))
                continue
            backoff.succeeded()
            taken, last = in_order(dict(xread_entries(reply)), PUMP_COUNT)
            cursors.update(last)
            self.read += len(taken)
            for entry_id, fields in taken:
                position = entry_id
                alert = decode_alert(entry_id, fields)  # decoded once, for every client
                if alert is not None:
                    on_alert(entry_id, alert)
                # Let the writers run between entries: a client that reads keeps up,
                # only one that stopped reading fills its queue and is dropped.
                await asyncio.sleep(0)
            if view is not None:
                self.observed.update(last)

    async def _follow_streams(
        self,
        cursors: dict[str, str],
        streams: Mapping[str, float],
        position: str,
        view: SupervisorView | None,
    ) -> None:
        """Read the streams wanted now: drop the others, start the new ones just before
        they were wanted, and read the view what it missed of them."""
        for stream in [s for s in cursors if s not in streams]:
            del cursors[stream]
        added = {s: since for s, since in streams.items() if s not in cursors}
        if not added:
            return
        for stream, since in added.items():
            cursors[stream] = later(position, f"{max(0, int(since * 1000) - WANTED_BEFORE_MS)}-0")
        if view is None or not self.groups.split:
            return
        for stream in added:
            seen = self.observed.get(stream, "0-0")
            if stream_id(seen) < stream_id(cursors[stream]):
                view.observe_past(await self._window(view, (stream,), seen, cursors[stream]))
                self.observed[stream] = cursors[stream]
