"""Learning curves of notebook 10's few-shot section: test metric against labelled examples per class."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

METRIC_LABELS = {"auc": "AUC", "macro_f1": "macro-F1"}
METHOD_STYLES = {"prompt": dict(color="tab:orange", marker="o"), "head": dict(color="tab:blue", marker="s")}


def plot_learning_curves(
    summary: pd.DataFrame,
    chance: Mapping[str, float] | None = None,
    stops: Mapping[str, int | None] | None = None,
    path: str | Path | None = None,
) -> plt.Figure:
    """One panel per task: mean metric over seeds against k, a band of mean ± std per method.

    Args:
        summary: :func:`~mtrec_utils.analyses.outlook.fewshot.learning_curves` (columns dataset, task,
            method, k, metric_name, mean, std).
        chance: ``{task: chance level}``, drawn as a dashed line.
        stops: ``{task: k}`` where the prompt method stops helping, drawn as a dotted line.
        path: save the figure there as well.

    Returns:
        The figure (k is drawn at evenly spaced positions, since it grows geometrically and includes 0).
    """
    needed = {"task", "method", "k", "mean", "std", "metric_name"}
    if not needed <= set(summary.columns):
        raise ValueError(
            f"summary lacks columns {sorted(needed - set(summary.columns))}; pass learning_curves(...)"
        )
    if summary.empty:
        raise ValueError("summary is empty: run the few-shot experiment first")
    tasks = list(dict.fromkeys(summary["task"]))
    ks = sorted(summary["k"].unique())
    pos = {k: i for i, k in enumerate(ks)}
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        rows = summary[summary["task"] == task]
        for method, part in rows.groupby("method", sort=False):
            part = part.sort_values("k")
            x, mean, std = part["k"].map(pos).to_numpy(), part["mean"].to_numpy(), part["std"].to_numpy()
            ax.plot(x, mean, label=method, **METHOD_STYLES.get(str(method), {}))
            color = METHOD_STYLES.get(str(method), {}).get("color")
            ax.fill_between(x, mean - std, mean + std, alpha=0.2, color=color)
        if chance is not None and task in chance:
            ax.axhline(chance[task], color="grey", linestyle="--", linewidth=1, label="chance")
        if stops is not None and stops.get(task) is not None and stops[task] in pos:
            ax.axvline(pos[stops[task]], color="black", linestyle=":", label="head catches up")
        dataset = rows["dataset"].iloc[0] if "dataset" in rows else ""
        metric = METRIC_LABELS.get(rows["metric_name"].iloc[0], rows["metric_name"].iloc[0])
        ax.set_title(f"{dataset} {task}".strip())
        ax.set_xticks(np.arange(len(ks)), [str(k) for k in ks])
        ax.set_xlabel("labelled examples per class, k (0 = zero-shot)")
        ax.set_ylabel(f"test {metric} (mean ± std over seeds)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
