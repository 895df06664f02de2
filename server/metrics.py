"""The server's Prometheus metrics, one registry a server (served on ``/metrics``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.connections = Gauge("cx_ws_connections", "open agent connections", registry=r)
        self.delivered = Counter("cx_alerts_delivered", "alert frames queued to agents", registry=r)
        self.refused = Counter(
            "cx_ws_refused",
            "connections closed at once: CX_MAX_UNAUTHENTICATED were awaiting auth",
            registry=r,
        )
        self.ignored = Counter(
            "cx_alerts_ignored",
            "alerts addressed to an agent whose token does not grant their queue",
            registry=r,
        )
        self.dropped = Counter(
            "cx_ws_slow_clients_dropped", "clients closed as too slow", registry=r
        )
        self.published = Counter("cx_feedback_events", "acks and outcomes written back", registry=r)
        self.http = Counter(
            "cx_http_requests",
            "requests the http api answered, by route (events, segment, customers) and status",
            ["route", "status"],
            registry=r,
        )
        self.read = Counter(
            "cx_alerts_read",
            "alerts this server has read from redis (with CX_ALERT_GROUPS: those of the "
            "groups its connections hold)",
            registry=r,
        )
        self.gc_pause = Histogram(
            "cx_gc_pause_seconds",
            "the server's garbage-collector pauses (every generation)",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
            registry=r,
        )
        self.latency = Histogram(
            "cx_alert_delivery_seconds",
            "alert emitted_at to frame queued",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )


class GcPauses:
    """A ``gc.callbacks`` hook timing each collection into a histogram: a pause of the
    server delays every frame behind it.

    >>> import gc
    >>> metrics = Metrics()
    >>> pauses = GcPauses(metrics.gc_pause)
    >>> gc.callbacks.append(pauses); _ = gc.collect(); gc.callbacks.remove(pauses)
    >>> pauses.count >= 1
    True
    """

    def __init__(self, histogram: Histogram) -> None:
        self.histogram = histogram
        self.started = 0.0
        self.count = 0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        else:
            self.histogram.observe(time.perf_counter() - self.started)
            self.count += 1
