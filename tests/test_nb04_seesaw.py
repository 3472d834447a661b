"""Notebook 04, section 9 (the seesaw) at smoke: every metric is recorded and consistent."""

from __future__ import annotations

import math

import pytest
from nbexec import metrics_of

TASKS = ("rating", "like", "interest")
STEMS = ("ml_u1_rmse", "ml_u1_like_auc", "ml_u1_ndcg10")


@pytest.fixture(scope="module")
def metrics():
    return metrics_of("04")


@pytest.mark.notebooks
def test_affinity_of_every_ordered_pair_and_the_verdict(metrics):
    for stepped in TASKS:
        for read in TASKS:
            z = metrics[f"ml_u1_affinity_{stepped}_{read}"]
            assert math.isfinite(z) and z < 1.0  # 1 - L_after / L_before: below 1 for a positive loss
    assert metrics["ml_u1_affinity_predicts_harm"] in (0, 1)


@pytest.mark.notebooks
def test_architectures_tuning_and_the_best_configuration(metrics):
    for kind in ("mmoe", "ple", "best_joint", "best_single"):
        assert 0.7 < metrics[f"ml_u1_rmse_{kind}"] < 1.3
        assert 0.5 < metrics[f"ml_u1_like_auc_{kind}"] <= 1.0
        assert 0.0 <= metrics[f"ml_u1_ndcg10_{kind}"] <= 1.0
    # MMoE at SEED is section 5's run (one seed at smoke): the memo gives the same model
    assert metrics["ml_u1_rmse_mmoe"] == pytest.approx(metrics["ml_u1_rmse_joint_mmoe"], rel=1e-9)
    if "ml_u1_tuning_trials" in metrics:  # TUNE != "skip"
        assert 1 <= metrics["ml_u1_tuning_front_size"] <= metrics["ml_u1_tuning_trials"]
