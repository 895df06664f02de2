from __future__ import annotations

import pickle
import random

from operators.churn import ChurnModel


def synthetic(n: int, seed: int = 3) -> list[tuple[dict[str, float], int]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        complaints = float(rng.randint(0, 3))
        noise = rng.gauss(0, 1)
        p = 0.1 + 0.25 * complaints
        rows.append(({"complaints": complaints, "noise": noise}, int(rng.random() < p)))
    return rows


def test_learns_a_real_signal_and_reports_prequential_auc() -> None:
    m = ChurnModel()
    for x, y in synthetic(3000):
        m.learn_one(x, y)
    assert m.predict_proba_one({"complaints": 3.0, "noise": 0.0}) > m.predict_proba_one(
        {"complaints": 0.0, "noise": 0.0}
    )
    metrics = m.metrics()
    assert metrics["n_learned"] == 3000
    assert 0.65 < metrics["roc_auc"] <= 1.0
    assert 0.0 < metrics["positive_rate"] < 1.0


def test_contributions_point_at_the_feature_that_matters() -> None:
    m = ChurnModel()
    for x, y in synthetic(3000):
        m.learn_one(x, y)
    c = m.contributions({"complaints": 3.0, "noise": 0.0})
    assert c["complaints"] > 0
    assert abs(c["complaints"]) > abs(c["noise"])


def test_input_not_mutated_and_pickle_round_trip() -> None:
    m = ChurnModel()
    x = {"a": 1.0, "b": 2.0}
    for i in range(20):
        m.learn_one(dict(x), i % 2)
    before = dict(x)
    m.predict_proba_one(x)
    m.contributions(x)
    m.learn_one(x, 1)
    assert x == before
    clone = pickle.loads(pickle.dumps(m))
    assert clone.predict_proba_one(x) == m.predict_proba_one(x)
    assert clone.version == m.version == "logreg-1@21"


def test_cold_model_is_undecided() -> None:
    assert ChurnModel().predict_proba_one({"a": 5.0}) == 0.5
