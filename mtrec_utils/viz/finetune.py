"""Tables, plots and number-driven sentences for notebook 08 (encoder adaptation, sweeps, profiling)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

TEST_METRICS = {  # column: (label, higher is better)
    "test_recommended_auc": ("recommended AUC", True),
    "test_rating_rmse": ("rating RMSE", False),
    "test_department_accuracy": ("department accuracy", True),
}


def comparison_table(results: Sequence) -> pd.DataFrame:
    """One row per :class:`~mtrec_utils.analyses.finetuning.finetune.FinetuneResult`, indexed by mode."""
    if not results:
        raise ValueError("results is empty: train at least one mode first")
    table = pd.DataFrame([r.row() for r in results]).set_index("mode")
    table["trainable_share"] = table["trainable"] / table["total"]
    return table


def plot_quality_vs_params(
    table: pd.DataFrame, metric: str = "test_recommended_auc", path: str | Path | None = None
) -> plt.Figure:
    """Scatter of ``metric`` against trainable encoder parameters (log scale; frozen drawn at 1)."""
    if metric not in table.columns:
        raise ValueError(f"metric={metric!r} is not a column; choose from {list(table.columns)}")
    fig, ax = plt.subplots(figsize=(6, 4))
    x = table["trainable"].clip(lower=1)
    ax.scatter(x, table[metric])
    for mode, xi, yi in zip(table.index, x, table[metric]):
        ax.annotate(mode, (xi, yi), textcoords="offset points", xytext=(5, 3))
    ax.set_xscale("log")
    ax.set_xlabel("trainable encoder parameters (count, log scale; frozen = 0 drawn at 1)")
    ax.set_ylabel(TEST_METRICS.get(metric, (metric,))[0] + " (test)")
    ax.set_title("Quality against trainable parameters, same training budget")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def describe_comparison(table: pd.DataFrame, reference: str = "full") -> str:
    """Sentences comparing every mode with ``reference`` on the test metrics, step time and memory."""
    if reference not in table.index:
        raise ValueError(f"reference={reference!r} is not a row; choose from {list(table.index)}")
    ref, lines = table.loc[reference], []
    best = table["test_recommended_auc"].idxmax()
    lines.append(f"Best recommended AUC: {best} ({table.loc[best, 'test_recommended_auc']:.3f}).")
    for mode, row in table.drop(index=reference).iterrows():
        d_auc = row["test_recommended_auc"] - ref["test_recommended_auc"]
        d_rmse = row["test_rating_rmse"] - ref["test_rating_rmse"]
        lines.append(
            f"{mode}: trains {int(row['trainable']):,} encoder weights ({100 * row['trainable_share']:.2f}%); "
            f"AUC {'+' if d_auc >= 0 else ''}{d_auc:.3f} and RMSE {'+' if d_rmse >= 0 else ''}{d_rmse:.3f} "
            f"against {reference}; step {row['step_seconds'] / ref['step_seconds']:.2f}x the time and "
            f"{row['peak_memory_mb'] / ref['peak_memory_mb']:.2f}x the memory of {reference}."
        )
    return "\n".join(lines)


def describe_task_specific(shared: Mapping[str, float], per_task: Mapping[str, float]) -> str:
    """Per test metric: did one LoRA per task beat one shared LoRA, and at what cost."""
    lines = []
    for col, (label, higher) in TEST_METRICS.items():
        delta = per_task[col] - shared[col]
        better = delta > 0 if higher else delta < 0
        lines.append(
            f"{label}: per-task {per_task[col]:.3f} vs shared {shared[col]:.3f} "
            f"({'better' if better else 'not better'} with per-task modules)"
        )
    lines.append(
        f"Cost: {per_task['trainable'] / shared['trainable']:.1f}x the trainable weights and "
        f"{per_task['step_seconds'] / shared['step_seconds']:.1f}x the step time (one encoder pass per task)."
    )
    return "\n".join(lines)


def plot_profile(tables: Mapping[str, pd.DataFrame], path: str | Path | None = None) -> plt.Figure:
    """Stacked bars: milliseconds per phase of one training step, one bar per mode."""
    if not tables:
        raise ValueError("tables is empty: profile at least one mode")
    frame = pd.DataFrame({mode: t["ms_per_step"] for mode, t in tables.items()}).T  # (modes, phases)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    left = np.zeros(len(frame))
    for phase in frame.columns:
        ax.barh(frame.index, frame[phase], left=left, label=phase)
        left += frame[phase].to_numpy()
    ax.set_xlabel("time per training step (ms)")
    ax.set_ylabel("encoder mode")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def plot_sweep(
    table: pd.DataFrame, metric: str, params: Sequence[str], path: str | Path | None = None
) -> plt.Figure:
    """Bar per sweep point: ``metric`` with the point's ``params`` as the bar label."""
    if metric not in table.columns:
        raise ValueError(f"metric={metric!r} is not a column; choose from {list(table.columns)}")
    labels = [", ".join(f"{p}={row[p]:g}" for p in params) for _, row in table.iterrows()]
    fig, ax = plt.subplots(figsize=(6, 0.6 * len(table) + 1.5))
    ax.barh(labels, table[metric])
    ax.set_xlabel(f"{metric} (validation)")
    ax.set_ylabel("sweep point")
    lo, hi = np.nanmin(table[metric]), np.nanmax(table[metric])
    ax.set_xlim(max(lo - 0.1 * (hi - lo + 0.01), 0), hi + 0.1 * (hi - lo + 0.01))
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


VERDICT_WORDS = {  # check_claims' verdict on "method beats baseline" -> words
    "supported": "{method} is better than {baseline}",
    "not supported": "{baseline} is better than {method}",
    "no clear difference": "no clear difference",
}


def describe_over_seeds(
    summary: Mapping,
    verdict: str,
    method: str = "lora",
    baseline: str = "full",
    test_reviews: int | None = None,
) -> str:
    """Sentences on ``method`` against ``baseline`` over seeds, ending in ``verdict``.

    Args:
        summary: from :func:`mtrec_utils.analyses.finetuning.seeds.paired_summary`.
        verdict: :func:`mtrec_utils.workbook.claims.check_claims`'s verdict on the claim that ``method``
            beats ``baseline`` (a difference within twice the combined std: no clear difference).
        method, baseline: the two modes.
        test_reviews: reviews of the test split the numbers come from.
    """
    n, lines = int(summary["num_seeds"]), []
    where = f" on {test_reviews:,} test reviews" if test_reviews else ""
    for mode in (method, baseline):
        seeds = ", ".join(f"{v:.3f}" for v in summary[f"{mode}_per_seed"])
        spread = f" ± {summary[f'{mode}_std']:.3f}" if n > 1 else ""
        lines.append(
            f"{mode}: recommended AUC {summary[f'{mode}_mean']:.3f}{spread}{where} (per seed: {seeds})"
        )
    d, d_std = summary["diff_mean"], summary["diff_std"]
    lines.append(
        f"{method} - {baseline}, paired by seed: {d:+.3f}"
        + (f" ± {d_std:.3f} (mean ± std over {n} seeds)" if n > 1 else "")
    )
    if n > 1:
        noise = 2 * float(np.hypot(summary[f"{method}_std"], summary[f"{baseline}_std"]))
        lines.append(f"Twice the combined std of the two means: {noise:.3f}.")
    words = VERDICT_WORDS.get(verdict, verdict).format(method=method, baseline=baseline)
    lines.append(f"Verdict: {words}.")
    return "\n".join(lines)
