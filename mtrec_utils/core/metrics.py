"""Evaluation metrics: regression, binary classification, calibration and top-k ranking.

Every function takes NumPy arrays (lists and CPU/GPU tensors are converted) and returns a float,
except :func:`calibration_curve` and :func:`per_user_ranking` (DataFrames). Inputs are checked:
matching shapes, non-empty, no NaN, binary labels where a metric needs them.

Ranking conventions (``scores`` is (num_users, num_items); ``positives[u]`` holds the held-out
relevant item indices of user ``u``):

- Items scored ``-inf`` are excluded (e.g. the user's training items): they are never counted as
  recommended, even when a user has fewer than ``k`` other items. A positive scored ``-inf`` can
  never be hit but still counts in ``|positives|``.
- Ties are broken by item index: a stable sort on the score, so the lower index ranks first.
- Users with no positives are skipped; if no user has any, a ValueError is raised.
- recall@k = hits / |positives| (the standard definition; some papers divide by
  min(k, |positives|) instead, which is 1.0 at best for users with more than k positives).
- hr@k (hit rate) = 1 if at least one positive is in the top k, else 0.
- ndcg@k uses binary relevance: DCG = sum over hits at rank r (1-based) of 1 / log2(r + 1),
  divided by the ideal DCG, that of min(k, |positives|) hits at the top.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from mtrec_utils.core.config import check_positive


def _array(param: str, x, ndim: int = 1) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim != ndim:
        raise ValueError(f"{param} must be {ndim}-D; got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{param} is empty")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{param} must be numeric; got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if np.isnan(arr).any():
        raise ValueError(f"{param} contains NaN at index {int(np.flatnonzero(np.isnan(arr.ravel()))[0])}")
    return arr


def _pair(y_true, y_pred, pred_name: str = "y_pred") -> tuple[np.ndarray, np.ndarray]:
    yt, yp = _array("y_true", y_true), _array(pred_name, y_pred)
    if yt.shape != yp.shape:
        raise ValueError(f"y_true and {pred_name} must have the same shape; got {yt.shape} and {yp.shape}")
    return yt, yp


def _binary(param: str, y: np.ndarray) -> np.ndarray:
    bad = ~np.isin(y, (0.0, 1.0))
    if bad.any():
        raise ValueError(f"{param} must hold binary labels 0/1; found {y[bad][0]!r}")
    return y


def _labels(y_pred: np.ndarray, threshold: float | None) -> np.ndarray:
    return (y_pred >= threshold).astype(np.float64) if threshold is not None else y_pred


def rmse(y_true, y_pred) -> float:
    """Root mean squared error: sqrt(mean((y_true - y_pred)^2))."""
    yt, yp = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((yt - yp) ** 2)))


def mae(y_true, y_pred) -> float:
    """Mean absolute error: mean(|y_true - y_pred|)."""
    yt, yp = _pair(y_true, y_pred)
    return float(np.mean(np.abs(yt - yp)))


def auc(y_true, y_score) -> float:
    """Area under the ROC curve: the chance that a random positive outscores a random negative.

    Computed from ranks (Mann-Whitney U); tied scores count one half.

    Args:
        y_true: (N,) binary labels 0/1.
        y_score: (N,) scores, any monotone scale (probabilities or logits).

    Raises:
        ValueError: if y_true holds only one class (AUC is undefined then).
    """
    yt, ys = _pair(y_true, y_score, "y_score")
    _binary("y_true", yt)
    n_pos = yt.sum()
    n_neg = yt.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"auc needs both classes in y_true; got only {int(yt[0])} ({yt.size} labels)")
    ranks = rankdata(ys)  # average ranks for ties
    return float((ranks[yt == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def logloss(y_true, y_prob, eps: float = 1e-15) -> float:
    """Binary cross-entropy of probabilities, clipped to [eps, 1 - eps]: -mean(y log p + (1-y) log(1-p)).

    Args:
        y_true: (N,) binary labels 0/1.
        y_prob: (N,) predicted probabilities of class 1, in [0, 1] (not logits).
    """
    yt, yp = _pair(y_true, y_prob, "y_prob")
    _binary("y_true", yt)
    if yp.min() < 0 or yp.max() > 1:
        raise ValueError(f"y_prob must be probabilities in [0, 1]; got range [{yp.min()}, {yp.max()}]")
    p = np.clip(yp, eps, 1 - eps)
    return float(-np.mean(yt * np.log(p) + (1 - yt) * np.log1p(-p)))


def accuracy(y_true, y_pred, threshold: float | None = None) -> float:
    """Fraction of exact matches between labels; with ``threshold``, y_pred >= threshold counts as 1."""
    yt, yp = _pair(y_true, y_pred)
    return float(np.mean(yt == _labels(yp, threshold)))


def f1(y_true, y_pred, threshold: float | None = None) -> float:
    """F1 of the positive class (label 1): 2 TP / (2 TP + FP + FN); 0.0 when there is no positive at all.

    Args:
        y_true: (N,) binary labels 0/1.
        y_pred: (N,) predicted labels 0/1, or scores with ``threshold``.
        threshold: if given, y_pred >= threshold is predicted positive.
    """
    yt, yp = _pair(y_true, y_pred)
    yp = _binary("y_pred", _labels(yp, threshold))
    _binary("y_true", yt)
    tp = float(np.sum((yt == 1) & (yp == 1)))
    denom = 2 * tp + np.sum((yt == 0) & (yp == 1)) + np.sum((yt == 1) & (yp == 0))
    return float(2 * tp / denom) if denom > 0 else 0.0


def calibration_curve(y_true, y_prob, n_bins: int = 10) -> pd.DataFrame:
    """Reliability table: predicted probability against observed frequency, in equal-width bins.

    Bins are [0, 1/n], (1/n, 2/n], ..., as in scikit-learn; empty bins are left out.

    Returns:
        DataFrame with one row per non-empty bin: ``bin_lower``, ``bin_upper``, ``count``,
        ``mean_predicted`` and ``fraction_positive``.
    """
    check_positive("n_bins", n_bins, integer=True)
    yt, yp = _pair(y_true, y_prob, "y_prob")
    _binary("y_true", yt)
    if yp.min() < 0 or yp.max() > 1:
        raise ValueError(f"y_prob must be probabilities in [0, 1]; got range [{yp.min()}, {yp.max()}]")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.searchsorted(edges[1:-1], yp)  # (N,) bin of each prediction
    count = np.bincount(bins, minlength=n_bins)
    keep = count > 0
    table = pd.DataFrame(
        {
            "bin_lower": edges[:-1],
            "bin_upper": edges[1:],
            "count": count,
            "mean_predicted": np.bincount(bins, weights=yp, minlength=n_bins) / np.maximum(count, 1),
            "fraction_positive": np.bincount(bins, weights=yt, minlength=n_bins) / np.maximum(count, 1),
        }
    )
    return table[keep].reset_index(drop=True)


def expected_calibration_error(y_true, y_prob, n_bins: int = 10) -> float:
    """ECE: mean over predictions of |fraction_positive - mean_predicted| of their bin."""
    table = calibration_curve(y_true, y_prob, n_bins)
    gaps = (table["fraction_positive"] - table["mean_predicted"]).abs()
    return float((gaps * table["count"]).sum() / table["count"].sum())


def _scores(scores) -> np.ndarray:
    s = _array("scores", scores, ndim=2)
    if np.isposinf(s).any():
        raise ValueError("scores must be finite, or -inf for excluded items; found +inf")
    return s


def _positive_mask(positives: Sequence, num_users: int, num_items: int) -> np.ndarray:
    """(num_users, num_items) bool mask of positives, checked against the score matrix."""
    if len(positives) != num_users:
        raise ValueError(f"positives has {len(positives)} entries but scores has {num_users} users (rows)")
    mask = np.zeros((num_users, num_items), dtype=bool)
    for u, items in enumerate(positives):
        items = np.asarray([] if items is None else items).ravel()
        if items.size and (items.dtype.kind not in "iu" or items.min() < 0 or items.max() >= num_items):
            raise ValueError(f"positives[{u}] must hold item indices in [0, {num_items}); got {items[:5]}")
        mask[u, items.astype(np.int64)] = True
    return mask


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """(U, min(k, I)) item indices by descending score; ties by item index (stable sort)."""
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def per_user_ranking(scores, positives: Sequence, k: int = 10) -> pd.DataFrame:
    """Top-k metrics of every user with at least one positive (see the module docstring).

    Args:
        scores: (num_users, num_items) scores; -inf marks excluded items.
        positives: num_users arrays of relevant item indices (empty for users to skip).
        k: cut-off.

    Returns:
        DataFrame with columns ``user`` (row of ``scores``), ``num_positives``, ``hits``,
        ``recall``, ``ndcg`` and ``hr``.

    Raises:
        ValueError: for bad shapes or indices, or when no user has a positive.
    """
    check_positive("k", k, integer=True)
    s = _scores(scores)
    mask = _positive_mask(positives, *s.shape)
    num_pos = mask.sum(axis=1)
    users = np.flatnonzero(num_pos > 0)
    if users.size == 0:
        raise ValueError("no user has a positive item: ranking metrics are undefined")
    discounts = 1.0 / np.log2(np.arange(2, k + 2))  # (k,) 1/log2(rank + 1), rank 1-based
    hits = np.zeros((users.size, min(k, s.shape[1])), dtype=bool)
    for start in range(0, users.size, 1024):  # chunks of users keep the sort's memory small
        rows = users[start : start + 1024]
        top = _top_k(s[rows], k)  # (R, k')
        r = rows[:, None]
        hits[start : start + rows.size] = mask[r, top] & np.isfinite(s[r, top])
    n_hits = hits.sum(axis=1)
    ideal = np.cumsum(discounts)[np.minimum(k, num_pos[users]) - 1]  # (U',)
    return pd.DataFrame(
        {
            "user": users,
            "num_positives": num_pos[users],
            "hits": n_hits,
            "recall": n_hits / num_pos[users],
            "ndcg": (hits * discounts[: hits.shape[1]]).sum(axis=1) / ideal,
            "hr": (n_hits > 0).astype(np.float64),
        }
    )


def recall_at_k(scores, positives: Sequence, k: int = 10) -> float:
    """Mean over users with positives of hits@k / |positives| (see the module docstring)."""
    return float(per_user_ranking(scores, positives, k)["recall"].mean())


def ndcg_at_k(scores, positives: Sequence, k: int = 10) -> float:
    """Mean over users with positives of NDCG@k with binary relevance (see the module docstring)."""
    return float(per_user_ranking(scores, positives, k)["ndcg"].mean())


def hr_at_k(scores, positives: Sequence, k: int = 10) -> float:
    """Mean over users with positives of 1 if any positive is in the top k, else 0."""
    return float(per_user_ranking(scores, positives, k)["hr"].mean())


def coverage_at_k(scores, k: int = 10) -> float:
    """Catalogue coverage: the fraction of all items (columns) in at least one user's top k.

    Items scored -inf are not recommended, so they never count as covered.
    """
    check_positive("k", k, integer=True)
    s = _scores(scores)
    covered = np.zeros(s.shape[1], dtype=bool)
    for start in range(0, s.shape[0], 1024):
        chunk = s[start : start + 1024]
        top = _top_k(chunk, k)  # (R, k')
        covered[top[np.isfinite(np.take_along_axis(chunk, top, axis=1))]] = True
    return float(covered.mean())
