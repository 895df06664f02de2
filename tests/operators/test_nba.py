from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.errors import ConfigError
from operators.journey import FEATURE_NAMES
from operators.nba import (
    _WHY,
    DAY_MS,
    AcceptanceModel,
    Arbiter,
    Condition,
    History,
    beta_draw,
    in_control_group,
    is_offer,
    parse_catalog,
    plain_reason,
    policy_block,
    segment,
)
from state.catalog import load_catalog

CATALOG = load_catalog(None)
NO_CONTROL = parse_catalog(
    Path("state/catalog.toml").read_text().replace("control_group = 0.05", "control_group = 0.0")
)


def x(**values: float) -> dict[str, float]:
    base = dict.fromkeys(FEATURE_NAMES, 0.0)
    base.update(values)
    return base


def test_default_catalog_loads_and_validates() -> None:
    assert {a.action_id for a in CATALOG.actions} >= {"resolve_complaint", "retention_offer"}
    assert CATALOG.policy.control_group == 0.05


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[action]]\nid = 'a'", "title missing"),
        ("not toml [", "not valid toml"),
        (
            "[[action]]\nid='a'\ntitle='t'\nscript='s'\ngoal='win'\nvalue=1",
            "goal 'win'",
        ),
        (
            "[[action]]\nid='a'\ntitle='t'\nscript='s'\ngoal='serve'\nvalue=1\nwhen=['x ~ 1']",
            "unknown operator",
        ),
        (
            "[[action]]\nid='a'\ntitle='t'\nscript='s'\ngoal='serve'\nvalue=1\n"
            "when=['purchases > 1']",
            "fallback",
        ),
        (
            "[[action]]\nid='a'\ntitle='t'\nscript='s'\ngoal='serve'\nvalue=1\n"
            "when=['payment_failures_3d >= 1']",
            "no feature 'payment_failures_3d'",
        ),
        (
            "[[action]]\nid='a'\ntitle='t'\nscript='s'\ngoal='serve'\nvalue=1\n"
            "[[trigger]]\nname='r'\nevent='complaint'\nwhen=['valu >= 250']",
            "trigger 'r': condition 'valu >= 250': no feature 'valu'",
        ),
        ("[policy]\ncontrol_group = 2\n", "control_group"),
        (
            "[[action]]\nid='a'\ntitle='t'\nscript='s'\ngoal='serve'\nvalue=1\ncolour='red'",
            r"unknown fields \['colour'\]",
        ),
    ],
)
def test_bad_catalogs_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_catalog(text, "test.toml")


def test_missing_catalog_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_catalog(tmp_path / "nope.toml")


def test_the_conditions_checked_are_those_of_the_current_catalog() -> None:
    """The arbiter prepares each action's conditions once per catalog: a catalog set on
    it later (a restart with a changed catalog), or an arbiter pickled before it kept
    them, checks the catalog it has."""
    import pickle

    arbiter = Arbiter(NO_CONTROL, seed=1)
    calm = x(payment_failures_30d=1.0)
    assert "payment_help" not in arbiter.candidates("c1", calm, 0.2, "voice", now_ms=0)[1]
    stricter = parse_catalog(
        Path("state/catalog.toml")
        .read_text()
        .replace("control_group = 0.05", "control_group = 0.0")
        .replace('"payment_failures_30d >= 1"', '"payment_failures_30d >= 2"')
    )
    assert stricter.get("payment_help") != NO_CONTROL.get("payment_help")
    arbiter.catalog = stricter
    excluded = arbiter.candidates("c1", calm, 0.2, "voice", now_ms=0)[1]
    assert excluded["payment_help"] == "needs payment_failures_30d >= 2"
    resumed = pickle.loads(pickle.dumps(arbiter))  # (the prepared conditions are not kept)
    assert "_derived" not in resumed.__dict__
    resumed.__dict__.update(_keep=1, _keep_of=NO_CONTROL)  # as an arbiter of 0.9.2 kept
    assert not {"_keep", "_keep_of"} & set(pickle.loads(pickle.dumps(resumed)).__dict__)
    assert resumed.candidates("c1", calm, 0.2, "voice", now_ms=0)[1] == excluded


def test_conditions_and_sales_rules_exclude_with_reasons() -> None:
    arbiter = Arbiter(NO_CONTROL, seed=1)
    d = arbiter.select_one("c1", x(complaints_open=1.0), 0.7, "voice", now_ms=0)
    assert d.action is not None
    assert d.excluded["retention_offer"] == "sales action while a complaint is open"
    assert d.excluded["payment_help"] == "needs payment_failures_30d >= 1"
    assert d.action.action_id in (
        "resolve_complaint",
        "service_recovery_credit",
        "thank_and_listen",
    )
    assert "P(accept)" in d.why
    assert "segment high/complaint/paid" in d.why
    # for the agent: one sentence in words, and the alternatives' titles beside their ids
    assert d.reason[0].isupper()
    assert d.reason.endswith(".")
    assert "P(accept)" not in d.reason
    assert "_" not in d.reason
    titles = [getattr(NO_CONTROL.get(a), "title", None) for a, _ in d.alternatives]
    assert list(d.alternative_titles) == titles


def test_plain_reason_says_the_conditions_met_in_words() -> None:
    by_id = {a.action_id: a for a in NO_CONTROL.actions}
    credit = plain_reason(by_id["service_recovery_credit"], 2)
    assert credit.startswith("The customer has complained before and the churn risk is at least")
    assert "of the 2 actions that fit" in credit
    assert plain_reason(by_id["thank_and_listen"], 1) == (
        "It is the only action that fits this contact."
    )


def test_channels_restrict_actions() -> None:
    d = Arbiter(NO_CONTROL, seed=1).select_one("c1", x(), 0.9, "email", now_ms=0)
    assert d.excluded["retention_offer"] == "not offered on email"


def test_control_group_is_fixed_by_customer_and_about_the_configured_share() -> None:
    ids = [f"cust-{i}" for i in range(20000)]
    share = sum(in_control_group(i, 0.05) for i in ids) / len(ids)
    assert 0.04 < share < 0.06
    member = next(i for i in ids if in_control_group(i, 0.05))
    d = Arbiter(CATALOG).select_one(member, x(), 0.9, "voice", now_ms=0)
    assert (d.action, d.control) == (None, True)


def test_learning_moves_the_choice_to_what_customers_accept() -> None:
    arbiter = Arbiter(NO_CONTROL, seed=3)
    rng = random.Random(3)
    truth = {"retention_offer": 0.6, "service_recovery_credit": 0.05, "thank_and_listen": 0.05}
    features = x(complaints_total=1.0)
    chosen = []
    for i in range(3000):
        d = arbiter.select_one(f"c{i}", features, 0.8, "voice", now_ms=i)
        assert d.action is not None
        arbiter.offered(f"c{i}", f"al{i}", d, i)
        accepted = rng.random() < truth.get(d.action.action_id, 0.0)
        arbiter.outcome_one(f"al{i}", d.action.action_id, "accepted" if accepted else "declined", i)
        chosen.append(d.action.action_id)
    assert chosen[-500:].count("retention_offer") > 400
    assert arbiter.stats()["nba_outcomes"] == 3000


def test_unanswered_recommendations_time_out_as_ignored() -> None:
    arbiter = Arbiter(NO_CONTROL, seed=1)
    d = arbiter.select_one("c1", x(), 0.2, "voice", now_ms=0)
    arbiter.offered("c1", "al1", d, 0)
    assert arbiter.expire(23 * 3_600_000) == 0
    assert arbiter.expire(25 * 3_600_000) == 1
    assert arbiter.stats()["nba_ignored"] == 1
    assert d.action is not None
    assert arbiter.outcome_one("al1", d.action.action_id, "accepted", 26 * 3_600_000) is False


def test_outcome_for_another_action_or_unknown_alert_is_not_learned() -> None:
    arbiter = Arbiter(NO_CONTROL, seed=1)
    d = arbiter.select_one("c1", x(), 0.2, "voice", now_ms=0)
    arbiter.offered("c1", "al1", d, 0)
    assert arbiter.outcome_one("al1", "made_up_action", "accepted", 1) is False
    assert arbiter.outcome_one("nope", "x", "accepted", 1) is False
    assert d.action is not None
    assert arbiter.outcome_one("al1", d.action.action_id, "accepted", 1) is True


def test_bad_condition_text() -> None:
    with pytest.raises(ValueError, match="feature op number"):
        Condition.parse("complaints_open>=1")


def test_segments() -> None:
    assert (
        segment(x(complaints_open=2.0, payment_failures_30d=1.0), 0.7) == "high/complaint/payfail"
    )
    assert segment(x(), 0.1) == "low/calm/paid"


# -- contact policy properties ---------------------------------------------------------------------

contacts = st.lists(
    st.tuples(
        st.integers(0, 120 * DAY_MS),  # when
        st.sampled_from(["accepted", "declined", "not_relevant", None]),  # the answer, if any
        st.sampled_from(["voice", "chat"]),
        st.floats(0, 1),
    ),
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(contacts, st.integers(0, 2**16))
def test_no_customer_ever_gets_more_offers_than_the_cap_in_any_window(
    moments: list[tuple[int, str | None, str, float]], seed: int
) -> None:
    arbiter = Arbiter(NO_CONTROL, seed=seed)
    policy = NO_CONTROL.policy
    window = int(policy.window_days * DAY_MS)
    offers: list[int] = []
    declined: dict[str, int] = {}
    for i, (t, answer, channel, p) in enumerate(sorted(moments, key=lambda m: m[0])):
        d = arbiter.select_one("c", x(complaints_total=1.0), p, channel, now_ms=t)
        if d.action is None:
            continue
        arbiter.offered("c", f"al{i}", d, t)
        if is_offer(d.action):
            offers.append(t)
        in_window = [o for o in offers if t - o < window]
        assert len(in_window) <= policy.max_offers
        last_decline = declined.get(d.action.action_id)
        suppress = int(policy.suppress_days * DAY_MS)
        assert last_decline is None or t - last_decline >= suppress
        if answer is not None:
            arbiter.outcome_one(f"al{i}", d.action.action_id, answer, t)
            if answer == "declined":
                declined[d.action.action_id] = t


@given(
    st.lists(st.tuples(st.integers(0, 60 * DAY_MS), st.sampled_from(["a", "b"])), max_size=20),
    st.integers(0, 90 * DAY_MS),
)
def test_policy_block_is_pure_and_counts_only_the_window(
    offers: list[tuple[int, str]], now: int
) -> None:
    history = History(tuple(sorted(offers)))
    action = NO_CONTROL.get("retention_offer")
    assert action is not None
    assert is_offer(action)
    before = history
    reason = policy_block(action, history, x(), "voice", now, NO_CONTROL.policy)
    assert history == before
    in_window = [t for t, _ in offers if 0 <= now - t < NO_CONTROL.policy.window_days * DAY_MS]
    if len(in_window) >= NO_CONTROL.policy.max_offers:
        assert reason is not None
    service = NO_CONTROL.get("thank_and_listen")
    assert service is not None
    assert policy_block(service, history, x(), "voice", now, NO_CONTROL.policy) is None


def test_policy_learns_near_the_oracle_on_the_simulator() -> None:
    """A smaller run of benchmarks/nba_policy.py (the benchmark records the full one)."""
    from benchmarks.nba_policy import run

    figures = run(decisions=5000, customers=2000, seed=13)
    assert float(figures["oracle_ratio"]) > 0.85  # type: ignore[arg-type]
    assert float(figures["random_ratio"]) < 0.7  # type: ignore[arg-type]


NUMBERS = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False) | st.integers(-1000, 1000)


@given(NUMBERS, NUMBERS, NUMBERS, NUMBERS, NUMBERS, NUMBERS, st.text(max_size=8))
def test_the_engineers_line_reads_as_its_f_string(
    p: float, value: float, lever: float, relevance: float, cost: float, score: float, goal: str
) -> None:
    """``why`` is made with one %-format: it reads number by number as the f-string did."""
    expected = (
        f"P(accept) {p:.2f} x value {value:g} x lever {lever:g} x {goal} "
        f"relevance {relevance:.2f} - cost {cost:g} = {score:.1f}; eligible: a >= 1; "
        "segment low/calm/paid"
    )
    made = _WHY % (p, value, lever, goal, relevance, cost, score, "a >= 1", "low/calm/paid")
    assert made == expected


_SHAPES = st.one_of(
    st.integers(1, 2_000).map(float),  # River's posterior: 1 + answers of each kind
    st.floats(1e-3, 1e3, allow_nan=False),  # and any other shape the draw accepts
    st.sampled_from([1.0, 0.5, 1.0 + 1e-12, 1.0 - 1e-12]),
)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32), st.lists(st.tuples(_SHAPES, _SHAPES), min_size=1, max_size=12))
def test_the_compiled_beta_draw_is_the_standard_librarys(
    seed: int, shapes: list[tuple[float, float]]
) -> None:
    """The same draws, bit for bit, and the stream left where the library leaves it."""
    ours, theirs = random.Random(seed), random.Random(seed)
    assert [beta_draw(ours, a, b) for a, b in shapes] == [
        theirs.betavariate(a, b) for a, b in shapes
    ]
    assert ours.getstate() == theirs.getstate()


def test_a_bad_beta_shape_is_refused_as_the_library_does() -> None:
    with pytest.raises(ValueError, match="must be > 0"):
        beta_draw(random.Random(1), 0.0, 1.0)


def test_thompson_draws_are_rivers_draws() -> None:
    """An acceptance model draws what River's ``Beta.sample`` would from the same cells."""
    model, twin = AcceptanceModel(seed=5), AcceptanceModel(seed=5)
    answers = random.Random(2)
    for i in range(300):
        action, seg = f"a{i % 4}", f"s{i % 3}"
        accepted = answers.random() < 0.3
        model.learn_one(action, seg, accepted)
        twin.learn_one(action, seg, accepted)
    for i in range(200):
        action, seg = f"a{i % 5}", f"s{i % 4}"  # new cells too
        assert model.sample(action, seg) == float(twin._cell(action, seg).sample())


def test_a_cell_without_rivers_stream_draws_by_its_own_sample() -> None:
    class Cell:  # (a River whose Beta keeps its random stream under another name)
        alpha, beta = 3, 4

        def sample(self) -> float:
            return 0.25

    model = AcceptanceModel()
    model.cells[("a", "s")] = Cell()
    assert model.sample("a", "s") == 0.25


@settings(max_examples=300)
@given(st.text(max_size=60), st.floats(0.0, 1.0), st.integers(0, 2**64 - 1))
def test_the_control_group_draw_is_the_digest_over_2_to_the_64(
    customer_id: str, share: float, n: int
) -> None:
    digest = hashlib.blake2b(customer_id.encode(), digest_size=8, person=b"cx-control").digest()
    assert in_control_group(customer_id, share) == (int.from_bytes(digest, "big") / 2**64 < share)
    assert float(n) * 2.0**-64 == n / 2**64  # the float of any digest, as the division's
