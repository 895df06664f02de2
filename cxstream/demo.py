"""``cxstream demo``: embedded Redis, dataflow, server and simulator in one command.

The demo owns everything it starts: the embedded Redis (in a fresh folder under
the data directory), a ``cxstream run`` and a ``cxstream serve`` child process,
and the simulator loop in this process.  It prints the console URL with a
ready token and a status line; Ctrl-C (or ``--duration``) stops the children
it started, by their PIDs, and then Redis.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

import orjson

from cxstream.settings import Settings, clock_speed_refusal, url_host
from operators.errors import CxError
from operators.events import Event
from state.catalog import default_catalog_text

if TYPE_CHECKING:
    from operators.simulate import Simulator

READY_TIMEOUT_S = 60.0
STATUS_AUC_LABELS = 200  # the status line shows the model's AUC from this many labels
PRELOAD_NOTE_S = 5.0  # while the flow reads the preload, a line this often
RUNNING_FILE = "demo.pid"  # in the demo's folder while it runs: its pid
LOCK_FILE = "demo.lock"  # in the data folder: locked by the demo for its life
SHARDS_FILE = "demo.shards"  # and beside it, the shards its flow reads (CX_SHARDS)
STOP_GRACE_S = 10.0


class Demo:
    def __init__(self, settings: Settings, args: argparse.Namespace) -> None:
        self.settings = settings
        self.args = args
        self.folder = settings.data_dir / "demo"
        self.children: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []
        self.redis_handle: Any = None
        self.lock: int | None = None  # the data folder's demo lock, held while it runs

    def run(self) -> int:
        import redis

        from cxstream.commands.args import simulator_gap_ms
        from cxstream.runtime import Pacer
        from server.tokens import mint
        from state.ingest import xadd_events
        from state.keys import DLQ, KeyNames, model_key

        args, settings = self.args, self.settings
        if settings.redis_cluster:
            raise CxError("the demo runs on one Redis: unset CX_REDIS_CLUSTER")
        refused = clock_speed_refusal(args.speed)  # (told to the server as CX_CLOCK_SPEED)
        if refused is not None:
            raise CxError(f"--speed {args.speed:g}: {refused}")
        simulator_gap_ms(args.speed, args.customers, args.rate)  # (checked before any start)
        other = running_demo(settings)
        if other is not None:  # its folder (Redis, key, logs) is not this one's to clear
            folder, pid = other
            raise CxError(
                f"a demo is already running from {folder} (pid {pid}): stop it first "
                f"(Ctrl-C in its terminal, or kill {pid}), or give this one another "
                f"CX_DATA_DIR (if no demo runs, that pid is another program's: remove "
                f"{folder / RUNNING_FILE})"
            )
        # held for the demo's life (the system drops it when the process ends, however):
        # two demos started at the same instant cannot both pass the check above
        self.lock = _lock_demo(settings.data_dir)
        _check_port_free(settings.host, settings.port)
        if settings.api_port:
            _check_port_free(settings.host, settings.api_port, "CX_HTTP_PORT", "http api")
        url = self._redis()
        # kept in the demo's folder (a new one each run), where `cxstream token` finds it
        secret = replace(settings, data_dir=self.folder).signing_secret()
        (self.folder / SHARDS_FILE).write_text(f"{settings.shards}\n")  # (before the pid)
        running = self.folder / RUNNING_FILE
        running.write_text(f"{os.getpid()}\n")
        env = {
            **os.environ,
            "REDIS_URL": url,
            "CX_SECRET": secret.reveal(),
            "CX_HOST": settings.host,
            "CX_PORT": str(settings.port),
            "CX_HTTP_PORT": str(settings.api_port),
            "CX_SHARDS": str(settings.shards),
            "CX_DATA_DIR": str(self.folder.resolve()),
        }
        # (the horizon is the engine's, 30 days: with 7 the refit's window, a horizon and a
        # half of event time, held too few of the 400 customers' churns to fit, and the
        # prior spoke alone while the checkout failures changed who churns)
        env.setdefault("CX_RETENTION_DAYS", "30")
        # 400 customers make a few complaints an hour of event time: trends are
        # watched over 6-hour windows, so the demo's outage stands out of its noise.
        env.setdefault("CX_TREND_WINDOW_MIN", "360")
        if "CX_CATALOG" not in env:  # proactive actions last 72 h of the viewer's time
            env["CX_CATALOG"] = str(demo_catalog(self.folder, self.args.speed))
        # the console shows those 72 h (and any time to come) in the viewer's time
        env["CX_CLOCK_SPEED"] = repr(float(self.args.speed))
        client = redis.Redis.from_url(url)
        # Ctrl-C, `kill` and a closed terminal raise KeyboardInterrupt here (the command
        # line's handlers, set even when the demo started with SIGINT ignored): the
        # children and Redis are stopped as on Ctrl-C
        try:
            self._start("dataflow", ["run"], env)
            self._start("server", ["serve"], env)
            base = f"http://{url_host(settings.host)}:{settings.port}"
            health = self._wait_ready(f"{base}/healthz")
            queues = args.queue or ["retention"]
            # the agent gets its queue; the supervisor every queue, so that the
            # simulated agents' answers (of the other queues) show in its view
            token, supervisor = (
                mint(
                    secret,
                    agent_id=f"demo-{role}",
                    queues=granted,
                    role=role,
                    now=time.time(),
                    ttl_s=settings.token_ttl_hours * 3600,
                )
                for role, granted in (("agent", queues), ("supervisor", ["*"]))
            )
            history_ms = int(args.history_days * 86_400_000)
            sim = demo_simulator(args, start_ms=int(time.time() * 1000) - history_ms)
            preloaded = self._preload(client, sim, sim.config.start_ms + history_ms)
            self._banner(base, token, supervisor, queues, url, health)
            if preloaded:
                print(
                    f"preloaded {preloaded} events ({args.history_days:g} days of journeys); "
                    "now live:",
                    flush=True,
                )
            pace = Pacer(args.rate)
            alert_streams = KeyNames.of(settings).alerts.streams
            agents = SimulatedAgents(
                client, sim, set(queues), settings.shards, alert_streams, seed=args.seed
            )
            sent = 0
            started = time.monotonic()
            # live rates exclude the preload
            last = (started, 0, sum(int(client.xlen(a)) for a in alert_streams))
            next_status = started + args.status_every
            deadline = started + args.duration if args.duration else None
            while deadline is None or time.monotonic() < deadline:
                self._check_children()
                n = pace.due()
                if n:
                    xadd_events(client, sim.take(n), settings.shards)
                    sent += n
                agents.answer()
                now = time.monotonic()
                if now >= next_status:
                    next_status = now + args.status_every
                    alerts = sum(int(client.xlen(a)) for a in alert_streams)
                    model = {
                        k.decode(): v
                        for k, v in cast(
                            "dict[bytes, bytes]", client.hgetall(model_key("m0"))
                        ).items()
                    }
                    learned = int(orjson.loads(model.get("n_learned", b"0")))
                    # on its first labels the AUC is noise (it can sit under 0.5, a coin's)
                    auc = orjson.loads(model["roc_auc"]) if learned >= STATUS_AUC_LABELS else None
                    # who speaks: the prior (too few churns to fit yet), a blend, the fit
                    stage = orjson.loads(model.get("stage", b'"prior"'))
                    connected = self._connections(f"{base}/healthz")
                    dt = now - last[0]
                    line = (
                        f"[{now - started:6.0f} s] events {sent} ({(sent - last[1]) / dt:.0f}/s)  "
                        f"alerts {alerts} ({(alerts - last[2]) / dt:.1f}/s)  "
                        f"dlq {client.xlen(DLQ)}  model "
                        + (
                            f"AUC {auc:.3f} on {learned} labels ({stage})"
                            if auc is not None
                            else f"warming up ({learned} labels)"
                        )
                        + f"  agents connected {connected}"
                        + f"  simulated answers {agents.accepted}/{agents.answered} accepted"
                    )
                    print(line, flush=True)
                    last = (now, sent, alerts)
                pace.wait()
        except KeyboardInterrupt:
            print("\nstopping…", flush=True)
        finally:
            client.close()
            self._stop()
        print(f"demo stopped; logs are in {self.folder / 'logs'}", flush=True)
        return 0

    # -- parts -----------------------------------------------------------------------------------

    def _redis(self) -> str:
        if self.settings.redis_url:
            from state.redis import connect

            connect(self.settings).close()  # (not reachable: one error, before anything starts)
            print("using REDIS_URL (the demo writes simulated events into it)", flush=True)
            return self.settings.redis_url
        from state.redis import embedded

        shutil.rmtree(self.folder, ignore_errors=True)
        if self.folder.exists():  # (the last demo's redis and logs must not be reused)
            raise CxError(f"CX_DATA_DIR: cannot clear {self.folder} for a new demo")
        self.redis_handle = embedded(self.folder)  # (which makes the folder afresh)
        return f"unix://{self.redis_handle.socket_file}"

    def _start(self, name: str, command: list[str], env: dict[str, str]) -> None:
        logs = self.folder / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log_file = (logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "cxstream", *command],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the demo; the demo stops the children
        )
        self.children.append((name, proc, log_file))

    def _preload(self, client: Any, sim: Any, until_ms: int) -> int:
        """XADD simulated history up to event time ``until_ms``; wait for the flow to catch up."""
        from state.ingest import xadd_events
        from state.keys import FLOW, KeyNames
        from state.redis import stream_entries, stream_id

        sent = 0
        last = None
        days = (until_ms - sim.config.start_ms) / 86_400_000
        print(f"preloading {days:g} days of simulated journeys ...", flush=True)
        while last is None or last.ts < until_ms:
            batch: list[Event] = []
            while len(batch) < 1000:
                last = sim.next_event()
                batch.append(last)
                if last.ts >= until_ms:
                    break
            xadd_events(client, batch, self.settings.shards)
            sent += len(batch)
        if last is not None:
            started = time.monotonic()
            deadline = started + READY_TIMEOUT_S
            next_note = started + PRELOAD_NOTE_S
            # caught up once the flow has read up to each stream's newest entry (cx:flow)
            names = KeyNames(shards=self.settings.shards)
            streams = [names.events(shard) for shard in range(self.settings.shards)]
            newest = {s: stream_entries(client.xrevrange(s, count=1)) for s in streams}
            due = {s: stream_id(e[0][0]) for s, e in newest.items() if e}
            print(f"sent {sent} events; the dataflow is reading them", flush=True)
            while time.monotonic() < deadline:
                self._check_children()
                read = {
                    k.decode(): stream_id(orjson.loads(v)["id"])
                    for k, v in cast("dict[bytes, bytes]", client.hgetall(FLOW)).items()
                }
                if all(read.get(s, (0, 0)) >= at for s, at in due.items()):
                    break
                if time.monotonic() >= next_note:
                    next_note += PRELOAD_NOTE_S
                    waited = time.monotonic() - started
                    print(f"  ... still reading ({waited:.0f} s)", flush=True)
                time.sleep(0.1)
        return sent

    def _check_children(self) -> None:
        for name, proc, _ in self.children:
            code = proc.poll()
            if code is not None:
                tail = _tail(self.folder / "logs" / f"{name}.log")
                raise CxError(f"the {name} process exited with code {code}:\n{tail}")

    def _wait_ready(self, url: str) -> dict[str, Any]:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            self._check_children()
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 (our own http://)
                    body: dict[str, Any] = orjson.loads(resp.read())
                    return body
            except OSError:
                time.sleep(0.2)
        raise CxError(f"the server did not answer {url} within {READY_TIMEOUT_S:.0f} s")

    def _connections(self, url: str) -> int | str:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 (our own http://)
                return int(orjson.loads(resp.read())["connections"])
        except OSError:
            return "?"

    def _banner(
        self,
        base: str,
        token: str,
        supervisor: str,
        queues: list[str],
        url: str,
        health: dict[str, Any],
    ) -> None:
        outage = (
            f"an outage starts {self.args.incident_after:g} s after going live: "
            "its trend alert shows in the supervisor view"
            if self.args.incident_after > 0
            else "no outage is simulated (--incident-after 0)"
        )
        bad_step = (
            f"the app's checkout starts failing {self.args.bad_step_after:g} s after going "
            "live: the experience section shows CES falling, then its trend alert"
            if self.args.bad_step_after > 0
            else "no failing step is simulated (--bad-step-after 0)"
        )
        print(
            "\n".join(
                [
                    "",
                    "cxstream demo is running",
                    f"  agent console  {base}/#token={token}",
                    f"  (agent demo-agent, queues {', '.join(queues)}: open the link in a browser)",
                    f"  supervisor     {base}/#token={supervisor}&queues={','.join(queues)}",
                    f"  (trends, risk of contacts, acceptance by action and agent; {outage})",
                    f"  (NPS, CSAT and CES, the journey map, churn by touchpoint; {bad_step})",
                    f"  websocket      ws{base[4:]}/ws",
                    f"  health         {base}/healthz   metrics {base}/metrics",
                    *self._api_line(),
                    f"  redis          {url}",
                    f"  logs           {self.folder / 'logs'}",
                    "  next           watch alerts arrive, answer them with the buttons;",
                    "                 Ctrl-C stops everything the demo started",
                    "",
                ]
            ),
            flush=True,
        )

    def _api_line(self) -> list[str]:
        """Where the HTTP API listens (when its port is known)."""
        port = self.settings.api_port
        if not port:
            return []
        base = f"http://{url_host(self.settings.host)}:{port}/v1"
        return [f"  http api       {base}/events (POST)   {base}/customers/ID (GET)"]

    def _stop(self) -> None:
        for _name, proc, _ in self.children:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + STOP_GRACE_S
        for name, proc, log_file in self.children:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"the {name} process did not stop in time; killing pid {proc.pid}")
                proc.kill()
                proc.wait()
            log_file.close()
        self.children.clear()
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.folder / RUNNING_FILE)
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.folder / SHARDS_FILE)
        if self.redis_handle is not None:
            from state.redis import release

            release(self.folder, stop=True)
            self.redis_handle = None
        if self.lock is not None:  # the data folder is free for another demo
            os.close(self.lock)
            self.lock = None


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _check_port_free(host: str, port: int, variable: str = "CX_PORT", what: str = "server") -> None:
    """Refuse to start when the port is taken (e.g. another demo is still running)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does
        try:
            probe.bind((host, port))
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise CxError(
                f"cannot use {host}:{port} for the {what}: {reason} "
                f"(is another cxstream demo running?); set {variable} to another port"
            ) from exc


class SimulatedAgents:
    """The other agents of the demo: they answer the recommendations outside the console
    agent's queues, accepting with the simulator's true acceptance probability, and their
    answers go back into the event streams as the server would write them."""

    def __init__(
        self,
        client: Any,
        sim: Any,
        human_queues: set[str],
        shards: int,
        alert_streams: tuple[str, ...],
        *,
        seed: int,
    ) -> None:
        import random

        self.client = client
        self.sim = sim
        self.human_queues = human_queues
        self.shards = shards
        self.rng = random.Random(seed)
        self.cursors: dict[str, str] = {}  # alert stream -> the last entry answered
        for stream in alert_streams:
            last = client.xrevrange(stream, count=1)
            self.cursors[stream] = last[0][0].decode() if last else "0-0"
        self.answered = 0
        self.accepted = 0

    def answer(self) -> None:
        from state.commands import count_answer
        from state.ingest import xadd_events
        from state.redis import xread_entries

        reply = self.client.xread(self.cursors, count=500)
        events = []
        for stream, entries in xread_entries(reply):
            for entry_id, fields in entries:
                self.cursors[stream] = entry_id
                alert = orjson.loads(fields.get(b"data", b"{}"))
                nba = alert.get("next_best_action")
                if nba is None or alert.get("queue") in self.human_queues:
                    continue
                p = self.sim.acceptance(alert["customer_id"], nba["action_id"])
                if p is None:  # the customer has left
                    continue
                accepted = self.rng.random() < p
                self.answered += 1
                self.accepted += accepted
                events.append(
                    Event(
                        event_id=f"simagent-{alert['alert_id']}",
                        customer_id=alert["customer_id"],
                        anonymous_id=None,
                        ts=int(alert["event_ts"]) + 60_000,
                        channel="crm",
                        type="offer_response",
                        attrs={
                            "alert_id": alert["alert_id"],
                            "action_id": nba["action_id"],
                            "response": "accepted" if accepted else "declined",
                            "agent_id": alert.get("agent_id") or "simulated-agent",
                        },
                    )
                )
        if events:
            xadd_events(self.client, events, self.shards)
            # ... and counted for the supervisor view, as the server counts an agent's answer
            pipe = self.client.pipeline(transaction=False)
            for e in events:
                for command in count_answer(e):
                    pipe.execute_command(*command)
            pipe.execute()


def demo_simulator(args: argparse.Namespace, *, start_ms: int) -> Simulator:
    """The demo's simulated customers (``args``: the demo command's), their history from
    event time ``start_ms``: an outage ``--incident-after`` seconds after going live,
    surveys with NPS, CSAT and CES (the experience view), and from ``--bad-step-after``
    the app's checkout failing for a third of the digital steps."""
    from operators.simulate import Incident, SimConfig, Simulator, paced_gap_ms

    history_ms = int(args.history_days * 86_400_000)
    incidents: tuple[Incident, ...] = ()
    if args.incident_after > 0:  # event-time minutes after the start of the history
        live_min = args.history_days * 1440 + args.incident_after * args.speed / 60
        incidents = (Incident("outage", live_min, 360.0, 0.8),)
    bad_from_ms = start_ms + history_ms + int(args.bad_step_after * args.speed * 1000)
    return Simulator(
        SimConfig(
            customers=args.customers,
            seed=args.seed,
            start_ms=start_ms,
            # each customer acts every customers/rate wall seconds on average
            customer_gap_ms=paced_gap_ms(args.speed, args.customers, args.rate),
            incidents=incidents,
            consent=0.15,  # some customers withdraw marketing, refuse SMS, object
            bad_touchpoint=("app", "checkout_error"),
            bad_share=0.3 if args.bad_step_after > 0 else 0.0,
            bad_from_ms=bad_from_ms,
        )
    )


def _lock_demo(data_dir: Path) -> int | None:
    """An exclusive lock on ``<data_dir>/demo.lock`` (its descriptor), or a refusal when
    another demo of this data folder holds it (starting, or running).  None where the
    file system has no locks: the pid file's check alone then stands."""
    import fcntl

    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise CxError(f"cannot open {data_dir / LOCK_FILE}: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:  # held
        os.close(fd)
        raise CxError(
            f"another demo is starting or running from {data_dir / 'demo'}: stop it first, "
            "or give this one another CX_DATA_DIR"
        ) from exc
    except OSError:  # (no locks on this file system, e.g. some network ones)
        os.close(fd)
        return None
    return fd


def running_demo(settings: Settings) -> tuple[Path, int] | None:
    """The folder and pid of the demo running from this data folder, if one runs."""
    from state.redis import pid_alive

    folder = settings.data_dir / "demo"
    try:
        pid = int((folder / RUNNING_FILE).read_text())
    except (OSError, ValueError):  # none written, or unreadable
        return None
    # (a pid file left by a demo killed hard may name a live process since: this one)
    return (folder, pid) if pid != os.getpid() and pid_alive(pid) else None


def demo_catalog(folder: Path, speed: float) -> Path:
    """The shipped catalog for the demo's clock (``speed`` times the wall clock's): a
    proactive action lasts its 72 hours of the viewer's time, not of the simulation's
    (12 seconds), and there are no quiet hours (a simulated night lasts 2 seconds)."""
    text = default_catalog_text()
    hours = 72 * speed
    text = re.sub(r"(?m)^expires_hours = .*$", f"expires_hours = {hours:.0f}", text)
    text = re.sub(r"(?m)^quiet_hours = .*$", 'quiet_hours = "none"', text)
    path = folder / "catalog.toml"
    path.write_text(text)
    return path


def follow_running_demo(settings: Settings, environ: dict[str, str]) -> Settings:
    """While the demo runs, a command given neither CX_DATA_DIR nor REDIS_URL uses the
    demo's folder: its embedded Redis and its signing key (said on stderr), and its
    shards (a customer's events go to the stream the demo's flow reads them from).  A
    CX_SHARDS other than the demo's is refused: events would go to streams no one reads."""
    if "CX_DATA_DIR" in environ or settings.redis_url:
        return settings
    running = running_demo(settings)
    if running is None:
        return settings
    folder = running[0]
    try:
        shards = int((folder / SHARDS_FILE).read_text())
    except (OSError, ValueError):  # (a demo of an earlier release wrote none)
        shards = settings.shards
    if shards != settings.shards and environ.get("CX_SHARDS", "").strip():
        raise CxError(
            f"the demo running from {folder} reads {shards} shards: unset CX_SHARDS or set "
            f"it to {shards} (with CX_SHARDS={settings.shards} some customers' events would "
            "go to streams it does not read)"
        )
    print(
        f"cxstream: the demo is running: using its folder {folder} (set CX_DATA_DIR to choose)",
        file=sys.stderr,
    )
    return replace(settings, data_dir=folder, shards=shards)
