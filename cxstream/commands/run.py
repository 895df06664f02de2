"""``cxstream run``: run the journey dataflow in this process until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import signal
import socket
from datetime import timedelta

from cxstream.commands.args import addresses, non_negative_int, positive_int
from cxstream.settings import Settings
from operators.errors import ConfigError

log = logging.getLogger("cxstream")


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
    if settings.redis_url:  # unreachable: one line and exit 2, before Bytewax starts
        from state.redis import connect

        connect(settings).close()
    if args.addresses is not None:
        _check_listen(args.addresses[args.process_id], args.process_id)
    launch = prepare(settings, workers=args.workers, cluster=args.addresses is not None)
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


def _check_listen(address: str, process_id: int) -> None:
    """This process's own cluster address can be listened on (Bytewax would stop with a
    traceback of its own): one line and exit 2 before anything starts."""
    host, _, port = address.rpartition(":")
    try:
        infos = socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(infos[0][4])
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(
            f"--addresses: cannot listen on {address} (--process-id {process_id}'s): {reason}"
        ) from exc


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The command's arguments."""
    p = sub.add_parser("run", help="run the journey dataflow", description=cmd_run.__doc__)
    p.add_argument("-w", "--workers", type=positive_int, default=1, help="worker threads (1)")
    p.add_argument(
        "-i",
        "--process-id",
        type=non_negative_int,
        default=None,
        help="this process's index in --addresses (a cluster of several processes)",
    )
    p.add_argument(
        "-a",
        "--addresses",
        type=addresses,
        default=None,
        help="host:port of every cluster process, separated by ';' (all run the same flow)",
    )
    p.add_argument(
        "--epoch-ms",
        type=positive_int,
        default=2000,
        help="epoch length in ms; with CX_RECOVERY_DIR also the snapshot interval (2000)",
    )
    p.set_defaults(func=cmd_run)
