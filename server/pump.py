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
from prometheus_client import Counter

from server.supervisor import SupervisorView
from state.keys import AlertGroups
from state.redis import Backoff, StreamEntry, stream_entries, stream_id, xread_entries

log = logging.getLogger(__name__)

PUMP_BLOCK_MS = 1000
# With groups: how long a read waits for the streams it has, before it looks at the
# wanted ones again (a connection's alerts wait for its streams to be read).
GROUPS_BLOCK_MS = 100
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

    def __init__(
        self,
        redis: aioredis.Redis,
        groups: AlertGroups | None = None,
        *,
        read_counter: Counter | None = None,
    ) -> None:
        self.redis = redis
        self.groups = groups if groups is not None else AlertGroups()
        self.closing = False
        self.read_counter = read_counter  # alerts read by the live pump
        self.position = "0-0"  # the newest id the live pump handed on
        self.reading: frozenset[str] = frozenset()  # the streams the live pump reads
        self._changed = asyncio.Event()  # set (and replaced) when `reading` changes
        self.observed: dict[str, str] = {}  # stream -> the last id the view was fed
        # stream -> (after, through): alerts the view missed while the stream was not read
        self.gaps: dict[str, tuple[str, str]] = {}
        self._reading_back: dict[str, asyncio.Task[None]] = {}

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
        order, to the streams' end.  Each page is one read of every stream (one command:
        no entry can be written between the streams' reads)."""
        cursors = dict.fromkeys(self.groups.streams if streams is None else streams, after)
        while cursors:
            reply = await self.redis.xread(cast("dict[Any, Any]", cursors), count=PAGE)
            pages = dict(xread_entries(reply))
            taken, last = in_order(pages, PAGE)
            cursors.update(last)
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
        window_start = f"{int((time.time() - view.window_s) * 1000)}-0"
        # from the window's start (inclusive), or after `since` if that is later
        start = window_start if later(since, window_start) == window_start else f"({since}"
        found: list[tuple[tuple[int, int], float, Alert]] = []
        for stream in streams:
            end, count = through, 0
            while count < BACKFILL_LIMIT:
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
        wanted: Callable[[], frozenset[str]] | None = None,
        *,
        on_reading: Callable[[], None] | None = None,
        view: SupervisorView | None = None,
        supervised: Callable[[], frozenset[str]] | None = None,
    ) -> None:
        """Every alert after ``last_id`` of the wanted streams to ``on_alert``, in id
        order, until :attr:`closing`.

        ``wanted`` gives the streams to read (default: every stream, always).  A
        stream newly wanted is read from the newest id handed on so far
        (:attr:`position`); :attr:`reading` says which are read, and ``on_reading``
        is called when that changes.  The server hands a connection alerts only once
        every stream it needs is read, so a connection's alerts come in id order with
        no gap after the first.  ``view`` is read back what it missed of a stream
        while it was not read, once a supervisor needs it (``supervised``), in a task
        of its own.  An outage is logged when it starts and when it ends; retried
        every 0.25 s.
        """
        backoff = Backoff("reading the alerts", first=0.1, most=0.25)
        cursors: dict[str, str] = {}
        self.position = last_id
        block = GROUPS_BLOCK_MS if self.groups.split else PUMP_BLOCK_MS
        while not self.closing:
            streams = wanted() if wanted is not None else frozenset(self.groups.streams)
            if self._follow_streams(cursors, streams) and on_reading is not None:
                on_reading()
            if view is not None and supervised is not None and self.gaps:
                self._read_back(view, supervised())
            if not cursors:
                await asyncio.sleep(block / 1000)
                continue
            try:
                reply = await self.redis.xread(
                    cast("dict[Any, Any]", cursors), count=PUMP_COUNT, block=block
                )
            except aioredis.RedisError as exc:
                await asyncio.sleep(backoff.next_delay(exc))
                continue
            backoff.succeeded()
            taken, last = in_order(dict(xread_entries(reply)), PUMP_COUNT)
            cursors.update(last)
            self.observed.update(last)
            if self.read_counter is not None and taken:
                self.read_counter.inc(len(taken))
            for entry_id, fields in taken:
                self.position = entry_id
                alert = decode_alert(entry_id, fields)  # decoded once, for every client
                if alert is not None:
                    on_alert(entry_id, alert)
                # Let the writers run between entries: a client that reads keeps up,
                # only one that stopped reading fills its queue and is dropped.
                await asyncio.sleep(0)

    def _follow_streams(self, cursors: dict[str, str], streams: frozenset[str]) -> bool:
        """Read the streams wanted now: drop the others, start the new ones at the newest
        id handed on (the view's gap of each noted); whether what is read changed."""
        gone = [s for s in cursors if s not in streams]
        added = [s for s in streams if s not in cursors]
        if not gone and not added:
            return False
        for stream in gone:
            del cursors[stream]
        for stream in added:
            cursors[stream] = self.position
            seen = self.observed.get(stream, "0-0")
            if self.groups.split and stream_id(seen) < stream_id(self.position):
                self.gaps[stream] = (seen, self.position)
        self.reading = frozenset(cursors)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        return True

    async def until_reading(self, streams: Collection[str], timeout: float) -> bool:
        """Wait until every one of ``streams`` is read (False: not within ``timeout`` s)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.reading.issuperset(streams):
            left = deadline - asyncio.get_running_loop().time()
            try:
                await asyncio.wait_for(self._changed.wait(), max(0.0, left))
            except TimeoutError:
                return False
        return True

    def tasks(self) -> list[asyncio.Task[None]]:
        """The read-backs running (for the server to stop them)."""
        return list(self._reading_back.values())

    def _read_back(self, view: SupervisorView, supervised: frozenset[str]) -> None:
        """Start reading back the gaps of the streams a supervisor needs (one task each)."""
        for stream, (since, through) in list(self.gaps.items()):
            if stream in supervised and stream not in self._reading_back:
                task = asyncio.get_running_loop().create_task(
                    self._read_gap(view, stream, since, through), name=f"read-back {stream}"
                )
                self._reading_back[stream] = task

    async def _read_gap(self, view: SupervisorView, stream: str, since: str, through: str) -> None:
        """The view's gap of ``stream``, read back; on an outage it stays, to be read again."""
        try:
            alerts = await self._window(view, (stream,), since, through)
        except aioredis.RedisError as exc:
            log.warning("supervisor view: reading back %s failed (%s); will retry", stream, exc)
            return
        finally:
            self._reading_back.pop(stream, None)
        view.observe_past(alerts)
        if self.gaps.get(stream) == (since, through):
            del self.gaps[stream]
        log.info("supervisor view: %d alerts of %s read back", len(alerts), stream)
