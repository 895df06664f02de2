"""The supervisors' ``stats`` frame, sent every few seconds to those connected here.

Each supervisor gets the view of the queues of its token, and only when it
differs from what that supervisor saw last.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, cast

import orjson
import redis.asyncio as aioredis

from server.connections import Connection, Routes
from server.protocol import AgentSession, Send
from server.supervisor import SupervisorView
from state.keys import ANSWERS, EXPERIENCE, model_key

log = logging.getLogger(__name__)

STATS_INTERVAL_S = 2.0  # how often supervisors get the stats frame


class StatsSender:
    def __init__(
        self,
        redis: aioredis.Redis,
        view: SupervisorView,
        *,
        interval_s: float = STATS_INTERVAL_S,
        model_shards: int = 1,
    ) -> None:
        self.redis = redis
        self.model_shards = model_shards
        self.view = view
        self.interval_s = interval_s
        self.closing = False

    async def run(self, routes: Callable[[], Routes]) -> None:
        """Every ``interval_s``, until :attr:`closing`: the view to ``routes().supervisors``."""
        while not self.closing:
            await asyncio.sleep(self.interval_s)
            supervisors = routes().supervisors
            if supervisors:
                await self.send(supervisors)

    async def send(self, supervisors: list[Connection]) -> None:
        """The view to each of ``supervisors`` whose figures changed."""
        try:
            counts = await self.redis.hgetall(ANSWERS)
            self.view.answers(cast("dict[bytes, bytes]", counts))
        except aioredis.RedisError as exc:
            log.debug("answers not read (%s); the last ones are sent", exc)
        try:
            programs = [
                await self.redis.hget(model_key(f"m{i}"), "proactive")
                for i in range(self.model_shards)
            ]
            self.view.programs(cast("list[bytes | None]", programs))
        except aioredis.RedisError as exc:
            log.debug("proactive figures not read (%s); the last ones are sent", exc)
        try:
            parts = await self.redis.hgetall(EXPERIENCE)
            self.view.experience(list(cast("dict[bytes, bytes]", parts).values()))
        except aioredis.RedisError as exc:
            log.debug("experience figures not read (%s); the last ones are sent", exc)
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
                # (none while it resumes: its queue may be full of the replay)
                if isinstance(action, Send) and not client.session.replaying:
                    client.enqueue(action.frame)
