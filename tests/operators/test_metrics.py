from __future__ import annotations

import math
import random

from hypothesis import given
from hypothesis import strategies as st

from operators.metrics import (
    calibration,
    expected_calibration_error,
    log_loss,
    paired_auc_z,
    roc_auc,
)


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


def brute_delong_z(a: list[float], b: list[float], labels: list[int]) -> float:
    """DeLong's statistic from its definition: structural components by pairs."""

    def psi(p: float, n: float) -> float:
        return 1.0 if p > n else 0.5 if p == n else 0.0

    pos = [i for i, y in enumerate(labels) if y]
    neg = [i for i, y in enumerate(labels) if not y]
    m, n = len(pos), len(neg)

    def components(s: list[float]) -> tuple[list[float], list[float]]:
        v10 = [sum(psi(s[i], s[j]) for j in neg) / n for i in pos]
        v01 = [sum(psi(s[i], s[j]) for i in pos) / m for j in neg]
        return v10, v01

    (a10, a01), (b10, b01) = components(a), components(b)

    def var(d: list[float]) -> float:
        if len(d) < 2:
            return 0.0
        mean = sum(d) / len(d)
        return sum((v - mean) ** 2 for v in d) / (len(d) - 1)

    d10 = [y - x for x, y in zip(a10, b10, strict=True)]
    d01 = [y - x for x, y in zip(a01, b01, strict=True)]
    diff = sum(b10) / m - sum(a10) / m
    se = math.sqrt(var(d10) / m + var(d01) / n)
    return diff / se if se > 0 else (0.0 if diff == 0 else math.copysign(math.inf, diff))


@given(
    st.lists(
        st.tuples(
            st.sampled_from([0.1, 0.2, 0.5, 0.9]),
            st.sampled_from([0.1, 0.3, 0.5, 0.7]),
            st.integers(0, 1),
        ),
        max_size=40,
    )
)
def test_paired_auc_z_equals_delong_by_definition(
    rows: list[tuple[float, float, int]],
) -> None:
    a = [r[0] for r in rows]
    b = [r[1] for r in rows]
    labels = [r[2] for r in rows]
    auc_a, auc_b, z = paired_auc_z(a, b, labels)
    if 0 < sum(labels) < len(labels):
        assert math.isclose(auc_a, brute_auc(a, labels))
        assert math.isclose(auc_b, brute_auc(b, labels))
        expected = brute_delong_z(a, b, labels)
        assert z == expected or math.isclose(z, expected, rel_tol=1e-9, abs_tol=1e-9)
    else:
        assert math.isnan(auc_a)
        assert math.isnan(auc_b)
        assert math.isnan(z)


def test_paired_auc_z_tells_a_real_difference_from_noise() -> None:
    rng = random.Random(4)
    labels = [int(rng.random() < 0.1) for _ in range(2000)]
    signal = [y + rng.gauss(0, 1) for y in labels]  # AUC about 0.76
    weaker = [y + rng.gauss(0, 2) for y in labels]  # about 0.64
    assert paired_auc_z(weaker, signal, labels)[2] > 3
    assert paired_auc_z(signal, weaker, labels)[2] < -3
    # two equally good models: their difference stays within noise
    twin = [y + rng.gauss(0, 1) for y in labels]
    assert abs(paired_auc_z(signal, twin, labels)[2]) < 2.5


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
