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
from bytewax.dataflow import operator
from bytewax.operators import KeyedStream, StatefulBatchLogic

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


class _Items(_Delegate[V, W, S], StatefulBatchLogic[V, W, S]):
    """A key's batch handed to its plain :class:`~operators.logic.Logic` item by item, as
    ``op.stateful`` does (a logic discarded within the batch is built afresh for the
    next item), but in one shim: ``op.stateful`` over a shim of ours made two Python
    calls an item, and two for each ``notify_at``."""

    __slots__ = ("builder", "logic")
    logic: Logic[V, W, S]

    def __init__(self, builder: Callable[[S | None], Logic[V, W, S]], resume: S | None) -> None:
        self.builder = builder
        self.logic = builder(resume)

    def on_batch(self, values: list[V]) -> tuple[Iterable[W], bool]:
        out: list[W] = []
        logic, discard = self.logic, False
        for value in values:
            if discard:
                logic = self.logic = self.builder(None)
            ws, discard = logic.on_item(value)
            out.extend(ws)
        return out, discard


class _StatefulBatch(_Delegate[V, W, S], StatefulBatchLogic[V, W, S]):
    __slots__ = ("logic",)
    logic: BatchLogic[V, W, S]

    def __init__(self, logic: BatchLogic[V, W, S]) -> None:
        self.logic = logic

    def on_batch(self, values: list[V]) -> tuple[Iterable[W], bool]:
        return self.logic.on_batch(values)


@operator
def stateful(
    step_id: str, up: KeyedStream[V], builder: Callable[[S | None], Logic[V, W, S]]
) -> KeyedStream[W]:
    """``op.stateful`` over a plain :class:`~operators.logic.Logic`: the same inner step
    (``<step>.stateful_batch``), so a recovery store written under ``op.stateful``
    resumes into it."""

    def build(resume: S | None) -> _Items[V, W, S]:
        return _Items(builder, resume)

    return op.stateful_batch("stateful_batch", up, build)


def stateful_batch(
    step_id: str, up: KeyedStream[V], builder: Callable[[S | None], BatchLogic[V, W, S]]
) -> KeyedStream[W]:
    """``op.stateful_batch`` over a plain :class:`~operators.logic.BatchLogic`."""
    return op.stateful_batch(step_id, up, lambda resume: _StatefulBatch(builder(resume)))


@operator
def batched(
    step_id: str, up: KeyedStream[V], builder: Callable[[S | None], BatchLogic[V, W, S]]
) -> KeyedStream[W]:
    """:func:`stateful_batch` under the inner step id ``op.stateful`` gives
    (``<step>.stateful_batch``): a recovery store written while the step was an
    ``op.stateful`` (the model step's was) resumes into it."""
    return stateful_batch("stateful_batch", up, builder)
