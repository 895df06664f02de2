from __future__ import annotations

import contextlib
import copy
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from operators.errors import InvalidEvent
from operators.events import _CHECKED_ATTRS, CHANNELS, KNOWN_TYPE_SET, event_from_obj
from operators.segment import TRACK_ALIASES, event_type, from_segment

IDS = st.text(min_size=1, max_size=128)
TIMES = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2199, 1, 1), timezones=st.just(UTC)
)
# Free-form properties: the names the event contract types (amount, nps, tz, ...) are
# left out here, and checked on their own below.
PROPERTIES = st.dictionaries(
    st.text(max_size=10).filter(lambda k: k not in _CHECKED_ATTRS),
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=20),
    max_size=5,
)


@st.composite
def calls(draw: st.DrawFn) -> dict[str, object]:
    """Well-formed Segment calls of the kinds the mapping takes."""
    kind = draw(st.sampled_from(["track", "identify", "page", "screen"]))
    call: dict[str, object] = {
        "type": kind,
        "messageId": draw(IDS),
        "timestamp": draw(TIMES).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    user, anonymous = draw(st.none() | IDS), draw(st.none() | IDS)
    if user is None and anonymous is None:
        user = "someone"
    if user is not None:
        call["userId"] = user
    if anonymous is not None:
        call["anonymousId"] = anonymous
    if kind == "track":
        call["event"] = draw(st.from_regex(r"[A-Za-z][A-Za-z ]{0,40}", fullmatch=True))
    if draw(st.booleans()):
        call["properties"] = draw(PROPERTIES)
    channel = draw(st.none() | st.sampled_from(["browser", "mobile", "server", *sorted(CHANNELS)]))
    if channel is not None:
        call["context"] = {"channel": channel, "ip": "203.0.113.9"}
    return call


@given(calls())
def test_a_well_formed_call_maps_to_a_valid_event_keeping_its_ids_and_time(
    call: dict[str, object],
) -> None:
    event = event_from_obj(from_segment(call))
    assert event.event_id == call["messageId"]
    assert event.customer_id == call.get("userId")
    assert event.anonymous_id == call.get("anonymousId")
    stamp = datetime.fromisoformat(str(call["timestamp"]))
    assert event.ts == round(stamp.timestamp() * 1000)
    assert event.channel in CHANNELS
    if call["type"] == "identify":
        assert (event.type, dict(event.attrs)) == ("identify", {})  # traits are not kept
    elif call["type"] in ("page", "screen"):
        assert event.type == "page_view"
    else:
        assert event.type == event_type(str(call["event"]))


@given(calls())
def test_the_call_is_not_changed(call: dict[str, object]) -> None:
    before = copy.deepcopy(call)
    from_segment(call)
    assert call == before


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6)
    ),
    max_leaves=25,
)
CALL_SHAPED = st.fixed_dictionaries(
    {"type": st.sampled_from(["track", "page"])},
    optional=dict.fromkeys(("messageId", "timestamp", "event", "properties", "context"), JSON),
)


@given(JSON | CALL_SHAPED)
def test_anything_else_is_an_event_object_or_invalid_event(value: object) -> None:
    try:
        mapped = from_segment(value)
    except InvalidEvent:
        return
    assert isinstance(mapped, dict)
    with contextlib.suppress(InvalidEvent):
        event_from_obj(mapped)


@given(st.text(max_size=60))
def test_event_type_is_snake_case_and_stable(name: str) -> None:
    once = event_type(name)
    assert event_type(once) == once
    assert once == once.lower()
    assert " " not in once


def test_known_names_and_aliases() -> None:
    assert event_type("Contact Start") == "contact_start"
    assert all(alias in KNOWN_TYPE_SET for alias in TRACK_ALIASES.values())
    assert event_type("Products Searched") == "search"


@pytest.mark.parametrize("name", sorted(_CHECKED_ATTRS))
def test_a_property_the_contract_types_is_checked_by_name(name: str) -> None:
    call = {"type": "page", "messageId": "m", "userId": "u", "timestamp": 1}
    mapped = from_segment({**call, "properties": {name: False}})
    with pytest.raises(InvalidEvent, match=f"attrs.{name} "):
        event_from_obj(mapped)


def test_channels_of_the_context() -> None:
    base = {"type": "track", "event": "x", "messageId": "m", "userId": "u", "timestamp": 1}
    channel = {
        c: from_segment({**base, "context": {"channel": c}})["channel"]
        for c in ("browser", "mobile", "server", "chat")
    }
    assert channel == {"browser": "web", "mobile": "app", "server": "web", "chat": "chat"}
    assert from_segment(base, default_channel="voice")["channel"] == "voice"
    assert from_segment({**base, "type": "screen"})["channel"] == "app"
    with pytest.raises(InvalidEvent, match="channel unknown"):
        event_from_obj(from_segment({**base, "context": {"channel": "kiosk"}}))


def test_numeric_user_ids_and_amounts() -> None:
    base = {"type": "track", "event": "Order Completed", "messageId": "m", "timestamp": 1}
    mapped = from_segment({**base, "userId": 42, "properties": {"total": 9, "value": 3}})
    assert (mapped["customer_id"], mapped["attrs"]["amount"]) == ("42", 9)
    kept = from_segment({**base, "userId": "u", "properties": {"amount": 1, "revenue": 5}})
    assert kept["attrs"]["amount"] == 1


@pytest.mark.parametrize(
    ("call", "reason"),
    [
        ({"type": "group", "messageId": "m"}, "segment type unsupported"),
        ({"type": "track", "event": "x", "timestamp": 1}, "messageId missing"),
        ({"type": "track", "event": "x", "messageId": "m"}, "timestamp missing"),
        ({"type": "track", "messageId": "m", "timestamp": 1}, "event missing"),
        ({"type": "track", "event": "x", "messageId": "m", "timestamp": 1, "properties": [1]},
         "properties not an object"),
        ([1], "not an object"),
    ],
)  # fmt: skip
def test_what_cannot_be_mapped_says_why(call: object, reason: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        from_segment(call)
    assert info.value.reason == reason
