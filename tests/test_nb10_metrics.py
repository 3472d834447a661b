"""Notebook 10 at smoke: the fixed set of names is recorded, and every value is in a range that means something.

At smoke one seed runs on tiny slices, so no comparison between methods is asserted (naive fine-tuning
need not forget more than replay there); only what must hold whatever the seed.
"""

from __future__ import annotations

import math

import pytest
from nbexec import metrics_of

METHODS = ("scratch", "naive", "replay", "ewc", "adapter")
MODELS = ("frozen", "lora", "augmented")
PERTURBATIONS = ("typo", "drop", "synonym")
# smoke: k in (0, 8, 32) with at most 64 labels, so department (6 classes) stops at k = 8
CURVES = {
    "clothing_fewshot_recommended": (0, 8, 32),
    "clothing_fewshot_department": (0, 8),
    "ml_u1_fewshot_like": (0, 8, 32),
}


def expected_names() -> set[str]:
    names = {"ml_continual_periods", "ml_continual_train_ratings", "outlook_claims_supported"}
    for m in METHODS:
        names |= {
            f"ml_continual_{what}_{m}"
            for what in ("forgetting", "new_period_rmse", "final_rmse", "forgetting_auc", "seconds")
        }
    for stem, ks in CURVES.items():
        names |= {f"{stem}_prompt_k{k}" for k in ks} | {f"{stem}_head_k{k}" for k in ks if k > 0}
        names.add(f"{stem}_chance")
    for model in MODELS:
        names |= {f"clothing_perturb_area_{model}", f"clothing_perturb_auc_clean_{model}"}
        names |= {f"clothing_perturb_area_{model}_{p}" for p in PERTURBATIONS}
        names |= {f"clothing_perturb_drop_{model}", f"clothing_perturb_seconds_{model}"}
    return names | {
        "clothing_perturb_test_reviews",
        "clothing_perturb_max_strength",
        "clothing_perturb_seconds_perturb",
    }


@pytest.fixture(scope="module")
def m():
    return metrics_of("10")


@pytest.mark.notebooks
def test_the_fixed_set_of_names_is_recorded(m):
    names = expected_names()
    assert sorted(names - set(m)) == [], "missing"
    assert sorted(set(m) - names) == [], "not in the fixed set (add them here and derive the bands again)"
    assert not any(k.endswith("_std") for k in m)  # one k-shot seed at smoke: no spread is recorded


@pytest.mark.notebooks
def test_continual_numbers_are_ratings_errors_of_the_time_ordered_periods(m):
    assert m["ml_continual_periods"] == 4
    assert m["ml_continual_train_ratings"] == 6_400  # 8,000 ratings drawn, 20 % of each period held out
    for method in METHODS:
        for what in ("new_period_rmse", "final_rmse"):
            assert 0.7 < m[f"ml_continual_{what}_{method}"] < 1.6, (what, method)  # stars, 1-5 scale
        assert abs(m[f"ml_continual_forgetting_{method}"]) < 0.5, method  # an RMSE change in stars
        assert abs(m[f"ml_continual_forgetting_auc_{method}"]) < 0.5, method
        assert m[f"ml_continual_seconds_{method}"] > 0, method


@pytest.mark.notebooks
def test_fewshot_points_are_scores_and_chance_levels(m):
    for stem, ks in CURVES.items():
        points = [m[f"{stem}_prompt_k{k}"] for k in ks] + [m[f"{stem}_head_k{k}"] for k in ks if k]
        assert all(0 <= v <= 1 and math.isfinite(v) for v in points), stem
    assert m["clothing_fewshot_recommended_chance"] == m["ml_u1_fewshot_like_chance"] == 0.5  # AUC
    assert 0 < m["clothing_fewshot_department_chance"] < 0.5  # macro-F1 of guessing among 6 classes
    assert m["clothing_fewshot_recommended_prompt_k0"] > 0.5  # zero-shot reads the review: above chance


@pytest.mark.notebooks
def test_robustness_areas_are_mean_aucs(m):
    assert m["clothing_perturb_test_reviews"] == 60 and m["clothing_perturb_max_strength"] == 0.2
    for model in MODELS:
        per = [m[f"clothing_perturb_area_{model}_{p}"] for p in PERTURBATIONS]
        assert m[f"clothing_perturb_area_{model}"] == pytest.approx(sum(per) / 3)
        clean = m[f"clothing_perturb_auc_clean_{model}"]
        assert 0.5 < clean <= 1 and all(0 < a <= 1 for a in per), model
        # two strengths (0, 0.2): each area is the mean of the clean and the perturbed AUC
        mean_drop = sum(2 * (clean - a) for a in per) / 3
        assert m[f"clothing_perturb_drop_{model}"] == pytest.approx(mean_drop), model
        assert m[f"clothing_perturb_seconds_{model}"] > 0


@pytest.mark.notebooks
def test_one_seed_gives_the_outlook_claims_no_verdict(m):
    assert m["outlook_claims_supported"] == 0  # no _std at smoke: every claim says "one seed: no verdict"
