"""From DataFrames to what the training loop reads: subsets, hold-outs, datasets, model inputs.

The notebooks call these in a few lines each:

- :func:`sample_rows` caps a DataFrame for a profile; :func:`holdout` carves a validation part
  out of the training data (the test split stays untouched until the end);
- :func:`rating_dataset` turns MovieLens ratings into the ``rating`` / ``like`` batches;
- :func:`interest_data` builds the ranking task's training pairs and its evaluation data;
- :func:`standardize` and :func:`category_codes` prepare side features for a tower, fitted on
  training rows only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from mtrec_utils.data.datasets import (
    NegativeSamplingDataset,
    RankingEval,
    TensorDictDataset,
    index_of,
    ranking_eval,
    seen_matrix,
)
from mtrec_utils.data.tasks import like_labels


def sample_rows(df: pd.DataFrame, n: int | None, generator: torch.Generator | None = None) -> pd.DataFrame:
    """At most ``n`` rows of ``df`` drawn at random (all rows if ``n`` is None), in ``df``'s order."""
    if n is None or n >= len(df):
        return df
    keep = np.sort(torch.randperm(len(df), generator=generator)[:n].numpy())
    return df.iloc[keep]


def holdout(df: pd.DataFrame, fraction: float = 0.05, generator: torch.Generator | None = None):
    """Split ``df`` at random into ``(rest, held_out)`` with ``fraction`` of the rows held out.

    Raises:
        ValueError: unless 0 < fraction < 1.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction={fraction!r} is not valid; it must be between 0 and 1 (for example 0.05)")
    perm = torch.randperm(len(df), generator=generator).numpy()
    n = max(1, int(round(fraction * len(df))))
    return df.iloc[np.sort(perm[n:])], df.iloc[np.sort(perm[:n])]


def rating_dataset(ratings: pd.DataFrame, user_ids, item_ids) -> TensorDictDataset:
    """Batches ``{"user", "item", "rating", "like"}`` from ratings (user/item as row indices).

    Args:
        ratings: rows with user_id, item_id, rating.
        user_ids, item_ids: the id vocabularies (row i of a table = the i-th id).
    """
    return TensorDictDataset(
        user=index_of(ratings["user_id"], user_ids, "user_id"),
        item=index_of(ratings["item_id"], item_ids, "item_id"),
        rating=ratings["rating"].to_numpy(dtype=np.float32),
        like=like_labels(ratings["rating"]),
    )


def interest_data(
    train: pd.DataFrame,
    evaluate_on: pd.DataFrame,
    user_ids,
    item_ids,
    num_negatives: int = 4,
    min_rating: int = 4,
    max_users: int | None = None,
    generator: torch.Generator | None = None,
) -> tuple[NegativeSamplingDataset, RankingEval]:
    """Training pairs and evaluation data of the ranking task (user interest).

    Positives are the liked ratings (>= ``min_rating``); each training positive comes with
    ``num_negatives`` items the user did not rate in ``train``. Evaluation ranks every item the
    user did not rate in ``train``; its positives are the liked ratings of ``evaluate_on``.

    Returns:
        ``(train_dataset, ranking_eval)``.
    """
    nu, ni = len(user_ids), len(item_ids)
    u = index_of(train["user_id"], user_ids, "user_id")
    i = index_of(train["item_id"], item_ids, "item_id")
    seen = seen_matrix(u, i, nu, ni)
    liked = (train["rating"] >= min_rating).to_numpy()
    data = NegativeSamplingDataset(u[liked], i[liked], seen, num_negatives, generator)
    pos = evaluate_on[evaluate_on["rating"] >= min_rating]
    eu = index_of(pos["user_id"], user_ids, "user_id")
    ei = index_of(pos["item_id"], item_ids, "item_id")
    return data, ranking_eval(seen, eu, ei, max_users, generator)


def standardize(values: np.ndarray, train_rows: Sequence[int] | np.ndarray) -> torch.Tensor:
    """(N, F) numeric features scaled to mean 0 and std 1 using the training rows' statistics."""
    x = np.asarray(values, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    mean, std = x[train_rows].mean(axis=0), x[train_rows].std(axis=0)
    return torch.tensor((x - mean) / np.where(std > 0, std, 1.0), dtype=torch.float32)


def category_codes(values: pd.Series, train_rows: Sequence[int] | np.ndarray) -> torch.Tensor:
    """Codes 1..C for the categories seen in the training rows, 0 for any other (unseen) value."""
    known = pd.Index(pd.unique(values.iloc[np.asarray(train_rows)]))
    return torch.as_tensor(known.get_indexer(pd.Index(values.to_numpy())) + 1, dtype=torch.long)
