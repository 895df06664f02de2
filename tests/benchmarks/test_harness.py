"""The benchmarks' stack: processes stopped, and its folder removed after a good run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from benchmarks._harness import Stack


def test_a_good_run_leaves_nothing_behind() -> None:
    with Stack(flow=False) as stack:
        folder = stack.folder
        assert (folder / "serve-0.log").exists()
        procs = list(stack.procs)
    assert not folder.exists()
    assert all(p.poll() is not None for p in procs)


def _fail_inside(folders: list[Path]) -> None:
    with Stack(flow=False) as stack:
        folders.append(stack.folder)
        raise RuntimeError("boom")


def test_a_failed_run_keeps_its_logs_and_says_where(capsys: pytest.CaptureFixture[str]) -> None:
    folders: list[Path] = []
    with pytest.raises(RuntimeError, match="boom"):
        _fail_inside(folders)
    [folder] = folders
    try:
        assert (folder / "serve-0.log").exists()
        assert str(folder) in capsys.readouterr().err
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_stack_that_cannot_start_stops_what_it_started(monkeypatch: pytest.MonkeyPatch) -> None:
    stack = Stack(flow=False)
    monkeypatch.setattr(stack, "_start", lambda: (stack.spawn("serve"), 1 / 0))
    with pytest.raises(ZeroDivisionError), stack:
        pass
    assert stack.procs
    assert all(p.poll() is not None for p in stack.procs)
    shutil.rmtree(stack.folder, ignore_errors=True)
