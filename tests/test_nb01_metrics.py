"""Notebook 01 at smoke: the numbers it records prove what its text claims."""

from __future__ import annotations

import pytest
from nbexec import metrics_of


@pytest.fixture(scope="module")
def metrics():
    return metrics_of("01")


@pytest.mark.notebooks
def test_gradient_check_and_optimizer_claims(metrics):
    assert metrics["gradcheck_max_rel_error"] < 1e-6
    assert metrics["sgd_l2_equivalence_error"] < 1e-10  # SGD: weight decay == L2 term
    assert metrics["adam_l2_torch_weight_decay_error"] < 1e-10  # torch Adam(weight_decay) is an L2 term
    assert metrics["adamw_article_rule_error"] < 1e-10  # the article's rule with Adam's step is AdamW
    assert metrics["adam_vs_adamw_param_diff"] > 0.05  # ... and AdamW is not Adam + L2


@pytest.mark.notebooks
def test_article_weights_follow_from_the_real_counts(metrics):
    n1, n2 = metrics["ml_u1_task1_num_samples"], metrics["ml_u1_task2_num_samples"]
    assert n1 == 80_000 and 900 <= n2 <= 943  # u1.base rows; users with a liked item
    assert metrics["ml_u1_article42_weight_task1"] == pytest.approx(n1 / (n1 + n2), rel=1e-12)
    assert metrics["ml_u1_article42_weight_task2"] == 1.0
    assert metrics["ml_u1_like_num_samples"] == 80_000
    assert metrics["ml_u1_like_article42_weight_task1"] == pytest.approx(0.5)
    assert metrics["article42_objective_identity_error"] < 1e-9
    assert metrics["synth_per_sample_identity_error"] < 1e-12


@pytest.mark.notebooks
def test_per_sample_averaging_starves_the_small_task(metrics):
    per_sample = metrics["synth_ml_sizes_final_loss_per_sample_task2"]
    assert per_sample > metrics["synth_ml_sizes_final_loss_task_mean_task2"] + 0.05
    assert per_sample > metrics["synth_ml_sizes_final_loss_article_4_2_task2"] + 0.05


@pytest.mark.notebooks
def test_toy_strategies_land_on_different_points(metrics):
    names = ("ew", "static", "uw", "gradnorm", "dwa", "pcgrad")
    final = {n: (metrics[f"toy_final_loss_{n}_task1"], metrics[f"toy_final_loss_{n}_task2"]) for n in names}
    assert all(l1 >= 0.1 and l2 >= 1.0 for l1, l2 in final.values())  # the toy's loss floors
    assert final["dwa"] == pytest.approx(final["ew"], rel=1e-3)  # DWA's weights return to 1
    assert (
        final["static"][0] < final["ew"][0] and final["static"][1] > final["ew"][1]
    )  # w1 = 0.8 favours task 1
    assert final["gradnorm"][0] < final["ew"][0]  # balancing gradient norms undoes task 2's 10x scale
    assert -1 <= metrics["synth_gradient_cosine_first_step"] < 0  # the synthetic tasks conflict
