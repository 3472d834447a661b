"""Notebook 08's tables, plots and generated sentences follow the numbers they are given."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pandas as pd
import pytest

from mtrec_utils.analyses.finetuning.finetune import FinetuneResult
from mtrec_utils.viz.finetune import (
    comparison_table,
    describe_comparison,
    describe_task_specific,
    plot_profile,
    plot_quality_vs_params,
    plot_sweep,
)


def _result(mode, trainable, auc, rmse, seconds, memory):
    metrics = {"test_recommended_auc": auc, "test_rating_rmse": rmse, "test_department_accuracy": 0.5}
    return FinetuneResult(
        mode, trainable, 1000, 10, seconds, 16 / seconds, memory, "cpu", metrics, pd.DataFrame()
    )


@pytest.fixture
def table():
    return comparison_table(
        [_result("full", 1000, 0.90, 1.00, 2.0, 400.0), _result("lora", 10, 0.80, 1.10, 1.0, 100.0)]
    )


def test_comparison_table_and_sentences(table):
    assert table.loc["lora", "trainable_share"] == pytest.approx(0.01)
    text = describe_comparison(table, "full")
    assert "Best recommended AUC: full (0.900)" in text
    assert "lora: trains 10 encoder weights (1.00%); AUC -0.100 and RMSE +0.100" in text
    assert "0.50x the time and 0.25x the memory" in text
    with pytest.raises(ValueError, match="reference='adalora'"):
        describe_comparison(table, "adalora")
    with pytest.raises(ValueError, match="empty"):
        comparison_table([])


def test_task_specific_sentence_says_better_or_not(table):
    shared, per_task = table.loc["lora"].copy(), table.loc["lora"].copy()
    per_task["test_recommended_auc"], per_task["test_rating_rmse"] = 0.85, 1.20
    per_task["trainable"], per_task["step_seconds"] = 30, 3.0
    text = describe_task_specific(shared, per_task)
    assert "recommended AUC: per-task 0.850 vs shared 0.800 (better" in text
    assert "rating RMSE: per-task 1.200 vs shared 1.100 (not better" in text
    assert "3.0x the trainable weights and 3.0x the step time" in text


def test_plots_are_labelled_and_saved(table, tmp_path):
    fig = plot_quality_vs_params(table, path=tmp_path / "q.png")
    assert "trainable" in fig.axes[0].get_xlabel() and "AUC" in fig.axes[0].get_ylabel()
    profile = pd.DataFrame({"ms_per_step": [1.0, 2.0]}, index=["tokenise", "backward"])
    fig = plot_profile({"full": profile, "lora": profile / 2}, tmp_path / "p.png")
    assert fig.axes[0].get_xlabel() == "time per training step (ms)"
    sweep = pd.DataFrame({"LR": [1e-3, 3e-3], "m": [0.7, 0.8]})
    fig = plot_sweep(sweep, "m", ["LR"], tmp_path / "s.png")
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["LR=0.001", "LR=0.003"]
    assert all((tmp_path / f).exists() for f in ("q.png", "p.png", "s.png"))
    with pytest.raises(ValueError, match="metric='nope'"):
        plot_quality_vs_params(table, "nope")
