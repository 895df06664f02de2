"""Erased customers in Bytewax's recovery partitions (``CX_RECOVERY_DIR``).

Bytewax keeps each state key's latest snapshot in SQLite partitions; an erased
customer leaves three traces there: its discarded key (a row whose key is the
customer id), older snapshots of its journey until Bytewax's garbage collector
drops them, and, after that, the freed database pages, which SQLite does not
overwrite.  The model shards' snapshots also held its id until re-snapshotted.

:class:`RecoveryScrubber` removes them while the flow runs: once every
partition has committed :data:`EPOCHS_AFTER` epochs after the erasure (the
customer's discard and the model shards' new snapshots are then committed, and
the superseded snapshots collected), it deletes the customer's rows, runs
``VACUUM`` (rewriting the file without free pages or deleted cells) and
truncates the write-ahead log.  Bytewax's own connection waits out the lock
(its busy timeout is 5 s; a VACUUM rewrites about 100 MB a second).

:func:`scrub_forgotten` does the same at start for keys whose digest is on the
suppression list: the fallback for a process that stopped before its scrub.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import orjson

from operators.erasure import Forgotten
from operators.errors import ConfigError

log = logging.getLogger(__name__)

# The layout of what the stateful steps snapshot.  A recovery directory records the
# format it was made with; one of another format is refused at start (see check_format).
SNAPSHOT_FORMAT = 3
FORMAT_FILE = "cxstream-format"
EPOCHS_AFTER = 2
POLL_S = 0.5
JOURNEY_STEP = "cxstream_journey.journey.%"  # the customer step's state, keyed by customer
IDENTITY_STEP = "cxstream_journey.identity.%"  # anonymous id -> its customer


def mark_format(directory: Path) -> None:
    """Record in a new recovery directory the snapshot format it holds: the last step
    of making one, written whole or not at all (a file then renamed into place)."""
    staged = directory / f".{FORMAT_FILE}.tmp"
    staged.write_text(f"{SNAPSHOT_FORMAT}\n")
    os.replace(staged, directory / FORMAT_FILE)


# what a first start leaves behind if it is killed while making the partitions
_PARTITION = re.compile(r"part-\d+\.sqlite3(-journal|-wal|-shm)?")
_STAGED = f".{FORMAT_FILE}.tmp"
INIT_LOCK = ".cxstream-init.lock"  # held while a directory is checked and made
BYTEWAX_TABLES = frozenset(("parts", "exs", "fronts", "commits", "snaps"))


def unfinished(directory: Path) -> list[Path]:
    """The files of a recovery directory a first start began and did not finish (killed
    while making it), to be made again; none (an empty list) otherwise.  Unfinished:
    no format file, nothing but Bytewax's partitions (``part-N.sqlite3``, their journals)
    and the staged format file, each partition of Bytewax's tables only and holding no
    snapshot, commit or frontier, or cut short before it was a database.  Anything else
    (another program's files, a partition that cannot be read now) is left alone, and
    the directory refused by :func:`check_format`.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     empty = unfinished(Path(d))
    ...     _ = (Path(d) / "part-0.sqlite3").write_bytes(b"")
    ...     begun = [p.name for p in unfinished(Path(d))]
    ...     _ = (Path(d) / "app.sqlite3").write_bytes(b"")
    ...     print(empty, begun, unfinished(Path(d)))
    [] ['part-0.sqlite3'] []
    """
    if (directory / FORMAT_FILE).exists():
        return []
    files = [p for p in directory.iterdir() if p.name != INIT_LOCK]
    if not all(p.is_file() and (_PARTITION.fullmatch(p.name) or p.name == _STAGED) for p in files):
        return []
    databases = [p for p in files if p.name.endswith(".sqlite3")]
    return [] if any(_holds_state(p) for p in databases) else files


def _holds_state(path: Path) -> bool:
    """Whether a partition may hold state: a snapshot, a commit or a frontier, a table
    that is not Bytewax's, or an error reading it other than its not being a database
    yet (a partition cut short while it was made holds nothing)."""
    if path.stat().st_size == 0:
        return False
    try:
        with closing(sqlite3.connect(path, timeout=5)) as db:
            tables = {
                name
                for (name,) in db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                    " AND name NOT LIKE 'sqlite%'"
                )
            }
            if not tables <= BYTEWAX_TABLES:
                return True
            return any(
                db.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None  # noqa: S608
                for table in ("snaps", "commits", "fronts")
                if table in tables
            )
    except sqlite3.DatabaseError as exc:
        # (cut short: "file is not a database"; locked, or unreadable: it may hold state)
        return "not a database" not in str(exc)


@contextmanager
def making(directory: Path) -> Iterator[None]:
    """Hold the directory's making lock: processes starting together on one directory
    check and make it one at a time."""
    fd = os.open(directory / INIT_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # (the lock goes with it)


def remake(files: list[Path]) -> None:
    """Delete the files of an :func:`unfinished` directory, to be made again."""
    for path in files:
        path.unlink(missing_ok=True)


def check_format(directory: Path) -> None:
    """Refuse, in one line that says what to do, a recovery directory whose snapshots
    this cxstream does not read (written by an older one, or not by cxstream).

    Pre-1.0, snapshots are not migrated: the state they hold (journeys, pending
    labels, models) comes back from the event streams still held in Redis.
    """
    try:
        found = (directory / FORMAT_FILE).read_text().strip()
    except FileNotFoundError:
        found = "1 (no format file: written before cxstream 0.2)"
    except OSError as exc:
        raise ConfigError(f"CX_RECOVERY_DIR={directory}: cannot read {FORMAT_FILE}: {exc}") from exc
    if found != str(SNAPSHOT_FORMAT):
        raise ConfigError(
            f"CX_RECOVERY_DIR={directory} holds snapshots of format {found}; this cxstream "
            f"reads format {SNAPSHOT_FORMAT}: move it aside (or point CX_RECOVERY_DIR at an "
            "empty directory) and start again, or run the cxstream that wrote it"
        )


def partitions(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.sqlite3"))


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, timeout=30, isolation_level=None)


def commit_epochs(directory: Path) -> dict[Path, int]:
    """Each partition's last committed epoch (-1 before the first)."""
    out: dict[Path, int] = {}
    for path in partitions(directory):
        with closing(_connect(path)) as conn:
            row = conn.execute("SELECT MAX(commit_epoch) FROM commits").fetchone()
        out[path] = -1 if row is None or row[0] is None else int(row[0])
    return out


def scrub(directory: Path, keys: Iterable[str]) -> int:
    """Delete the journey rows of ``keys`` from every partition, then rewrite each
    partition without free pages; return how many rows were deleted."""
    keys = list(keys)
    deleted = 0
    for path in partitions(directory):
        with closing(_connect(path)) as conn:
            for key in keys:
                cursor = conn.execute(
                    "DELETE FROM snaps WHERE step_id LIKE ? AND state_key = ?", (JOURNEY_STEP, key)
                )
                deleted += cursor.rowcount
                # An anonymous id linked to the customer holds its id (the link): the
                # link goes too (the live state drops it at its next event).
                cursor = conn.execute(
                    "DELETE FROM snaps WHERE step_id LIKE ? AND"
                    " (state_key = ? OR instr(ser_change, ?) > 0)",
                    (IDENTITY_STEP, key, key.encode()),
                )
                deleted += cursor.rowcount
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return deleted


def scrub_forgotten(directory: Path, forgotten: Forgotten) -> int:
    """At start: scrub the journey rows whose key is on the suppression list."""
    if not forgotten or not partitions(directory):
        return 0
    found: set[str] = set()
    for path in partitions(directory):
        with closing(_connect(path)) as conn:
            rows = conn.execute(
                "SELECT DISTINCT state_key FROM snaps WHERE step_id LIKE ?", (JOURNEY_STEP,)
            ).fetchall()
        found.update(key for (key,) in rows if key in forgotten)
    if not found:
        return 0
    deleted = scrub(directory, found)
    log.info(
        "scrubbed %d erased customer(s) left in the recovery partitions by an earlier run",
        len(found),
    )
    return deleted


class RecoveryScrubber:
    """Scrubs erased customers from the recovery partitions, from a child process.

    The flow's process must not open the partitions itself: Bytewax links its
    own copy of SQLite, and two copies in one process break each other's file
    locks (SQLite's "how to corrupt" page, multiple copies of SQLite).  A
    child process (``python -m state.recovery DIR``, ids on its stdin, never
    on its command line) waits for the epochs, scrubs, and reports one JSON line.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def erased(self, keys: list[str]) -> None:
        """``keys`` were just erased from Redis and from the flow's state: scrub them."""
        if not keys:
            return
        child = subprocess.Popen(
            [sys.executable, "-m", "state.recovery", str(self.directory)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=Path(__file__).resolve().parent.parent,
        )
        threading.Thread(
            target=self._wait, args=(child, keys), name="cx-recovery-scrub", daemon=True
        ).start()

    def _wait(self, child: subprocess.Popen[bytes], keys: list[str]) -> None:
        out, err = child.communicate(orjson.dumps({"keys": keys}))
        if child.returncode == 0:
            log.info(
                "scrubbed %d erased customer(s) from the recovery partitions: %s",
                len(keys),
                out.decode().strip(),
            )
        else:
            log.warning(
                "scrubbing %d erased customer(s) from the recovery partitions failed "
                "(exit %d): %s; the next start scrubs them",
                len(keys),
                child.returncode,
                err.decode(errors="replace").strip()[-500:],
            )


def wait_and_scrub(
    directory: Path, keys: list[str], *, timeout_s: float = 120.0, poll_s: float = POLL_S
) -> dict[str, int]:
    """Wait until every partition committed :data:`EPOCHS_AFTER` more epochs, then scrub."""
    baseline = commit_epochs(directory)
    deadline = time.monotonic() + timeout_s
    while True:
        now = commit_epochs(directory)
        if all(now.get(p, -1) >= e + EPOCHS_AFTER for p, e in baseline.items()):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {EPOCHS_AFTER} epochs committed in {timeout_s:g} s")
        time.sleep(poll_s)
    started = time.monotonic()
    rows = scrub(directory, keys)
    return {
        "customers": len(keys),
        "rows": rows,
        "partitions": len(baseline),
        "ms": round((time.monotonic() - started) * 1000),
    }


def main() -> int:
    """``python -m state.recovery DIR``: scrub the ids given on stdin (JSON {"keys": [...]})."""
    directory = Path(sys.argv[1])
    keys = [str(k) for k in orjson.loads(sys.stdin.buffer.read())["keys"]]
    try:
        result = wait_and_scrub(directory, keys)
    except (sqlite3.Error, TimeoutError) as exc:
        print(f"scrubbing {directory}: {exc}", file=sys.stderr)
        return 1
    print(orjson.dumps(result).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
