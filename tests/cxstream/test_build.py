"""Which build of the operators the suite runs on (CI runs it on both)."""

from __future__ import annotations

import importlib.machinery
import json
import os
from pathlib import Path

from cxstream.build import COMPILED, build, compiled_modules, digest, stale
from operators.journey import JourneyState, features

SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def test_the_expected_build_is_loaded() -> None:
    """``CX_EXPECT_BUILD`` (set by CI and ``make test-compiled``) names the build the
    suite must run on; what loads is what the folder holds."""
    import operators.journey

    loaded = build()
    assert operators.journey.__file__ is not None
    assert operators.journey.__file__.endswith(SUFFIX) == (loaded == "compiled")
    expected = os.environ.get("CX_EXPECT_BUILD")
    if expected:
        assert loaded == expected


def test_a_compiled_module_is_native_code() -> None:
    """What the build says is what runs: compiled functions are not Python functions,
    compiled classes keep no instance ``__dict__``."""
    if "journey" in compiled_modules():
        assert type(features).__name__ != "function"
        assert not hasattr(JourneyState(), "__dict__")
    else:
        assert type(features).__name__ == "function"


def test_the_model_steps_classes_stay_python_classes_with_compiled_methods() -> None:
    """The model step's snapshot pickles these objects: in either build they are Python
    classes (an instance ``__dict__`` or slots, no mypyc attributes table), so a store
    written by one build resumes in the other; compiled, their methods are native code."""
    import inspect

    import operators.churn
    import operators.nba
    import operators.personas
    import operators.proactive
    import operators.refit

    modules = (
        operators.churn,
        operators.nba,
        operators.personas,
        operators.proactive,
        operators.refit,
    )
    checked = 0
    for module in modules:
        for name, cls in vars(module).items():
            if not inspect.isclass(cls) or cls.__module__ != module.__name__:
                continue
            if name.startswith("_") or name == "OnlineModel":  # (internal; a Protocol)
                continue
            assert not hasattr(cls, "__mypyc_attrs__"), f"{module.__name__}.{name} is native"
            checked += 1
    assert checked >= 20
    compiled = "nba" in compiled_modules()
    assert (type(operators.nba.Arbiter.select_one).__name__ != "function") == compiled
    assert (type(operators.refit.HazardRefit.linear_one).__name__ != "function") == compiled


def fake_build(folder: Path, names: list[str], *, record: dict[str, str] | None) -> None:
    for name in names:
        (folder / f"{name}.py").write_text(f"X = {name!r}\n")
        (folder / f"{name}{SUFFIX}").write_bytes(b"")
    (folder / f"abc123__mypyc{SUFFIX}").write_bytes(b"")  # mypyc's runtime: no module
    if record is not None:
        (folder / "compiled.json").write_text(json.dumps(record))


def test_stale_names_a_compiled_module_whose_source_changed(tmp_path: Path) -> None:
    fake_build(tmp_path, ["journey", "dedupe"], record=None)
    built = {n: digest(tmp_path / f"{n}.py") for n in ("journey", "dedupe")}
    (tmp_path / "compiled.json").write_text(json.dumps(built))
    assert compiled_modules(tmp_path) == ["dedupe", "journey"]
    assert stale(tmp_path) == []
    (tmp_path / "journey.py").write_text("X = 'edited'\n")
    assert stale(tmp_path) == ["journey"]
    (tmp_path / "journey.py").write_text("X = 'journey'\n")  # back: the dates do not count
    assert stale(tmp_path) == []


def test_a_compiled_module_without_a_record_is_stale(tmp_path: Path) -> None:
    """A compiled file the build did not record (left from an older list, or a record
    lost): its source cannot be vouched for."""
    fake_build(tmp_path, ["journey"], record={})
    assert stale(tmp_path) == ["journey"]
    (tmp_path / "compiled.json").write_text("{not json")
    assert stale(tmp_path) == ["journey"]
    (tmp_path / "compiled.json").unlink()
    assert stale(tmp_path) == ["journey"]


def test_no_compiled_file_no_stale_module(tmp_path: Path) -> None:
    (tmp_path / "journey.py").write_text("")
    assert stale(tmp_path) == []
    assert build(["journey"], tmp_path) == "pure"


def test_build_says_compiled_pure_or_mixed(tmp_path: Path) -> None:
    fake_build(tmp_path, ["journey"], record=None)
    assert build(["journey"], tmp_path) == "compiled"
    assert build(["journey", "dedupe"], tmp_path) == "mixed"
    assert build(["dedupe"], tmp_path) == "pure"


def test_the_list_names_real_modules() -> None:
    here = Path(__file__).resolve().parents[2] / "operators"
    for name in COMPILED:
        assert (here / f"{name}.py").exists()
