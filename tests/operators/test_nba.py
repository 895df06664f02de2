from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from operators.journey import FEATURE_NAMES
from operators.nba import CATALOG, Action, Condition, select_one


def test_open_complaint_comes_first() -> None:
    d = select_one({"complaints_open": 1.0}, 0.2)
    assert d.action.action_id == "resolve_complaint"
    assert "upsell_upgrade" in d.excluded


def test_high_risk_without_problems_gets_the_retention_offer() -> None:
    d = select_one({"complaints_open": 0.0, "complaints_total": 0.0}, 0.9)
    assert d.action.action_id == "retention_offer"
    assert "value 80 x retain relevance 0.90 - cost 15" in d.why


def test_low_risk_happy_customer_gets_growth() -> None:
    d = select_one({"complaints_open": 0.0}, 0.1)
    assert d.action.action_id == "upsell_upgrade"
    assert d.excluded["retention_offer"] == "needs churn_probability >= 0.5"


def test_a_catalog_without_fallback_is_an_error() -> None:
    only = (Action("x", "X", "s", goal="serve", value=1, when=(Condition("a", ">", 1),)),)
    with pytest.raises(ValueError, match="fallback"):
        select_one({}, 0.5, only)


def test_bad_operator_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown operator"):
        Condition("a", "~", 1)


@given(
    st.fixed_dictionaries({name: st.floats(0, 20) for name in FEATURE_NAMES}),
    st.floats(0, 1),
)
def test_every_decision_is_eligible_and_the_best(x: dict[str, float], p: float) -> None:
    before = dict(x)
    d = select_one(x, p)
    assert x == before
    assert all(c.holds({**x, "churn_probability": p}) for c in d.action.when)
    assert all(d.score >= s for _, s in d.alternatives)
    assert set(d.excluded) | {d.action.action_id} | {a for a, _ in d.alternatives} <= {
        a.action_id for a in CATALOG
    }
