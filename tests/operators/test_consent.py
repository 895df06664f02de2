from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.consent import (
    ANY,
    PURPOSES,
    ConsentPolicy,
    Consents,
    parse_consent_default,
)
from operators.errors import ConfigError

CHANNELS = ("sms", "email", "voice")

statement = st.tuples(
    st.sampled_from(PURPOSES),
    st.one_of(st.none(), st.sampled_from(CHANNELS)),
    st.booleans(),
    st.integers(min_value=0, max_value=20),  # few instants: ties happen
    st.sampled_from(("web", "app", "crm")),
)
Statement = tuple[str, str | None, bool, int, str]


def expected(statements: list[Statement], purpose: str, channel: str | None, default: bool) -> bool:
    """The rule, said plainly: of the statements on this purpose that apply to the
    channel (its own, or for every channel; profiling has no channels), the latest in
    event time; at the same time a refusal; none: the default."""
    applying = [
        s
        for s in statements
        if s[0] == purpose
        and (purpose == "profiling" or s[1] is None or (channel is not None and s[1] == channel))
    ]
    if not applying:
        return default
    latest = max(s[3] for s in applying)
    return all(s[2] for s in applying if s[3] == latest)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(statement, max_size=25),
    st.randoms(use_true_random=False),
    st.dictionaries(st.sampled_from(PURPOSES), st.booleans()),
)
def test_the_latest_statement_in_event_time_wins_whatever_the_arrival_order(
    statements: list[Statement], rng: random.Random, default: dict[str, bool]
) -> None:
    policy = ConsentPolicy({p: default.get(p, True) for p in PURPOSES})
    arrived = Consents()
    for s in statements:
        arrived.observe(*s)
    shuffled = list(statements)
    rng.shuffle(shuffled)
    reordered = Consents()
    for s in shuffled:
        reordered.observe(*s)
    assert arrived.snapshot() == reordered.snapshot()
    for purpose in PURPOSES:
        for channel in (None, *CHANNELS):
            want = expected(statements, purpose, channel, default.get(purpose, True))
            assert policy.allows(arrived, purpose, channel) is want, (purpose, channel)
            refusal = policy.refusal(arrived, purpose, channel)
            assert (refusal is None) is want
            if refusal is not None:
                assert f"no {purpose} consent" in refusal
            assert policy.view(arrived, channel)[purpose]["granted"] is want


def test_observe_says_whether_the_statement_is_now_the_latest() -> None:
    c = Consents()
    assert c.observe("contact", "sms", False, 10, "app")
    assert not c.observe("contact", "sms", False, 10, "app")  # the same again
    assert not c.observe("contact", "sms", True, 10, "app")  # same time: the refusal holds
    assert not c.observe("contact", "sms", True, 9, "app")  # older
    assert c.observe("contact", "sms", True, 11, "app")
    assert c.observe("profiling", "sms", False, 1, "web")  # profiling has no channels
    assert c.as_dict() == {
        "contact": {"sms": {"granted": True, "at": 11, "source": "app"}},
        "profiling": {ANY: {"granted": False, "at": 1, "source": "web"}},
    }
    assert Consents(c.snapshot()).snapshot() == c.snapshot() == c.copy().snapshot()


def test_a_statement_for_every_channel_overrides_an_older_one_for_a_channel() -> None:
    c = Consents()
    c.observe("marketing", "email", True, 1, "email")
    c.observe("marketing", None, False, 2, "crm")
    policy = ConsentPolicy()
    assert not policy.allows(c, "marketing", "email")
    assert policy.refusal(c, "marketing", "email") == (
        "no marketing consent (withdrawn 1970-01-01 via crm)"
    )
    c.observe("marketing", "email", True, 3, "email")
    assert policy.allows(c, "marketing", "email")
    assert not policy.allows(c, "marketing", "sms")
    c.observe("marketing", "sms", False, 4, "sms")
    assert policy.refusal(c, "marketing", "sms") == (
        "no marketing consent on sms (withdrawn 1970-01-01 via sms)"
    )


def test_the_default_holds_before_any_statement() -> None:
    policy = ConsentPolicy(parse_consent_default("marketing=denied"))
    assert not policy.allows(None, "marketing", "voice")
    assert policy.allows(None, "contact", "sms")
    assert not policy.objected(None)
    assert not policy.all_granted
    assert ConsentPolicy().all_granted
    assert policy.view(None, "voice")["marketing"] == {
        "granted": False,
        "at": None,
        "source": "default",
    }
    assert ConsentPolicy(parse_consent_default("profiling=denied")).objected(None)


@pytest.mark.parametrize(
    "text",
    [
        "maybe",
        "marketing",
        "marketing=yes",
        "sms=denied",
        "marketing=denied,x",
        "marketing=denied,marketing=granted",
    ],
)
def test_a_wrong_default_is_refused_with_the_variable_named(text: str) -> None:
    with pytest.raises(ConfigError, match="CX_CONSENT_DEFAULT"):
        parse_consent_default(text)


def test_defaults_read_in_any_case_and_spacing() -> None:
    assert parse_consent_default(" Granted ") == dict.fromkeys(PURPOSES, True)
    assert parse_consent_default("marketing = denied , profiling=granted") == {
        "marketing": False,
        "profiling": True,
        "contact": True,
    }
