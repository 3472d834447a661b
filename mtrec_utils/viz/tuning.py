"""Plots of a multi-objective study: the Pareto front of :func:`mtrec_utils.training.tuning.tune`.

:func:`plot_pareto` draws every pair of objectives side by side: each complete trial as a grey dot,
the Pareto front (non-dominated over *all* objectives) highlighted, and optionally the picked trial.
A front point may look dominated in one panel: it is better on an objective that panel does not show.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

#: units of the metrics an objective column ends with (``val/<task>/<metric>``)
UNITS = {"rmse": "stars", "mae": "stars"}


def objective_label(column: str, direction: str) -> str:
    """Axis label: ``"val/rating/rmse (stars, lower is better)"``."""
    unit = UNITS.get(column.rsplit("/", 1)[-1])
    better = "lower is better" if direction == "minimize" else "higher is better"
    return f"{column} ({unit + ', ' if unit else ''}{better})"


def plot_pareto(
    frame: pd.DataFrame,
    objectives: Mapping[str, str] | None = None,
    picked: pd.Series | int | None = None,
    axes=None,
    title: str | None = None,
):
    """Pairwise scatter of the objectives, the Pareto front highlighted; returns the axes (one per pair).

    Args:
        frame: from :func:`~mtrec_utils.training.tuning.tune` (objective columns, ``state``, ``pareto``).
        objectives: ``{column: direction}``; default ``frame.attrs["objectives"]`` (two or more).
        picked: the chosen trial (a row of ``frame`` or its ``number``), marked with a star.
        axes: a sequence of axes, one per pair of objectives; default a new row of them.
        title: the figure's title.

    Raises:
        ValueError: fewer than two objectives, or fewer axes than pairs.
    """
    goals = dict(objectives if objectives is not None else frame.attrs.get("objectives", {}))
    if len(goals) < 2:
        raise ValueError(f"a Pareto plot needs two or more objectives; got {list(goals)}")
    pairs = list(itertools.combinations(goals, 2))
    if axes is None:
        fig, axes = plt.subplots(1, len(pairs), figsize=(4.2 * len(pairs), 3.6), squeeze=False)
        axes = axes[0]
    axes = list(np.ravel(axes))
    if len(axes) < len(pairs):
        raise ValueError(f"{len(pairs)} pairs of objectives need as many axes; got {len(axes)}")
    done = frame[frame["state"] == "COMPLETE"] if "state" in frame else frame
    front = done[done["pareto"]]
    rest = done[~done["pareto"]]
    if isinstance(picked, int | np.integer):
        picked = frame.loc[frame["number"] == picked].iloc[0]
    for ax, (x, y) in zip(axes, pairs):
        ax.scatter(rest[x], rest[y], s=18, color="0.7", label=f"dominated ({len(rest)})")
        ax.scatter(front[x], front[y], s=36, color="tab:red", edgecolor="k", linewidth=0.5,
                   label=f"Pareto front ({len(front)})", zorder=3)  # fmt: skip
        if picked is not None:
            ax.scatter([picked[x]], [picked[y]], s=220, marker="*", color="gold", edgecolor="k",
                       zorder=4, label=f"picked (trial {int(picked['number'])})")  # fmt: skip
        ax.set_xlabel(objective_label(x, goals[x]))
        ax.set_ylabel(objective_label(y, goals[y]))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    if title:
        axes[0].figure.suptitle(title)
    axes[0].figure.tight_layout()
    return axes[: len(pairs)]
