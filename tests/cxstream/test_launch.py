"""One preparation for both launch lines (the kill test runs both: tests/test_recovery.py)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from cxstream.launch import runner_settings
from cxstream.settings import Settings
from operators.errors import ConfigError
from state.recovery import INIT_LOCK


@pytest.fixture(autouse=True)
def collector_left_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """prepare() turns the flow process's collector off: not the test run's."""
    import cxstream.runtime

    monkeypatch.setattr(cxstream.runtime, "stop_gc", lambda: None)


def test_the_runner_recovery_directory_is_the_one_setting() -> None:
    plain, workers = runner_settings(Settings(), ["m:get_flow()"], {})
    assert (plain.recovery_dir, workers) == (None, 1)
    env = {"BYTEWAX_RECOVERY_DIRECTORY": "rec", "BYTEWAX_WORKERS_PER_PROCESS": "3"}
    from_env, workers = runner_settings(Settings(), ["m:get_flow()"], env)
    assert (from_env.recovery_dir, workers) == (Path("rec"), 3)
    same, _ = runner_settings(
        Settings(recovery_dir=Path("rec")), ["m:get_flow()", "--recovery-directory", "rec"], {}
    )
    assert same.recovery_dir == Path("rec")
    with pytest.raises(ConfigError, match="has no -r: add -r rec"):
        runner_settings(Settings(recovery_dir=Path("rec")), ["m:get_flow()"], {})


def test_bytewax_runner_refuses_a_second_recovery_directory_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "CX_RECOVERY_DIR": str(tmp_path / "ours"), "CX_SHRADS": "2"}
    command = [sys.executable, "-m", "bytewax.run", "cxstream.launch:get_flow()"]
    command += ["-r", str(tmp_path / "theirs"), "-s", "1", "-b", "10"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[-1] == (
        f"cxstream: error: CX_RECOVERY_DIR={tmp_path / 'ours'} but bytewax.run "
        f"-r {tmp_path / 'theirs'}: name one directory"
    )
    warning = "cxstream: warning: CX_SHRADS is not a setting (did you mean CX_SHARDS?): ignored"
    assert warning in lines[:-1]  # (the warning first: a wrong value stops the flow after it)
    assert not (tmp_path / "ours").exists()  # refused before anything was prepared


def test_a_recovery_directory_of_another_snapshot_format_is_refused(tmp_path: Path) -> None:
    from cxstream.launch import prepare
    from state.recovery import FORMAT_FILE, SNAPSHOT_FORMAT

    old = tmp_path / "old"
    old.mkdir()
    with closing(sqlite3.connect(old / "part-0.sqlite3")) as db:  # an older cxstream's
        db.execute("CREATE TABLE snaps (step_id, state_key, epoch, ser_change)")
        db.execute("INSERT INTO snaps VALUES ('s', 'k', 1, NULL)")
        db.commit()
    settings = Settings(recovery_dir=old, redis_url="redis://127.0.0.1:1")
    with pytest.raises(ConfigError, match=r"format 1 .*this cxstream reads format") as e:
        prepare(settings, workers=1)
    assert "\n" not in str(e.value)
    assert "move it aside" in str(e.value)
    (old / FORMAT_FILE).write_text(f"{SNAPSHOT_FORMAT + 1}\n")  # or a newer one
    with pytest.raises(ConfigError, match=f"format {SNAPSHOT_FORMAT + 1};"):
        prepare(settings, workers=1)


@pytest.mark.parametrize("left", ["partitions", "journal", "format being written"])
def test_a_recovery_directory_a_killed_first_start_left_half_made_is_made_again(
    tmp_path: Path, redis_url: str, left: str
) -> None:
    from bytewax.recovery import init_db_dir

    from cxstream.launch import prepare
    from state.recovery import FORMAT_FILE, SNAPSHOT_FORMAT

    half = tmp_path / "rec"
    half.mkdir()
    init_db_dir(half, 2)  # killed before the format file was written
    if left == "journal":
        (half / "part-1.sqlite3").write_bytes(b"SQLite format 3\x00 cut")  # cut short
        (half / "part-1.sqlite3-journal").write_bytes(b"\x00" * 512)
    elif left == "format being written":
        (half / f".{FORMAT_FILE}.tmp").write_text("")
    prepare(Settings(recovery_dir=half, redis_url=redis_url), workers=1)
    assert (half / FORMAT_FILE).read_text() == f"{SNAPSHOT_FORMAT}\n"
    made = sorted(p.name for p in half.iterdir() if p.name != INIT_LOCK)
    assert made == [FORMAT_FILE, "part-0.sqlite3"]


@pytest.mark.parametrize("theirs", ["app.sqlite3", "part-0.sqlite3"])
def test_another_programs_database_in_the_recovery_directory_is_left_alone(
    tmp_path: Path, theirs: str
) -> None:
    from cxstream.launch import prepare

    folder = tmp_path / "rec"
    folder.mkdir()
    with closing(sqlite3.connect(folder / theirs)) as db:  # no snapshot, not Bytewax's
        db.execute("CREATE TABLE orders (id)")
        db.commit()
    with pytest.raises(ConfigError, match="format 1"):
        prepare(Settings(recovery_dir=folder, redis_url="redis://127.0.0.1:1"), workers=1)
    assert [p.name for p in folder.iterdir() if p.name != INIT_LOCK] == [theirs]


def test_prepare_leaves_blas_one_thread_once_the_flow_is_built(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cxstream.runtime
    from cxstream.launch import prepare

    calls: list[str] = []
    monkeypatch.setattr(cxstream.runtime, "limit_blas", lambda: calls.append("limit_blas"))
    monkeypatch.setattr(cxstream.runtime, "stop_gc", lambda: calls.append("stop_gc"))
    launch = prepare(Settings(redis_url=redis_url), workers=1)
    assert launch.flow is not None
    assert calls == ["stop_gc", "limit_blas"]  # after the flow (and numpy, River) is built


@pytest.mark.parametrize(
    ("workers", "cluster", "recovery", "one_step"),
    [
        (1, False, False, True),
        (2, False, False, False),
        (1, True, False, False),
        (1, False, True, False),
    ],
)
def test_one_worker_alone_runs_the_keyed_steps_in_one(
    redis_url: str, tmp_path: Path, workers: int, cluster: bool, recovery: bool, one_step: bool
) -> None:
    """A worker that owns every key (one, not of a cluster, no recovery) runs the flow's
    keyed steps in one step; otherwise they run apart, routed by key."""
    from cxstream.launch import prepare

    settings = Settings(redis_url=redis_url, recovery_dir=tmp_path / "rec" if recovery else None)
    flow = prepare(settings, workers=workers, cluster=cluster).flow
    steps = {step.step_id for step in flow.substeps}
    assert ("cxstream_journey.worker" in steps) is one_step
    assert ("cxstream_journey.journey" in steps) is not one_step


def test_the_runner_is_one_of_a_cluster_with_a_process_id_or_addresses() -> None:
    from cxstream.launch import runner_cluster

    assert not runner_cluster(["m:get_flow()", "-w", "1"], {})
    assert runner_cluster(["m:get_flow()", "-i", "0", "-a", "a:1;b:2"], {})
    assert runner_cluster(["m:get_flow()", "--addresses=a:1"], {})
    assert runner_cluster(["m:get_flow()"], {"BYTEWAX_PROCESS_ID": "1"})
    assert not runner_cluster(["m:get_flow()"], {"BYTEWAX_PROCESS_ID": ""})
