"""The decorator of the values that travel between the flow's steps (events, score
requests, signals, profile updates, alerts, ...): immutable dataclasses that are cheap
to make.

A frozen dataclass enforces its immutability at run time by setting each field through
``object.__setattr__`` in ``__init__``: about 1 us for an event's seven fields on the
machines this engine is measured on, four to five times the cost of a plain ``__init__``,
paid for every event and again for each record it makes.  :func:`record` keeps the
guarantee where it costs nothing: type checkers see a frozen dataclass
(:func:`typing.dataclass_transform` with ``frozen_default``, so ``mypy --strict``
rejects an assignment to a field), while the class made at run time has a plain
``__init__``.  Equality and hashing are those of a frozen dataclass, and so is the
pickled form (the fields' values as a list), so a recovery store written by a frozen
class resumes into a record and back.

>>> @record
... class Point:
...     x: int
...     y: int = 0
>>> Point(1) == Point(1, 0), hash(Point(1)) == hash(Point(1, 0))
(True, True)
>>> Point(2, 3).__getstate__()  # what pickle stores, as for a frozen dataclass
[2, 3]

A field added at the end with a default reads a value pickled before it as that default
(``p.__setstate__([2])`` sets ``y`` to 0): a recovery store resumes across the change.
A field with a default factory is not one of those (its value is not known here), and a
field inserted before others would have older values read into the wrong fields: add
fields at the end.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from typing import Any, TypeVar, dataclass_transform

T = TypeVar("T")

# Type checks against constant tuples (``isinstance(v, NUMBER)``): ``int | float`` builds
# a union at every call, twice as slow on paths taken for every attr of every event.
NUMBER = (int, float)
CONTAINER = (dict, list)  # the containers attrs may nest


@dataclass_transform(frozen_default=True)
def record(cls: type[T]) -> type[T]:
    """``cls`` as a slotted dataclass, frozen for type checkers (see the module)."""
    made: type[T] = dataclass(slots=True, unsafe_hash=True)(cls)
    names = tuple(f.name for f in fields(made))  # type: ignore[arg-type]
    # a field added at the end with a default: a value pickled before it resumes with that
    defaults = [f.default for f in fields(made)]  # type: ignore[arg-type]
    n_required = max((i + 1 for i, d in enumerate(defaults) if d is MISSING), default=0)

    def __getstate__(self: Any) -> list[Any]:
        return [getattr(self, name) for name in names]

    def __setstate__(self: Any, state: list[Any]) -> None:
        if not n_required <= len(state) <= len(names):
            raise TypeError(
                f"{made.__name__}: {len(state)} values pickled for fields {', '.join(names)}"
            )
        for name, value in zip(names, (*state, *defaults[len(state) :]), strict=True):
            object.__setattr__(self, name, value)

    made.__getstate__ = __getstate__  # type: ignore[method-assign]
    made.__setstate__ = __setstate__  # type: ignore[attr-defined]
    return made


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type, for messages about input.

    >>> json_type(None), json_type(True), json_type(2.5), json_type([1]), json_type({})
    ('null', 'boolean', 'number', 'array', 'object')
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
