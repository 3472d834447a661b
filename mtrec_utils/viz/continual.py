"""Plots of notebook 10, section 1 (continual learning): accuracy matrices, forgetting and cost."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

LABELS = {"rating/rmse": "test RMSE (stars)", "like/auc": "test like AUC"}


def plot_accuracy_matrices(
    matrices: Mapping[str, Mapping[str, np.ndarray]],
    metric: str = "rating/rmse",
    path: str | Path | None = None,
) -> plt.Figure:
    """One heatmap per method of ``A[t, p]``: row t = trained through period t, column p = tested on period p.

    The diagonal is the new period; below it, what the method still knows of earlier periods; above
    it, periods not trained yet. One colour scale for all methods (darker = better).

    Args:
        matrices: ``{method: {metric: (P, P) array}}`` (``ContinualResult.matrices``).
        metric: ``"rating/rmse"`` or ``"like/auc"``.
        path: where to save the figure (PNG), or ``None``.
    """
    if not matrices:
        raise ValueError("matrices is empty: run at least one method")
    missing = [m for m, by_metric in matrices.items() if metric not in by_metric]
    if missing:
        raise ValueError(f"metric={metric!r} is missing for {missing}; choose from {list(LABELS)}")
    values = np.stack([np.asarray(by_metric[metric], dtype=float) for by_metric in matrices.values()])
    lo, hi = float(values.min()), float(values.max())
    cmap = "viridis" if metric.endswith("rmse") else "viridis_r"  # dark = better either way
    fig, axes = plt.subplots(1, len(matrices), figsize=(2.9 * len(matrices) + 1, 3.2), squeeze=False)
    for ax, (method, a) in zip(axes[0], zip(matrices, values)):
        image = ax.imshow(a, cmap=cmap, vmin=lo, vmax=hi)
        for (t, p), v in np.ndenumerate(a):
            dark = (v < (lo + hi) / 2) == (cmap == "viridis")
            ax.text(
                p, t, f"{v:.3f}", ha="center", va="center", fontsize=7, color="white" if dark else "black"
            )
        ax.set_title(method)
        ax.set_xlabel("tested on period")
        ax.set_xticks(range(a.shape[1]))
        ax.set_yticks(range(a.shape[0]))
    axes[0, 0].set_ylabel("trained through period")
    fig.colorbar(image, ax=list(axes[0]), label=LABELS.get(metric, metric), shrink=0.85)
    if path is not None:
        fig.savefig(path, dpi=110, bbox_inches="tight")
    return fig


def plot_forgetting_and_cost(summary: pd.DataFrame, path: str | Path | None = None) -> plt.Figure:
    """Bars per method: mean new-period RMSE, mean forgetting (RMSE), training seconds, ratings stored.

    Args:
        summary: ``ContinualResult.summary`` (columns ``new_period_rmse``, ``forgetting_rmse``,
            ``seconds``, ``stored_ratings``).
        path: where to save the figure (PNG), or ``None``.
    """
    panels = {
        "new_period_rmse": "new-period test RMSE (stars, lower is better)",
        "forgetting_rmse": "forgetting: RMSE increase (stars)",
        "seconds": "training time (seconds)",
        "stored_ratings": "past ratings stored (count)",
    }
    missing = [c for c in panels if c not in summary.columns]
    if missing:
        raise ValueError(f"summary lacks columns {missing}; pass ContinualResult.summary")
    fig, axes = plt.subplots(1, len(panels), figsize=(15, 3.2))
    for ax, (column, label) in zip(axes, panels.items()):
        ax.bar(summary.index.astype(str), summary[column], color="tab:blue")
        ax.set_ylabel(label)
        ax.set_xlabel("method")
        ax.tick_params(axis="x", rotation=30)
        if column == "new_period_rmse":
            low = float(summary[column].min())
            ax.set_ylim(low - 0.05, float(summary[column].max()) + 0.02)
        if column == "forgetting_rmse":
            ax.axhline(0, color="black", linewidth=0.8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110, bbox_inches="tight")
    return fig
