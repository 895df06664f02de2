"""What ``/healthz`` and ``/metrics`` say of Redis and of the dataflow.

The flow's readers record, about once a second, how far they have read each shard
stream (``cx:flow``: stream -> the last id read, when, and how many entries so
far).  A :class:`HealthMonitor` reads that beside the streams' newest ids and the
models' status, at most once a second however often it is asked, and makes of it
the ``/healthz`` body and the flow's Prometheus metrics.

Stream ids are the milliseconds at which Redis took the entry, so the flow's lag
behind a stream is the newest entry's time minus the time of the last entry it
read (0 when it has read the newest).

>>> lag_ms("1700000005000-0", "1700000002000-3")
3000
>>> lag_ms("1700000005000-0", "1700000005000-0"), lag_ms("1700000005000-0", None)
(0, None)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import redis.asyncio as aioredis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from state.keys import ALERTS, DLQ, FLOW, KeyNames, model_key
from state.redis import stream_id

CHECK_EVERY_S = 1.0  # a check is reused for this long
CHECK_TIMEOUT_S = 2.0  # Redis slower than this to answer counts as down
STALE_S = 30.0  # a flow that has not read a stream for this long is not running
BEHIND_S = 60.0  # a flow this far behind a stream is "behind"


def lag_ms(newest: str | None, read: str | None) -> int | None:
    """How far (ms of Redis time) the entry ``read`` is behind the entry ``newest``."""
    if newest is None or read is None:
        return None
    return max(0, stream_id(newest)[0] - stream_id(read)[0])


@dataclass
class Health:
    """One check: the ``/healthz`` body and what the metrics are made of."""

    at: float
    redis_up: bool
    redis_ms: float | None = None
    streams: dict[str, dict[str, Any]] = field(default_factory=dict)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    dead_letters: int | None = None
    alerts: int | None = None
    error: str | None = None

    def flow_status(self) -> str:
        read = [s for s in self.streams.values() if s.get("read_age_s") is not None]
        if not read:
            return "not seen"
        if min(s["read_age_s"] for s in read) > STALE_S:
            return "stopped"
        if max((s.get("lag_s") or 0.0) for s in read) > BEHIND_S:
            return "behind"
        return "ok"

    def body(self, connections: int) -> dict[str, Any]:
        flow = self.flow_status()
        status = "down" if not self.redis_up else "ok" if flow == "ok" else "degraded"
        lags = [s["lag_s"] for s in self.streams.values() if s.get("lag_s") is not None]
        ages = [s["read_age_s"] for s in self.streams.values() if s.get("read_age_s") is not None]
        return {
            "status": status,
            "connections": connections,
            "redis": {"status": "ok" if self.redis_up else "down", "ping_ms": self.redis_ms}
            | ({"error": self.error} if self.error else {}),
            "flow": {
                "status": flow,
                "lag_s": max(lags) if lags else None,
                "last_read_s_ago": min(ages) if ages else None,
                "last_entry_read_at": _iso(
                    max(
                        (
                            s["last_read_entry_ms"]
                            for s in self.streams.values()
                            if s.get("read_id")
                        ),
                        default=None,
                    )
                ),
                "events_read": sum(s.get("events_read", 0) for s in self.streams.values()),
                "streams": self.streams,
            },
            "dead_letters": self.dead_letters,
            "models": self.models,
        }


class HealthMonitor(Collector):
    """Checks Redis and the flow when asked (at most once a second), and collects the
    flow's metrics from the last check into the server's registry."""

    def __init__(self, redis: aioredis.Redis, names: KeyNames, *, model_shards: int) -> None:
        self.redis = redis
        self.names = names
        self.model_shards = model_shards
        self.last: Health | None = None

    async def check(self) -> Health:
        now = time.time()
        if self.last is not None and now - self.last.at < CHECK_EVERY_S:
            return self.last
        try:
            self.last = await self._check(now)
        except (aioredis.RedisError, OSError, TimeoutError) as exc:
            self.last = Health(at=now, redis_up=False, error=f"{type(exc).__name__}: {exc}")
        return self.last

    async def _check(self, now: float) -> Health:
        streams = [self.names.events(s) for s in range(self.names.shards)]
        models = [model_key(f"m{s}") for s in range(self.model_shards)]
        started = time.perf_counter()
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await self.redis.ping()
            ping_ms = round((time.perf_counter() - started) * 1000, 2)
            pipe = self.redis.pipeline(transaction=False)
            for stream in streams:
                pipe.xrevrange(stream, count=1)
            pipe.hgetall(FLOW)
            pipe.xlen(DLQ)
            for key in models:
                pipe.hgetall(key)
            for alert_stream in self.names.alerts.streams:  # CX_ALERT_GROUPS: each group's
                pipe.xlen(alert_stream)
            replies = await pipe.execute()
        newest = replies[: len(streams)]
        flow = {_text(k): orjson.loads(v) for k, v in (replies[len(streams)] or {}).items()}
        dead_letters = int(replies[len(streams) + 1])
        alerts = sum(int(n) for n in replies[len(streams) + 2 + len(models) :])
        health = Health(
            at=now, redis_up=True, redis_ms=ping_ms, dead_letters=dead_letters, alerts=alerts
        )
        for stream, last in zip(streams, newest, strict=True):
            newest_id = _text(last[0][0]) if last else None
            read = flow.get(stream) or {}
            read_id = read.get("id")
            lag = lag_ms(newest_id, read_id)
            entry: dict[str, Any] = {"newest_id": newest_id, "read_id": read_id}
            if read:
                entry.update(
                    lag_s=None if lag is None else lag / 1000,
                    read_age_s=round(max(0.0, now - read["at"] / 1000), 3),
                    events_read=int(read.get("events", 0)),
                    last_read_entry_ms=stream_id(read_id)[0] if read_id else None,
                )
            health.streams[stream] = entry
        for key, fields in zip(models, replies[len(streams) + 2 :][: len(models)], strict=True):
            if fields:
                status = {_text(k): orjson.loads(v) for k, v in fields.items()}
                health.models[key.rsplit(":", 1)[-1]] = {
                    k: status[k] for k in ("version", "n_learned", "roc_auc", "ece") if k in status
                }
        return health

    def collect(self) -> Iterator[Metric]:
        h = self.last
        up = GaugeMetricFamily("cx_redis_up", "1 when the last check reached Redis")
        up.add_metric([], 1.0 if h is not None and h.redis_up else 0.0)
        yield up
        if h is None or not h.redis_up:
            return
        lag = GaugeMetricFamily(
            "cx_flow_lag_seconds",
            "newest entry of a shard stream minus the last one the flow read (Redis time)",
            labels=["stream"],
        )
        age = GaugeMetricFamily(
            "cx_flow_read_age_seconds",
            "time since the flow last read a shard stream",
            labels=["stream"],
        )
        events = CounterMetricFamily(
            "cx_flow_events_read",
            "entries the flow has read from a shard stream",
            labels=["stream"],
        )
        for stream, s in h.streams.items():
            if s.get("lag_s") is not None:
                lag.add_metric([stream], s["lag_s"])
            if s.get("read_age_s") is not None:
                age.add_metric([stream], s["read_age_s"])
                events.add_metric([stream], s["events_read"])
        yield from (lag, age, events)
        lengths = GaugeMetricFamily(
            "cx_stream_entries", "entries held in a stream", labels=["stream"]
        )
        lengths.add_metric([DLQ], float(h.dead_letters or 0))
        lengths.add_metric([ALERTS], float(h.alerts or 0))
        yield lengths
        auc = GaugeMetricFamily(
            "cx_model_roc_auc", "the churn model's prequential ROC AUC", labels=["model"]
        )
        learned = GaugeMetricFamily(
            "cx_model_labels", "matured labels the churn model has learned", labels=["model"]
        )
        for name, m in h.models.items():
            if isinstance(m.get("roc_auc"), int | float):
                auc.add_metric([name], float(m["roc_auc"]))
            if isinstance(m.get("n_learned"), int | float):
                learned.add_metric([name], float(m["n_learned"]))
        yield from (auc, learned)


def _iso(ms: int | None) -> str | None:
    """Milliseconds since the epoch as ISO 8601 UTC.

    >>> _iso(0), _iso(None)
    ('1970-01-01T00:00:00.000Z', None)
    """
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
