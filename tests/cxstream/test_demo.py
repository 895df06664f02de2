"""`cxstream demo` as a newcomer runs it: embedded Redis, Ctrl-C stops everything."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest
import redis
from websockets.asyncio.client import connect

from cxstream.demo import demo_catalog, follow_running_demo
from cxstream.settings import Settings
from operators.errors import CxError
from state.catalog import default_catalog, load_catalog
from tests.conftest import entries, free_port

pytestmark = pytest.mark.timeout(150)


def _demo_processes(folder: Path) -> list[psutil.Process]:
    """Processes started for this demo: children carry CX_DATA_DIR=<folder>/demo."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("CX_DATA_DIR") == str((folder / "demo").resolve()):
                found.append(proc)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def test_demo_prints_where_to_look_delivers_alerts_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    """Run as the README says: from the project folder, no setting; the other commands
    of the README, given no setting either, reach the running demo."""
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "CX_SECRET", "CX_DATA_DIR")
    }
    env.update(
        CX_PORT=str(port),
        CX_HTTP_PORT=str(free_port()),
        PYTHONUNBUFFERED="1",
    )
    folder = tmp_path / ".cxstream"  # the default CX_DATA_DIR, from the folder it runs in
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cxstream",
            "demo",
            "--rate",
            "60",
            "--status-every",
            "2",
            "--incident-after",
            "3",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    lines: list[str] = []

    def pump() -> None:
        assert demo.stdout is not None
        for raw in demo.stdout:
            lines.append(raw.decode(errors="replace"))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        match = None
        while match is None and time.monotonic() < deadline:
            match = re.search(rf"http://127\.0\.0\.1:{port}/#token=(\S+)", "".join(lines))
            time.sleep(0.1)
        assert match, "".join(lines)
        token = match.group(1)
        boss = re.search(
            r"supervisor\s+http://\S+#token=([^&\s]+)&queues=retention", "".join(lines)
        )
        assert boss, "".join(lines)
        redis_url = re.search(r"redis\s+(unix://\S+)", "".join(lines))
        assert redis_url
        assert len(_demo_processes(folder)) >= 2  # dataflow + server
        _readme_commands_reach_the_demo(tmp_path, env, port, redis_url.group(1))

        async def first_alert() -> dict[str, object]:
            async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
                await ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
                welcome = orjson.loads(await ws.recv())
                assert welcome["type"] == "welcome"
                # the demo's fast clock (--speed's default), for times to come in the
                # viewer's time (an action's 72 hours)
                assert welcome["clock_speed"] == 21_600.0
                frame: dict[str, object] = orjson.loads(await asyncio.wait_for(ws.recv(), 60))
                return frame

        def outage(alert: dict[str, object]) -> bool:
            trend = alert.get("trend")
            return isinstance(trend, dict) and trend.get("metric") == "complaints"

        async def first_trend() -> dict[str, object]:
            """The outage's trend alert, as an alert frame or in the supervisor view (the
            calls it brings may spike first: a contacts trend)."""
            assert boss is not None
            async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
                await ws.send(orjson.dumps({"type": "auth", "token": boss.group(1)}).decode())
                assert orjson.loads(await ws.recv())["role"] == "supervisor"
                while True:
                    frame = orjson.loads(await asyncio.wait_for(ws.recv(), 60))
                    if frame["type"] == "alert" and outage(frame["alert"]):
                        return dict(frame["alert"])
                    if frame["type"] == "stats":
                        for trend in filter(outage, frame["trends"]):
                            return dict(trend)

        async def answers_seen() -> int:
            """The supervisor (every queue) sees the simulated agents' answers counted."""
            assert boss is not None
            async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
                await ws.send(orjson.dumps({"type": "auth", "token": boss.group(1)}).decode())
                while True:
                    frame = orjson.loads(await asyncio.wait_for(ws.recv(), 60))
                    if frame["type"] == "stats":
                        by_action = frame["acceptance"]["by_action"].values()
                        answered = sum(int(a["answered"]) for a in by_action)
                        if answered >= 5:
                            return answered

        trend = asyncio.run(first_trend())
        assert asyncio.run(answers_seen()) >= 5
        examples = trend["trend"]["examples"]  # type: ignore[index]
        assert any(e["topic"] == "outage" for e in examples)
        frame = asyncio.run(first_alert())
        assert frame["type"] == "alert"
        alert = frame["alert"]
        assert isinstance(alert, dict)
        assert alert["queue"] == "retention"
        assert alert["risk"]["reasons"] is not None
        # the README's proactive step: two failed payments put the customer on the
        # console's call-back list
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        failures = b"".join(
            orjson.dumps(
                {
                    "event_id": f"pay-{n}",
                    "customer_id": "me-pay",
                    "ts": now,
                    "channel": "app",
                    "type": "payment_failed",
                    "attrs": {"amount": 40},
                }
            )
            + b"\n"
            for n in (1, 2)
        )

        proactive = asyncio.run(
            _sent_and_alerted(tmp_path, env, port, token, failures, "proactive", "me-pay")
        )
        assert proactive["queue"] == "retention"
        assert proactive["trigger"]["name"] == "payment_failed_twice"
        # it lasts 72 hours of the viewer's time, not the simulation's (seconds): the
        # console keeps it on the list
        assert int(proactive["expires_at"]) > (time.time() + 48 * 3600) * 1000
        assert proactive["not_before"] is None  # no quiet hours in the demo's fast clock
        _readme_consent_step(tmp_path, env, port, token)
        status = re.compile(r"events \d+ \(\d+/s\)\s+alerts [1-9]\d*")
        while not status.search("".join(lines)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert status.search("".join(lines)), "".join(lines)
    finally:
        demo.send_signal(signal.SIGINT)
        code = demo.wait(timeout=60)
        reader.join(timeout=5)
    out = "".join(lines)
    assert code == 0, out
    assert "demo stopped" in out
    assert _demo_processes(folder) == []
    assert not (folder / "demo" / "demo.pid").exists()
    assert not (folder / "demo" / "demo.shards").exists()
    # it said what it was doing before the link, not half a minute of silence
    assert out.index("preloading") < out.index("agent console") < out.index("now live")
    # the model's AUC is shown once it means something, with who speaks (the prior, a
    # blend, the fit)
    shown = re.findall(r"AUC [\d.]+ on (\d+) labels \((?:prior|blend|learned)\)", out)
    assert len(shown) == out.count(" AUC "), out
    for labels in shown:
        assert int(labels) >= 200, out
    # the status line's polling of /healthz does not fill the server's log
    served = (folder / "demo" / "logs" / "server.log").read_text()
    assert "HTTP response sent" not in served
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(redis_url.group(1), socket_connect_timeout=1).ping()
    assert (folder / "demo" / "logs" / "dataflow.log").exists()


async def _sent_and_alerted(
    cwd: Path, env: dict[str, str], port: int, token: str, lines: bytes, kind: str, customer: str
) -> dict[str, Any]:
    """Signed in as the demo's agent: ``cxstream send`` the events, and wait for the
    alert of that kind about that customer."""
    async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
        await ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
        assert orjson.loads(await ws.recv())["type"] == "welcome"
        sent = subprocess.run(
            [sys.executable, "-m", "cxstream", "send"],
            input=lines,
            cwd=cwd,
            env=env,
            capture_output=True,
        )
        assert sent.returncode == 0, sent.stderr
        while True:
            frame = orjson.loads(await asyncio.wait_for(ws.recv(), 30))
            got = frame.get("alert") or {}
            if got.get("kind") == kind and got.get("customer_id") == customer:
                return dict(got)


def _readme_consent_step(cwd: Path, env: dict[str, str], port: int, token: str) -> None:
    """The README's consent step on the running demo: a marketing withdrawal, a contact
    whose alert offers no sales action, then `export` and `forget` of the customer."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    said = {"purpose": "marketing", "granted": False}
    events = [
        {"event_id": "mc-1", "customer_id": "me-consent", "ts": now, "channel": "app",
         "type": "consent", "attrs": said},
        {"event_id": "mc-2", "customer_id": "me-consent", "ts": now, "channel": "voice",
         "type": "contact_start", "attrs": {"queue": "retention", "agent_id": "demo-agent"}},
    ]  # fmt: skip
    cli = [sys.executable, "-m", "cxstream"]

    lines = b"\n".join(orjson.dumps(e) for e in events)
    alert = asyncio.run(_sent_and_alerted(cwd, env, port, token, lines, "contact", "me-consent"))
    assert alert["consent"]["marketing"]["granted"] is False
    action = alert["next_best_action"]
    if action is not None:  # (None: the customer is in the control group)
        assert action["action_id"] not in ("retention_offer", "upsell_upgrade")
    shown = subprocess.run([*cli, "export", "me-consent"], cwd=cwd, env=env, capture_output=True)
    assert shown.returncode == 0, shown.stderr
    doc = orjson.loads(shown.stdout)
    assert {e["data"]["event_id"] for e in doc["events"]} >= {"mc-1", "mc-2"}
    assert doc["alerts"]
    gone = subprocess.run(
        [*cli, "forget", "me-consent", "--wait", "60"], cwd=cwd, env=env, capture_output=True
    )
    assert gone.returncode == 0, gone.stderr
    after = subprocess.run([*cli, "export", "me-consent"], cwd=cwd, env=env, capture_output=True)
    assert orjson.loads(after.stdout)["erased"] is True


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell starts a job with `&`


def _readme_commands_reach_the_demo(cwd: Path, env: dict[str, str], port: int, url: str) -> None:
    """`cxstream send` and an ingest token from `cxstream token`, as the README gives
    them (no CX_DATA_DIR): the event reaches the demo's Redis, the token its /ingest."""
    contact = {
        "event_id": "me-1",
        "customer_id": "me",
        "ts": "2026-11-23T10:00:00Z",
        "channel": "voice",
        "type": "contact_start",
        "attrs": {"queue": "retention", "agent_id": "demo-agent"},
    }
    cli = [sys.executable, "-m", "cxstream"]
    sent = subprocess.run(
        [*cli, "send"], input=orjson.dumps(contact), cwd=cwd, env=env, capture_output=True
    )
    assert sent.returncode == 0, sent.stderr
    assert b"the demo is running" in sent.stderr
    client = redis.Redis.from_url(url)
    streams = [f"cx:events:{shard}" for shard in range(Settings().shards)]
    ids = [orjson.loads(f[b"data"])["event_id"] for s in streams for _, f in entries(client, s)]
    client.close()
    assert "me-1" in ids
    minted = subprocess.run(
        [*cli, "token", "--agent", "web-shop", "--role", "ingest"],
        cwd=cwd,
        env=env,
        capture_output=True,
    )
    assert minted.returncode == 0, minted.stderr

    async def ingest() -> dict[str, object]:
        async with connect(f"ws://127.0.0.1:{port}/ingest") as ws:
            await ws.send(orjson.dumps({"type": "auth", "token": minted.stdout.decode().strip()}))
            welcome = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
            assert welcome["type"] == "welcome", welcome
            await ws.send(orjson.dumps({**contact, "event_id": "me-2"}))
            ack: dict[str, object] = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
            return ack

    ack = asyncio.run(ingest())
    assert ack["type"] == "ack", ack
    assert len(ack["stream_ids"]) == 1  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("signum", "background"),
    [(signal.SIGTERM, False), (signal.SIGHUP, False), (signal.SIGINT, True)],
)
def test_demo_stopped_by_a_signal_stops_everything_it_started(
    tmp_path: Path, signum: signal.Signals, background: bool
) -> None:
    """`kill`, a closed terminal, or Ctrl-C to a demo started in the background of a
    shell (SIGINT ignored at start): no flow, server or Redis left."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "CX_SECRET")}
    env.update(
        CX_PORT=str(port),
        CX_HTTP_PORT=str(free_port()),
        CX_DATA_DIR=str(tmp_path),
        PYTHONUNBUFFERED="1",
    )
    demo = subprocess.Popen(
        [sys.executable, "-m", "cxstream", "demo", "--history-days", "1", "--rate", "20"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=_ignore_sigint if background else None,
    )
    assert demo.stdout is not None
    out = ""
    deadline = time.monotonic() + 60
    while "agent console" not in out and time.monotonic() < deadline:
        line = demo.stdout.readline()
        if not line:
            break
        out += line.decode(errors="replace")
    assert "agent console" in out, out
    assert len(_demo_processes(tmp_path)) >= 2  # dataflow + server
    demo.send_signal(signum)
    rest, _ = demo.communicate(timeout=60)
    out += rest.decode(errors="replace")
    assert demo.returncode == 0, out
    assert "demo stopped" in out
    left = _demo_processes(tmp_path)
    deadline = time.monotonic() + 10  # an embedded redis-server ends just after its last user
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = _demo_processes(tmp_path)
    assert left == [], [p.cmdline() for p in left]


def test_demo_refuses_a_port_in_use(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _refused_demo(tmp_path, "--duration", "5", CX_PORT=str(port))
    assert f"cannot use 127.0.0.1:{port} for the server".encode() in done.stderr
    assert not (tmp_path / "demo" / "logs").exists()  # nothing was started


def _refused_demo(
    data_dir: Path, *args: str, **settings: str
) -> subprocess.CompletedProcess[bytes]:
    """`cxstream demo` with ``args`` from ``data_dir`` (no REDIS_URL; ``settings``: more of
    its environment), expected to refuse: exit 2."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(CX_DATA_DIR=str(data_dir), **settings)
    done = subprocess.run(
        [sys.executable, "-m", "cxstream", "demo", *args],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    return done


def test_a_second_demo_leaves_the_running_ones_folder_alone(tmp_path: Path, live_pid: int) -> None:
    """A demo runs from this data folder (its pid file names a live process): a second
    one, even on other ports, refuses before clearing the folder (the first one's Redis,
    key and logs)."""
    folder = _fake_running_demo(tmp_path, 4, live_pid)
    (folder / "secret").write_text("the running demo's key")
    done = _refused_demo(tmp_path, "--duration", "5", CX_PORT="0", CX_HTTP_PORT="0")
    assert f"a demo is already running from {folder} (pid {live_pid})".encode() in done.stderr
    assert (folder / "secret").read_text() == "the running demo's key"
    assert not (folder / "logs").exists()  # nothing was started


def test_a_demo_starting_at_the_same_instant_is_refused(tmp_path: Path) -> None:
    """Another demo of this data folder holds the lock but has not written its pid yet."""
    import fcntl

    with (tmp_path / "demo.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        done = _refused_demo(tmp_path, "--duration", "5", CX_PORT="0", CX_HTTP_PORT="0")
    assert f"another demo is starting or running from {tmp_path / 'demo'}".encode() in done.stderr
    assert not (tmp_path / "demo").exists()  # nothing was started


def _fake_running_demo(data_dir: Path, shards: int | None, pid: int) -> Path:
    """A demo's folder as a running demo leaves it: its pid (a live process's) and,
    unless None, the shards its flow reads."""
    folder = data_dir / "demo"
    folder.mkdir(parents=True)
    if shards is not None:
        (folder / "demo.shards").write_text(f"{shards}\n")
    (folder / "demo.pid").write_text(f"{pid}\n")
    return folder


@pytest.fixture
def live_pid() -> Iterator[int]:
    """The pid of a live process that is not this one (a demo's, as far as a command
    can tell)."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        yield sleeper.pid
    finally:
        sleeper.kill()
        sleeper.wait()


def test_commands_follow_the_running_demos_folder_and_shards(tmp_path: Path, live_pid: int) -> None:
    """A command given no CX_DATA_DIR and no REDIS_URL uses the running demo's folder and
    its shards (a customer's events reach the stream the demo reads them from); a
    CX_SHARDS of its own that differs is refused, by name (an empty one is unset)."""
    folder = _fake_running_demo(tmp_path, 8, live_pid)
    settings = Settings(data_dir=tmp_path)
    followed = follow_running_demo(settings, {})
    assert (followed.data_dir, followed.shards) == (folder, 8)
    assert follow_running_demo(settings, {"CX_SHARDS": " "}).shards == 8
    assert (
        follow_running_demo(Settings(data_dir=tmp_path, shards=8), {"CX_SHARDS": "8"}).shards == 8
    )
    with pytest.raises(CxError, match=f"the demo running from {folder} reads 8 shards: unset"):
        follow_running_demo(Settings(data_dir=tmp_path, shards=2), {"CX_SHARDS": "2"})
    # a folder given, or a Redis: the demo is not followed
    assert follow_running_demo(settings, {"CX_DATA_DIR": str(tmp_path)}) is settings
    # a demo of an earlier release wrote no shards: the command's own
    other = tmp_path / "older"
    _fake_running_demo(other, None, live_pid)
    assert follow_running_demo(Settings(data_dir=other, shards=2), {}).shards == 2
    # a pid file naming this very process (left by a demo killed hard, its pid reused)
    mine = tmp_path / "mine"
    _fake_running_demo(mine, 8, os.getpid())
    assert follow_running_demo(Settings(data_dir=mine, shards=2), {}).shards == 2
    # on the command line (the demo's folder in .cxstream/ here): one line, exit 2
    cwd = tmp_path / "project"
    _fake_running_demo(cwd / ".cxstream", 4, live_pid)
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "CX_DATA_DIR")}
    env["CX_SHARDS"] = "8"
    done = subprocess.run(
        [sys.executable, "-m", "cxstream", "send"],
        input=b"",
        env=env,
        cwd=cwd,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert b"cxstream: error: the demo running from .cxstream/demo reads 4 shards" in done.stderr
    assert not (cwd / ".cxstream" / "demo" / "redis.db").exists()  # no redis started


def test_demo_refuses_a_speed_the_console_cannot_show(tmp_path: Path) -> None:
    done = _refused_demo(tmp_path, "--speed", "1e12", "--duration", "1")
    assert b"--speed 1e+12: must be between 0.001 and 1e9" in done.stderr
    assert not (tmp_path / "demo").exists()  # nothing was started


def test_the_demos_catalog_lasts_in_the_viewers_time(tmp_path: Path) -> None:
    path = demo_catalog(tmp_path, 21_600.0)
    catalog = load_catalog(path)
    assert catalog.proactive.expires_hours == 72 * 21_600
    assert catalog.proactive.quiet_hours is None
    assert catalog.triggers == default_catalog().triggers
