"""The server's Prometheus metrics, one registry a server (served on ``/metrics``)."""

from __future__ import annotations

from dataclasses import dataclass, field

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
        self.latency = Histogram(
            "cx_alert_delivery_seconds",
            "alert emitted_at to frame queued",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
