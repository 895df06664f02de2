"""Records: frozen for the type checker, plain to make, and pickled as frozen
dataclasses are (a recovery store written before resumes)."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pytest
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


@record
class Grown:  # Point's first two fields, and one added since with a default
    x: int
    y: str = "a"
    added: int | None = None


def test_a_value_pickled_before_a_field_was_added_resumes_with_its_default() -> None:
    restored = Grown.__new__(Grown)
    restored.__setstate__([1, "b"])  # type: ignore[attr-defined]
    assert restored == Grown(1, "b", None)
    # a score request pickled before its last field (the consents) was added
    e = Event("e1", "c1", None, 5, "web", "silence", {})
    silence = ScoreRequest("c1", e, {"a": 1.0}, None, {}, "silence")
    old = [getattr(silence, f.name) for f in fields(ScoreRequest)][:-1]
    req = ScoreRequest.__new__(ScoreRequest)
    req.__setstate__(old)  # type: ignore[attr-defined]
    assert req == silence
    assert req.consent is None


def test_a_pickled_value_of_too_few_or_too_many_fields_is_refused() -> None:
    restored = Grown.__new__(Grown)
    with pytest.raises(TypeError, match="Grown: 0 values pickled for fields x, y, added"):
        restored.__setstate__([])  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="Grown: 4 values"):
        restored.__setstate__([1, "b", 2, 3])  # type: ignore[attr-defined]


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
