"""Key names and the answer counters' field layout."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from server.supervisor import SupervisorView
from state.keys import answer_fields, escape_queue, unescape_queue

names = st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=1, max_size=20)


@given(names)
def test_a_queue_survives_its_escaping(queue: str) -> None:
    escaped = escape_queue(queue)
    assert "|" not in escaped
    assert unescape_queue(escaped) == queue


@given(queue=names, action=names.filter(lambda s: "|" not in s))
def test_the_view_reads_back_the_counters_one_answer_writes(queue: str, action: str) -> None:
    view = SupervisorView()
    view.answers({f.encode(): b"1" for f in answer_fields(action, "a1", "accepted", queue)})
    frame = view.frame(now=0.0, queues=frozenset({queue}))
    assert frame["acceptance"]["by_action"][action]["accepted"] == 1
