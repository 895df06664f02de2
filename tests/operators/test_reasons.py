from collections.abc import Mapping

from hypothesis import given
from hypothesis import strategies as st

from operators.reasons import _HOLDING, _KNOWN_FLAG, _PHRASES, explain, phrase, top_reasons


def test_phrases_read_like_an_agent_would_say_them() -> None:
    assert phrase("contacts_7d", 2.0) == "2nd contact in 7 days"
    assert phrase("contacts_7d", 11.0) == "11th contact in 7 days"
    assert phrase("contacts_7d", 1.0) is None
    assert phrase("complaints_open", 2.0) == "2 open complaints"
    assert phrase("payment_failures_30d", 1.0) == "payment failed once in 30 days"
    assert phrase("nps", 8.0) is None
    assert phrase("unknown_feature", 1.0) is None
    assert phrase("sentiment_trend", -0.4) == "sentiment falling"
    assert phrase("sentiment_trend", 0.1) is None


def test_with_a_trained_model_only_risk_raising_features_are_reasons() -> None:
    x = {"complaints_open": 2.0, "contacts_7d": 3.0, "sentiment": -0.5, "sentiment_known": 1.0}
    contributions = {"complaints_open": 0.2, "contacts_7d": 0.9, "sentiment": -0.4}
    assert top_reasons(x, contributions) == ["3rd contact in 7 days", "2 open complaints"]


def test_unknown_scores_are_never_reasons() -> None:
    x = {"nps": 0.0, "nps_known": 0.0, "csat": 0.0, "csat_known": 0.0}
    assert top_reasons(x, None) == []


def test_at_most_three_reasons() -> None:
    x = {
        "complaints_open": 1.0,
        "payment_failures_30d": 2.0,
        "contacts_7d": 3.0,
        "sentiment": -0.9,
        "sentiment_known": 1.0,
    }
    assert len(top_reasons(x, None)) == 3


def explained(
    features: Mapping[str, float], contributions: Mapping[str, float]
) -> tuple[list[str], list[str]]:
    """What explain says, the plain way: every feature's words, sorted, the first three."""
    up: list[tuple[float, str]] = []
    down: list[tuple[float, str]] = []
    for name, value in features.items():
        weight = contributions.get(name, 0.0)
        flag = _KNOWN_FLAG.get(name)
        if weight == 0.0 or (flag is not None and features.get(flag) == 0.0):
            continue
        describe = (_PHRASES if weight > 0.0 else _HOLDING).get(name)
        text = describe(value) if describe is not None else None
        if text is not None:
            (up if weight > 0.0 else down).append((abs(weight), text))
    up.sort(key=lambda c: c[0], reverse=True)
    down.sort(key=lambda c: c[0], reverse=True)
    return [t for _, t in up[:3]], [t for _, t in down[:3]]


NAMES = sorted({*_PHRASES, *_HOLDING, *_KNOWN_FLAG.values(), "unknown_feature"})
VALUES = st.sampled_from([0.0, 1.0, 2.0, 5.0, 30.0, 120.0, -0.5, 0.5, 0.25, 9.0, 4.0])
WEIGHTS = st.sampled_from([0.0, 0.1, -0.1, 0.3, -0.3, 0.7, -1.2, 2.0])  # ties on purpose


@given(
    st.dictionaries(st.sampled_from(NAMES), VALUES),
    st.dictionaries(st.sampled_from(NAMES), WEIGHTS),
)
def test_explain_says_the_strongest_three_each_way_in_order(
    features: dict[str, float], contributions: dict[str, float]
) -> None:
    assert explain(features, contributions) == explained(features, contributions)
