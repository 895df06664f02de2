"""The recovery scrub on partitions shaped like Bytewax's (the end-to-end test in
tests/test_erasure.py runs it against Bytewax's own)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import orjson
import pytest

from operators.erasure import Forgotten
from state.recovery import EPOCHS_AFTER, commit_epochs, scrub, scrub_forgotten, wait_and_scrub

STEP = "cxstream_journey.journey.stateful_batch"
CANARY = "canary-5f0e"


def partition(folder: Path, index: int = 0) -> Path:
    path = folder / f"part-{index}.sqlite3"
    with closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(
            """
            CREATE TABLE snaps (step_id TEXT, state_key TEXT, snap_epoch INTEGER, ser_change BLOB,
                                PRIMARY KEY (step_id, state_key, snap_epoch));
            CREATE TABLE commits (part_index INTEGER PRIMARY KEY, commit_epoch INTEGER);
            """
        )
        db.execute("INSERT INTO commits VALUES (?, 5)", (index,))
        # The erased customer's old snapshot (then deleted, as Bytewax's GC does: its
        # bytes stay in a free page), its discard, a model shard that held its id, a bystander.
        db.execute("INSERT INTO snaps VALUES (?, ?, 3, ?)", (STEP, CANARY, CANARY.encode() * 200))
        db.execute("INSERT INTO snaps VALUES (?, ?, 5, NULL)", (STEP, CANARY))
        db.execute("INSERT INTO snaps VALUES (?, 'bystander', 5, ?)", (STEP, b"x" * 500))
        db.execute(
            "INSERT INTO snaps VALUES ('cxstream_journey.decide.stateful_batch', 'm0', 5, ?)",
            (b"model" * 100,),
        )
        # An anonymous id linked to the erased customer (its state holds the id).
        db.execute(
            "INSERT INTO snaps VALUES ('cxstream_journey.identity.stateful_batch', 'ck-1', 5, ?)",
            (b"\x80\x05" + CANARY.encode() + b"\x94",),
        )
        db.execute(
            "INSERT INTO snaps VALUES ('cxstream_journey.identity.stateful_batch', 'ck-2', 5, ?)",
            (b"someone-else",),
        )
        db.execute("DELETE FROM snaps WHERE snap_epoch = 3")
        db.commit()
    return path


def holding(folder: Path, needle: bytes) -> list[str]:
    return [p.name for p in sorted(folder.iterdir()) if needle in p.read_bytes()]


def test_scrub_deletes_the_keys_rows_and_the_freed_bytes(tmp_path: Path) -> None:
    partition(tmp_path, 0)
    partition(tmp_path, 1)
    assert holding(tmp_path, CANARY.encode())  # SQLite left the deleted bytes in the file
    assert scrub(tmp_path, [CANARY]) == 4  # the discard and the link, in each partition
    assert holding(tmp_path, CANARY.encode()) == []
    with closing(sqlite3.connect(tmp_path / "part-0.sqlite3")) as db:
        keys = sorted(k for (k,) in db.execute("SELECT state_key FROM snaps"))
    assert keys == ["bystander", "ck-2", "m0"]  # a model shard is never scrubbed by key


def test_a_customer_named_like_a_model_shard_leaves_the_model_alone(tmp_path: Path) -> None:
    partition(tmp_path)
    scrub(tmp_path, ["m0"])
    with closing(sqlite3.connect(tmp_path / "part-0.sqlite3")) as db:
        assert db.execute("SELECT COUNT(*) FROM snaps WHERE state_key = 'm0'").fetchone() == (1,)


def test_at_start_the_suppression_list_finds_what_an_earlier_run_left(tmp_path: Path) -> None:
    partition(tmp_path)
    assert scrub_forgotten(tmp_path, Forgotten()) == 0
    forgotten = Forgotten()
    forgotten.add(CANARY)
    assert scrub_forgotten(tmp_path, forgotten) == 2
    assert holding(tmp_path, CANARY.encode()) == []


def test_the_scrub_waits_for_committed_epochs(tmp_path: Path) -> None:
    path = partition(tmp_path)
    assert commit_epochs(tmp_path) == {path: 5}
    with pytest.raises(TimeoutError):
        wait_and_scrub(tmp_path, [CANARY], timeout_s=0.2, poll_s=0.05)
    assert holding(tmp_path, CANARY.encode())  # not yet: Bytewax may still need them
    with closing(sqlite3.connect(path)) as db:
        db.execute("UPDATE commits SET commit_epoch = ?", (5 + EPOCHS_AFTER,))
        db.commit()
    # The child takes its baseline once it has the ids; two more epochs then let it go.
    child = subprocess.Popen(
        [sys.executable, "-m", "state.recovery", str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert child.stdin is not None
    child.stdin.write(orjson.dumps({"keys": [CANARY]}))
    child.stdin.close()
    time.sleep(1.0)
    assert child.poll() is None  # waiting
    with closing(sqlite3.connect(path)) as db:
        db.execute("UPDATE commits SET commit_epoch = ?", (5 + 2 * EPOCHS_AFTER,))
        db.commit()
    assert child.wait(timeout=30) == 0
    assert child.stdout is not None
    with child.stdout:
        assert orjson.loads(child.stdout.read())["rows"] == 2  # the discard and the link
    assert holding(tmp_path, CANARY.encode()) == []
