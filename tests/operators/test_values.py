"""Records: frozen for the type checker, plain to make, and pickled as frozen
dataclasses are (a recovery store written before resumes)."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from mypy import api as mypy_api

from operators.events import Event
from operators.records import ScoreRequest, Signal
from operators.values import record


@record
class Point:
    x: int
    y: str = "a"
    tags: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FrozenPoint:  # the same fields, as every record was declared before
    x: int
    y: str = "a"
    tags: dict[str, Any] = field(default_factory=dict)


def test_a_record_is_a_slotted_dataclass_with_value_equality_and_hash() -> None:
    p = Point(1)
    assert [f.name for f in fields(p)] == ["x", "y", "tags"]
    assert not hasattr(p, "__dict__")  # slotted
    assert p == Point(1, "a", {})
    assert p != Point(2)
    assert Point(1).tags is not Point(1).tags  # a factory, not a shared default
    assert repr(Point(1, "b")) == "Point(x=1, y='b', tags={})"


@given(st.integers(), st.text(), st.dictionaries(st.text(), st.integers()))
def test_a_record_pickles_as_a_frozen_dataclass_does(x: int, y: str, tags: dict[str, Any]) -> None:
    p, frozen = Point(x, y, tags), FrozenPoint(x, y, tags)
    assert p.__getstate__() == frozen.__getstate__()
    assert pickle.loads(pickle.dumps(p)) == p
    # the frozen form's state restores a record, and the other way round
    restored = Point.__new__(Point)
    restored.__setstate__(frozen.__getstate__())  # type: ignore[attr-defined]
    assert restored == p
    back = FrozenPoint.__new__(FrozenPoint)
    back.__setstate__(p.__getstate__())  # type: ignore[attr-defined]
    assert back == frozen


def test_the_flow_values_are_records() -> None:
    e = Event("e1", "c1", None, 5, "web", "page_view", {"url": "/"})
    assert pickle.loads(pickle.dumps(e)) == e
    assert e.key == "c1"
    s = Signal("complaints", 5, "e1", "web", None, None, -0.5)
    assert pickle.loads(pickle.dumps(s)) == s
    assert hash(s) == hash(pickle.loads(pickle.dumps(s)))
    for cls in (Event, Signal, ScoreRequest):
        assert "__dict__" not in dir(cls)
        assert cls.__hash__ is not None


def test_the_type_checker_refuses_an_assignment_to_a_record(tmp_path: Path) -> None:
    """The guarantee a frozen dataclass gave at run time, kept where it costs nothing."""
    source = tmp_path / "mutate.py"
    source.write_text(
        "from operators.values import record\n\n"
        "@record\nclass P:\n    x: int\n\n"
        "p = P(1)\np.x = 2\n"
    )
    out, _, status = mypy_api.run(
        ["--strict", "--no-incremental", "--follow-imports=silent", str(source)]
    )
    assert status == 1
    assert 'Property "x" defined in "P" is read-only' in out
