"""The suite's collection rule for the compiled build (fixtures live in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """The docstring examples of a compiled operator run on the source build only (the
    compiled module is the same source; Python loads it in place of the file)."""
    if collection_path.suffix == ".py":
        from cxstream.build import HERE, compiled_modules

        if collection_path.parent.resolve() == HERE and collection_path.stem in compiled_modules():
            return True
    return None
