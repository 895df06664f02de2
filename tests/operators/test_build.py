"""Which build of the operators the suite runs on (CI runs it on both)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from operators import build as build_module
from operators.build import COMPILED, build, is_compiled, stale
from operators.journey import JourneyState, features


def test_the_expected_build_is_loaded() -> None:
    """``CX_EXPECT_BUILD`` (set by CI and ``make test-compiled``) names the build the
    suite must run on."""
    loaded = build()
    compiled = [is_compiled(name) for name in COMPILED]
    assert loaded == ("compiled" if all(compiled) else "mixed" if any(compiled) else "pure")
    expected = os.environ.get("CX_EXPECT_BUILD")
    if expected:
        assert loaded == expected


def test_a_compiled_module_is_native_code() -> None:
    """What the build says is what runs: compiled functions are not Python functions,
    compiled classes keep no instance ``__dict__``."""
    if is_compiled("journey"):
        assert type(features).__name__ != "function"
        assert not hasattr(JourneyState(), "__dict__")
    else:
        assert type(features).__name__ == "function"


def test_the_list_names_real_modules() -> None:
    for name in COMPILED:
        assert build_module.origin(name).stem.split(".")[0] == name


def test_stale_names_a_compiled_module_older_than_its_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.machinery

    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    compiled = tmp_path / f"journey{suffix}"
    compiled.write_bytes(b"")
    source = tmp_path / "journey.py"
    source.write_text("")
    old = time.time() - 60
    os.utime(compiled, (old, old))
    monkeypatch.setattr(build_module, "origin", lambda module: tmp_path / f"{module}{suffix}")
    assert stale(["journey"]) == ["journey"]
    os.utime(source, (old - 60, old - 60))  # the source older: up to date
    assert stale(["journey"]) == []
    monkeypatch.setattr(build_module, "origin", lambda module: source)  # the source loads
    assert stale(["journey"]) == []
