"""Key names and the answer counters' field layout."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cxstream.settings import Settings
from operators.errors import ConfigError
from server.supervisor import SupervisorView
from state.keys import (
    ALERTS,
    AlertGroups,
    KeyNames,
    answer_fields,
    escape_queue,
    unescape_queue,
)

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


queue_names = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters=",;*"), min_size=1
).filter(lambda s: s.strip() == s)


@given(st.lists(st.lists(queue_names, min_size=1, max_size=4), min_size=1, max_size=5), names)
def test_every_queue_has_one_alert_stream_and_a_reader_of_its_queues_finds_it(
    groups: list[list[str]], other: str
) -> None:
    """Whatever the groups: a queue's alerts go to one stream of the group that names it
    (the `other` stream if none does), and the streams for a token's queues hold
    every alert of those queues; `*` reads them all."""
    seen: set[str] = set()
    unique: list[list[str]] = []
    for group in groups:
        fresh = list(dict.fromkeys(q for q in group if q not in seen))
        seen.update(fresh)
        if fresh:
            unique.append(fresh)
    text = ";".join(",".join(g) for g in unique)
    alert_groups = AlertGroups.parse(text)
    assert len(alert_groups.streams) == len(unique) + 1
    for n, group in enumerate(unique):
        for queue in group:
            assert alert_groups.stream_of(queue) == alert_groups.streams[n]
            assert alert_groups.stream_of(queue) in alert_groups.streams_for([queue])
    if other not in seen:
        assert alert_groups.stream_of(other) == alert_groups.other
    assert alert_groups.stream_of(None) == alert_groups.other
    assert alert_groups.streams_for([], no_queue=True) == {alert_groups.other}
    assert alert_groups.streams_for(["*"]) == set(alert_groups.streams)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("care;;sales", "group 1 names no queue"),
        ("care, *", "* is every queue"),
        ("care;billing,care", "'care' is in two groups"),
        ("emea-*;emea-*", "'emea-*' is in two groups"),
    ],
)
def test_a_wrong_group_setting_is_refused_and_named(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        Settings.from_env({"CX_ALERT_GROUPS": text})


def test_without_groups_every_alert_goes_to_one_stream() -> None:
    groups = AlertGroups.parse("  ")
    assert not groups.split
    assert groups.streams == (ALERTS,)
    assert groups.stream_of("care") == groups.stream_of(None) == ALERTS
    assert KeyNames.of(Settings()).alerts == groups


def test_a_queue_named_in_full_wins_over_a_prefix_and_the_longest_prefix_over_others() -> None:
    groups = AlertGroups.parse("emea-*; emea-vip-*; emea-vip-gold, amer-1")
    assert groups.stream_of("emea-care") == "{cx:alerts}:0"
    assert groups.stream_of("emea-vip-x") == "{cx:alerts}:1"
    assert groups.stream_of("emea-vip-gold") == "{cx:alerts}:2"
    assert groups.stream_of("amer-2") == groups.other
    assert groups.streams_for(["emea-care", "emea-vip-gold"]) == {"{cx:alerts}:0", "{cx:alerts}:2"}
    assert groups.stream_of("emea-care") == "{cx:alerts}:0"  # again, remembered
