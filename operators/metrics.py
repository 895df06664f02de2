"""Exact evaluation metrics over collected (score, label) pairs.

River's streaming ``ROCAUC`` approximates with a few thresholds; reported
figures use these exact ones.

>>> roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
0.75
>>> roc_auc([0.5, 0.5, 0.2, 0.9], [1, 0, 0, 1])  # a tie counts half
0.875
>>> round(log_loss([0.9, 0.1], [1, 0]), 4)
0.1054
>>> calibration([0.1, 0.1, 0.9, 0.9], [0, 0, 1, 0], bins=2)
[(0.1, 0.0, 2), (0.9, 0.5, 2)]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def roc_auc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half); nan if one class."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    # average ranks over ties: each run of equal scores gets the mean of its positions
    first = np.empty(len(s), dtype=bool)
    first[0] = True
    np.not_equal(sorted_s[1:], sorted_s[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    ends = np.append(starts[1:], len(s))
    ranks = np.empty(len(s), dtype=float)
    ranks[order] = ((starts + ends + 1) / 2.0)[np.cumsum(first) - 1]
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def log_loss(scores: Sequence[float], labels: Sequence[int], eps: float = 1e-7) -> float:
    p = np.clip(np.asarray(scores, dtype=float), eps, 1 - eps)
    y = np.asarray(labels, dtype=float)
    if len(p) == 0:
        return math.nan
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def calibration(
    scores: Sequence[float], labels: Sequence[int], bins: int = 10
) -> list[tuple[float, float, int]]:
    """(mean predicted, observed rate, count) per equal-width probability bin."""
    p = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=float)
    which = np.minimum((p * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        mask = which == b
        n = int(mask.sum())
        if n:
            out.append((round(float(p[mask].mean()), 4), round(float(y[mask].mean()), 4), n))
    return out


def expected_calibration_error(
    scores: Sequence[float], labels: Sequence[int], bins: int = 10
) -> float:
    table = calibration(scores, labels, bins)
    total = sum(n for _, _, n in table)
    return sum(n * abs(pred - obs) for pred, obs, n in table) / total if total else math.nan
