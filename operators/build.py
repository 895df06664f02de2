"""Which build of the operators is loaded: compiled, or the Python source.

The modules in :data:`COMPILED` hold the per-event work (parsing, dedupe, the journey
fold and its features, labels, the live experience, the model step's scoring and
reasons, trends, consent).  ``make compiled`` (or
``CX_COMPILE=1 pip install .``) compiles them with mypyc from the same source: the
type annotations ``mypy --strict`` checks become C types, classes become native
classes.  Python loads a compiled module in preference to its ``.py`` file, so a
compiled module whose source changed since it was built would run the old code:
:func:`stale` names them (the test suite and ``cxstream run`` refuse to start with
one); ``make pure`` removes the compiled files.

>>> build(["journey"]) in ("compiled", "pure")
True
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
from collections.abc import Sequence
from pathlib import Path

# The modules compiled by `make compiled` (setup.py reads this list).  Not the arbiter's,
# the personas' or the proactive policy's: the model step's snapshot pickles their
# objects, and a native class's object does not unpickle (its __init__ takes arguments).
COMPILED = (
    "alerts",
    "consent",
    "customer",
    "decide",
    "dedupe",
    "events",
    "experience",
    "journey",
    "labels",
    "reasons",
    "trends",
)


def origin(module: str) -> Path:
    """The file ``operators.<module>`` loads from (without importing it)."""
    spec = importlib.util.find_spec(f"operators.{module}")
    if spec is None or spec.origin is None:
        raise ImportError(f"operators.{module}: not found")
    return Path(spec.origin)


def is_compiled(module: str) -> bool:
    return origin(module).name.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def build(modules: Sequence[str] = COMPILED) -> str:
    """``compiled`` (every module of the list), ``pure`` (none) or ``mixed``."""
    compiled = [is_compiled(m) for m in modules]
    return "compiled" if all(compiled) else "pure" if not any(compiled) else "mixed"


def stale(modules: Sequence[str] = COMPILED) -> list[str]:
    """Compiled modules whose ``.py`` source is newer than the compiled file."""
    out: list[str] = []
    for module in modules:
        path = origin(module)
        if not is_compiled(module):
            continue
        source = path.parent / f"{module}.py"
        if source.exists() and source.stat().st_mtime > path.stat().st_mtime:
            out.append(module)
    return out
