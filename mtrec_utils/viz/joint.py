"""Plots of joint training: per-step curves from a :class:`~mtrec_utils.training.schedules.TrainingLog` frame.

Each function draws on ``ax`` (a new figure if ``None``) and returns the axes.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import pandas as pd


def _axes(ax):
    return ax if ax is not None else plt.subplots(figsize=(6, 3.5))[1]


def smooth(values: pd.Series, window: int) -> pd.Series:
    """Centred rolling mean over ``window`` points (``window`` <= 1: unchanged)."""
    return values if window <= 1 else values.rolling(window, center=True, min_periods=1).mean()


def plot_step_curves(
    frame: pd.DataFrame,
    prefix: str,
    ax=None,
    ylabel: str = "value",
    window: int = 1,
    title: str | None = None,
    log_y: bool = False,
):
    """One line per column ``<prefix><task>`` of a training-log frame, against the training step.

    Args:
        frame: ``TrainingLog.frame()`` (column ``step``).
        prefix: ``"loss/"``, ``"weight/"`` or ``"cos/"``.
        ax: axes to draw on.
        ylabel: label of the y axis, with its unit.
        window: rolling-mean window in points (losses are noisy from batch to batch).
        title: the axes title.
        log_y: log-scale y axis.

    Raises:
        ValueError: if no column starts with ``prefix``.
    """
    columns = [c for c in frame.columns if c.startswith(prefix)]
    if not columns:
        raise ValueError(f"no column starts with prefix={prefix!r}; columns: {list(frame.columns)}")
    ax = _axes(ax)
    for c in columns:
        part = frame[["step", c]].dropna()
        ax.plot(
            part["step"],
            smooth(part[c], window),
            label=c[len(prefix) :],
            marker="." if len(part) < 40 else None,
        )
    ax.set(xlabel="training step (optimizer updates)", ylabel=ylabel, title=title or prefix.rstrip("/"))
    if log_y:
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    return ax


def plot_validation(
    histories: dict[str, pd.DataFrame],
    column: str,
    ax=None,
    ylabel: str | None = None,
    mark_best: bool = True,
):
    """Validation ``column`` per epoch of several runs (``{label: fit history}``), best epochs marked."""
    ax = _axes(ax)
    for label, h in histories.items():
        line = ax.plot(h["epoch"], h[column], marker="o", label=label)[0]
        best = h.attrs.get("best_epoch")
        if mark_best and best in set(h["epoch"]):
            best_value = h.loc[h["epoch"] == best, column]
            ax.scatter(
                [best], best_value, s=120, facecolors="none", edgecolors=line.get_color(), linewidths=2
            )
    ax.set(xlabel="epoch", ylabel=ylabel or column, title=f"{column} (circled: best epoch, restored)")
    ax.legend(fontsize=8)
    return ax


def plot_gains(table: pd.DataFrame, columns: Sequence[str], ax=None):
    """Horizontal bars of the gain columns of a :func:`~mtrec_utils.training.experiments.gain_table` (right = better)."""
    ax = _axes(ax)
    data = table[list(columns)].astype(float)
    data.plot.barh(ax=ax)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set(xlabel="gain of joint over single-task (metric units; > 0 = better)", ylabel="task/metric")
    return ax
