"""The ``cxstream`` command: run | serve | demo | token | send | simulate | replay |
evaluate | forget.

Settings come from the environment (docs/settings.md); flags only say what to do
this time.  Errors are printed as one line, ``cxstream: error: ...``, and exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import orjson

from cxstream.launch import configure_logging
from cxstream.runtime import Pacer
from cxstream.settings import Settings
from operators.errors import ConfigError, CxError
from server.tokens import ROLES
from state.keys import KeyNames

if TYPE_CHECKING:
    from operators.events import Event

log = logging.getLogger("cxstream")


def _addresses(text: str) -> list[str]:
    """``host:port;host:port`` -> a list, each checked for a port."""
    out = [a.strip() for a in text.split(";") if a.strip()]
    for address in out:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise argparse.ArgumentTypeError(f"{address!r} is not host:port")
    if not out:
        raise argparse.ArgumentTypeError("no address given")
    return out


def _incident(text: str) -> Any:
    from operators.simulate import Incident

    try:
        return Incident.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from exc
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be positive")
    return value


def _silence_ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from exc
    if value != 0 and not value >= 1:
        raise argparse.ArgumentTypeError(f"{value}: use 0 (off) or at least 1")
    return value


# -- run ----------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the journey dataflow in this process until Ctrl-C."""
    from bytewax.run import cli_main

    from cxstream.launch import prepare, stop_on_signals
    from cxstream.settings import format_shard_set

    epoch = timedelta(milliseconds=args.epoch_ms)
    if (args.process_id is None) != (args.addresses is None):
        raise ConfigError("--process-id and --addresses go together (one cluster process each)")
    if args.addresses is not None and not 0 <= args.process_id < len(args.addresses):
        raise ConfigError(
            f"--process-id {args.process_id}: must index --addresses ({len(args.addresses)} given)"
        )
    log.info(
        "running the journey flow: %d worker(s), shards %s of %d, epoch %d ms, recovery %s",
        args.workers,
        format_shard_set(settings.shard_set),
        settings.shards,
        args.epoch_ms,
        settings.recovery_dir or "off",
    )
    launch = prepare(settings, workers=args.workers)
    previous = stop_on_signals()
    try:
        cli_main(
            launch.flow,
            workers_per_process=args.workers,
            process_id=args.process_id,
            addresses=args.addresses,
            epoch_interval=epoch,
            recovery_config=launch.recovery,
        )
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    log.info("stopped")
    return 0


# -- serve --------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Serve the WebSocket endpoints (/ws for agents, /ingest for channel systems), the console,
    /healthz and /metrics."""
    from server.app import AlertServer
    from state.redis import redis_url

    server = AlertServer(settings, redis_url=redis_url(settings), secret=settings.signing_secret())

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for s in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(s, stopping.set)
        await server.start()
        print(f"serving on http://{settings.host}:{server.port}", file=sys.stderr, flush=True)
        try:
            await stopping.wait()
        finally:
            await server.stop()

    asyncio.run(serve())
    log.info("stopped")
    return 0


# -- token --------------------------------------------------------------------------------------


def cmd_token(args: argparse.Namespace, settings: Settings) -> int:
    """Print a signed token on stdout and nothing else."""
    from server.tokens import mint

    ttl_s = (args.ttl_hours or settings.token_ttl_hours) * 3600
    token = mint(
        settings.signing_secret(),
        agent_id=args.agent,
        queues=args.queue or [],
        role=args.role,
        now=time.time(),
        ttl_s=ttl_s,
    )
    sys.stdout.write(token + "\n")
    return 0


# -- send ---------------------------------------------------------------------------------------


def cmd_send(args: argparse.Namespace, settings: Settings) -> int:
    """XADD JSON-lines events from a file or stdin; report rejected lines on stderr."""
    from state.ingest import send_lines
    from state.redis import connect

    client = connect(settings)
    if args.file == "-":
        result = send_lines(client, sys.stdin.buffer, KeyNames.of(settings))
    else:
        path = Path(args.file)
        try:
            with path.open("rb") as f:
                result = send_lines(client, f, KeyNames.of(settings))
        except OSError as exc:
            raise CxError(f"cannot read {path}: {exc.strerror}") from exc
    for number, reason in result.rejected[:20]:
        print(f"line {number}: rejected: {reason}", file=sys.stderr)
    if len(result.rejected) > 20:
        print(f"... and {len(result.rejected) - 20} more rejected lines", file=sys.stderr)
    print(f"sent {result.sent} events, rejected {len(result.rejected)}", file=sys.stderr)
    return 1 if result.rejected else 0


# -- forget -------------------------------------------------------------------------------------


def cmd_forget(args: argparse.Namespace, settings: Settings) -> int:
    """Erase a customer: queue a forget event, and wait until the dataflow has erased it.

    The dataflow drops the customer's journey state and pending training
    examples, its open recommendations, its profile hash, its entries in the
    event, alert and dead-letter streams, and suppresses its later events; the
    anonymous ids linked to it go the same way.  Redis is then asked to rewrite
    its AOF and RDB files.  Prints the erasure record (counts, no id) as JSON once
    all of that is done.
    """
    import uuid

    from operators.erasure import forget_digest
    from operators.events import Event
    from state.erasure import erasure_record
    from state.ingest import xadd_events
    from state.redis import connect

    key: str = args.customer_id
    if not 1 <= len(key) <= 128:
        raise ConfigError(f"customer id of {len(key)} chars: allowed 1-128")
    client = connect(settings)
    sent_at = int(time.time() * 1000)
    event = Event(
        event_id=f"forget-{uuid.uuid4().hex}",
        customer_id=None if args.anonymous else key,
        anonymous_id=key if args.anonymous else None,
        ts=sent_at,
        channel="crm",
        type="forget",
        attrs={},
    )
    (stream_id,) = xadd_events(client, [event], KeyNames.of(settings))
    digest = forget_digest(key).hex()
    log.info("forget event queued as %s (customer %s)", stream_id, digest[:12])
    if args.wait <= 0:
        print(orjson.dumps({"queued": stream_id, "customer": digest}).decode())
        return 0
    deadline = time.monotonic() + args.wait
    next_note = time.monotonic() + 10
    record: dict[str, Any] | None = None
    waiting = "the dataflow (is `cxstream run` running?)"
    while time.monotonic() < deadline:
        if record is None:
            found = erasure_record(client, key)
            if found is not None and found.get("at", 0) >= sent_at:
                record, waiting = found, "the linked anonymous ids and redis's file rewrite"
        if record is not None and _erasure_finished(client, record):
            print(orjson.dumps({"erased": True, "customer": digest, **record}).decode())
            return 0
        if time.monotonic() >= next_note:
            print(f"forget: still waiting for {waiting}", file=sys.stderr)
            next_note += 10
        time.sleep(0.1)
    print(
        f"forget: not finished within {args.wait:g} s (waiting for {waiting}); the forget "
        f"event ({stream_id}) stays queued and is carried out when `cxstream run` reads it",
        file=sys.stderr,
    )
    return 1


def _erasure_finished(client: Any, record: dict[str, Any]) -> bool:
    """The linked anonymous ids erased by their own forget (their state in the flow
    dropped), and Redis's files rewritten since."""
    from state.erasure import erasure_record, persisted

    at = int(record.get("at", 0))
    latest = at
    for digest in record.get("linked_digests", ()):
        linked = erasure_record(client, bytes.fromhex(digest))
        if linked is None or linked.get("at", 0) <= at:
            return False
        latest = max(latest, int(linked["at"]))
    return persisted(client, latest) if record.get("persistence") else True


# -- simulate -----------------------------------------------------------------------------------


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    """Stream simulated customer journeys into Redis (or as JSON lines with --output)."""
    from operators.simulate import SimConfig, Simulator

    if args.purchases is not None:
        return _purchases(args)
    config = SimConfig(customers=args.customers, seed=args.seed, incidents=tuple(args.incident))
    if args.speed is not None:  # event-time seconds per wall second at --rate
        config = replace(
            config, customer_gap_ms=int(args.speed * 1000 * args.customers / args.rate)
        )
    if args.start_ms is not None:
        config = replace(config, start_ms=args.start_ms)
    sim = Simulator(config)
    try:
        return _simulate(args, settings, sim)
    finally:
        if args.truth is not None:
            with Path(args.truth).open("w") as f:
                for row in sim.ground_truth():
                    f.write(orjson.dumps(row).decode() + "\n")
            print(
                f"simulate: ground truth of {sim.joined} customers in {args.truth}", file=sys.stderr
            )


def _write_jsonl(output: str, events: Iterable[Event]) -> None:
    """Events as JSON lines to the file ``output`` (``-``: stdout)."""
    from operators.events import encode_event

    with contextlib.ExitStack() as stack:
        out: TextIO = sys.stdout if output == "-" else stack.enter_context(Path(output).open("w"))
        for event in events:
            out.write(encode_event(event).decode() + "\n")


def _purchases(args: argparse.Namespace) -> int:
    """A purchases-only log (see :func:`operators.simulate.purchase_log`) as JSON lines."""
    from operators.simulate import purchase_log

    if args.output is None:
        raise CxError("simulate --purchases writes a file: give --output FILE (- = stdout)")
    if args.truth is not None or args.incident:
        raise CxError("simulate --purchases takes no --truth or --incident")
    kwargs: dict[str, Any] = {"start_ms": args.start_ms} if args.start_ms is not None else {}
    log = purchase_log(customers=args.customers, days=args.purchases, seed=args.seed, **kwargs)
    if args.events is not None:
        log = log[: args.events]
    _write_jsonl(args.output, log)
    print(
        f"simulate: {len(log)} purchases of {args.customers} customers over {args.purchases} days"
        + ("" if args.output == "-" else f" in {args.output}"),
        file=sys.stderr,
    )
    return 0


def _simulate(args: argparse.Namespace, settings: Settings, sim: Any) -> int:
    if args.output is not None:
        _write_jsonl(args.output, sim.take(args.events or 10_000))
        return 0
    from state.ingest import xadd_events
    from state.redis import connect

    client = connect(settings)
    pace = Pacer(args.rate)
    sent = 0
    deadline = time.monotonic() + args.duration if args.duration else None
    last_report = time.monotonic()
    try:
        while (args.events is None or sent < args.events) and (
            deadline is None or time.monotonic() < deadline
        ):
            n = pace.due()
            if args.events is not None:
                n = min(n, args.events - sent)
            if n:
                xadd_events(client, sim.take(n), KeyNames.of(settings))
                sent += n
            if time.monotonic() - last_report >= 5:
                last_report = time.monotonic()
                print(f"simulate: {sent} events sent", file=sys.stderr)
            pace.wait()
    except KeyboardInterrupt:
        pass
    print(
        f"simulate: sent {sent} events ({sim.cancelled} cancellations, {sim.joined} customers)",
        file=sys.stderr,
    )
    return 0


# -- replay ---------------------------------------------------------------------------------------


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    """Send a recorded log (stream-CSV or JSON lines) into the event streams."""
    from state.ingest import xadd_events
    from state.redis import connect
    from state.replay import read_jsonl, read_stream_csv

    path = Path(args.file)
    fmt = _log_format(path, args.format)
    rejected: list[tuple[int, str]] = []
    rows = read_jsonl(path, rejected) if fmt == "jsonl" else read_stream_csv(path, rejected)
    client = connect(settings)
    started = time.perf_counter()
    first_ts: int | None = None
    sent = 0
    batch: list[Event] = []
    last_report = started
    back = "\r" if sys.stderr.isatty() else ""  # progress overwrites itself on a terminal
    for row in rows:
        event = row.event
        if first_ts is None:
            first_ts = event.ts
        if args.speed:  # keep event time and wall time in step, sped up
            due = started + (event.ts - first_ts) / 1000 / args.speed
            if batch and due > time.perf_counter():
                xadd_events(client, batch, KeyNames.of(settings))
                sent += len(batch)
                batch = []
            while (wait := due - time.perf_counter()) > 0:
                time.sleep(min(wait, 0.5))
        batch.append(event)
        if len(batch) >= 1000:
            xadd_events(client, batch, KeyNames.of(settings))
            sent += len(batch)
            batch = []
        if args.limit and sent + len(batch) >= args.limit:
            break
        now = time.perf_counter()
        if now - last_report >= 0.5:
            last_report = now
            rate = (sent + len(batch)) / (now - started)
            line = f"{back}replay: {sent + len(batch):,} events ({rate:,.0f}/s)"
            print(line, end="" if back else "\n", file=sys.stderr, flush=True)
    xadd_events(client, batch, KeyNames.of(settings))
    sent += len(batch)
    elapsed = time.perf_counter() - started
    summary = {
        "sent": sent,
        "rejected": len(rejected),
        "events_per_s": round(sent / elapsed, 1) if elapsed > 0 else None,
        "seconds": round(elapsed, 2),
        "format": fmt,
    }
    print(
        f"{back}replay: sent {sent:,} events, rejected {len(rejected):,} rows, "
        f"{summary['events_per_s']:,} events/s in {elapsed:.1f} s",
        file=sys.stderr,
    )
    for number, reason in rejected[:5]:
        print(f"replay: row {number} rejected: {reason}", file=sys.stderr)
    print(orjson.dumps(summary).decode())
    return 0


def _log_format(path: Path, fmt: str) -> str:
    """``auto``: JSON lines if the file is named so (``.jsonl``, ``.json``), else stream-csv."""
    if fmt == "auto":
        return "jsonl" if ".jsonl" in path.name or ".json" in path.name else "stream-csv"
    return fmt


# -- evaluate -----------------------------------------------------------------------------------

SORT_LIMIT = 5_000_000  # rows evaluate holds (and sorts) in memory, about 2 KB each


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    """Replay a recorded log through the same operators, in event time; print the figures."""
    from cxstream.components import model_factory
    from operators.evaluate import Evaluator
    from operators.journey import DAY_MS
    from state.replay import has_file_labels, read_jsonl, read_stream_csv

    path = Path(args.input)
    fmt = _log_format(path, args.format)
    labels = args.labels
    if labels == "auto":
        labels = "file" if fmt == "stream-csv" and has_file_labels(path) else "engine"
    if labels == "file" and fmt != "stream-csv":
        raise CxError("--labels file needs --format stream-csv")
    horizon_days = args.horizon or settings.horizon_days
    # the flow's model, from the same code: this run's flags over the settings
    chosen = replace(
        settings,
        challenger=args.challenger,
        label_mode=args.label_mode,
        horizon_days=horizon_days,
        retention_days=max(settings.retention_days, horizon_days),
    )
    evaluator = Evaluator(
        model_factory(chosen, external_labels=labels == "file")(),
        labels=labels,
        horizon_ms=int(horizon_days * DAY_MS),
        label_mode=args.label_mode,
        score_every=args.score_every,
        silence_ratio=settings.silence_ratio if args.silence_ratio is None else args.silence_ratio,
    )
    rejected: list[tuple[int, str]] = []
    rows = read_stream_csv(path, rejected) if fmt == "stream-csv" else read_jsonl(path, rejected)
    started = time.perf_counter()
    kept: list[Any] = []
    in_order = True
    for n, row in enumerate(rows, start=1):
        if kept and row.event.ts < kept[-1].event.ts:
            in_order = False
        kept.append(row)
        if len(kept) > SORT_LIMIT:
            raise CxError(
                f"{path}: more than {SORT_LIMIT:,} rows; split the file by time "
                "(evaluate sorts up to that many in memory)"
            )
        if n % args.progress_every == 0:
            print(f"evaluate: read {n} rows", file=sys.stderr, flush=True)
    if not in_order:
        kept.sort(key=lambda r: r.event.ts)  # stable: rows of one time keep their order
        print(f"evaluate: sorted {len(kept)} rows by ts", file=sys.stderr, flush=True)
    for n, row in enumerate(kept, start=1):
        evaluator.feed(row)
        if n % args.progress_every == 0:
            rate = n / (time.perf_counter() - started)
            print(f"evaluate: {n} events ({rate:,.0f}/s)", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - started
    figures = evaluator.finish()
    figures.update(
        events_per_s=round(figures["n_events"] / elapsed, 1) if elapsed > 0 else None,
        labels=labels,
        horizon_days=horizon_days,
        score_every=args.score_every,
        rejected_rows=len(rejected),
    )
    for number, reason in rejected[:5]:
        print(f"evaluate: row {number} skipped: {reason}", file=sys.stderr)
    print(orjson.dumps(figures).decode())
    return 0


# -- demo ---------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Everything on the embedded default: Redis, dataflow, server, simulator."""
    from cxstream.demo import Demo

    return Demo(settings, args).run()


# -- parser -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cxstream",
        description="Real-time customer-experience engine. Settings come from environment "
        "variables (REDIS_URL, CX_SHARDS, CX_SECRET, CX_HOST, CX_PORT, ...; see docs/settings.md).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run the journey dataflow", description=cmd_run.__doc__)
    p.add_argument("-w", "--workers", type=_positive_int, default=1, help="worker threads (1)")
    p.add_argument(
        "-i",
        "--process-id",
        type=int,
        default=None,
        help="this process's index in --addresses (a cluster of several processes)",
    )
    p.add_argument(
        "-a",
        "--addresses",
        type=_addresses,
        default=None,
        help="host:port of every cluster process, separated by ';' (all run the same flow)",
    )
    p.add_argument(
        "--epoch-ms",
        type=_positive_int,
        default=2000,
        help="epoch length in ms; with CX_RECOVERY_DIR also the snapshot interval (2000)",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("serve", help="serve alerts over WebSocket", description=cmd_serve.__doc__)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "demo",
        help="everything in one command on the embedded default",
        description=(cmd_demo.__doc__ or "")
        + " Prints the console URL with a ready token; Ctrl-C stops every process it started.",
    )
    p.add_argument("--rate", type=_positive_float, default=40.0, help="events per second (40)")
    p.add_argument("--customers", type=_positive_int, default=400, help="simulated customers (400)")
    p.add_argument("--seed", type=int, default=7, help="simulator seed (7)")
    p.add_argument(
        "--speed",
        type=_positive_float,
        default=21_600.0,
        help="event-time seconds per wall second (21600: 6 hours of customer life a second)",
    )
    p.add_argument(
        "--history-days",
        type=float,
        default=30.0,
        help="days of simulated history sent at once before going live (30; 0 for none)",
    )
    p.add_argument(
        "--duration", type=_positive_float, default=None, help="stop after this many seconds"
    )
    p.add_argument(
        "--queue",
        action="append",
        default=None,
        help="queue(s) of the console agent's token (retention); repeatable",
    )
    p.add_argument(
        "--status-every", type=_positive_float, default=2.0, help="status line interval, s (2)"
    )
    p.add_argument(
        "--incident-after",
        type=float,
        default=60.0,
        help="seconds after going live when an outage starts (6 hours of event time, 80%% of "
        "steps become outage complaints): the supervisor view shows its trend alert (60; "
        "0 for none)",
    )
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "evaluate",
        help="prequential model check on a recorded log",
        description=cmd_evaluate.__doc__,
    )
    p.add_argument("--input", required=True, help="the log file (.gz allowed)")
    p.add_argument(
        "--format",
        choices=("auto", "stream-csv", "jsonl"),
        default="auto",
        help="(auto: jsonl if the file is named .jsonl or .json, else stream-csv)",
    )
    p.add_argument(
        "--labels",
        choices=("auto", "file", "engine"),
        default="auto",
        help="file: the rows' label/label_ts; engine: the engine's own rule; auto: file if present",
    )
    p.add_argument(
        "--label-mode",
        choices=("cancel", "inactivity"),
        default="inactivity",
        help="the engine's rule with --labels engine (inactivity)",
    )
    p.add_argument(
        "--horizon", type=_positive_float, default=None, help="H in days (CX_HORIZON_DAYS)"
    )
    p.add_argument(
        "--score-every",
        type=_positive_int,
        default=1,
        help="score every K-th event of a customer (1)",
    )
    p.add_argument(
        "--silence-ratio",
        type=_silence_ratio,
        default=None,
        help="also score silences this many times a customer's mean gap, learned from and "
        "reported apart (CX_SILENCE_RATIO, 2; 0: off; engine labels only)",
    )
    p.add_argument(
        "--challenger",
        choices=("none", "arf"),
        default="none",
        help="also run the tree-ensemble challenger (about 10x slower) (none)",
    )
    p.add_argument("--progress-every", type=_positive_int, default=50_000, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "replay", help="send a recorded log into the streams", description=cmd_replay.__doc__
    )
    p.add_argument("file", help="stream-CSV (plain or .gz) or JSON lines of events")
    p.add_argument(
        "--format", choices=("auto", "stream-csv", "jsonl"), default="auto", help="(by file name)"
    )
    p.add_argument(
        "--speed",
        type=_positive_float,
        default=None,
        help="replay at this many times event time (default: as fast as possible)",
    )
    p.add_argument("--limit", type=_positive_int, default=None, help="stop after N events")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("token", help="print a signed token", description=cmd_token.__doc__)
    p.add_argument("--agent", required=True, help="agent (or system) id the token is for")
    p.add_argument(
        "--queue", action="append", help="queue the holder may receive alerts for; repeatable"
    )
    p.add_argument(
        "--role",
        choices=ROLES,
        default="agent",
        help="agent, supervisor (on /ws); ingest (events on /ingest); privacy (forget events "
        "on /ingest)",
    )
    p.add_argument(
        "--ttl-hours", type=_positive_float, default=None, help="lifetime (CX_TOKEN_TTL_HOURS)"
    )
    p.set_defaults(func=cmd_token)

    p = sub.add_parser("send", help="send JSON-lines events", description=cmd_send.__doc__)
    p.add_argument("file", nargs="?", default="-", help="file of JSON lines, or - for stdin")
    p.set_defaults(func=cmd_send)

    p = sub.add_parser(
        "simulate", help="simulate customer journeys", description=cmd_simulate.__doc__
    )
    p.add_argument("--events", type=_positive_int, default=None, help="stop after N events")
    p.add_argument("--duration", type=_positive_float, default=None, help="stop after S seconds")
    p.add_argument("--rate", type=_positive_float, default=100.0, help="events per second (100)")
    p.add_argument("--customers", type=_positive_int, default=500, help="customers (500)")
    p.add_argument("--seed", type=int, default=7, help="random seed (7)")
    p.add_argument("--start-ms", type=int, default=None, help="event time of the start, epoch ms")
    p.add_argument(
        "--speed",
        type=_positive_float,
        default=None,
        help="event-time seconds per wall second at --rate (default: each customer acts about "
        "once a day of event time)",
    )
    p.add_argument(
        "--incident",
        type=_incident,
        action="append",
        default=[],
        metavar="TOPIC@START+MINUTES[xSHARE]",
        help="an outage, billing error...: from START minutes of event time after the start, "
        "for MINUTES, a SHARE (0.3) of the customers' steps become a complaint on TOPIC; "
        "repeatable",
    )
    p.add_argument(
        "--output", default=None, help="write JSON lines to this file (- = stdout), not Redis"
    )
    p.add_argument(
        "--truth",
        default=None,
        help="also write each customer's latent churn propensity and action tastes (JSON lines)",
    )
    p.add_argument(
        "--purchases",
        type=_positive_int,
        default=None,
        metavar="DAYS",
        help="instead, a purchases-only log (a retailer's order history: --customers join in "
        "the first 90 days, buy at rates of their own, stop for good, the rate moves with the "
        "season) over DAYS days, to --output; check the model on it with cxstream evaluate",
    )
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("forget", help="erase a customer", description=cmd_forget.__doc__)
    p.add_argument("customer_id", help="the customer id (or, with --anonymous, anonymous id)")
    p.add_argument(
        "--anonymous", action="store_true", help="the id is an anonymous_id (cookie, device)"
    )
    p.add_argument(
        "--wait",
        type=float,
        default=60.0,
        help="seconds to wait for the dataflow to erase the customer; 0: just queue (60)",
    )
    p.set_defaults(func=cmd_forget)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        configure_logging(settings)
        code: int = args.func(args, settings)
    except CxError as exc:
        print(f"cxstream: error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    raise SystemExit(main())
