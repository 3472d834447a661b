"""Notebook 08 at smoke: every mode's numbers are recorded and in range, and the counts are exact."""

from __future__ import annotations

import pytest
from nbexec import metrics_of

MODES = ("frozen", "full", "lora", "adalora", "ia3", "adapter")


@pytest.fixture(scope="module")
def m():
    return metrics_of("08")


@pytest.mark.notebooks
def test_trainable_counts_are_the_measured_ones(m):
    assert m["clothing_trainable_params_lora"] == 73_728  # r=8 on query and value of MiniLM
    assert m["clothing_trainable_params_ia3"] == 16_128
    assert m["clothing_trainable_params_full"] == m["clothing_total_params_encoder"] == 22_713_216
    assert m["clothing_trainable_params_frozen"] == 0
    assert m["clothing_trainable_params_lora_per_task"] == 3 * 73_728
    for mode in ("lora", "adalora", "ia3", "adapter"):
        assert 0 < m[f"clothing_trainable_params_{mode}"] < 0.01 * m["clothing_trainable_params_full"]


@pytest.mark.notebooks
def test_every_mode_has_time_memory_and_metrics(m):
    for mode in MODES:
        assert 0 < m[f"clothing_step_seconds_{mode}"] < 30, mode
        assert 0 < m[f"clothing_peak_memory_mb_{mode}"] < 10_000, mode
        assert 0.3 < m[f"clothing_recommended_auc_{mode}"] <= 1, mode
        assert 0.3 < m[f"clothing_rating_rmse_{mode}"] < 2.5, mode
        assert 0 <= m[f"clothing_department_accuracy_{mode}"] <= 1, mode
    # full fine-tuning keeps gradients and AdamW state for every weight: the most memory
    assert m["clothing_peak_memory_mb_full"] == max(m[f"clothing_peak_memory_mb_{x}"] for x in MODES)
    assert m["clothing_peak_memory_mb_frozen"] == min(m[f"clothing_peak_memory_mb_{x}"] for x in MODES)


@pytest.mark.notebooks
def test_profile_sweep_and_launch_are_recorded(m):
    phases = ("tokenise", "encoder_forward", "heads_and_loss", "backward", "optimizer")
    for mode in ("full", "lora", "frozen"):
        shares = [m[f"clothing_step_share_{p}_{mode}"] for p in phases]
        assert sum(shares) == pytest.approx(1.0) and min(shares) >= 0
    assert m["clothing_step_share_optimizer_full"] > m["clothing_step_share_optimizer_lora"]
    assert m["clothing_sweep_points"] == 2
    assert m["clothing_sweep_best_lr"] in (3e-4, 3e-3) and m["clothing_sweep_best_rank"] in (4, 8)
    assert 0 <= m["clothing_sweep_best_val_auc"] <= 1 and m["clothing_sweep_seconds_per_point"] > 0
    assert m["clothing_launch_samples_per_second_1proc"] > 0


@pytest.mark.notebooks
def test_lora_against_full_over_seeds_is_recorded(m):
    # smoke: one seed (section 2's runs, reused) on the small test slice; no spread, so no _std
    assert m["clothing_full_test_reviews"] == 100
    for mode in ("lora", "full"):
        assert m[f"clothing_recommended_auc_full_test_{mode}"] == m[f"clothing_recommended_auc_{mode}"]
        assert f"clothing_recommended_auc_full_test_{mode}_std" not in m
    diff = m["clothing_recommended_auc_full_test_lora"] - m["clothing_recommended_auc_full_test_full"]
    assert m["clothing_recommended_auc_full_test_diff_lora_full"] == pytest.approx(diff)
    assert "clothing_recommended_auc_full_test_diff_lora_full_std" not in m
