"""Article 6.2: the questions personalization raises, answered per user and per top-10 list.

- Per-user quality (:func:`per_user_rmse`, :func:`user_groups`, :func:`bucket_table`): the spread of
  RMSE and NDCG@10 over users, and their means per bucket of training ratings (cold-start users)
  and per demographic group.
- Top-k lists (:func:`list_metrics`): catalogue coverage, popularity bias (average recommendation
  popularity and the share of slots taken by the most popular items), intra-list genre diversity
  and novelty.
- Explanations (:func:`explain_by_history`, :func:`part_attribution`): which liked history items
  are nearest to a recommendation in the joint space, and which tower inputs (ID, text,
  demographics, genres) drive a score, by gradient x input.
- :func:`recommend_table`: a user's top-k with scores and explanations, as a static table.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from mtrec_utils.core.config import check_positive

ACTIVITY_EDGES = (0, 20, 50, 100, np.inf)  # buckets of training ratings per user: (0, 20], (20, 50], ...
AGE_EDGES = (0, 24, 34, 44, np.inf)  # age groups: <= 24, 25-34, 35-44, 45+


def per_user_rmse(user_ids, y_true, y_pred) -> pd.DataFrame:
    """RMSE of each user's test ratings.

    Args:
        user_ids, y_true, y_pred: (N,) aligned arrays (one row per test rating).

    Returns:
        DataFrame indexed by user_id with columns ``num_test`` and ``rmse``.
    """
    u, t, p = (np.asarray(a) for a in (user_ids, y_true, y_pred))
    if not len(u) == len(t) == len(p) or len(u) == 0:
        raise ValueError(
            f"user_ids, y_true, y_pred must be non-empty and aligned; got {len(u)}, {len(t)}, {len(p)}"
        )
    sq = pd.Series((t.astype(np.float64) - p.astype(np.float64)) ** 2, index=pd.Index(u, name="user_id"))
    g = sq.groupby(level=0)
    return pd.DataFrame({"num_test": g.size(), "rmse": np.sqrt(g.mean())})


def user_groups(users: pd.DataFrame, train_ratings: pd.DataFrame) -> pd.DataFrame:
    """Each user's number of training ratings, activity bucket, gender and age group.

    Args:
        users: MovieLens users (user_id, age, gender).
        train_ratings: the ratings the model was trained on (user_id).

    Returns:
        DataFrame indexed by user_id: ``num_train``, ``activity`` (e.g. ``"<=20"``), ``gender``, ``age_group``.
    """
    counts = train_ratings.groupby("user_id").size().reindex(users["user_id"], fill_value=0)
    act_labels = ["<=20", "21-50", "51-100", ">100"]
    age_labels = ["<=24", "25-34", "35-44", "45+"]
    out = pd.DataFrame(
        {
            "num_train": counts.to_numpy(),
            "activity": pd.cut(counts.to_numpy(), ACTIVITY_EDGES, labels=act_labels, include_lowest=True),
            "gender": users["gender"].to_numpy(),
            "age_group": pd.cut(users["age"].to_numpy(), AGE_EDGES, labels=age_labels),
        },
        index=pd.Index(users["user_id"].to_numpy(), name="user_id"),
    )
    return out


def bucket_table(
    per_user: pd.DataFrame, groups: pd.DataFrame, by: str, metrics: Sequence[str]
) -> pd.DataFrame:
    """Mean, median and count of per-user ``metrics`` in each value of ``groups[by]``.

    Args:
        per_user: indexed by user_id, one column per metric (e.g. ``rmse``, ``ndcg``).
        groups: from :func:`user_groups`.
        by: a column of ``groups`` (``"activity"``, ``"gender"``, ``"age_group"``).
        metrics: columns of ``per_user`` to summarise.
    """
    if by not in groups.columns:
        raise ValueError(f"by={by!r} is not valid; choose one of: {list(groups.columns)}")
    missing = [m for m in metrics if m not in per_user.columns]
    if missing:
        raise ValueError(f"metrics {missing} are not columns of per_user {list(per_user.columns)}")
    joined = per_user[list(metrics)].join(groups[[by]], how="inner")
    table = joined.groupby(by, observed=False)[list(metrics)].agg(["mean", "median", "count"])
    table.columns = [f"{m}_{s}" for m, s in table.columns]
    return table


def top_k_items(scores, k: int = 10) -> np.ndarray:
    """(U, k) item indices of each row's k best finite scores, best first (ties by item index)."""
    check_positive("k", k, integer=True)
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"scores must be (num_users, num_items); got shape {s.shape}")
    top = np.argsort(-s, axis=1, kind="stable")[:, :k]
    if not np.isfinite(np.take_along_axis(s, top, axis=1)).all():
        raise ValueError(f"some user has fewer than k={k} rankable (finite-score) items")
    return top


def intra_list_diversity(top: np.ndarray, genres: np.ndarray) -> float:
    """Mean over lists of the mean pairwise genre distance ``1 - Jaccard(genres_i, genres_j)``.

    Args:
        top: (U, k) item indices, k >= 2.
        genres: (num_items, G) multi-hot genres.
    """
    top = np.asarray(top)
    if top.ndim != 2 or top.shape[1] < 2:
        raise ValueError(f"top must be (num_users, k) with k >= 2; got shape {top.shape}")
    g = np.asarray(genres, dtype=np.float64)[top]  # (U, k, G)
    inter = np.einsum("ukg,ulg->ukl", g, g)  # (U, k, k)
    size = g.sum(axis=2)  # (U, k)
    union = size[:, :, None] + size[:, None, :] - inter
    dist = 1.0 - np.divide(inter, union, out=np.ones_like(inter), where=union > 0)
    k = top.shape[1]
    return float((dist.sum(axis=(1, 2)) / (k * (k - 1))).mean())  # the diagonal is 0


def novelty(top: np.ndarray, item_counts: np.ndarray, num_users: int) -> float:
    """Mean self-information ``-log2(p_i)`` of recommended items, ``p_i`` = share of users who rated item i
    in training (unrated items count as 1 rating). Higher = less popular, more novel."""
    check_positive("num_users", num_users, integer=True)
    p = np.maximum(np.asarray(item_counts, dtype=np.float64), 1.0) / num_users
    return float(np.mean(-np.log2(p[np.asarray(top)])))


def list_metrics(
    scores,
    item_counts: np.ndarray,
    genres: np.ndarray,
    num_users: int,
    k: int = 10,
    head_fraction: float = 0.1,
) -> dict[str, float]:
    """Coverage, popularity bias, diversity and novelty of every user's top-k list.

    Args:
        scores: (U, num_items) scores, -inf for items not to recommend (e.g. rated in training).
        item_counts: (num_items,) training ratings per item.
        genres: (num_items, G) multi-hot genres.
        num_users: users in training (for novelty).
        k: list length.
        head_fraction: the most popular ``head_fraction`` of items form the "head".

    Returns:
        ``coverage`` (share of items in some list), ``arp`` (average recommendation popularity: mean training
        ratings of a recommended item), ``head_share`` (share of slots going to head items), ``diversity``
        (:func:`intra_list_diversity`), ``novelty`` (:func:`novelty`).
    """
    top = top_k_items(scores, k)
    counts = np.asarray(item_counts, dtype=np.float64)
    head = np.zeros(len(counts), dtype=bool)
    head[np.argsort(-counts, kind="stable")[: max(1, int(round(head_fraction * len(counts))))]] = True
    return {
        "coverage": float(len(np.unique(top)) / scores.shape[1]),
        "arp": float(counts[top].mean()),
        "head_share": float(head[top].mean()),
        "diversity": intra_list_diversity(top, genres),
        "novelty": novelty(top, counts, num_users),
    }


def explain_by_history(
    item_vectors: Tensor, history: Sequence[int], item: int, top: int = 3
) -> list[tuple[int, float]]:
    """The liked history items nearest to ``item`` in the joint space (cosine of item-tower vectors).

    Args:
        item_vectors: (num_items, d) item-tower outputs of the trained model.
        history: item indices the user liked in training.
        item: the recommended item's index.
        top: how many to return.

    Returns:
        Up to ``top`` pairs ``(history item index, cosine similarity)``, most similar first.
    """
    hist = torch.as_tensor(np.asarray(history, dtype=np.int64))
    if len(hist) == 0:
        return []
    v = torch.nn.functional.normalize(item_vectors.float(), dim=-1)
    sims = v[hist] @ v[item]  # (H,)
    order = torch.argsort(sims, descending=True)[:top]
    return [(int(hist[j]), float(sims[j])) for j in order]


def part_attribution(model, task: str, user: int, items: Sequence[int]) -> pd.DataFrame:
    """Gradient x input of task ``task``'s score on each fused part of the user and item towers.

    For a :class:`~mtrec_utils.models.MultiTaskModel` with :class:`~mtrec_utils.models.EntityTower` towers:
    the tower vector is a sum of parts (ID embedding, projected text, features, categories); the
    attribution of part p is ``sum(d score / d part_p * part_p)``, in score units.

    Returns:
        DataFrame, one row per item, columns ``user:<part>`` and ``item:<part>``.
    """
    from mtrec_utils.analyses.cases.ads import pair_outputs

    model.eval()
    device = next(model.parameters()).device
    it = torch.as_tensor(np.asarray(items, dtype=np.int64), device=device)
    us = torch.full_like(it, int(user))
    parts = {f"user:{k}": v for k, v in model.towers["user"].part_dict(us).items()}
    parts.update({f"item:{k}": v for k, v in model.towers["item"].part_dict(it).items()})
    leaves = {k: v.detach().requires_grad_(True) for k, v in parts.items()}
    u = torch.stack([v for k, v in leaves.items() if k.startswith("user:")]).sum(0)  # (B, d)
    i = torch.stack([v for k, v in leaves.items() if k.startswith("item:")]).sum(0)  # (B, d)
    score = pair_outputs(model, u, i, us, it, [task])[task].sum()
    grads = torch.autograd.grad(score, list(leaves.values()))
    return pd.DataFrame(
        {k: (g * v).sum(-1).detach().cpu().numpy() for (k, v), g in zip(leaves.items(), grads)}
    )


def recommend_table(
    scores_row, titles: Sequence[str], item_vectors: Tensor, history: Sequence[int], k: int = 10
) -> pd.DataFrame:
    """One user's top-k: rank, title, score and the liked history item nearest to each recommendation.

    Args:
        scores_row: (num_items,) the user's scores, -inf for items not to recommend.
        titles: (num_items,) item titles.
        item_vectors: (num_items, d) item-tower outputs.
        history: item indices the user liked in training.
        k: list length.
    """
    top = top_k_items(np.asarray(scores_row, dtype=np.float64)[None, :], k)[0]
    rows = []
    for rank, item in enumerate(top, start=1):
        near = explain_by_history(item_vectors, history, int(item), top=1)
        because = f"{titles[near[0][0]]} (cos {near[0][1]:.2f})" if near else "(no liked history)"
        rows.append(
            {
                "rank": rank,
                "title": titles[item],
                "score": float(scores_row[item]),
                "because you liked": because,
            }
        )
    return pd.DataFrame(rows).set_index("rank")
