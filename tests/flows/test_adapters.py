from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.operators import KeyedStream, StatefulLogic
from bytewax.testing import TestingSink, TestingSource, run_main
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.adapters import stateful
from operators.logic import DISCARD, RETAIN, Logic


class Count(Logic[int, tuple[int, int], int]):
    """Counts a key's items; a 0 ends the count (the logic is discarded)."""

    built = 0

    def __init__(self, resume: int | None) -> None:
        Count.built += 1
        self.n = resume or 0

    def on_item(self, value: int) -> tuple[list[tuple[int, int]], bool]:
        self.n += 1
        return [(value, self.n)], DISCARD if value == 0 else RETAIN

    def notify_at(self) -> datetime | None:
        return None

    def snapshot(self) -> int:
        return self.n


class _Bytewax(StatefulLogic[int, tuple[int, int], int]):
    """The same logic under Bytewax's own ``op.stateful``: the reference."""

    def __init__(self, resume: int | None) -> None:
        self.inner = Count(resume)

    def on_item(self, value: int) -> tuple[list[tuple[int, int]], bool]:
        return self.inner.on_item(value)

    def snapshot(self) -> int:
        return self.inner.snapshot()


def run(
    items: list[tuple[str, int]],
    make: Callable[[KeyedStream[int]], KeyedStream[tuple[int, int]]],
) -> list[tuple[str, tuple[int, int]]]:
    flow = Dataflow("adapters")
    out: list[tuple[str, tuple[int, int]]] = []
    op.output(
        "out", make(op.input("in", flow, TestingSource(items, batch_size=4))), TestingSink(out)
    )
    run_main(flow)
    return out


@settings(max_examples=25)  # (each example runs two dataflows)
@given(st.lists(st.tuples(st.sampled_from("ab"), st.integers(0, 3)), max_size=30))
def test_stateful_hands_items_over_as_op_stateful_does(items: list[tuple[str, int]]) -> None:
    """Batches of several items per key, a logic discarded within one: the outputs, and
    the logics built, are Bytewax's own."""
    Count.built = 0
    ours = run(items, lambda up: stateful("count", up, Count))
    ours_built, Count.built = Count.built, 0
    theirs = run(items, lambda up: op.stateful("count", up, _Bytewax))
    assert sorted(ours) == sorted(theirs)
    for key in "ab":  # (in order within a key)
        assert [v for k, v in ours if k == key] == [v for k, v in theirs if k == key]
    assert ours_built == Count.built
