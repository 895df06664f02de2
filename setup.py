"""The compiled build of the operators (optional; pyproject.toml holds the rest).

``CX_COMPILE=1`` compiles the modules of ``operators.build.COMPILED`` with mypyc
(``make compiled`` does it in place in the development environment;
``CX_COMPILE=1 pip install --no-build-isolation .`` in an environment that has the
``dev`` extra's mypy). ``CX_COMPILE=auto`` tries and keeps the Python source for a
module that does not build (no C compiler, no mypyc). Unset or ``0``: the Python
source only, as before.
"""

from __future__ import annotations

import os
import sys

from setuptools import setup

mode = os.environ.get("CX_COMPILE", "0").strip().lower()
if mode not in ("0", "1", "auto"):
    sys.exit(f"CX_COMPILE={mode!r}: must be 0, 1 or auto")

ext_modules = []
if mode != "0":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from operators.build import COMPILED

    try:
        from mypyc.build import mypycify
    except ImportError as exc:
        if mode == "1":
            sys.exit(f"CX_COMPILE=1: mypyc is not installed ({exc}); install mypy first")
        print("cxstream: mypyc not installed: the Python source is used", file=sys.stderr)
    else:
        # one C file per module (separate): a single one takes gcc minutes, not seconds
        ext_modules = mypycify(
            [f"operators/{name}.py" for name in COMPILED], opt_level="3", separate=True
        )
        for ext in ext_modules:
            ext.optional = mode == "auto"  # a module that fails to build stays Python

setup(ext_modules=ext_modules)
