"""What clients write through the server: channel batches on ``/ingest`` and the
agents' answers (acks and outcomes) from ``/ws``.

Every write is built by :mod:`state.commands`, as the flow's and the command
line's are: one field layout and one trimming policy per stream.
"""

from __future__ import annotations

import time

import orjson
import redis.asyncio as aioredis

from operators.events import Event, Rejected
from server.metrics import Metrics
from server.protocol import Ingest, ack_fields
from state.commands import add_event, answer_key, count_answer, dead_letter, mark_answered
from state.keys import KeyNames


class Writes:
    def __init__(self, redis: aioredis.Redis, names: KeyNames, metrics: Metrics) -> None:
        self.redis = redis
        self.names = names
        self.metrics = metrics

    async def publish(self, event: Event) -> None:
        """An agent's ack or answer into the event stream (an answer also counted)."""
        await self.redis.execute_command(*add_event(self.names, event))  # type: ignore[no-untyped-call]
        self.metrics.published.inc()
        if event.type == "offer_response":
            await self.count_answer(event)

    async def count_answer(self, event: Event) -> None:
        """Count an agent's answer for the supervisors' view, once per alert and agent
        (a retry, or a second answer from another connection, is not counted again)."""
        a = event.attrs
        first = mark_answered(answer_key(str(a["alert_id"]), str(a["agent_id"])))
        if not await self.redis.execute_command(*first):  # type: ignore[no-untyped-call]
            return
        pipe = self.redis.pipeline(transaction=False)
        for command in count_answer(event):
            pipe.execute_command(*command)
        await pipe.execute()

    async def ingest(self, batch: Ingest) -> str:
        """XADD the valid events, dead-letter the others; the ``ack`` frame with the
        stream ids and the reasons."""
        ids = await self.write_batch(batch)
        return orjson.dumps({"type": "ack", **ack_fields(batch, ids)}).decode()

    async def write_batch(self, batch: Ingest) -> list[str]:
        """XADD the valid events, dead-letter the others (source ``ingest``, entry id the
        index in the batch); the stream ids of the events, in order."""
        pipe = self.redis.pipeline(transaction=False)
        for event in batch.events:
            pipe.execute_command(*add_event(self.names, event))
        at = int(time.time() * 1000)
        for index, reason, raw in batch.rejected:
            letter = Rejected("ingest", str(index), raw, reason.split(":", 1)[0], reason)
            pipe.execute_command(*dead_letter(letter, at_ms=at))
        results = await pipe.execute()
        ids = [r.decode() if isinstance(r, bytes) else str(r) for r in results[: len(batch.events)]]
        self.metrics.published.inc(len(batch.events))
        return ids
