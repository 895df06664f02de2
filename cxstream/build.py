"""Which build of the operators is loaded: compiled, or the Python source (here, not in
``operators``, which reads no file).

The modules in :data:`COMPILED` hold the per-event work (parsing, dedupe, the journey
fold and its features, labels, the live experience, the model step's decisions, model,
arbiter, personas and reasons, the proactive rules, trends, consent, the profile
writes). ``make compiled`` (or ``CX_COMPILE=1 pip install``) compiles them with mypyc
from the same source: the type annotations ``mypy --strict`` checks become C types,
classes become native classes (the model step's stay Python classes with compiled
methods: see :data:`COMPILED`). The build records the SHA-256 of each source it compiled
in :data:`RECORD`. Python loads a compiled module in preference to its ``.py`` file, so
a compiled module whose source changed since it was built would run the old code:
:func:`stale` names them (the test suite and ``cxstream run`` refuse to start with one);
``make pure`` removes the compiled files.

>>> build(["journey"]) in ("compiled", "pure")
True
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import json
from collections.abc import Sequence
from pathlib import Path

from operators.errors import ConfigError

# The modules compiled by `make compiled` (setup.py reads this list).  The classes of the
# model step's modules (churn, nba, personas, proactive, refit) stay Python classes with
# compiled methods (`mypyc_attr(native_class=False)`): the model step's snapshot pickles
# their objects, and a native class's object does not unpickle (its __init__ takes
# arguments), so a recovery store is the same in both builds.
COMPILED = (
    "alerts",
    "churn",
    "consent",
    "customer",
    "decide",
    "dedupe",
    "events",
    "experience",
    "journey",
    "labels",
    "nba",
    "personas",
    "proactive",
    "reasons",
    "refit",
    "store",
    "trends",
)
HERE = Path(__file__).resolve().parent.parent / "operators"  # the operators package
RECORD = HERE / "compiled.json"  # module -> SHA-256 of the source it was compiled from
_SUFFIXES = tuple(importlib.machinery.EXTENSION_SUFFIXES)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def compiled_modules(folder: Path = HERE) -> list[str]:
    """The modules of ``folder`` that load from a compiled file (mypyc's own runtime
    libraries, ``*__mypyc*``, are not modules of the engine)."""
    names = {
        path.name.split(".", 1)[0]
        for path in folder.iterdir()
        if path.name.endswith(_SUFFIXES) and "__mypyc" not in path.name
    }
    return sorted(names)


def build(modules: Sequence[str] = COMPILED, folder: Path = HERE) -> str:
    """``compiled`` (every module of the list), ``pure`` (none) or ``mixed``."""
    compiled = set(compiled_modules(folder))
    hits = [m in compiled for m in modules]
    return "compiled" if all(hits) else "pure" if not any(hits) else "mixed"


def stale(folder: Path = HERE) -> list[str]:
    """Compiled modules whose ``.py`` source is not the one they were compiled from
    (or of which the build kept no record)."""
    compiled = compiled_modules(folder)
    if not compiled:
        return []
    record = folder / RECORD.name
    try:
        built: dict[str, str] = json.loads(record.read_text()) if record.exists() else {}
    except (OSError, ValueError):
        built = {}
    out: list[str] = []
    for module in compiled:
        source = folder / f"{module}.py"
        if source.exists() and built.get(module) != digest(source):
            out.append(module)
    return out


def require_fresh() -> None:
    """Raise :class:`ConfigError` naming the compiled modules :func:`stale` finds."""
    old = stale()
    if old:
        raise ConfigError(
            f"compiled operators not built from their source ({', '.join(old)}): "
            "run `make compiled` again, or `make pure` to run the source"
        )
