"""Plot helpers: each draws labelled axes; figures are saved as PNG."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd

from mtrec_utils.viz import plots as viz


def test_each_plot_labels_its_axes():
    rng = np.random.default_rng(0)
    history = pd.DataFrame({"epoch": [1, 2, 3], "val/rating/rmse": [1.0, 0.95, 0.97]})
    history.attrs["best_epoch"] = 2
    balance = pd.DataFrame(
        {"no": [0.2, 0.3], "yes": [0.8, 0.7]}, index=pd.Index(["train", "test"], name="split")
    )
    axes = [
        viz.plot_rating_distribution(rng.integers(1, 6, 100)),
        viz.plot_long_tail(rng.integers(1, 50, 30)),
        viz.plot_user_activity(rng.integers(20, 200, 50)),
        viz.plot_token_lengths({"items": [10, 12, 15], "users": [40, 60]}),
        viz.plot_label_balance(balance),
        viz.plot_history(history, ["val/rating/rmse"], ylabel="RMSE (stars)"),
        viz.plot_metric_bars({"MF": 0.94, "ours": 0.93}, xlabel="RMSE (stars)", references={"SVD": 0.9515}),
    ]
    for ax in axes[:-1]:
        assert ax.get_xlabel() and ax.get_ylabel()
    assert axes[-1].get_xlabel() == "RMSE (stars)"  # bars are named on the y axis
    assert [t.get_text() for t in axes[-1].get_yticklabels()] == ["MF", "ours"]
    assert axes[1].get_yscale() == "log"
    assert "best epoch (2)" in [t.get_text() for t in axes[5].get_legend().get_texts()]


def test_save_figure_writes_a_png(tmp_path):
    ax = viz.plot_rating_distribution([1, 2, 3, 4, 5, 5])
    path = viz.save_figure(ax.figure, tmp_path, "ratings")
    assert path == tmp_path / "figures" / "ratings.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
