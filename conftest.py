"""The suite's collection rule for the compiled build (fixtures live in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """The docstring examples of a compiled operator run on the source build only (the
    compiled module is the same source; Python loads it in place of the file)."""
    if collection_path.suffix == ".py" and collection_path.parent.name == "operators":
        from operators.build import COMPILED, is_compiled

        name = collection_path.stem
        if name in COMPILED and is_compiled(name):
            return True
    return None
