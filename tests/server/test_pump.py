"""Reading the alert stream with a real Redis: pages, the view's backfill, the live pump."""

from __future__ import annotations

import asyncio
import time

import orjson
import redis
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st

from server.pump import PAGE, AlertFeed, decode_alert, in_order
from server.supervisor import SupervisorView
from state.commands import xadd_alert
from state.keys import ALERTS, AlertGroups
from state.redis import send_commands, stream_id


def add(
    r: redis.Redis, alert_id: str, *, at_ms: int | None = None, data: bytes | None = None
) -> str:
    body = data if data is not None else orjson.dumps({"alert_id": alert_id, "kind": "contact"})
    entry = r.xadd(ALERTS, {"data": body}, id=f"{at_ms}-0" if at_ms is not None else "*")
    return entry.decode() if isinstance(entry, bytes) else str(entry)


def feed_of(redis_url: str) -> AlertFeed:
    return AlertFeed(aioredis.Redis.from_url(redis_url))


def test_decode_alert_skips_what_is_not_an_alert_object() -> None:
    assert decode_alert("1-0", {b"data": b'{"a": 1}'}) == {"a": 1}
    assert decode_alert("1-0", {b"other": b"{}"}) is None
    assert decode_alert("1-0", {b"data": b"not json"}) is None
    assert decode_alert("1-0", {b"data": b'"text"'}) is None


def test_after_reads_every_alert_past_the_id_page_by_page(redis_url: str, r: redis.Redis) -> None:
    first = add(r, "before")
    ids = [add(r, f"a{n}") for n in range(PAGE * 2 + 3)]
    add(r, "bad", data=b"{broken")

    async def main() -> list[list[str]]:
        feed = feed_of(redis_url)
        pages = [[i for i, _ in page] async for page in feed.after(first)]
        await feed.redis.aclose()
        return pages

    pages = asyncio.run(main())
    assert [len(p) for p in pages] == [PAGE, PAGE, 3]  # the bad entry read and skipped
    assert [i for p in pages for i in p] == ids


def test_backfill_feeds_the_view_only_the_alerts_of_its_window(
    redis_url: str, r: redis.Redis
) -> None:
    now_ms = int(time.time() * 1000)
    contact = orjson.dumps({"kind": "contact", "risk": {"churn_probability": 0.9}})
    add(r, "old", at_ms=now_ms - 7_200_000, data=contact)  # two hours ago: outside
    last = ""
    for n in range(3):
        last = add(r, f"new{n}", at_ms=now_ms - 60_000 + n, data=contact)
    view = SupervisorView()

    async def main() -> None:
        feed = feed_of(redis_url)
        assert await feed.last_id() == last
        await feed.backfill(view, last)
        await feed.redis.aclose()

    asyncio.run(main())
    assert view.frame(now=time.time())["risk"]["bands"]["high"] == 3


def test_follow_hands_on_each_new_alert_once_in_order(redis_url: str, r: redis.Redis) -> None:
    start = add(r, "seen-before")
    got: list[str] = []

    async def main() -> None:
        feed = feed_of(redis_url)
        task = asyncio.create_task(feed.follow(start, lambda _i, a: got.append(a["alert_id"])))
        for n in range(5):
            add(r, f"live{n}")
        add(r, "bad", data=b"[]")
        deadline = time.monotonic() + 10
        while len(got) < 5 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        feed.closing = True
        await asyncio.wait_for(task, 5)
        await feed.redis.aclose()

    asyncio.run(main())
    assert got == [f"live{n}" for n in range(5)]


@st.composite
def stream_pages(draw: st.DrawFn) -> tuple[dict[str, list[tuple[str, dict[bytes, bytes]]]], int]:
    """Pages of a few streams sharing one id sequence, as a read of ``full`` would give."""
    ids = draw(st.lists(st.integers(1, 10_000), unique=True, max_size=40))
    streams = draw(st.lists(st.sampled_from("abcd"), min_size=len(ids), max_size=len(ids)))
    full = draw(st.integers(1, 8))
    pages: dict[str, list[tuple[str, dict[bytes, bytes]]]] = {}
    for n, stream in sorted(zip(ids, streams, strict=True)):
        page = pages.setdefault(stream, [])
        if len(page) < full:
            page.append((f"{n}-0", {}))
    return pages, full


@given(stream_pages())
def test_in_order_hands_on_no_entry_after_a_later_one_could_still_come(
    drawn: tuple[dict[str, list[tuple[str, dict[bytes, bytes]]]], int],
) -> None:
    """Whatever the pages: what is taken is in id order; nothing later than the end of a
    full page (which may have more behind it) is taken, everything up to it is; and each
    stream's cursor is its last entry taken."""
    pages, full = drawn
    taken, last = in_order(pages, full)
    got = [stream_id(i) for i, _ in taken]
    assert got == sorted(got)
    ends = [stream_id(p[-1][0]) for p in pages.values() if len(p) >= full]
    bound = min(ends) if ends else None
    every = sorted(stream_id(i) for p in pages.values() for i, _ in p)
    assert got == [i for i in every if bound is None or i <= bound]
    for stream, page in pages.items():
        mine = [i for i, _ in page if bound is None or stream_id(i) <= bound]
        assert last.get(stream) == (mine[-1] if mine else None)


def test_after_merges_the_group_streams_in_id_order(redis_url: str, r: redis.Redis) -> None:
    """A resume over several group streams: every alert after the point, once, in the
    order written, pages of different streams interleaved."""
    groups = AlertGroups.parse("care;sales")
    queues = ["care", "sales", None] * (PAGE // 2) + ["sales"] * 7
    commands = [
        xadd_alert(groups, q, 100_000, "data", orjson.dumps({"alert_id": f"a{n}", "queue": q}))
        for n, q in enumerate(queues)
    ]
    ids = [i.decode() for i in send_commands(r, commands, "test")]

    async def main(streams: frozenset[str] | None) -> list[str]:
        feed = AlertFeed(aioredis.Redis.from_url(redis_url), groups)
        got = [a["alert_id"] async for page in feed.after(ids[10], streams) for _, a in page]
        assert await feed.last_id() == ids[-1]
        await feed.redis.aclose()
        return got

    every = asyncio.run(main(None))
    assert every == [f"a{n}" for n in range(11, len(queues))]
    sales = asyncio.run(main(groups.streams_for(["sales"])))
    assert sales == [f"a{n}" for n in range(11, len(queues)) if queues[n] == "sales"]
