"""The results report: tables, claims, summary, README block and plots, on made-up metrics."""

from __future__ import annotations

import json

import matplotlib
import pytest

from mtrec_utils.viz.report import (
    mode_table,
    plot_gains,
    plot_quality_vs_cost,
    plot_strategies,
    strategy_table,
)
from mtrec_utils.workbook import report

matplotlib.use("Agg")

METRICS = {
    "ml_u1_rmse_single": 0.96,
    "ml_u1_rmse_single_std": 0.003,
    "ml_u1_rmse_joint": 0.95,
    "ml_u1_rmse_joint_std": 0.003,
    "ml_u1_ndcg10_single": 0.38,
    "ml_u1_ndcg10_single_std": 0.01,
    "ml_u1_ndcg10_joint": 0.32,
    "ml_u1_ndcg10_joint_std": 0.01,
    "ml_u1_like_auc_single": 0.770,
    "ml_u1_like_auc_joint": 0.771,
    "ml_u1_rmse_joint_ew": 0.95,
    "ml_u1_rmse_joint_uw": 0.94,
    "ml_genre_purity_raw": 0.85,
    "ml_genre_purity_raw_std": 0.01,
    "ml_genre_purity_joint": 0.76,
    "ml_genre_purity_joint_std": 0.01,
    "clothing_recommended_auc_full": 0.80,
    "clothing_recommended_auc_lora": 0.79,
    "clothing_recommended_auc_full_test_full": 0.80,
    "clothing_recommended_auc_full_test_full_std": 0.002,
    "clothing_recommended_auc_full_test_lora": 0.79,
    "clothing_recommended_auc_full_test_lora_std": 0.002,
    "clothing_trainable_params_full": 22_713_216,
    "clothing_trainable_params_lora": 73_728,
    "clothing_step_seconds_full": 0.7,
    "clothing_step_seconds_lora": 0.37,
}


def test_gain_table_says_where_joint_helps_hurts_or_is_noise():
    gains = report.gain_table(METRICS).set_index("task")
    assert gains.loc["u1 rating RMSE", "verdict"] == "joint better"  # 0.01 lower, noise 0.0042
    assert gains.loc["u1 NDCG@10", "verdict"] == "joint worse"
    assert gains.loc["u1 like AUC", "verdict"] == "one seed: no verdict"  # no std recorded: one draw
    close = report.gain_table({**METRICS, "ml_u1_ndcg10_joint": 0.37}).set_index("task")
    assert close.loc["u1 NDCG@10", "verdict"] == "no clear difference"  # 0.01 lower, noise 2 * 0.014
    assert gains.loc["u1 rating RMSE", "gain"] == pytest.approx(0.01)


def test_claims_get_a_verdict_or_say_they_were_not_measured():
    claims = report.check_claims(METRICS).set_index("claim")
    purity = claims.loc[[c for c in claims.index if "joint embedding" in c][0]]
    assert purity.verdict == "not supported" and purity.ours == 0.76
    lora = claims.loc[[c for c in claims.index if "LoRA" in c][0]]
    assert lora.verdict == "not supported"  # "matches": 0.79 vs 0.80 is worse by more than 2 * 0.0028
    close = report.check_claims({**METRICS, "clothing_recommended_auc_full_test_lora": 0.798}).set_index(
        "claim"
    )
    assert close.loc[lora.name, "verdict"] == "supported"
    one_draw = {k: v for k, v in METRICS.items() if not k.startswith("ml_genre_purity_joint_std")}
    single = report.check_claims(one_draw).set_index("claim")
    assert single.loc[purity.name, "verdict"] == "one seed: no verdict"  # a single draw decides nothing
    assert (claims.verdict == "not measured in this run").sum() >= 5


def test_summary_is_written_from_the_numbers():
    text = report.summary_markdown(METRICS)
    assert "single 0.9600 ± 0.0030, joint 0.9500 ± 0.0030 → joint better" in text
    assert "`ml_u1_rmse_joint` <= 0.9: measured 0.9500, **not met**" in text
    assert "not supported" in text and "§2.1 joint embedding" in text


def test_results_table_has_references_and_bands(tmp_path, monkeypatch):
    (tmp_path / "metrics").mkdir()
    doc = {"notebook": "04_joint_training", "profile": "cpu", "seed": 0, "device": "cpu", "metrics": METRICS}
    (tmp_path / "metrics" / "04_joint_training.json").write_text(json.dumps(doc))
    run = report.load_run(tmp_path)
    band = {"value": 0.95, "kind": "seeds", "tol": 0.01}
    expected = {"metrics": {"04_joint_training": {"ml_u1_rmse_joint": band}}}
    monkeypatch.setattr(report, "load_expected", lambda p: expected)
    table = report.results_table(run).set_index("metric")
    assert table.loc["ml_u1_rmse_joint", "status"] == "pass"
    assert "Surprise SVD++, u1" in table.loc["ml_u1_rmse_joint", "reference"]
    assert table.loc["ml_u1_like_auc_joint", "status"] == "new"
    with pytest.raises(FileNotFoundError, match="execute the notebooks first"):
        report.load_run(tmp_path / "nothing")


def test_band_provenance_counts_each_kind_of_band_per_notebook(monkeypatch):
    metrics = {
        "a": {"value": 1.0, "kind": "seeds", "tol": 0.1},
        "b": {"value": 2, "kind": "exact"},
        "c": {"value": 3.0, "kind": "assumed", "tol": 0.09},
    }
    doc = {
        "how": "whole-file command",
        "date": "2026-11-27",
        "seeds": [0],
        "notebooks": {"05_x": {"how": "derive --seeds 0 1 2", "date": "2026-11-28", "seeds": [0, 1, 2]}},
        "metrics": {"04_x": dict(metrics), "05_x": {"a": metrics["a"]}},
    }
    monkeypatch.setattr(report, "load_expected", lambda p: doc)
    table = report.band_provenance("cpu").set_index("notebook")
    assert table.loc["05_x", ["seeds run", "seeds", "assumed", "how"]].tolist() == [
        "0, 1, 2",
        1,
        0,
        "derive --seeds 0 1 2",
    ]
    assert table.loc["04_x", ["seeds", "exact", "assumed", "how"]].tolist() == [1, 1, 1, "whole-file command"]

    def no_file(profile):
        raise FileNotFoundError(profile)

    monkeypatch.setattr(report, "load_expected", no_file)
    assert report.band_provenance("gpu").empty  # a profile without bands yet


def test_readme_block_is_replaced_between_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{report.START}\nold\n{report.END}\n\n## after\n")
    run = {"04_joint_training": {"profile": "cpu", "metrics": METRICS}}
    table = report.readme_table(run)
    assert "| u1 rating RMSE | 0.9600 ± 0.0030 | 0.9500 ± 0.0030 |" in table
    report.write_readme(table, "measured 2026-11-27 on a 2-core CPU", readme)
    text = readme.read_text()
    assert "old" not in text and "measured 2026-11-27" in text and text.endswith("## after\n")
    readme.write_text("# no markers\n")
    with pytest.raises(ValueError, match="no <!-- results:start -->"):
        report.write_readme(table, "", readme)


def test_plots_draw_what_was_recorded_and_refuse_an_empty_run():
    fig = plot_gains(report.gain_table(METRICS))
    assert len(fig.axes) == 3 and fig.axes[0].get_ylabel() == "RMSE"
    modes = mode_table(METRICS)
    assert list(modes["mode"]) == ["full", "lora"]
    assert len(plot_quality_vs_cost(modes).axes) == 2
    table = strategy_table(METRICS, ["ml_u1_rmse"])
    assert table.loc["ml_u1_rmse", "uw"] == 0.94 and table.loc["ml_u1_rmse", "single"] == 0.96
    assert len(plot_strategies(table).axes) == 1
    with pytest.raises(ValueError, match="notebook 04"):
        plot_gains(report.gain_table({}))
    with pytest.raises(ValueError, match="notebook 08"):
        plot_quality_vs_cost(mode_table({}))
