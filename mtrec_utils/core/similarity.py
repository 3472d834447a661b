"""Nearest neighbours by cosine similarity (the embedding tours of notebooks 00 and 05)."""

from __future__ import annotations

import torch


def cosine_top_k(
    query: torch.Tensor, matrix: torch.Tensor, k: int = 10, exclude: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` rows of ``matrix`` most similar to ``query`` by cosine similarity.

    Args:
        query: (H,) vector.
        matrix: (N, H) rows to search.
        k: how many to return (at most N, or N - 1 with ``exclude``).
        exclude: a row index to leave out (typically the query's own row).

    Returns:
        ``(indices, scores)``, each (k,), best first; ties keep the lower index first.
    """
    if query.ndim != 1 or matrix.ndim != 2 or matrix.shape[1] != query.shape[0]:
        raise ValueError(
            f"query must be (H,) and matrix (N, H); got {tuple(query.shape)} and {tuple(matrix.shape)}"
        )
    available = matrix.shape[0] - (exclude is not None)
    if not 1 <= k <= available:
        raise ValueError(f"k={k} is not valid; it must be between 1 and {available}")
    q = torch.nn.functional.normalize(query.float(), dim=0)
    m = torch.nn.functional.normalize(matrix.float(), dim=1)
    scores = m @ q  # (N,)
    if exclude is not None:
        scores[exclude] = float("-inf")
    order = torch.argsort(-scores, stable=True)[:k]
    return order, scores[order]
