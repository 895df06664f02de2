from __future__ import annotations

import math
import random

from hypothesis import given
from hypothesis import strategies as st

from operators.metrics import calibration, expected_calibration_error, log_loss, roc_auc


def brute_auc(scores: list[float], labels: list[int]) -> float:
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


@given(st.lists(st.tuples(st.sampled_from([0.1, 0.2, 0.5, 0.9]), st.integers(0, 1)), max_size=40))
def test_auc_equals_the_pairwise_definition_with_ties(pairs: list[tuple[float, int]]) -> None:
    scores = [s for s, _ in pairs]
    labels = [y for _, y in pairs]
    if 0 < sum(labels) < len(labels):
        assert math.isclose(roc_auc(scores, labels), brute_auc(scores, labels))
    else:
        assert math.isnan(roc_auc(scores, labels))


def test_perfect_random_and_inverted() -> None:
    y = [0, 0, 1, 1]
    assert roc_auc([0.1, 0.2, 0.8, 0.9], y) == 1.0
    assert roc_auc([0.9, 0.8, 0.2, 0.1], y) == 0.0
    rng = random.Random(1)
    noise = [rng.random() for _ in range(4000)]
    labels = [rng.randint(0, 1) for _ in range(4000)]
    assert abs(roc_auc(noise, labels) - 0.5) < 0.03


def test_calibration_of_a_calibrated_forecaster_is_near_zero() -> None:
    rng = random.Random(2)
    p = [rng.random() for _ in range(20000)]
    y = [int(rng.random() < q) for q in p]
    assert expected_calibration_error(p, y) < 0.02
    assert len(calibration(p, y)) == 10
    assert log_loss(p, y) < math.log(2)
