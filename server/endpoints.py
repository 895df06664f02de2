"""The HTTP endpoints on the WebSocket port: ``/`` (the agent console),
``/healthz`` and ``/metrics`` (:mod:`server.health`: Redis and the flow); ``/ws``
and ``/ingest`` go on to the WebSocket handshake.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from importlib import resources

import orjson
from prometheus_client import generate_latest
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from server.health import HealthMonitor
from server.metrics import Metrics

WEBSOCKET_PATHS = ("/ws", "/ingest")


class Endpoints:
    """``process_request`` for ``websockets.serve``: a response, or None to upgrade."""

    def __init__(
        self, metrics: Metrics, connections: Callable[[], int], monitor: HealthMonitor
    ) -> None:
        self.metrics = metrics
        self.connections = connections
        self.monitor = monitor
        metrics.registry.register(monitor)  # the flow's figures, from its last check
        self.console = resources.files("server").joinpath("static/console.html").read_bytes()

    async def __call__(self, conn: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path in WEBSOCKET_PATHS:
            return None
        if path in ("/", "/index.html"):
            return response(HTTPStatus.OK, "text/html; charset=utf-8", self.console)
        if path == "/healthz":
            # 200 while this server can serve (Redis answers), the flow's state in the body
            health = await self.monitor.check()
            status = HTTPStatus.OK if health.redis_up else HTTPStatus.SERVICE_UNAVAILABLE
            body = orjson.dumps(health.body(self.connections()))
            return response(status, "application/json", body)
        if path == "/metrics":
            await self.monitor.check()
            return response(
                HTTPStatus.OK, "text/plain; version=0.0.4", generate_latest(self.metrics.registry)
            )
        return response(HTTPStatus.NOT_FOUND, "text/plain", b"not found\n")


def response(status: HTTPStatus, content_type: str, body: bytes) -> Response:
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
        ]
    )
    return Response(status.value, status.phrase, headers, body)
