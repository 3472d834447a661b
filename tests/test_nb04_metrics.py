"""Notebook 04 at smoke: it records every required metric, and the numbers are consistent."""

from __future__ import annotations

import math

import pytest
from nbexec import metrics_of

REQUIRED = (
    "ml_u1_rmse",
    "ml_u1_like_auc",
    "ml_u1_ndcg10",
    "clothing_recommended_auc",
    "clothing_rating_rmse",
)
STRATEGIES = ("ew", "static", "uw", "gradnorm", "dwa", "pcgrad")


@pytest.fixture(scope="module")
def metrics():
    return metrics_of("04")


@pytest.mark.notebooks
def test_joint_and_single_task_metrics_are_recorded_and_plausible(metrics):
    for stem in REQUIRED:
        for kind in ("joint", "single"):
            assert math.isfinite(metrics[f"{stem}_{kind}"]), f"{stem}_{kind}"
    for kind in ("joint", "single"):
        assert 0.7 < metrics[f"ml_u1_rmse_{kind}"] < 1.3  # the global-mean predictor scores about 1.15
        assert 0.5 < metrics[f"ml_u1_like_auc_{kind}"] <= 1.0
        assert 0.0 <= metrics[f"ml_u1_ndcg10_{kind}"] <= 1.0
        assert 0.7 < metrics[f"clothing_recommended_auc_{kind}"] <= 1.0  # text is informative even at smoke
        assert 0.5 < metrics[f"clothing_rating_rmse_{kind}"] < 1.5


@pytest.mark.notebooks
def test_every_strategy_schedule_and_mmoe_is_measured(metrics):
    for s in STRATEGIES:
        for stem in REQUIRED:
            assert math.isfinite(metrics[f"{stem}_joint_{s}"])
    for schedule in ("joint", "round_robin", "proportional"):
        assert math.isfinite(metrics[f"ml_u1_rmse_schedule_{schedule}"])
    # the same seed and settings give the same model, whether or not cosines are measured
    assert metrics["ml_u1_rmse_schedule_joint"] == pytest.approx(metrics["ml_u1_rmse_joint"], rel=1e-9)
    assert metrics["ml_u1_rmse_joint_ew"] == pytest.approx(metrics["ml_u1_rmse_joint"], rel=1e-9)
    assert math.isfinite(metrics["ml_u1_rmse_joint_mmoe"])


@pytest.mark.notebooks
def test_gradient_cosines_and_restored_checkpoint(metrics):
    cosines = [v for k, v in metrics.items() if "_grad_cosine_" in k]
    assert len(cosines) == 2 * (3 + 3)  # first and last, 3 task pairs per dataset
    assert all(-1.0 <= c <= 1.0 for c in cosines)
    assert metrics["ml_u1_restored_val_rmse_error"] < 1e-6  # the reloaded checkpoint is the best epoch
    assert metrics["ml_u1_best_epoch_joint"] >= 1
