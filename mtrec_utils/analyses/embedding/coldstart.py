"""Cold start (冷启动): entities with few or no training interactions, bucketed by that count.

- :func:`thin_interactions` turns a chosen share of users or items *cold* on purpose: each of them
  keeps only 0, 1, 2, ... of its training rows, so every bucket has enough test rows to measure.
  The test split is untouched; only training rows are dropped.
- :func:`assign_buckets` labels each entity by its number of training interactions
  (edges ``(-1, 0, 5, 20, 50, inf)`` give the buckets ``0``, ``1-5``, ``6-20``, ``21-50``, ``>50``).
- :func:`bucket_metrics` measures RMSE (and the count of test rows) per bucket, so text and
  fusion models can be compared with ID-only ones where IDs carry little signal.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

COUNT_EDGES = (-1, 0, 5, 20, 50, np.inf)


def bucket_labels(edges: Sequence[float] = COUNT_EDGES) -> list[str]:
    """Readable labels of the right-closed integer buckets ``(edges[j], edges[j+1]]``.

    Example: ``(-1, 0, 5, inf)`` gives ``["0", "1-5", ">5"]``.

    Raises:
        ValueError: unless ``edges`` has at least two strictly increasing values.
    """
    e = [float(x) for x in edges]
    if len(e) < 2 or any(b <= a for a, b in zip(e, e[1:])):
        raise ValueError(f"edges={tuple(edges)!r} is not valid; it must be >= 2 strictly increasing numbers")
    labels = []
    for lo, hi in zip(e, e[1:]):
        first = int(np.floor(lo)) + 1
        if np.isinf(hi):
            labels.append(f">{first - 1}")
        elif first == int(hi):
            labels.append(f"{first}")
        else:
            labels.append(f"{first}-{int(hi)}")
    return labels


def assign_buckets(counts, edges: Sequence[float] = COUNT_EDGES) -> pd.Categorical:
    """The bucket of each count (right-closed intervals of ``edges``), as an ordered Categorical.

    Args:
        counts: (N,) non-negative interaction counts.
        edges: bucket edges, see :func:`bucket_labels`.

    Raises:
        ValueError: for a negative count or a count beyond the last edge.
    """
    c = np.asarray(counts, dtype=np.float64)
    labels = bucket_labels(edges)
    if c.size and (c.min() < 0 or c.max() > edges[-1] or c.min() <= edges[0]):
        raise ValueError(f"counts must lie in ({edges[0]}, {edges[-1]}]; got [{c.min():g}, {c.max():g}]")
    codes = np.searchsorted(np.asarray(edges, dtype=np.float64), c, side="left") - 1
    return pd.Categorical.from_codes(codes, categories=labels, ordered=True)


def interaction_counts(entity_idx, num_entities: int) -> np.ndarray:
    """(num_entities,) number of rows per entity index in ``entity_idx`` (N,)."""
    return np.bincount(np.asarray(entity_idx, dtype=np.int64), minlength=num_entities)


def thin_interactions(
    entity_idx,
    fraction: float,
    keep: Sequence[int] = (0, 1, 2, 5, 10),
    generator: torch.Generator | None = None,
) -> np.ndarray:
    """Make a random ``fraction`` of entities cold: each keeps ``k`` of its rows, ``k`` drawn from ``keep``.

    Args:
        entity_idx: (N,) entity index of each training row (users or items).
        fraction: share of the entities (among those with rows) to thin, in [0, 1].
        keep: the numbers of rows a thinned entity may keep (drawn uniformly).
        generator: random source (which entities, which ``k``, which rows).

    Returns:
        (N,) bool mask of the training rows to keep.

    Raises:
        ValueError: for ``fraction`` outside [0, 1] or a negative ``keep``.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction={fraction!r} is not valid; it must be between 0 and 1 (for example 0.2)")
    if not keep or min(keep) < 0:
        raise ValueError(
            f"keep={tuple(keep)!r} is not valid; it must be non-negative row counts, e.g. (0, 1, 5)"
        )
    idx = np.asarray(entity_idx, dtype=np.int64)
    mask = np.ones(len(idx), dtype=bool)
    entities = np.unique(idx)
    n_cold = int(round(fraction * len(entities)))
    chosen = entities[torch.randperm(len(entities), generator=generator)[:n_cold].numpy()]
    ks = np.asarray(keep)[torch.randint(len(keep), (n_cold,), generator=generator).numpy()]
    for e, k in zip(chosen, ks):
        rows = np.flatnonzero(idx == e)
        order = torch.randperm(len(rows), generator=generator).numpy()
        mask[rows[order[k:]]] = False
    return mask


def bucket_metrics(entity_idx, counts, y_true, y_pred, edges: Sequence[float] = COUNT_EDGES) -> pd.DataFrame:
    """RMSE and MAE of test rows grouped by their entity's training-count bucket.

    Args:
        entity_idx: (N,) entity index of each test row.
        counts: (num_entities,) training interactions per entity.
        y_true, y_pred: (N,) labels and predictions.
        edges: bucket edges.

    Returns:
        DataFrame indexed by bucket label (every bucket, in order): ``rows``, ``entities``,
        ``rmse``, ``mae`` (NaN for an empty bucket).
    """
    idx = np.asarray(entity_idx, dtype=np.int64)
    t, p = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    if not len(idx) == len(t) == len(p):
        raise ValueError(f"entity_idx, y_true, y_pred must be aligned; got {len(idx)}, {len(t)}, {len(p)}")
    bucket = assign_buckets(np.asarray(counts)[idx], edges)
    err = pd.DataFrame({"bucket": bucket, "entity": idx, "sq": (t - p) ** 2, "abs": np.abs(t - p)})
    g = err.groupby("bucket", observed=False)
    rmse = np.sqrt(g["sq"].mean())
    stats = {"rows": g.size(), "entities": g["entity"].nunique(), "rmse": rmse, "mae": g["abs"].mean()}
    return pd.DataFrame(stats).rename_axis("bucket")


@torch.no_grad()
def predict_pairs(model, users, items, task: str = "rating", batch_size: int = 4096) -> np.ndarray:
    """(N,) predictions of a pair task for aligned (N,) user and item indices (model in eval mode)."""
    model.eval()
    u, i = torch.as_tensor(users, dtype=torch.long), torch.as_tensor(items, dtype=torch.long)
    out = [
        model({"user": u[s : s + batch_size], "item": i[s : s + batch_size]}, [task])[task].reshape(-1)
        for s in range(0, len(u), batch_size)
    ]
    return torch.cat(out).float().numpy()
