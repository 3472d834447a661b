"""The report's plots (notebook 09): single vs joint, quality against cost, weighting strategies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

STRATEGIES = ("ew", "static", "uw", "gradnorm", "dwa", "pcgrad", "mmoe")
MODES = ("frozen", "full", "lora", "adalora", "ia3", "adapter", "lora_per_task")


def plot_gains(gains: pd.DataFrame):
    """One panel per task: single-task and joint means with ±1 std error bars (over seeds)."""
    if gains.empty:
        raise ValueError("no single-task/joint pairs recorded: execute notebook 04 first")
    fig, axes = plt.subplots(1, len(gains), figsize=(2.6 * len(gains), 3.2), squeeze=False)
    for ax, r in zip(axes[0], gains.itertuples()):
        means, stds = [r.single, r.joint], [r.single_std, r.joint_std]
        ax.errorbar([0, 1], means, yerr=stds, fmt="o", capsize=6, color="black", ecolor="tab:gray")
        ax.bar([0, 1], means, color=["tab:blue", "tab:orange"], alpha=0.35)
        low = min(r.single - r.single_std, r.joint - r.joint_std)
        high = max(r.single + r.single_std, r.joint + r.joint_std)
        pad = max(high - low, 1e-3)
        ax.set_ylim(low - pad, high + pad)
        ax.set_xticks([0, 1], ["single", "joint"])
        ax.set_title(f"{r.task}\n{r.verdict}", fontsize=9)
        ax.set_ylabel(r.task.split()[-1])
    fig.suptitle("Single-task vs joint (mean ± std over seeds)")
    fig.tight_layout()
    return fig


def mode_table(metrics: Mapping[str, object], modes: Sequence[str] = MODES) -> pd.DataFrame:
    """Notebook 08's encoder modes: trainable parameters, step seconds, peak memory, recommended AUC."""
    rows = []
    for mode in modes:
        auc = metrics.get(f"clothing_recommended_auc_{mode}")
        if auc is None:
            continue
        rows.append(
            {
                "mode": mode,
                "recommended_auc": float(auc),
                "trainable_params": metrics.get(f"clothing_trainable_params_{mode}"),
                "step_seconds": metrics.get(f"clothing_step_seconds_{mode}"),
                "peak_memory_mb": metrics.get(f"clothing_peak_memory_mb_{mode}"),
            }
        )
    return pd.DataFrame(rows)


def plot_quality_vs_cost(modes: pd.DataFrame):
    """Recommended AUC against trainable parameters (log scale) and against step time."""
    if modes.empty:
        raise ValueError("no encoder-mode metrics recorded: execute notebook 08 first")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    params = modes["trainable_params"].astype(float).clip(lower=1)  # frozen trains 0: drawn at 1
    for ax, x, label in (
        (axes[0], params, "trainable encoder parameters (log scale; frozen drawn at 1)"),
        (axes[1], modes["step_seconds"].astype(float), "seconds per training step"),
    ):
        ax.scatter(x, modes["recommended_auc"], color="tab:purple")
        for xi, yi, name in zip(x, modes["recommended_auc"], modes["mode"]):
            ax.annotate(name, (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xlabel(label)
        ax.set_ylabel("clothing recommended AUC (test)")
        ax.grid(alpha=0.3)
    axes[0].set_xscale("log")
    fig.suptitle("Encoder adaptation: quality against cost (notebook 08, same budget)")
    fig.tight_layout()
    return fig


def strategy_table(metrics: Mapping[str, object], stems: Sequence[str]) -> pd.DataFrame:
    """Notebook 04's strategies (and MMoE) per metric stem, with the single-task value as a column."""
    table = {s: {st: metrics.get(f"{s}_joint_{st}", np.nan) for st in STRATEGIES} for s in stems}
    frame = pd.DataFrame(table).T
    frame["single"] = [metrics.get(f"{s}_single", np.nan) for s in stems]
    return frame.astype(float)


def plot_strategies(table: pd.DataFrame):
    """One panel per metric: a bar per strategy, the single-task value as a dashed line."""
    if table.drop(columns="single").isna().all().all():
        raise ValueError("no per-strategy metrics recorded: execute notebook 04 first")
    fig, axes = plt.subplots(1, len(table), figsize=(3.2 * len(table), 3.4), squeeze=False)
    for ax, (stem, row) in zip(axes[0], table.iterrows()):
        values = row.drop("single")
        ax.bar(range(len(values)), values.values, color="tab:orange", alpha=0.8)
        ax.axhline(row["single"], color="tab:blue", ls="--", label="single-task")
        finite = np.r_[values.values, row["single"]]
        finite = finite[np.isfinite(finite)]
        pad = max(finite.max() - finite.min(), 1e-3)
        ax.set_ylim(finite.min() - pad, finite.max() + pad)
        ax.set_xticks(range(len(values)), values.index, rotation=45, fontsize=8)
        ax.set_title(stem, fontsize=9)
        ax.set_ylabel(stem.rsplit("_", 1)[-1])
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Weighting strategies and MMoE (notebook 04, seed 0)")
    fig.tight_layout()
    return fig
