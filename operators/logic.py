"""The shape of a stateful logic, without the framework.

The engine's stateful logics (a customer's journey, the model step, a trend
series, an identity) are plain classes in Bytewax's shape: ``on_item`` (or
``on_batch``), ``on_notify``, ``on_eof``, ``notify_at`` and ``snapshot``; each
``on_*`` returns the values to emit and whether to discard the logic (:data:`DISCARD`)
or keep it (:data:`RETAIN`).  They import nothing of Bytewax: ``flows/`` wraps them
in its thin adapters (``flows/adapters.py``), and tests drive them directly.

>>> class Count(Logic[str, int, int]):
...     def __init__(self, resume: int | None) -> None:
...         self.n = resume or 0
...     def on_item(self, value: str) -> tuple[list[int], bool]:
...         self.n += 1
...         return [self.n], RETAIN
...     def snapshot(self) -> int:
...         return self.n
>>> c = Count(None)
>>> c.on_item("a"), c.on_item("b"), Count(c.snapshot()).on_item("c")
(([1], False), ([2], False), ([3], False))
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from datetime import datetime
from typing import Generic, TypeVar

V = TypeVar("V")  # what comes in
W = TypeVar("W")  # what goes out
S = TypeVar("S")  # the snapshot

RETAIN = False  # keep this logic (and its state) after the call
DISCARD = True  # drop this logic: its key starts afresh with its next item


class KeyedLogic(ABC, Generic[V, W, S]):
    """What both shapes share: notifications, the end of input, the snapshot."""

    def on_notify(self) -> tuple[Iterable[W], bool]:
        """The time :meth:`notify_at` gave has come."""
        return (), RETAIN

    def on_eof(self) -> tuple[Iterable[W], bool]:
        """The input has ended (for this execution)."""
        return (), RETAIN

    def notify_at(self) -> datetime | None:
        """When to call :meth:`on_notify` next (UTC), if ever."""
        return None

    @abstractmethod
    def snapshot(self) -> S:
        """The state to resume from: plain, picklable data that later calls do not change."""


class Logic(KeyedLogic[V, W, S]):
    """One key's logic, item by item."""

    @abstractmethod
    def on_item(self, value: V) -> tuple[Iterable[W], bool]:
        """An item for this key: what to emit, and whether to discard the logic."""


class BatchLogic(KeyedLogic[V, W, S]):
    """One key's logic, a batch of items at a time."""

    @abstractmethod
    def on_batch(self, values: list[V]) -> tuple[Iterable[W], bool]:
        """Items for this key, in order: what to emit, and whether to discard the logic."""
