from __future__ import annotations

from dataclasses import replace

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from operators.erasure import Forgotten
from operators.errors import InvalidEvent
from operators.events import (
    CHANNELS,
    DEAD_LETTER_BYTES,
    MAX_ATTRS_DEPTH,
    MAX_EVENT_BYTES,
    Event,
    Read,
    Rejected,
    Suppressed,
    data_field,
    dead_letter_fields,
    encodable,
    encode_event,
    event_from_obj,
    parse_batch,
    parse_entry,
    parse_event,
    parse_ts,
    shard_of,
)

VALID = {
    "event_id": "e1",
    "customer_id": "c1",
    "ts": "2026-01-01T10:00:00Z",
    "channel": "voice",
    "type": "contact_start",
    "attrs": {"agent_id": "a1", "queue": "care", "sentiment": -0.5},
}


def raw(**changes: object) -> bytes:
    obj = {**VALID, **changes}
    return orjson.dumps({k: v for k, v in obj.items() if v is not _DROP})


_DROP = object()


def test_valid_event_parses_with_epoch_ms() -> None:
    e = parse_event(raw())
    assert e == Event(
        "e1",
        "c1",
        None,
        1767261600000,
        "voice",
        "contact_start",
        VALID["attrs"],  # type: ignore[arg-type]
    )
    assert e.key == "c1"


def test_anonymous_event_is_keyed_by_anonymous_id() -> None:
    e = parse_event(raw(customer_id=_DROP, anonymous_id="cookie-9"))
    assert e.customer_id is None
    assert e.key == "cookie-9"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"event_id": _DROP}, "event_id missing"),
        ({"event_id": ""}, "event_id length"),
        ({"event_id": "x" * 129}, "event_id length"),
        ({"event_id": 5}, "event_id not a string"),
        ({"customer_id": _DROP}, "customer_id missing"),
        ({"ts": _DROP}, "ts missing"),
        ({"ts": "yesterday"}, "ts not rfc 3339"),
        ({"ts": "2026-01-01T10:00:00"}, "ts has no utc offset"),
        ({"ts": True}, "ts not a time"),
        ({"ts": -5}, "ts out of range"),
        ({"ts": 1.5}, "ts not a time"),
        ({"channel": "fax"}, "channel unknown"),
        ({"type": _DROP}, "type missing"),
        ({"type": ""}, "type not a short string"),
        ({"attrs": [1]}, "attrs not an object"),
        ({"attrs": {"sentiment": 3}}, "attrs.sentiment out of range"),
        ({"attrs": {"nps": "ten"}}, "attrs.nps not a number"),
        ({"attrs": {"csat": 0}}, "attrs.csat out of range"),
        ({"attrs": {"agent_id": 7}}, "attrs.agent_id not an id"),
        ({"attrs": {"response": "maybe"}}, "attrs.response unknown"),
    ],
)
def test_contract_breaches_are_rejected_with_a_reason(
    changes: dict[str, object], reason: str
) -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_event(raw(**changes))
    assert info.value.reason == reason


@pytest.mark.parametrize(
    ("value", "reason"),
    [(10**400, "attrs.amount out of range"), (True, "attrs.amount not a number")],
)
def test_a_typed_attr_from_python_is_checked_as_from_json(value: object, reason: str) -> None:
    """An event made in Python (not parsed: no JSON limit on its numbers) is checked alike."""
    obj = {**orjson.loads(raw()), "attrs": {"amount": value}}
    with pytest.raises(InvalidEvent) as info:
        event_from_obj(obj)
    assert info.value.reason == reason


def test_number_reads_a_number_and_nothing_else() -> None:
    from operators.events import number

    assert [number(v) for v in (3, -0.0, 2.5, True, None, "1", [1])] == [
        3.0,
        -0.0,
        2.5,
        None,
        None,
        None,
        None,
    ]
    assert str(number(-0.0)) == "-0.0"


def test_not_json_and_not_object_and_oversize() -> None:
    with pytest.raises(InvalidEvent, match="not json"):
        parse_event(b"{nope")
    with pytest.raises(InvalidEvent, match="not an object"):
        parse_event(b"[1, 2]")
    with pytest.raises(InvalidEvent, match="too large"):
        parse_event(b" " * (MAX_EVENT_BYTES + 1))


def test_unknown_types_are_kept() -> None:
    assert parse_event(raw(type="loyalty_points_redeemed")).type == "loyalty_points_redeemed"


def test_parse_ts_offsets_and_millis() -> None:
    assert parse_ts("2026-01-01T11:00:00.5+01:00") == parse_ts("2026-01-01T10:00:00.5Z")
    assert parse_ts(1767261600000) == 1767261600000


def test_parse_entry_turns_failures_into_rejected_values() -> None:
    ok = parse_entry("cx:events:1", "1-0", raw())
    assert isinstance(ok, Event)
    bad = parse_entry("cx:events:1", "2-0", b'{"event_id": 1}')
    assert bad == Rejected(
        "cx:events:1", "2-0", b'{"event_id": 1}', "event_id not a string", "got number"
    )


def test_shard_is_crc32_mod_shards() -> None:
    import zlib

    for key in ("c1", "ünïcode", "x" * 128):
        assert shard_of(key, 4) == zlib.crc32(key.encode()) % 4
        assert 0 <= shard_of(key, 7) < 7


@given(st.binary(max_size=2000))
def test_any_bytes_become_an_event_or_a_documented_error(data: bytes) -> None:
    result = parse_entry("fuzz", "0-1", data)
    assert isinstance(result, Event | Rejected)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "event_id": json_values | st.text(min_size=1, max_size=10),
            "customer_id": json_values | st.text(min_size=1, max_size=10),
            "anonymous_id": json_values,
            "ts": json_values | st.integers(0, 2**42),
            "channel": json_values | st.sampled_from(sorted(CHANNELS)),
            "type": json_values | st.text(min_size=1, max_size=10),
            "attrs": json_values,
        },
    )
)
def test_any_json_object_becomes_an_event_or_a_documented_error(obj: dict[str, object]) -> None:
    result = parse_entry("fuzz", "0-1", orjson.dumps(obj))
    if isinstance(result, Rejected):
        assert result.reason
    else:
        assert result.key


@given(
    st.builds(
        Event,
        event_id=st.text(min_size=1, max_size=128),
        customer_id=st.text(min_size=1, max_size=128),
        anonymous_id=st.none() | st.text(min_size=1, max_size=128),
        ts=st.integers(0, 7_258_118_400_000),
        channel=st.sampled_from(sorted(CHANNELS)),
        type=st.text(min_size=1, max_size=64).filter(lambda t: t != "consent"),
        attrs=st.dictionaries(st.sampled_from(["text", "x"]), st.text(max_size=20), max_size=2),
    )
)
def test_encode_then_parse_round_trips(event: Event) -> None:
    assert parse_event(encode_event(event)) == event


@pytest.mark.parametrize(
    ("patch", "reason"),
    [({"channel": []}, "channel unknown"), ({"attrs": {"response": ["x"]}}, "attrs.response")],
)
def test_unhashable_values_are_invalid_events_not_crashes(
    patch: dict[str, object], reason: str
) -> None:
    obj = {"event_id": "e", "customer_id": "c", "ts": 0, "channel": "web", "type": "t", **patch}
    with pytest.raises(InvalidEvent, match=reason):
        event_from_obj(obj)


def test_events_of_erased_customers_are_suppressed_at_parse_except_forget() -> None:
    from types import SimpleNamespace as E

    forgotten = Forgotten()
    forgotten.add("c1")
    batch = [
        E(stream="s", entry_id="1-0", data=raw()),
        E(stream="s", entry_id="1-1", data=raw(customer_id="c2")),
        E(stream="s", entry_id="1-2", data=raw(type="forget")),
        E(stream="s", entry_id="1-3", data=b"{"),
    ]
    out = parse_batch(batch, forgotten)
    assert out[0] == Suppressed("s", "1-0")
    assert isinstance(out[1], tuple)
    assert out[1][0] == "c2"
    assert isinstance(out[2], tuple)
    assert out[2][1].type == "forget"
    assert isinstance(out[3], Rejected)
    assert forgotten.suppressed == 1
    assert [type(x).__name__ for x in parse_batch(batch)][:1] == ["tuple"]  # no list: no check


entry_fields = st.one_of(
    st.none(),
    st.lists(st.sampled_from([b"data", b"other"]), max_size=3).flatmap(
        lambda names: st.tuples(
            *(
                st.tuples(
                    st.just(name),
                    st.one_of(
                        st.sampled_from([b"{", b""]),
                        st.builds(lambda c: raw(customer_id=c), st.sampled_from(["c1", "c2"])),
                        st.builds(lambda t: raw(type=t), st.sampled_from(["forget", "page_view"])),
                    ),
                )
                for name in names
            )
        ).map(lambda pairs: [x for pair in pairs for x in pair])
    ),
)


@given(st.lists(entry_fields, max_size=8), st.booleans())
def test_a_read_handed_whole_parses_as_its_entries_one_by_one(
    fields: list[list[bytes] | None], erased: bool
) -> None:
    """The Redis source hands a read whole (ids as bytes, each entry's flat field list);
    the parse is the same as of the entries made one by one."""
    from state.source import Entry

    ids = [f"{i + 1}-0" for i in range(len(fields))]
    read = Read("cx:events:1", [(i.encode(), f) for i, f in zip(ids, fields, strict=True)])
    entries = [Entry("cx:events:1", i, data_field(f)) for i, f in zip(ids, fields, strict=True)]
    forgotten = [Forgotten(), Forgotten()]
    if erased:
        for f in forgotten:
            f.add("c1")
    assert parse_batch([read], forgotten[0]) == parse_batch(entries, forgotten[1])
    assert forgotten[0].suppressed == forgotten[1].suppressed


def test_the_data_field_is_found_among_others() -> None:
    assert data_field([b"data", b"x"]) == b"x"
    assert data_field([b"other", b"y", b"data", b"x"]) == b"x"
    assert data_field([b"other", b"y"]) is None
    assert data_field([]) is None
    assert data_field(None) is None


def test_parse_hands_only_events_with_text_to_the_enrichment() -> None:
    from types import SimpleNamespace as E

    seen: list[str] = []

    def enrich(event: Event) -> Event:
        seen.append(event.event_id)
        return replace(event, attrs={**event.attrs, "topic": "billing"})

    batch = [
        E(stream="s", entry_id="1-0", data=raw(event_id="plain")),
        E(stream="s", entry_id="1-1", data=raw(event_id="said", attrs={"text": "my bill"})),
        E(stream="s", entry_id="1-2", data=raw(event_id="empty", attrs={"text": ""})),
    ]
    out = parse_batch(batch, None, enrich)
    assert seen == ["said", "empty"]  # (an empty text is the enrichment's to judge)
    events = [item[1] for item in out if isinstance(item, tuple)]
    assert [e.attrs.get("topic") for e in events] == [None, "billing", "billing"]


def nested(depth: int, *, kind: str = "dict") -> object:
    """A value with ``depth`` containers, one inside the other."""
    value: object = 1
    for _ in range(depth):
        value = {"a": value} if kind == "dict" else [value]
    return value


@pytest.mark.parametrize("kind", ["dict", "list"])
def test_one_depth_limit_for_parsing_and_encoding(kind: str) -> None:
    """What parses encodes; one level more is rejected with a reason, not a crash."""
    inside = nested(MAX_ATTRS_DEPTH - 1, kind=kind)  # attrs itself is the first level
    ok = event_from_obj(orjson.loads(raw(attrs={"x": inside})))
    assert parse_event(encode_event(ok)) == ok
    opening, closing = (b'{"a":', b"}") if kind == "dict" else (b"[", b"]")
    for depth in (MAX_ATTRS_DEPTH, 300, 1000):  # 1000 + 3: orjson decodes up to 1024
        deep = raw(attrs={"x": "HERE"}).replace(b'"HERE"', opening * depth + b"1" + closing * depth)
        with pytest.raises(InvalidEvent, match="attrs nested too deep"):
            parse_event(deep)


@given(json_values)
def test_every_accepted_event_encodes(attrs: object) -> None:
    try:
        event = parse_event(orjson.dumps({**VALID, "attrs": {"x": attrs}}))
    except InvalidEvent:
        return
    assert parse_event(encode_event(event)) == event


def test_encodable_clips_what_orjson_cannot_write() -> None:
    deep = nested(300, kind="list")
    with pytest.raises(orjson.JSONEncodeError):
        orjson.dumps(deep)
    clipped = orjson.loads(encodable({"customer_id": "c1", "attrs": deep}))
    assert clipped["customer_id"] == "c1"
    assert encodable(VALID) == orjson.dumps(VALID)


def test_dead_letters_keep_a_bounded_excerpt_a_digest_and_the_ids() -> None:
    import hashlib

    big = orjson.dumps({**VALID, "attrs": {"text": "x" * 1_000_000}, "anonymous_id": "a-9"})
    fields = dead_letter_fields(Rejected("cx:events:1", "1-0", big, "too large", ""), at_ms=5)
    assert len(fields["data"]) == DEAD_LETTER_BYTES
    assert fields["size"] == str(len(big)).encode()
    assert fields["digest"] == hashlib.sha256(big).hexdigest().encode()
    assert (fields["customer"], fields["anonymous"]) == (b"c1", b"a-9")
    small = dead_letter_fields(Rejected("ingest", "0", b'{"x":1}', "not json", "d"), at_ms=5)
    assert small["data"] == b'{"x":1}'
    assert small["size"] == b"7"
    assert "customer" not in small
    # the id past the excerpt, in broken JSON, written with an escape: still named
    broken = b'{"attrs":{"t":"' + b"y" * 10_000 + b'"},"customer_id":"c\\u0031", oops'
    letter = dead_letter_fields(Rejected("ingest", "0", broken, "not json", ""), at_ms=5)
    assert letter["customer"] == b"c1"


def consent(**attrs: object) -> bytes:
    return raw(type="consent", channel="web", attrs=attrs)


@pytest.mark.parametrize(
    ("attrs", "reason"),
    [
        ({}, "attrs.purpose missing"),
        ({"granted": True}, "attrs.purpose missing"),
        ({"purpose": "spam", "granted": True}, "attrs.purpose unknown"),
        ({"purpose": ["marketing"], "granted": True}, "attrs.purpose unknown"),
        ({"purpose": "marketing"}, "attrs.granted missing"),
        ({"purpose": "marketing", "granted": "yes"}, "attrs.granted not a boolean"),
        ({"purpose": "marketing", "granted": 1}, "attrs.granted not a boolean"),
        ({"purpose": "contact", "granted": True, "channel": "fax"}, "attrs.channel unknown"),
        ({"purpose": "contact", "granted": True, "channel": 3}, "attrs.channel unknown"),
        ({"purpose": "contact", "granted": True, "source": ""}, "attrs.source not a short string"),
    ],
)
def test_a_consent_event_needs_a_purpose_and_a_boolean(
    attrs: dict[str, object], reason: str
) -> None:
    result = parse_entry("cx:events:0", "1-0", consent(**attrs))
    assert isinstance(result, Rejected)
    assert result.reason == reason


def test_a_long_source_says_the_limit() -> None:
    result = parse_entry("s", "1-0", consent(purpose="contact", granted=True, source="s" * 65))
    assert isinstance(result, Rejected)
    assert result.detail == "65 chars, allowed 1-64 chars"


def test_a_consent_event_without_attrs_is_rejected() -> None:
    result = parse_entry("cx:events:0", "1-0", raw(type="consent", attrs=_DROP))
    assert isinstance(result, Rejected)
    assert result.reason == "attrs.purpose missing"
    result = parse_entry("cx:events:0", "1-0", raw(type="consent", attrs=["marketing"]))
    assert isinstance(result, Rejected)
    assert result.reason == "attrs not an object"


@pytest.mark.parametrize("channel", [None, "sms", "push", "email", "voice"])
def test_valid_consent_events_parse(channel: str | None) -> None:
    attrs: dict[str, object] = {
        "purpose": "contact",
        "granted": False,
        "source": "preference-centre",
    }
    if channel is not None:
        attrs["channel"] = channel
    e = parse_event(consent(**attrs))
    assert (e.type, e.attrs["purpose"], e.attrs["granted"]) == ("consent", "contact", False)


@given(
    st.dictionaries(
        st.sampled_from(["purpose", "granted", "channel", "source", "x"]),
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**63 - 1)
        | st.sampled_from(["marketing", "profiling", "contact", "sms", "push", "fax", ""]),
    )
)
def test_any_consent_attrs_parse_valid_or_are_rejected_with_a_reason(
    attrs: dict[str, object],
) -> None:
    result = parse_entry("fuzz", "0-1", consent(**attrs))
    if isinstance(result, Rejected):
        assert result.reason.startswith("attrs.")
    else:
        assert result.attrs["purpose"] in ("marketing", "profiling", "contact")
        assert isinstance(result.attrs["granted"], bool)
