from __future__ import annotations

import math
import pickle
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import compose, linear_model, optim, preprocessing

from operators.churn import ChurnModel, ScaledLogReg


def synthetic(n: int, seed: int = 3) -> list[tuple[dict[str, float], int]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        complaints = float(rng.randint(0, 3))
        noise = rng.gauss(0, 1)
        p = 0.1 + 0.25 * complaints
        rows.append(({"complaints": complaints, "noise": noise}, int(rng.random() < p)))
    return rows


def _logreg(learning_rate: float, l2: float) -> Any:
    """River's scaled logistic regression: what ScaledLogReg computes."""
    return compose.Pipeline(
        preprocessing.StandardScaler(),
        linear_model.LogisticRegression(optimizer=optim.SGD(learning_rate), l2=l2),
    )


def _arf(promote_margin: float) -> ChurnModel:
    """A model with the forest challenger, checked for promotion often."""
    return ChurnModel(
        challenger="arf",
        promote_min=500,
        check_every=250,
        promote_margin=promote_margin,
        challenger_every=4,
    )


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
    assert clone.version == m.version == "refit-1@21"


def test_cold_model_is_undecided() -> None:
    assert ChurnModel().predict_proba_one({"a": 5.0}) == 0.5


def test_challenger_is_promoted_when_it_is_clearly_better() -> None:
    """XOR: no linear model can learn it, the forest can."""
    rng = random.Random(5)
    m = _arf(promote_margin=0.05)
    for _ in range(8000):
        a, b = rng.randint(0, 1), rng.randint(0, 1)
        m.learn_one({"a": float(a), "b": float(b), "noise": rng.random()}, a ^ b)
    metrics = m.metrics()
    assert metrics["promotions"] >= 1
    assert metrics["champion"] == "arf"
    assert m.version.startswith(f"arf-{m.generation}@")
    assert metrics["roc_auc"] > metrics["challenger_roc_auc"] + 0.05
    assert set(m.contributions({"a": 1.0, "b": 0.0, "noise": 0.5})) >= {"a", "b"}


def test_no_promotion_without_a_margin() -> None:
    m = _arf(promote_margin=0.5)
    for x, y in synthetic(2000):
        m.learn_one(x, y)
    assert (m.metrics()["promotions"], m.generation) == (0, 1)


def test_drift_is_detected_and_reported() -> None:
    m = ChurnModel(challenger=None)
    rng = random.Random(9)
    for i in range(8000):
        a = float(rng.randint(0, 1))
        y = int(a) if i < 4000 else 1 - int(a)  # the relationship flips half way
        m.learn_one({"a": a}, y)
    assert m.metrics()["drifts"] >= 1


def test_replay_buffer_is_bounded_and_releases_everything_once() -> None:
    from operators.churn import ReplayBuffer

    buf = ReplayBuffer(size=100, seed=1)
    released = []
    for i in range(1000):
        released += buf.add({"i": float(i)}, 0)
        assert len(buf.items) <= 100
    assert len(released) + len(buf.items) == 1000
    assert len({x["i"] for x, _ in released}) == len(released)
    assert [x["i"] for x, _ in released] != sorted(x["i"] for x, _ in released)  # shuffled


def test_the_challenger_learns_from_one_example_in_n_and_is_scored_on_one_in_n() -> None:
    from operators.churn import ChurnModel

    learned: list[int] = []
    scored: list[dict[str, float]] = []

    class Counting:
        family = "counting"

        def predict_proba_one(self, x: dict[str, float]) -> float:
            scored.append(x)
            return 0.5

        def learn_one(self, x: dict[str, float], y: int) -> None:
            learned.append(y)

    m = ChurnModel(challenger=None, challenger_every=4, replay_size=0)
    m.challenger = Counting()
    examples = [({"complaints_open": float(i % 3), "i": float(i)}, i % 2) for i in range(40)]
    for x, y in examples:
        m.learn_one(x, y)
    assert len(learned) == 10
    assert [x["i"] for x in scored] == [float(i) for i in range(0, 40, 4)]
    assert len(m.champion_card.labels) == 40  # the champion: every example
    # the champion's paired window holds its scores on the challenger's examples
    assert list(m.paired_card.labels) == list(m.challenger_card.labels) == [0] * 10
    assert len(m.paired_card.scores) == 10


def test_no_promotion_on_a_handful_of_positives_then_one_on_enough() -> None:
    """A challenger that knows the label, against a champion that scores noise:
    promoted only once the paired window holds PROMOTE_MIN_CLASS of each class."""
    from operators.churn import PROMOTE_HOLD, PROMOTE_MIN_CLASS

    class Oracle:
        family = "oracle"

        def predict_proba_one(self, x: dict[str, float]) -> float:
            return 0.9 if x["y"] else 0.1

        def learn_one(self, x: dict[str, float], y: int) -> None:
            pass

    class Noise(Oracle):
        family = "noise"

        def predict_proba_one(self, x: dict[str, float]) -> float:
            return x["noise"]

    rng = random.Random(11)
    m = ChurnModel(challenger=None, challenger_every=2, promote_min=100, check_every=10)
    m.champion, m.challenger = Noise(), Oracle()
    positives = 0
    enough_at = None  # paired examples when the window first held enough positives
    while m.promotions == 0:
        y = int(rng.random() < 0.04)
        m.learn_one({"noise": rng.random(), "y": float(y)}, y)
        if m.n_learned % 2 == 1:  # scored by the challenger (n_learned was even)
            positives += y
            if positives == PROMOTE_MIN_CLASS and enough_at is None:
                enough_at = (m.n_learned + 1) // 2
        # before the window holds enough positives, no AUC gap promotes
        assert m.promotions == 0 or positives >= PROMOTE_MIN_CLASS
        assert m.n_learned < 20_000
    # and the evidence held for PROMOTE_HOLD paired examples after that
    assert enough_at is not None
    assert PROMOTE_HOLD <= (m.n_learned + 1) // 2 - enough_at <= PROMOTE_HOLD + 10
    assert m.champion.family == "oracle"
    assert m.metrics()["roc_auc"] == 1.0


@pytest.mark.parametrize("evidence", ["margin-only", "delong"])
def test_no_promotion_of_an_equal_challenger(
    evidence: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two scorers of the same quality: their windowed AUCs differ by more than the
    margin at times, which promoted on the margin alone; the evidence rule holds."""
    import operators.churn

    if evidence == "margin-only":
        monkeypatch.setattr(operators.churn, "PROMOTE_Z", -math.inf)
        monkeypatch.setattr(operators.churn, "PROMOTE_MIN_CLASS", 0)
        monkeypatch.setattr(operators.churn, "PROMOTE_HOLD", 0)

    class Twin:
        family = "twin"

        def __init__(self, seed: int) -> None:
            self.rng = random.Random(seed)

        def predict_proba_one(self, x: dict[str, float]) -> float:
            return x["y"] + self.rng.gauss(0, 1.5)

        def learn_one(self, x: dict[str, float], y: int) -> None:
            pass

    promotions = []
    for seed in range(3):
        rng = random.Random(seed)
        m = ChurnModel(challenger=None, challenger_every=1, promote_min=200, check_every=50)
        m.champion, m.challenger = Twin(2 * seed + 1), Twin(2 * seed + 2)
        for _ in range(20_000):
            y = int(rng.random() < 0.05)
            m.learn_one({"y": float(y)}, y)
        promotions.append(m.promotions)
    if evidence == "margin-only":
        assert min(promotions) >= 2
    else:
        assert promotions == [0, 0, 0]


def _river_and_fused(
    rows: list[tuple[dict[str, float], int]], *, learning_rate: float, l2: float
) -> tuple[Any, ScaledLogReg]:

    river = _logreg(learning_rate, l2)
    fused = ScaledLogReg(learning_rate=learning_rate, l2=l2)
    for x, y in rows:
        river.learn_one(x, bool(y))
        fused.learn_one(x, y)
    return river, fused


def _sparse_rows(n: int, seed: int) -> list[tuple[dict[str, float], int]]:
    """Rows as the journey gives them: some features come and go, one never varies,
    some values are large (the sigmoid's clamp and the gradient's tails)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        x = {"a": rng.gauss(0, 1), "const": 1.0, "big": rng.choice([0.0, 40.0, 90.0])}
        if rng.random() < 0.3:
            x[f"last:{rng.choice('xyz')}"] = 1.0
        if rng.random() < 0.1:
            x["rare"] = rng.expovariate(0.1)
        rows.append((x, int(x["a"] + rng.gauss(0, 1) > 0.5)))
    return rows


@pytest.mark.parametrize(("learning_rate", "l2"), [(0.005, 0.0), (0.5, 0.0), (0.05, 0.01)])
def test_the_fused_logistic_regression_is_rivers_pipeline(learning_rate: float, l2: float) -> None:
    rows = _sparse_rows(3000, seed=11)
    river, fused = _river_and_fused(rows, learning_rate=learning_rate, l2=l2)
    probes = [x for x, _ in _sparse_rows(200, seed=12)] + [{"unseen": 3.0}, {}]
    for x in probes:
        assert fused.predict_proba_one(x) == pytest.approx(
            river.predict_proba_one(x)[True], abs=1e-9
        )
    weights = river["LogisticRegression"].weights
    assert fused.intercept == pytest.approx(river["LogisticRegression"].intercept, abs=1e-9)
    for name, s in fused.stats.items():
        assert s[4] == pytest.approx(weights.get(name, 0.0), abs=1e-9), name
        assert s[1] == pytest.approx(river["StandardScaler"].means[name], abs=1e-9)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.dictionaries(
                st.sampled_from(["a", "b", "c"]),
                st.floats(min_value=-1e3, max_value=1e3, allow_nan=False),
            ),
            st.integers(0, 1),
        ),
        max_size=40,
    )
)
def test_the_fused_logistic_regression_tracks_river_on_any_input(
    rows: list[tuple[dict[str, float], int]],
) -> None:
    river, fused = _river_and_fused(rows, learning_rate=0.05, l2=0.0)
    for x in ({"a": 1.0, "b": -2.0, "c": 0.5}, {"a": 300.0}):
        assert fused.predict_proba_one(x) == pytest.approx(
            river.predict_proba_one(x)[True], abs=1e-6
        )


def test_the_forest_sees_only_its_fixed_features_when_given() -> None:
    from operators.churn import ForestChallenger

    seen: list[dict[str, float]] = []
    forest = ForestChallenger(features=["complaints"])
    real_learn = forest.model.learn_one

    def recording(x: dict[str, float], y: bool, **kw: Any) -> None:
        seen.append(x)
        real_learn(x, y, **kw)

    forest.model.learn_one = recording  # type: ignore[method-assign,assignment]
    for x, y in synthetic(20):
        forest.learn_one(x, y)
    assert seen
    assert all(set(x) == {"complaints"} for x in seen)
    everything = ForestChallenger()
    assert everything._x({"a": 1.0, "b": 2.0}) == {"a": 1.0, "b": 2.0}


def test_the_champions_evidence_is_its_score_at_the_snapshot() -> None:
    """A matured example's evidence is the score the champion gave at its scored moment
    (kept by observe_snapshot), not its score now, after refits that may have fitted
    this snapshot's outcome; without a kept score it is scored now."""
    m = ChurnModel(challenger=None)
    x = {"complaints_open": 2.0}
    m.observe_snapshot("c1", 1_000, x, 0.93)
    m.observe_snapshot("c2", 1_000, x)  # (no score given: none kept)
    assert m.kept_scores == {("c1", 1_000): 0.93}
    m.learn_one(x, 1, key="c1", snapshot_ts=1_000, label_ts=2_000)
    assert m.champion_card.scores[-1] == 0.93
    assert m.kept_scores == {}  # (used once)
    now = m.predict_proba_one(x)
    m.learn_one(x, 0, key="c2", snapshot_ts=1_000, label_ts=2_000)
    assert m.champion_card.scores[-1] == pytest.approx(now)
    assert now != 0.93


def test_the_paired_evidence_scores_both_models_alike() -> None:
    """A promotion is judged like for like: on the paired examples the champion is
    scored at maturity, as the challenger is, whatever it kept."""
    m = ChurnModel(challenger="arf", challenger_every=1)
    x = {"complaints_open": 2.0}
    m.observe_snapshot("c1", 1_000, x, 0.93)
    at_maturity = m.predict_proba_one(x)
    m.learn_one(x, 1, key="c1", snapshot_ts=1_000, label_ts=2_000)
    assert m.champion_card.scores[-1] == 0.93  # its own card: the kept score
    assert m.paired_card.scores[-1] == pytest.approx(at_maturity)
    assert at_maturity != 0.93


def test_kept_scores_are_bounded_erased_and_dropped_at_a_promotion() -> None:
    m = ChurnModel(challenger=None, horizon_ms=10)
    m.kept_max = 3
    for i in range(5):
        m.observe_snapshot(f"c{i}", i, {}, i / 10)
    assert list(m.kept_scores) == [("c2", 2), ("c3", 3), ("c4", 4)]  # the oldest went
    m.observe_snapshot("c4", 4, {}, 0.9)  # two moments at one time: the first is kept
    assert m.kept_scores[("c4", 4)] == 0.4
    m.observe_snapshot("c9", 24, {}, 0.5)  # two horizons (20) on: the older ones go
    assert list(m.kept_scores) == [("c4", 4), ("c9", 24)]
    m.kept_scores.pop(("c4", 4))
    m.observe_snapshot("c3", 24, {}, 0.5)
    m.forget("c3")  # erasure: the customer's kept scores too
    assert list(m.kept_scores) == [("c9", 24)]
    promoted = _arf(0.0)
    promoted.observe_snapshot("c1", 1, {}, 0.2)
    for x, y in synthetic(20_000):
        promoted.learn_one(x, y)
        if promoted.promotions:
            break
    assert promoted.promotions == 1
    assert promoted.kept_scores == {}  # the former champion's


def test_a_model_pickled_before_kept_scores_loads_and_learns() -> None:
    m = ChurnModel(challenger=None)
    state = dict(m.__dict__)
    del state["kept_scores"], state["kept_max"], state["kept_for_ms"]  # as 0.9.6 stored it
    old = ChurnModel.__new__(ChurnModel)
    old.__setstate__(state)
    old.observe_snapshot("c1", 1, {}, 0.4)
    old.learn_one({}, 1, key="c1", snapshot_ts=1, label_ts=2)
    assert old.champion_card.scores[-1] == 0.4
    assert pickle.loads(pickle.dumps(old)).kept_scores == {}
