"""Task x task heatmaps: lookahead affinity (:mod:`mtrec_utils.training.affinity`) next to gradient cosines.

Each function draws on the axes given (a new figure if ``None``) and returns them.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def plot_task_matrix(
    matrix: pd.DataFrame,
    ax=None,
    title: str | None = None,
    label: str = "value",
    fmt: str = "{:.3g}",
):
    """A ``(k, k)`` task matrix as a heatmap centred on 0 (red: helps / aligned, blue: hurts / opposed).

    Args:
        matrix: DataFrame with task names as index (rows) and columns, e.g.
            ``AffinityRecorder.matrix()`` (rows: task stepped on, columns: task whose loss is read)
            or :func:`~mtrec_utils.training.affinity.mean_cosine_matrix`.
        ax: axes to draw on.
        title: the axes title.
        label: colour-bar label, with its unit.
        fmt: format of the number written in each cell.

    Raises:
        ValueError: if ``matrix`` is not square.
    """
    if matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"a task matrix must be square; got shape {matrix.shape}")
    ax = ax if ax is not None else plt.subplots(figsize=(4.5, 3.8))[1]
    values = matrix.to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    limit = float(np.abs(finite).max()) if finite.size and np.abs(finite).max() > 0 else 1.0
    image = ax.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.figure.colorbar(image, ax=ax, label=label)
    ticks = range(len(matrix))
    ax.set_xticks(ticks, [str(c) for c in matrix.columns], rotation=30, ha="right")
    ax.set_yticks(ticks, [str(i) for i in matrix.index])
    for (r, c), v in np.ndenumerate(values):
        ax.text(c, r, fmt.format(v), ha="center", va="center", fontsize=8)
    ax.set(
        xlabel=matrix.columns.name or "task",
        ylabel=matrix.index.name or "task",
        title=title or "",
    )
    return ax


def plot_affinity_and_cosine(affinity: pd.DataFrame, cosine: pd.DataFrame | None = None, axes=None):
    """Mean lookahead affinity (left) and mean gradient cosine (right) of the same run.

    Args:
        affinity: ``AffinityRecorder.matrix()``.
        cosine: :func:`~mtrec_utils.training.affinity.mean_cosine_matrix` of the run's log, or
            ``None`` (only the affinity is drawn).
        axes: one axes (affinity only) or two.

    Returns:
        The axes drawn on (a list).
    """
    count = 1 if cosine is None else 2
    if axes is None:
        axes = plt.subplots(1, count, figsize=(5 * count, 4))[1]
    axes = list(np.atleast_1d(axes))
    if len(axes) < count:
        raise ValueError(f"need {count} axes to draw on; got {len(axes)}")
    plot_task_matrix(affinity, axes[0], "lookahead affinity (mean)", "Z = 1 - L_j(after step on i) / L_j (1)")
    if cosine is not None:
        plot_task_matrix(cosine, axes[1], "gradient cosine (mean)", "cosine of task gradients (1)", "{:.2f}")
    return axes[:count]
