"""The compiled build of the operators (optional; pyproject.toml holds the rest).

``CX_COMPILE=1`` compiles the modules of ``cxstream.build.COMPILED`` with mypyc and
records the SHA-256 of each source in ``operators/compiled.json`` (``make compiled`` does
it in place in the development environment; ``CX_COMPILE=1 pip install
--no-build-isolation .`` in an environment that has mypy, setuptools>=77 and the
dependencies). ``CX_COMPILE=auto`` tries, and keeps the Python source if the operators do
not compile (no mypyc, no C compiler, a type error). Unset, empty or ``0``: the Python
source only.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from cxstream.build import COMPILED, RECORD, digest  # noqa: E402 (from this checkout)

mode = os.environ.get("CX_COMPILE", "").strip().lower() or "0"
if mode not in ("0", "1", "auto"):
    sys.exit(f"CX_COMPILE={mode!r}: must be 0, 1 or auto")


def fall_back(reason: object) -> None:
    print(f"cxstream: the operators did not compile ({reason}): the Python source is used")


class BuildOperators(build_ext):
    """build_ext, which under ``auto`` drops every compiled file when any one fails (a
    module's loader without its library would not import)."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # under auto, any failure to build means the source
            if mode != "auto":
                raise
            fall_back(exc)
            for output in self.get_outputs():
                Path(output).unlink(missing_ok=True)
            self.extensions = []
            RECORD.unlink(missing_ok=True)


ext_modules = []
if mode != "0":
    sources = [ROOT / "operators" / f"{name}.py" for name in COMPILED]
    try:
        from mypyc.build import mypycify

        # one C file per module (separate): a single one takes gcc minutes, not seconds
        ext_modules = mypycify(
            [str(path.relative_to(ROOT)) for path in sources], opt_level="3", separate=True
        )
    except (SystemExit, Exception) as exc:  # no mypyc, a type error: see fall_back
        if mode == "1":
            raise
        fall_back(exc)
        ext_modules = []
    if ext_modules:  # what each compiled module was built from (cxstream.build.stale)
        RECORD.write_text(json.dumps({p.stem: digest(p) for p in sources}, indent=1) + "\n")

setup(ext_modules=ext_modules, cmdclass={"build_ext": BuildOperators})
