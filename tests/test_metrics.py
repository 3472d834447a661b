"""Tests of mtrec_utils.core.metrics against scikit-learn, NumPy and small hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sklearn.calibration
import sklearn.metrics
import torch

from mtrec_utils.core.metrics import (
    accuracy,
    auc,
    calibration_curve,
    coverage_at_k,
    expected_calibration_error,
    f1,
    hr_at_k,
    logloss,
    mae,
    ndcg_at_k,
    per_user_ranking,
    recall_at_k,
    rmse,
)

NEG = -np.inf


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_regression_metrics_match_numpy(rng) -> None:
    y, p = rng.uniform(1, 5, 500), rng.uniform(1, 5, 500)
    assert rmse(y, p) == pytest.approx(np.sqrt(np.mean((y - p) ** 2)), rel=1e-12)
    assert mae(y, p) == pytest.approx(np.mean(np.abs(y - p)), rel=1e-12)
    assert rmse(torch.tensor(y), list(p)) == pytest.approx(rmse(y, p))  # tensors and lists work too
    assert rmse([1, 2, 3], [1, 2, 3]) == 0.0


@pytest.mark.parametrize("decimals", [None, 1])  # rounding to 1 decimal creates many ties
def test_auc_matches_sklearn(rng, decimals) -> None:
    y = rng.integers(0, 2, 1000)
    score = rng.normal(size=1000) + 0.8 * y
    if decimals is not None:
        score = np.round(score, decimals)
    assert auc(y, score) == pytest.approx(sklearn.metrics.roc_auc_score(y, score), abs=1e-12)
    assert auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)


def test_logloss_accuracy_f1_match_sklearn(rng) -> None:
    y = rng.integers(0, 2, 1000)
    prob = np.clip(rng.uniform(size=1000) * 0.6 + 0.4 * y, 0.001, 0.999)
    assert logloss(y, prob) == pytest.approx(sklearn.metrics.log_loss(y, prob), rel=1e-10)
    pred = (prob >= 0.5).astype(int)
    assert accuracy(y, pred) == pytest.approx(sklearn.metrics.accuracy_score(y, pred))
    assert accuracy(y, prob, threshold=0.5) == pytest.approx(sklearn.metrics.accuracy_score(y, pred))
    assert f1(y, prob, threshold=0.5) == pytest.approx(sklearn.metrics.f1_score(y, pred))
    assert f1([0, 0], [0, 0]) == 0.0
    assert accuracy([3, 1, 2], [3, 2, 2]) == pytest.approx(2 / 3)  # multi-class labels


def test_calibration_curve_matches_sklearn(rng) -> None:
    prob = rng.uniform(size=2000) ** 2
    y = (rng.uniform(size=2000) < prob).astype(int)
    table = calibration_curve(y, prob, n_bins=10)
    frac, mean_pred = sklearn.calibration.calibration_curve(y, prob, n_bins=10)
    np.testing.assert_allclose(table["fraction_positive"], frac)
    np.testing.assert_allclose(table["mean_predicted"], mean_pred)
    assert table["count"].sum() == 2000
    assert list(table.columns) == ["bin_lower", "bin_upper", "count", "mean_predicted", "fraction_positive"]
    # Two bins, [0, .5] and (.5, 1]: |0.5 - 0.2| * 2 and |1.0 - 0.9| * 2 over 4 predictions.
    ece = expected_calibration_error([0, 1, 1, 1], [0.2, 0.2, 0.9, 0.9], n_bins=2)
    assert ece == pytest.approx((0.3 * 2 + 0.1 * 2) / 4)


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="same shape"):
        rmse([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="empty"):
        mae([], [])
    with pytest.raises(ValueError, match="NaN"):
        rmse([1.0, np.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match="both classes"):
        auc([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="binary"):
        auc([0, 1, 2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="binary"):
        logloss([0, 5], [0.1, 0.2])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        logloss([0, 1], [0.1, 1.5])
    with pytest.raises(ValueError, match="n_bins"):
        calibration_curve([0, 1], [0.1, 0.2], n_bins=0)


# A hand-computed case: 3 users, 5 items; -inf marks excluded items.
SCORES = np.array(
    [
        [0.5, 0.9, 0.5, 0.1, NEG],  # ranking: 1, 0, 2 (tie 0.5: lower index first), 3; item 4 excluded
        [0.3, 0.2, 0.1, 0.0, 0.4],  # no positives: skipped
        [NEG, NEG, 0.2, NEG, NEG],  # only item 2 can be recommended
    ]
)
POSITIVES = [np.array([2, 3]), np.array([], dtype=int), [0, 2]]
D = [1 / math.log2(r + 1) for r in range(1, 6)]  # discount of ranks 1..5


def test_ranking_hand_computed_with_ties_and_skipped_users() -> None:
    # k=2: user 0 gets items 1, 0 (no hit); user 2 gets item 2 (hit at rank 1); item 0 is -inf.
    assert recall_at_k(SCORES, POSITIVES, k=2) == pytest.approx((0 + 1 / 2) / 2)
    assert hr_at_k(SCORES, POSITIVES, k=2) == pytest.approx((0 + 1) / 2)
    assert ndcg_at_k(SCORES, POSITIVES, k=2) == pytest.approx((0 + D[0] / (D[0] + D[1])) / 2)
    # k=3: user 0's third item is 2, a hit at rank 3.
    assert recall_at_k(SCORES, POSITIVES, k=3) == pytest.approx((1 / 2 + 1 / 2) / 2)
    expected = (D[2] / (D[0] + D[1]) + D[0] / (D[0] + D[1])) / 2
    assert ndcg_at_k(SCORES, POSITIVES, k=3) == pytest.approx(expected)
    table = per_user_ranking(SCORES, POSITIVES, k=3)
    assert table["user"].tolist() == [0, 2]
    assert table["hits"].tolist() == [1, 1]


def test_excluded_items_are_never_ranked() -> None:
    scores = np.array([[NEG, 0.1, NEG, NEG]])
    # Item 0 is a positive but excluded: never a hit, even though k exceeds the finite items.
    assert recall_at_k(scores, [[0]], k=4) == 0.0
    assert recall_at_k(scores, [[0, 1]], k=4) == pytest.approx(0.5)
    assert coverage_at_k(scores, k=4) == pytest.approx(1 / 4)


def test_ideal_dcg_uses_min_k_positives_and_recall_divides_by_all_positives() -> None:
    scores = np.array([[0.9, 0.8, 0.7, 0.6, 0.5]])
    positives = [[0, 1, 2, 3]]  # more positives than k
    assert ndcg_at_k(scores, positives, k=2) == pytest.approx(1.0)
    assert recall_at_k(scores, positives, k=2) == pytest.approx(2 / 4)
    assert hr_at_k(scores, positives, k=2) == 1.0
    assert ndcg_at_k(scores, [[4]], k=5) == pytest.approx(D[4])  # ideal DCG of one positive = 1


def _reference(scores: np.ndarray, positives: list, k: int) -> tuple[float, float, float]:
    """Plain-Python recall, ndcg and hr: sort each user's finite items by (-score, index)."""
    recalls, ndcgs, hrs = [], [], []
    for row, pos in zip(scores, positives):
        pos = set(int(i) for i in pos)
        if not pos:
            continue
        ranked = sorted((i for i in range(len(row)) if np.isfinite(row[i])), key=lambda i: (-row[i], i))[:k]
        hits = [i in pos for i in ranked]
        recalls.append(sum(hits) / len(pos))
        hrs.append(float(any(hits)))
        dcg = sum(1 / math.log2(r + 2) for r, h in enumerate(hits) if h)
        ndcgs.append(dcg / sum(1 / math.log2(r + 2) for r in range(min(k, len(pos)))))
    return float(np.mean(recalls)), float(np.mean(ndcgs)), float(np.mean(hrs))


@pytest.mark.parametrize("k", [1, 5, 10, 40])
def test_vectorised_ranking_matches_a_plain_loop(rng, k) -> None:
    scores = np.round(rng.normal(size=(60, 30)), 1)  # coarse values: many ties
    scores[rng.uniform(size=scores.shape) < 0.3] = NEG
    positives = [rng.choice(30, size=rng.integers(0, 6), replace=False) for _ in range(60)]
    recall, ndcg, hr = _reference(scores, positives, k)
    assert recall_at_k(scores, positives, k) == pytest.approx(recall, rel=1e-12)
    assert ndcg_at_k(scores, positives, k) == pytest.approx(ndcg, rel=1e-12)
    assert hr_at_k(scores, positives, k) == pytest.approx(hr, rel=1e-12)


def test_coverage_hand_computed() -> None:
    scores = np.array([[0.9, 0.1, 0.5, 0.0], [0.9, 0.8, 0.1, 0.0]])
    assert coverage_at_k(scores, k=1) == pytest.approx(1 / 4)  # item 0 only
    assert coverage_at_k(scores, k=2) == pytest.approx(3 / 4)  # items 0, 1, 2


def test_ranking_bad_input() -> None:
    with pytest.raises(ValueError, match="no user has a positive"):
        recall_at_k(SCORES, [[], [], []], k=2)
    with pytest.raises(ValueError, match="3 users"):
        ndcg_at_k(SCORES, [[1]], k=2)
    with pytest.raises(ValueError, match=r"positives\[0\]"):
        hr_at_k(SCORES, [[5], [], []], k=2)
    with pytest.raises(ValueError, match="k="):
        recall_at_k(SCORES, POSITIVES, k=0)
    with pytest.raises(ValueError, match=r"\+inf"):
        recall_at_k(np.array([[np.inf, 0.0]]), [[0]], k=1)
    with pytest.raises(ValueError, match="2-D"):
        coverage_at_k(np.zeros(3), k=1)
