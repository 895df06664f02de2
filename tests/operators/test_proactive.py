from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.errors import ConfigError
from operators.nba import parse_catalog
from operators.proactive import (
    DAY_MS,
    Check,
    OutboundPolicy,
    ProactiveConfig,
    Rule,
    RuleState,
    Uplift,
    in_holdout,
    merge_counts,
    model_trigger,
    parse_quiet_hours,
    quiet_until,
    uplift_of,
    uplift_report,
    zone,
)
from tests.conftest import T0

FAILED_TWICE = Rule.parse(
    {"name": "failed_twice", "event": "payment_failed", "count": 2, "within_days": 7}
)


def _fires(state: RuleState, rule: Rule, ts: int, **attrs: float) -> bool:
    return bool(state.observe((rule,), rule.event, ts, attrs, {"value": 300.0}.__getitem__))


def test_two_failures_within_the_window_fire_and_the_window_slides() -> None:
    state = RuleState()
    assert not _fires(state, FAILED_TWICE, T0)
    assert not _fires(state, FAILED_TWICE, T0 + 8 * DAY_MS)  # the first is out of the window
    assert _fires(state, FAILED_TWICE, T0 + 9 * DAY_MS)
    assert _fires(state, FAILED_TWICE, T0 + 10 * DAY_MS)  # a third within 7 days: again
    assert not _fires(state, FAILED_TWICE, T0 + 30 * DAY_MS)


def test_a_late_match_does_not_fire_a_window_that_has_passed() -> None:
    state = RuleState()
    assert not _fires(state, FAILED_TWICE, T0 + 20 * DAY_MS)
    assert not _fires(state, FAILED_TWICE, T0 + 1 * DAY_MS)  # late, and 19 days before
    assert not _fires(state, FAILED_TWICE, T0 + 2 * DAY_MS)  # late: old news


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=40 * 24), min_size=1, max_size=30))
def test_a_counting_rule_fires_exactly_when_count_matches_fall_in_the_window(
    hours: list[int],
) -> None:
    """In time order, the rule fires at a match iff ``count`` matches (it included) lie
    within the window ending at it (a brute-force oracle over the matches so far)."""
    rule = Rule.parse({"name": "r", "event": "payment_failed", "count": 3, "within_days": 5})
    state = RuleState()
    seen: list[int] = []
    for h in sorted(hours):
        ts = T0 + h * 3_600_000
        seen.append(ts)
        expected = sum(1 for t in seen if ts - t < rule.window_ms) >= rule.count
        assert _fires(state, rule, ts) == expected
        assert all(len(v) <= rule.count for v in state.snapshot().values())  # bounded


def test_conditions_on_the_event_and_on_the_customer() -> None:
    angry = Rule.parse(
        {
            "name": "angry",
            "event": "complaint",
            "when": ["event.sentiment <= -0.5", "value >= 250"],
        }
    )
    state = RuleState()
    rich = {"value": 300.0}.__getitem__
    poor = {"value": 10.0}.__getitem__
    assert state.observe((angry,), "complaint", T0, {"sentiment": -0.8}, rich) == [angry]
    assert state.observe((angry,), "complaint", T0, {"sentiment": -0.8}, poor) == []
    assert state.observe((angry,), "complaint", T0, {"sentiment": -0.2}, rich) == []
    assert state.observe((angry,), "complaint", T0, {}, rich) == []  # no sentiment said
    assert state.observe((angry,), "complaint", T0, {"sentiment": "bad"}, rich) == []
    assert state.observe((angry,), "review", T0, {"sentiment": -0.9}, rich) == []


def test_a_journey_is_computed_only_when_an_event_test_passes() -> None:
    calls = []

    def journey(name: str) -> float:
        calls.append(name)
        return 1000.0

    rule = Rule.parse({"name": "r", "event": "review", "when": ["event.rating <= 2", "value > 5"]})
    assert RuleState().observe((rule,), "review", T0, {"rating": 5}, journey) == []
    assert calls == []
    assert RuleState().observe((rule,), "review", T0, {"rating": 1}, journey) == [rule]
    assert calls == ["value"]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"event": "x"}, "name missing"),
        ({"name": "r", "event": "x", "count": 0}, "count 0"),
        ({"name": "r", "event": "x", "within_days": -1}, "within_days -1"),
        ({"name": "r", "event": "x", "when": ["sentiment < low"]}, "not a number"),
        ({"name": "r", "event": "x", "when": ["sentiment ~ 1"]}, "write it as"),
        ({"name": "r", "event": "x", "whenn": []}, "unknown fields"),
    ],
)
def test_bad_rules_are_refused_with_what_is_wrong(item: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Rule.parse(item)


CATALOG_HEAD = """
[[action]]
id = "thanks"
title = "Thanks"
script = "Thank you."
goal = "serve"
value = 1
"""


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[[trigger]]\nname = "r"\nevent = "x"\n[[trigger]]\nname = "r"\nevent = "y"\n', "repeats"),
        ('[[trigger]]\nname = "risk_high"\nevent = "x"\n', "takes a model's"),
        ('[[trigger]]\nname = "r"\nevent = "x"\ncount = "two"\n', "trigger 'r': count"),
        ('[proactive]\nquiet_hours = "25-08"\n', r"\[proactive\]: quiet_hours"),
        ("[proactive]\ncaps_per_week = { fax = 1 }\n", "unknown channels"),
        ("[proactive]\nrisk_step = -1\n", "risk_step"),
        ("[proactive]\nexpires_hours = 0\n", "expires_hours"),
        ("[proactive]\nbogus = 1\n", "unknown fields"),
    ],
)
def test_bad_catalog_proactive_parts_are_refused(extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_catalog(CATALOG_HEAD + extra)


def test_an_action_names_its_outbound_channels_template_and_prior() -> None:
    catalog = parse_catalog(
        CATALOG_HEAD
        + '[[action]]\nid = "fix"\ntitle = "Fix"\nscript = "s"\ngoal = "serve"\nvalue = 5\n'
        + 'outbound = ["sms", "email"]\ntemplate = "fix_v2"\nuplift = 0.2\n'
    )
    fix = catalog.get("fix")
    assert fix is not None
    assert (fix.outbound, fix.template, fix.uplift) == (("sms", "email"), "fix_v2", 0.2)
    with pytest.raises(ConfigError, match="unknown channels"):
        parse_catalog(CATALOG_HEAD.replace("value = 1", 'value = 1\noutbound = ["fax"]'))
    with pytest.raises(ConfigError, match="uplift 2"):
        parse_catalog(CATALOG_HEAD.replace("value = 1", "value = 1\nuplift = 2"))


def test_the_model_triggers() -> None:
    assert model_trigger(0.61, None) == "risk_high"  # first look, already high
    assert model_trigger(0.61, 0.59) == "risk_high"
    assert model_trigger(0.85, 0.7) is None  # high, and was: nothing new
    assert model_trigger(0.9, 0.65, step=0.2) == "risk_rising"
    assert model_trigger(0.45, 0.2, step=0.2) == "risk_rising"
    assert model_trigger(0.45, 0.3, step=0.2) is None


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=T0, max_value=T0 + 400 * DAY_MS),
    st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", None]),
    st.tuples(st.integers(0, 23), st.integers(0, 23)).filter(lambda h: h[0] != h[1]),
)
def test_quiet_until_is_the_first_moment_out_of_the_quiet_hours(
    ts: int, tz: str | None, hours: tuple[int, int]
) -> None:
    where = zone(tz) if tz else UTC
    start, end = hours
    local_hour = datetime.fromtimestamp(ts / 1000, tz=where).hour
    quiet = (
        (start <= local_hour < end) if start < end else (local_hour >= start or local_hour < end)
    )
    wake = quiet_until(ts, tz, hours)
    assert (wake is not None) == quiet
    if wake is not None:
        local = datetime.fromtimestamp(wake / 1000, tz=where)
        assert ts < wake <= ts + 25 * 3_600_000
        assert (local.hour, local.minute) == (end, 0) or local.hour == end + 1  # a DST gap
    assert quiet_until(ts, tz, None) is None


def test_quiet_hours_parse() -> None:
    assert parse_quiet_hours("22-07") == (22, 7)
    assert parse_quiet_hours("off") is None
    for bad in ("22", "22-22", "a-b", "-1-5"):
        with pytest.raises(ValueError, match="quiet_hours"):
            parse_quiet_hours(bad)


def test_outbound_policy_cool_down_contact_gap_and_caps() -> None:
    policy = OutboundPolicy(ProactiveConfig(cooldown_days=7, caps={"sms": 1}))
    assert policy.block("c1", T0) is None
    policy.contacted("c1", T0)
    assert policy.block("c1", T0 + 3_600_000) == "recent contact"
    assert policy.block("c1", T0 + DAY_MS) is None
    policy.acted("c1", "sms", T0 + DAY_MS)
    assert policy.block("c1", T0 + 7 * DAY_MS) == "cool-down"
    assert policy.block("c1", T0 + 8 * DAY_MS) is None
    assert policy.channel("c1", ("sms", "email"), T0 + 2 * DAY_MS) == "email"  # sms capped
    assert policy.channel("c1", ("sms",), T0 + 2 * DAY_MS) is None
    assert policy.channel("c1", ("sms",), T0 + 9 * DAY_MS) == "sms"  # a week later
    policy.forget("c1")
    assert policy.customers() == set()


def test_the_hold_out_is_a_fixed_share_of_customers() -> None:
    ids = [f"c{i}" for i in range(20_000)]
    share = sum(in_holdout(c, 0.1) for c in ids) / len(ids)
    assert 0.09 < share < 0.11
    assert [in_holdout(c, 0.1) for c in ids[:50]] == [in_holdout(c, 0.1) for c in ids[:50]]
    assert not any(in_holdout(c, 0.0) for c in ids)


def test_the_uplift_interval_covers_the_true_uplift_about_95_times_in_100() -> None:
    rng = random.Random(3)
    covered = 0
    runs = 400
    for _ in range(runs):
        p_control, p_treated = rng.uniform(0.1, 0.5), rng.uniform(0.05, 0.4)
        nt, nc = rng.randint(200, 900), rng.randint(30, 120)
        cell = {
            "n_treated": nt,
            "churned_treated": sum(rng.random() < p_treated for _ in range(nt)),
            "n_control": nc,
            "churned_control": sum(rng.random() < p_control for _ in range(nc)),
        }
        low, high = uplift_of(cell)["ci"]
        covered += low <= p_control - p_treated <= high
    assert 0.92 <= covered / runs <= 0.98


def test_uplift_counts_labels_of_the_decisions_taken_and_merges_over_shards() -> None:
    u = Uplift()
    u.opened("c1", T0, "fix", "failed_twice", False)
    u.opened("c2", T0, "fix", "failed_twice", True)
    assert not u.labelled("c3", T0, 1)  # no decision taken for it
    assert u.labelled("c1", T0, 0)
    assert u.labelled("c2", T0, 1)
    assert not u.labelled("c2", T0, 1)  # once
    counts = u.counts()
    assert counts["by_action"]["fix"] == {
        "n_treated": 1,
        "churned_treated": 0,
        "n_control": 1,
        "churned_control": 1,
    }
    report = uplift_report(merge_counts([counts, counts]))
    assert report["overall"]["n_treated"] == 2
    assert report["by_trigger"]["failed_twice"]["uplift"] == 1.0


def test_the_uplift_draw_follows_the_prior_then_the_measurements() -> None:
    u = Uplift(seed=1)
    assert u.posterior("fix", "t", prior=0.1, prior_sd=0.1) == (0.1, 0.1)
    for i in range(2000):  # treated churn 10%, hold-out 40%: uplift 0.3
        u.opened(f"t{i}", T0, "fix", "t", False)
        u.labelled(f"t{i}", T0, int(i % 10 == 0))
    for i in range(500):
        u.opened(f"h{i}", T0, "fix", "t", True)
        u.labelled(f"h{i}", T0, int(i % 10 < 4))
    mean, sd = u.posterior("fix", "t", prior=0.0, prior_sd=0.1)
    assert 0.27 < mean < 0.31
    assert sd < 0.03


def test_a_test_reads_what_it_names() -> None:
    t = Check.parse("event.rating <= 2")
    assert t.on_event
    empty: dict[str, float] = {}
    nothing = empty.__getitem__
    assert t.holds({"rating": 2}, nothing)
    assert not t.holds({"rating": 3}, nothing)
    assert not t.holds({"rating": True}, nothing)  # not a number
    assert Check.parse("complaints_open >= 1").holds({}, {"complaints_open": 1.0}.__getitem__)
