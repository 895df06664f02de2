from operators.reasons import phrase, top_reasons


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
