"""Plots for the data and training notebooks (matplotlib; every axis labelled with its unit).

Each function draws on ``ax`` (a new figure if ``None``) and returns the axes;
:func:`save_figure` writes a figure to ``OUTPUT_DIR/figures/<name>.png`` atomically.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from mtrec_utils.core.io import atomic_write_bytes


def _axes(ax):
    return ax if ax is not None else plt.subplots(figsize=(6, 3.5))[1]


def plot_rating_distribution(
    ratings, ax=None, title: str = "Rating distribution", ylabel: str = "number of ratings"
):
    """Bar chart of how many ratings have each star value."""
    ax = _axes(ax)
    counts = pd.Series(np.asarray(ratings)).value_counts().sort_index()
    ax.bar(counts.index.astype(str), counts.to_numpy(), color="tab:blue")
    ax.set(xlabel="rating (stars)", ylabel=ylabel, title=title)
    return ax


def plot_long_tail(item_counts, ax=None, title: str = "Item popularity (long tail)"):
    """Ratings per item against the item's popularity rank, log scale, with the head's share marked."""
    ax = _axes(ax)
    counts = np.sort(np.asarray(item_counts))[::-1]
    ranks = np.arange(1, len(counts) + 1)
    ax.plot(ranks, np.maximum(counts, 0.8), color="tab:blue")
    ax.set_yscale("log")
    head = max(1, int(round(0.2 * len(counts))))
    share = counts[:head].sum() / max(counts.sum(), 1)
    ax.axvline(head, color="tab:red", ls="--", label=f"top 20% of items: {share:.0%} of ratings")
    ax.set(xlabel="item popularity rank (1 = most rated)", ylabel="ratings per item (log scale)", title=title)
    ax.legend()
    return ax


def plot_user_activity(user_counts, ax=None, bins: int = 40, title: str = "User activity"):
    """Histogram of ratings per user, with the median marked."""
    ax = _axes(ax)
    counts = np.asarray(user_counts)
    ax.hist(counts, bins=bins, color="tab:green")
    ax.axvline(np.median(counts), color="black", ls="--", label=f"median {np.median(counts):.0f}")
    ax.set(xlabel="ratings per user", ylabel="number of users", title=title)
    ax.legend()
    return ax


def plot_token_lengths(
    lengths: Mapping[str, Sequence[int]],
    ax=None,
    limit: int | None = 128,
    title: str = "Text lengths in tokens",
):
    """Overlaid histograms of token counts per text kind, with the padding limit marked."""
    ax = _axes(ax)
    for name, values in lengths.items():
        ax.hist(np.asarray(values), bins=40, alpha=0.5, label=f"{name} (median {np.median(values):.0f})")
    if limit is not None:
        ax.axvline(limit, color="black", ls="--", label=f"the article pads every text to {limit}")
    ax.set(xlabel="tokens per text", ylabel="number of texts", title=title)
    ax.legend()
    return ax


def plot_label_balance(
    table: pd.DataFrame, ax=None, ylabel: str = "fraction of rows", title: str = "Label balance per split"
):
    """Grouped bars: rows of ``table`` are groups (e.g. splits), columns the classes, values fractions."""
    ax = _axes(ax)
    table.plot.bar(ax=ax, rot=0)
    ax.set(xlabel=table.index.name or "", ylabel=ylabel, title=title)
    ax.legend(title=table.columns.name, fontsize="small", bbox_to_anchor=(1.01, 1), loc="upper left")
    return ax


def plot_history(
    history: pd.DataFrame,
    columns: Sequence[str],
    ax=None,
    ylabel: str = "value",
    title: str = "Training history",
):
    """Lines of ``history[columns]`` against the epoch, the best epoch marked if known."""
    ax = _axes(ax)
    for c in columns:
        ax.plot(history["epoch"], history[c], marker="o", label=c)
    best = history.attrs.get("best_epoch")
    if best is not None and best > 0:
        ax.axvline(best, color="grey", ls=":", label=f"best epoch ({best})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="epoch", ylabel=ylabel, title=title)
    ax.legend(fontsize="small")
    return ax


def plot_metric_bars(
    values: Mapping[str, float],
    ax=None,
    xlabel: str = "metric",
    references: Mapping[str, float] | None = None,
    title: str = "",
):
    """Horizontal bars of model -> value, with optional reference lines (e.g. published numbers)."""
    ax = _axes(ax)
    names, vals = list(values), [values[n] for n in values]
    ax.barh(names, vals, color="tab:blue")
    for i, v in enumerate(vals):
        ax.text(v, i, f" {v:.4f}", va="center", fontsize="small")
    for j, (name, ref) in enumerate((references or {}).items()):
        ax.axvline(ref, color=f"C{j + 1}", ls="--", label=f"{name} {ref:.4f}")
    if references:
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
    lo = min(vals + list((references or {}).values()))
    ax.set_xlim(left=max(0.0, lo - 0.1 * abs(lo)))
    ax.set(xlabel=xlabel, title=title)
    ax.invert_yaxis()
    return ax


def save_figure(fig, output_dir: str | Path, name: str, dpi: int = 110) -> Path:
    """Write ``fig`` to ``output_dir/figures/<name>.png`` atomically; return the path."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return atomic_write_bytes(Path(output_dir) / "figures" / f"{name}.png", buf.getvalue())
