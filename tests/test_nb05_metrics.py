"""Notebook 05 at smoke: joint space, fusions, cold-start buckets, cross-domain and augmentation metrics."""

from __future__ import annotations

import math

import pytest
from nbexec import metrics_of

from mtrec_utils.analyses.embedding.coldstart import bucket_labels

FUSIONS = ("sum", "concat", "gate", "attention", "sum_id_text")
COLD_MODELS = ("id_only", "text_only", "id_text", "fusion")


BUCKETS = bucket_labels()


@pytest.fixture(scope="module")
def metrics():
    return metrics_of("05")


@pytest.mark.notebooks
def test_joint_space_purity_and_ranking(metrics):
    for key in ("raw", "joint", "popular_raw", "popular_joint"):
        assert metrics["ml_genre_purity_chance"] < metrics[f"ml_genre_purity_{key}"] <= 1.0, key
    assert 0.2 < metrics["ml_genre_purity_chance"] < 0.5  # MovieLens genres: about a third of pairs share one
    assert metrics["ml_genre_purity_raw"] > 0.7  # the item text names the genres
    for key in ("ml_joint_space_ndcg10_zero_shot", "ml_joint_space_ndcg10"):
        assert 0.0 <= metrics[key] <= 1.0
    assert 0.7 < metrics["ml_joint_space_rmse"] < 2.0


@pytest.mark.notebooks
def test_every_fusion_is_measured_and_plausible(metrics):
    for f in FUSIONS:
        assert 0.7 < metrics[f"ml_u1_rmse_fusion_{f}"] < 1.4, f
        assert 0.5 < metrics[f"ml_u1_like_auc_fusion_{f}"] <= 1.0, f


@pytest.mark.notebooks
def test_cold_start_buckets_are_recorded_for_every_model(metrics):
    for model in COLD_MODELS:
        assert 0.7 < metrics[f"ml_cold_items_rmse_{model}"] < 1.6, model
        for kind in ("item", "user"):  # every bucket is recorded, an empty one as None
            names = {f"ml_cold_{kind}_rmse_{model}_{b.replace('>', 'gt').replace('-', '_')}" for b in BUCKETS}
            assert names <= set(metrics), sorted(names - set(metrics))
            assert all(metrics[k] is None or 0.0 < metrics[k] < 3.0 for k in names)
        assert all(metrics[f"ml_cold_item_rmse_{model}_{b}"] is not None for b in ("0", "1_5", "6_20"))
    for key in ("ml_cold_gate_id_weight_cold", "ml_cold_gate_id_weight_warm"):
        assert 0.0 <= metrics[key] <= 1.0


@pytest.mark.notebooks
def test_cross_domain_both_directions_are_consistent(metrics):
    assert metrics["ml_crossdomain_gain_rating_rmse"] == pytest.approx(
        metrics["ml_crossdomain_rmse_alone"] - metrics["ml_crossdomain_rmse_together"], abs=1e-6
    )
    assert metrics["clothing_crossdomain_gain_recommended_auc"] == pytest.approx(
        metrics["clothing_crossdomain_auc_together"] - metrics["clothing_crossdomain_auc_alone"], abs=1e-6
    )
    assert 0.6 < metrics["clothing_crossdomain_auc_alone"] <= 1.0
    assert 0.7 < metrics["ml_crossdomain_rmse_alone"] < 1.4
    for key in ("ml_crossdomain_gain_like_auc", "clothing_crossdomain_gain_department_accuracy"):
        assert -1.0 <= metrics[key] <= 1.0


@pytest.mark.notebooks
def test_augmentation_in_the_low_data_setting(metrics):
    none, aug = metrics["clothing_lowdata_auc_none"], metrics["clothing_lowdata_auc_text_aug"]
    assert metrics["clothing_lowdata_auc_gain_text_aug"] == pytest.approx(aug - none, abs=1e-6)
    assert 0.5 < none <= 1.0 and 0.5 < aug <= 1.0
    assert metrics["clothing_fulldata_auc"] > 0.8  # all the training reviews
    for name in ("none", "crop", "mask", "reorder", "all_three"):
        assert 0.0 <= metrics[f"ml_lowdata_seq_ndcg10_{name}"] <= 1.0
    assert math.isfinite(metrics["ml_lowdata_seq_ndcg10_gain_all"])
