"""Bytewax's stateful operators over the engine's plain logics (``operators/logic.py``).

The only place the engine's stateful logic meets Bytewax: each adapter hands
Bytewax's calls to the plain logic it wraps, unchanged (the same ``RETAIN`` and
``DISCARD`` booleans, the same snapshots, so a recovery store is the same).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Generic, TypeVar

import bytewax.operators as op
from bytewax.operators import KeyedStream, StatefulBatchLogic, StatefulLogic

from operators.logic import BatchLogic, KeyedLogic, Logic

V = TypeVar("V")
W = TypeVar("W")
S = TypeVar("S")


class _Delegate(Generic[V, W, S]):
    """Bytewax's calls but the items', handed to the plain logic unchanged."""

    __slots__ = ()
    logic: KeyedLogic[V, W, S]

    def on_notify(self) -> tuple[Iterable[W], bool]:
        return self.logic.on_notify()

    def on_eof(self) -> tuple[Iterable[W], bool]:
        return self.logic.on_eof()

    def notify_at(self) -> datetime | None:
        return self.logic.notify_at()

    def snapshot(self) -> S:
        return self.logic.snapshot()


class _Stateful(_Delegate[V, W, S], StatefulLogic[V, W, S]):
    __slots__ = ("logic",)
    logic: Logic[V, W, S]

    def __init__(self, logic: Logic[V, W, S]) -> None:
        self.logic = logic

    def on_item(self, value: V) -> tuple[Iterable[W], bool]:
        return self.logic.on_item(value)


class _StatefulBatch(_Delegate[V, W, S], StatefulBatchLogic[V, W, S]):
    __slots__ = ("logic",)
    logic: BatchLogic[V, W, S]

    def __init__(self, logic: BatchLogic[V, W, S]) -> None:
        self.logic = logic

    def on_batch(self, values: list[V]) -> tuple[Iterable[W], bool]:
        return self.logic.on_batch(values)


def stateful(
    step_id: str, up: KeyedStream[V], builder: Callable[[S | None], Logic[V, W, S]]
) -> KeyedStream[W]:
    """``op.stateful`` over a plain :class:`~operators.logic.Logic`."""
    return op.stateful(step_id, up, lambda resume: _Stateful(builder(resume)))


def stateful_batch(
    step_id: str, up: KeyedStream[V], builder: Callable[[S | None], BatchLogic[V, W, S]]
) -> KeyedStream[W]:
    """``op.stateful_batch`` over a plain :class:`~operators.logic.BatchLogic`."""
    return op.stateful_batch(step_id, up, lambda resume: _StatefulBatch(builder(resume)))
