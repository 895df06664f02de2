from __future__ import annotations

import copy
import itertools
import math
import pickle
import random
from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.churn import ChurnModel
from operators.evaluate import Evaluator, Row
from operators.journey import DAY_MS
from operators.refit import (
    FIT_CHUNK,
    SPAN,
    Z_CLIP,
    HazardRefit,
    _finish,
    _HazardLoss,
    _newton,
    forget_keys,
    logistic_loss,
    prior_logit,
)
from operators.simulate import purchase_log

H = 10 * DAY_MS


def _fed(model: HazardRefit, n: int, per_day: int, seed: int = 1) -> HazardRefit:
    """``n`` snapshots, ``per_day`` a day; customers with a == 1 cancel within a day."""
    rng = random.Random(seed)
    for i in range(n):
        ts = i * DAY_MS // per_day
        a = float(rng.random() < 0.5)
        key = f"c{i}"
        model.observe_snapshot(key, ts, {"a": a, "noise": rng.gauss(0.0, 1.0)})
        if a and rng.random() < 0.8:
            model.observe_decision(key, ts, ts + DAY_MS // 2, 1)
    return model


def test_window_is_bounded_and_spans_the_horizon_under_a_high_rate() -> None:
    # 400 snapshots a day: a window of 1,000 would span 2.5 days of a 10-day horizon
    m = _fed(HazardRefit(horizon_ms=H, event_label=1, window=1000, refit_every=200), 12_000, 400)
    assert len(m) <= 1000
    assert m.level > 0
    oldest, newest = m.records[0][1], m.records[-1][1]
    assert newest - oldest >= H  # thinned, not cut to the last 2.5 days
    assert newest - oldest <= SPAN * H
    assert m.stage == "learned"
    assert m.predict_proba_one({"a": 1.0}) > m.predict_proba_one({"a": 0.0}) + 0.3


def test_a_refit_comes_every_eighth_of_a_large_window() -> None:
    # the young window refits once it grows by a quarter, then every refit_every new
    # records; a large one once an eighth of it is new (a refit costs the whole window)
    m = HazardRefit(horizon_ms=H, event_label=1, window=8192, refit_every=256, min_events=30)
    cadences = {}
    for n in (40, 400, 2048, 4096, 8192):
        m.records = deque([[f"c{i}", i, None, {}, None, None, False, 0, 0] for i in range(n)])
        cadences[n] = m.cadence
    assert cadences == {40: 30, 400: 100, 2048: 256, 4096: 512, 8192: 1024}


def test_the_sample_is_the_same_in_every_run() -> None:
    def run() -> list[tuple[str, int]]:
        m = _fed(HazardRefit(horizon_ms=H, event_label=1, window=500, refit_every=100), 6000, 300)
        return [(r[0], r[1]) for r in m.records]

    assert run() == run()


def test_external_labels_keep_the_newest_snapshots_of_known_outcome() -> None:
    # a file's label may arrive long after its snapshot, and out of order (a long case's
    # first snapshots mature with its last): the window holds the newest snapshots
    m = HazardRefit(horizon_ms=H, event_label=None, window=300, refit_every=50, min_events=10)
    rng = random.Random(2)
    arrivals = list(range(1000))
    rng.shuffle(arrivals)
    sizes = []
    for i in arrivals:
        a = float(rng.random() < 0.5)
        m.learn_one(
            {"a": a},
            int(rng.random() < (0.8 if a else 0.2)),
            key=f"c{i}",
            snapshot_ts=i * DAY_MS,
            label_ts=(i + rng.randrange(50)) * DAY_MS,
        )
        sizes.append(len(m))
    assert max(sizes) <= 300 + 300 // 4  # trimmed a quarter at a time
    m.refit()
    assert sorted(r[1] for r in m.records) == [i * DAY_MS for i in range(700, 1000)]
    assert sorted(m.index) == sorted((f"c{i}", i * DAY_MS) for i in range(700, 1000))
    assert m.stage == "learned"
    assert m.predict_proba_one({"a": 1.0}) > 0.6 > 0.4 > m.predict_proba_one({"a": 0.0})


def test_examples_without_a_customer_are_learned() -> None:
    m = HazardRefit(horizon_ms=H, event_label=1, window=2000, refit_every=100)
    rng = random.Random(4)
    for _ in range(3000):
        a = float(rng.random() < 0.5)
        m.learn_one({"a": a}, int(rng.random() < (0.7 if a else 0.2)))
    assert len(m) > 1000
    assert m.predict_proba_one({"a": 1.0}) > m.predict_proba_one({"a": 0.0}) + 0.3


def test_hazard_falls_with_age_when_only_early_ages_are_seen() -> None:
    # two days into a 10-day horizon: the far bins are extrapolated by the age trend
    m = HazardRefit(horizon_ms=H, event_label=1, window=5000, refit_every=100, min_events=10)
    rng = random.Random(5)
    for i in range(2000):
        ts = i * 2 * DAY_MS // 2000
        m.observe_snapshot(f"c{i}", ts, {"a": rng.gauss(0.0, 1.0)})
        if rng.random() < 0.3:
            m.observe_decision(f"c{i}", ts, ts + DAY_MS // 10, 1)
    m.advance(2 * DAY_MS)
    m.refit()
    assert m.beta is not None
    base = m.baseline
    assert all(later <= earlier + 1e-9 for earlier, later in itertools.pairwise(base[1:]))
    assert m.stage in ("blend", "learned")


def test_a_value_far_out_scores_as_the_edge_of_what_the_fit_saw() -> None:
    m = _fed(HazardRefit(horizon_ms=H, event_label=1, window=2000, refit_every=200), 4000, 100)
    lo, hi = m.bounds["noise"]
    assert lo < -1.0
    assert hi > 1.0
    edge = m.predict_proba_one({"a": 1.0, "noise": hi})
    assert m.predict_proba_one({"a": 1.0, "noise": hi * 1000.0}) == edge
    assert 0.02 < edge < 0.98
    assert Z_CLIP > 3


def test_forget_drops_every_record_of_the_customer() -> None:
    m = _fed(HazardRefit(horizon_ms=H, event_label=1, window=2000, refit_every=200), 500, 100)
    keys = {r[0] for r in list(m.records)[:10]}
    assert forget_keys(m, keys) == 10
    assert not any(r[0] in keys for r in m.records)
    assert not any(k in keys for k, _ in m.index)


def test_prior_reads_a_first_purchase_as_riskier_than_a_steady_buyer() -> None:
    # no gap before the first return: not read as "a short gap"
    first = {"n_events_log": 0.69, "gap_ratio_log": 0.0, "rate_log": 0.03}
    steady = {"n_events_log": 2.1, "gap_ratio_log": 0.69, "rate_log": 0.1}
    overdue = {"n_events_log": 2.1, "gap_ratio_log": 2.5, "rate_log": 0.1}
    assert prior_logit(first) > prior_logit(steady)
    assert prior_logit(overdue) > prior_logit(steady)


@pytest.mark.parametrize("rate", [0.03, 0.2, 0.7])
def test_before_any_fit_the_prior_speaks_at_the_labels_own_rate(rate: float) -> None:
    """A churn rate of a few percent must not read 50% while the window waits for its
    first fit: the prior's base rate is the labels' own, from the first ones."""
    model = HazardRefit(horizon_ms=H, event_label=1, min_events=10_000)  # no fit here
    rng = random.Random(7)
    assert model.predict_proba_one({}) == pytest.approx(0.5)  # no label yet
    for i in range(2_000):
        model.learn_one({}, int(rng.random() < rate), key=f"c{i}", snapshot_ts=i)
    assert model.stage == "prior"
    assert model.predict_proba_one({}) == pytest.approx(rate, abs=0.025)
    assert model.stats()["prior_rate"] == pytest.approx(rate, abs=0.025)
    # the journey still ranks customers around that rate
    assert model.predict_proba_one({"complaints_open": 2.0}) > model.predict_proba_one({})


@given(
    st.dictionaries(
        st.sampled_from(
            ["n_events_log", "gap_ratio_log", "rate_log", "complaints_open", "sentiment", "other"]
        ),
        st.floats(-1e6, 1e6),
        max_size=6,
    )
)
@settings(max_examples=200, deadline=None)
def test_prior_is_bounded(x: dict[str, float]) -> None:
    assert -3.0 <= prior_logit(x) <= 3.0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_beats_every_single_feature_on_a_purchase_log_with_a_moving_base_rate(seed: int) -> None:
    # purchases only, seasonal rate, churn = no purchase within 90 days: the one-line
    # rules ("fewer purchases so far = riskier") are the yardstick
    horizon = 90 * DAY_MS
    evaluator = Evaluator(
        ChurnModel(challenger=None, label_mode="inactivity", horizon_ms=horizon),
        labels="engine",
        label_mode="inactivity",
        horizon_ms=horizon,
    )
    for event in purchase_log(customers=2000, seed=seed):
        evaluator.feed(Row(event))
    figures = evaluator.finish()
    assert figures["lift_over_best_single"] > 0.0
    assert figures["roc_auc"] > 0.69
    assert figures["ece"] < 0.06
    assert figures["warmup"]["n_scored"] > 0


def test_newton_steps_do_not_cycle() -> None:
    # sqrt(1 + b^2): a plain Newton step from b = 1 lands on -1 and back (damped to
    # MAX_STEP or not); the line search halves it to the minimum
    def loss(b: np.ndarray) -> float:
        return float(np.sqrt(1.0 + b[0] ** 2))

    def derivatives(b: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        r = np.sqrt(1.0 + b[0] ** 2)
        return float(r), np.array([b[0] / r]), np.array([[1.0 / r**3]])

    assert abs(_newton(np.array([1.0]), loss, derivatives, 10)[0]) < 1e-6


def test_a_warm_refit_reaches_the_fit_of_a_cold_one() -> None:
    # one-hot groups sum to one, like the intercept: a long, flat valley in which a
    # warm-started fit without a line search cycled between two far points (0.36 apart
    # in probability from the cold fit here)
    m = HazardRefit(
        horizon_ms=H, event_label=None, window=4000, refit_every=10**9, extras=64, l2=0.0005
    )
    rng = random.Random(0)
    for i in range(4000):
        g, a, t = rng.randrange(8), rng.gauss(0.0, 1.0), rng.randrange(5)
        logit = -2.0 + 4.0 * (g == 7) - 4.0 * (g == 0) + a + 0.5 * t
        y = rng.random() < 1.0 / (1.0 + math.exp(-logit))
        x = {f"last:{g}": 1.0, f"tenure:{t}": 1.0, f"after:{g}>{rng.randrange(3)}": 1.0, "a": a}
        m.learn_one(x, int(y), key=f"c{i}", snapshot_ts=i, label_ts=i + 1)
        if i % 500 == 499:
            m.refit()
    cold = copy.deepcopy(m)
    cold.beta, cold.newton_steps = None, 50
    cold.refit()
    m.refit()
    for g in range(8):
        x = {f"last:{g}": 1.0, "tenure:1": 1.0, "a": 0.5}
        assert m.predict_proba_one(x) == pytest.approx(cold.predict_proba_one(x), abs=1e-3)


def test_a_refits_steps_go_over_the_window_a_chunk_at_a_time() -> None:
    # a step's work is bounded by records, not by the window: a window four times as
    # large takes about four times the steps (each pass: the rows, the vocabulary, the
    # design, every evaluation of the loss and its derivatives, the recalibration)
    def steps(window: int) -> int:
        model = HazardRefit(horizon_ms=H, event_label=1, window=window, inline_refit=False)
        _fed(model, window, window // 20)
        model.refit()  # (a fit to start from, as a refit in a running flow has)
        model.n_fits = 1  # (the vocabulary counted in both)
        n = 1
        while model.refit_step():
            n += 1
        return n

    small, large = steps(2 * FIT_CHUNK), steps(8 * FIT_CHUNK)
    assert large >= 3 * small
    # snapshots that come between two steps wait for the next refit
    model = HazardRefit(horizon_ms=H, event_label=1, window=4000, inline_refit=False)
    _fed(model, 4000, 200)
    fits = model.n_fits
    model.refit_step()
    for i in range(100):
        model.observe_snapshot(f"late{i}", 20 * DAY_MS + i, {"a": 1.0})
    model.refit()
    assert model.n_fits == fits + 1
    assert model.since_fit == 100  # (counted for the next refit, not lost)


@settings(max_examples=20, deadline=None)
@given(
    rows=st.integers(min_value=2, max_value=300),
    features=st.integers(min_value=1, max_value=6),
    bins=st.integers(min_value=1, max_value=4),
    chunk=st.integers(min_value=1, max_value=64),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_the_fits_sums_by_blocks_of_rows_are_the_whole_sums(
    rows: int, features: int, bins: int, chunk: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(rows, features))
    y = (rng.random((rows, bins)) < 0.2).astype(float)
    w = rng.random((rows, bins))
    design = np.hstack([np.ones((bins, 1)), rng.normal(size=(bins, 1)), np.eye(bins)])
    penalty = rng.random(design.shape[1] + features) + 0.1
    centre = rng.normal(size=len(penalty))
    b = rng.normal(size=len(penalty))
    whole = _HazardLoss(z, y, w, design, penalty, centre, rows)
    blocks = _HazardLoss(z, y, w, design, penalty, centre, chunk)
    value, gradient, hessian = _finish(whole.derivatives(b))
    value_b, gradient_b, hessian_b = _finish(blocks.derivatives(b))
    assert value_b == pytest.approx(value, rel=1e-9)
    assert np.allclose(gradient_b, gradient, rtol=1e-9, atol=1e-9)
    assert np.allclose(hessian_b, hessian, rtol=1e-9, atol=1e-9)
    assert _finish(blocks.loss(b)) == pytest.approx(value, rel=1e-9)
    # and the whole sums are the hazard fit's: one row per snapshot and bin
    eta = (design @ b[: design.shape[1]])[None, :] + (z @ b[design.shape[1] :])[:, None]
    d = b - centre
    assert value == pytest.approx(
        logistic_loss(eta, y, w) + 0.5 * float(penalty @ (d * d)), rel=1e-9
    )
    step = 1e-6 * np.eye(len(b))[0]
    numeric = (_finish(whole.loss(b + step)) - _finish(whole.loss(b - step))) / 2e-6
    assert numeric == pytest.approx(gradient[0], rel=1e-4, abs=1e-4)


def test_a_refit_in_steps_is_the_whole_refit_and_a_snapshot_midway_refits_again() -> None:
    def fed() -> HazardRefit:
        model = HazardRefit(horizon_ms=H, event_label=1, window=6000, inline_refit=False)
        return _fed(model, 6000, 300)

    whole = fed()
    whole.refit()
    stepped = fed()
    steps = 1
    while stepped.refit_step():
        steps += 1
    assert steps >= 6  # the rows, the design in chunks, each Newton step, the end
    probes = [{"a": 1.0, "noise": 0.0}, {"a": 0.0, "noise": 1.5}]
    assert [stepped.predict_proba_one(x) for x in probes] == [
        whole.predict_proba_one(x) for x in probes
    ]
    assert not stepped.due
    midway = fed()
    midway.refit_step()
    midway.refit_step()
    resumed = pickle.loads(pickle.dumps(midway))  # a snapshot taken mid-refit
    assert resumed.due  # the refit starts again
    resumed.refit()
    assert [resumed.predict_proba_one(x) for x in probes] == [
        whole.predict_proba_one(x) for x in probes
    ]
    gone = fed()
    gone.refit_step()
    forget_keys(gone, ["c1"])  # an erasure drops the refit under way: it holds c1
    assert gone._job is None
    assert gone.due


@given(
    st.dictionaries(
        st.sampled_from(["gap_ratio_log", "n_events_log", "rate_log", "sentiment", "other"]),
        st.sampled_from([0.0, -0.0, 1.0, -2.5, 1e-9]),
    )
)
def test_prior_terms_are_each_known_feature_weighted_from_its_centre(x: dict[str, float]) -> None:
    from operators.refit import PRIOR_CENTRE, PRIOR_WEIGHTS, prior_terms

    expected = {
        name: weight * (x[name] - PRIOR_CENTRE.get(name, 0.0))
        for name, weight in PRIOR_WEIGHTS.items()
        if name in x and (x[name] or name not in PRIOR_CENTRE)  # a centred 0: not known yet
    }
    assert prior_terms(x) == expected
    assert list(prior_terms(x)) == list(expected)  # (summed in this order)
