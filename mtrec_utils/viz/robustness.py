"""Plots and sentences for robustness to perturbed input (notebook 10, section 3)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

COLUMNS = ("model", "perturbation", "strength", "metric")
PERTURBATION_LABELS = {
    "typo": "typos (share of letters changed)",
    "drop": "word drop (share of words dropped)",
    "synonym": "synonym swap (share of words tried)",
}


def _check_table(table: pd.DataFrame) -> None:
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing or table.empty:
        raise ValueError(
            f"table needs the columns {list(COLUMNS)} and at least one row (RobustnessResult.table); "
            f"it lacks {missing} and has {len(table)} row(s)"
        )


def plot_robustness(
    table: pd.DataFrame, metric_label: str = "test AUC (recommended)", path: str | Path | None = None
) -> plt.Figure:
    """Metric against perturbation strength: one panel per perturbation, one line per model.

    Args:
        table: tidy rows ``model, perturbation, strength, metric`` (:attr:`RobustnessResult.table`).
        metric_label: the y-axis label.
        path: also save the figure there.
    """
    _check_table(table)
    perturbations = list(dict.fromkeys(table["perturbation"]))
    fig, axes = plt.subplots(1, len(perturbations), figsize=(4.2 * len(perturbations), 3.4), sharey=True)
    axes = [axes] if len(perturbations) == 1 else list(axes)
    for ax, pert in zip(axes, perturbations):
        for model, rows in table[table["perturbation"] == pert].groupby("model", sort=False):
            rows = rows.sort_values("strength")
            ax.plot(rows["strength"], rows["metric"], marker="o", label=str(model))
        ax.set_xlabel(f"strength s: {PERTURBATION_LABELS.get(pert, pert)}")
        ax.set_title(pert)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(metric_label)
    axes[-1].legend(title="model")
    fig.suptitle("Robustness: the metric on perturbed test reviews")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def describe_robustness(table: pd.DataFrame, area_table: pd.DataFrame) -> str:
    """Sentences from the numbers: the most robust model by mean area, and each model's worst drop.

    Args:
        table: as for :func:`plot_robustness`, with the ``drop`` column.
        area_table: one row per model, one column per perturbation and ``mean``
            (:attr:`RobustnessResult.area_table`).
    """
    _check_table(table)
    if "mean" not in area_table.columns or "drop" not in table.columns:
        raise ValueError(
            "pass RobustnessResult.table (with 'drop') and RobustnessResult.area_table (with 'mean')"
        )
    best = area_table["mean"].idxmax()
    lines = [
        f"Most robust over the strength range: {best} (mean area {area_table.loc[best, 'mean']:.3f}; "
        + ", ".join(f"{m} {v:.3f}" for m, v in area_table["mean"].items() if m != best)
        + ")."
    ]
    for model, rows in table.groupby("model", sort=False):
        worst = rows.loc[rows["drop"].idxmax()]
        lines.append(
            f"{model}: largest drop {worst['drop']:+.3f} under {worst['perturbation']} "
            f"at s={worst['strength']:g} ({worst['metric'] + worst['drop']:.3f} -> {worst['metric']:.3f})."
        )
    return "\n".join(lines)
