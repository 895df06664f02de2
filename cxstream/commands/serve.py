"""``cxstream serve``: serve the WebSocket endpoints (/ws for agents, /ingest for channel
systems), the console, /healthz, /metrics, and the HTTP API on its own port."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from cxstream.settings import Settings, url_host

log = logging.getLogger("cxstream")


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Serve the WebSocket endpoints (/ws for agents, /ingest for channel systems), the console,
    /healthz and /metrics on CX_PORT, and the HTTP API (POST /v1/events, POST /v1/segment,
    GET /v1/customers/ID) on CX_HTTP_PORT."""
    from cxstream.runtime import ServerGc
    from server.app import AlertServer
    from state.redis import redis_url

    collector = ServerGc()
    server = AlertServer(
        settings,
        redis_url=redis_url(settings),
        secret=settings.signing_secret(),
        collector=collector,
    )

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for s in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(s, stopping.set)
        await server.start()
        collector.start()  # survivors frozen from here on (see ServerGc)
        host = url_host(settings.host)
        print(f"serving on http://{host}:{server.port}", file=sys.stderr, flush=True)
        print(
            f"http api on http://{host}:{server.http_port}/v1/",
            file=sys.stderr,
            flush=True,
        )
        try:
            await stopping.wait()
        finally:
            await server.stop()

    asyncio.run(serve())
    log.info("stopped")
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The command's arguments."""
    p = sub.add_parser("serve", help="serve alerts over WebSocket", description=cmd_serve.__doc__)
    p.set_defaults(func=cmd_serve)
