"""Notebooks 02 and 03 executed at smoke: the metrics they record, with explicit tolerances.

Smoke runs use a few thousand ratings and two epochs, so the learned numbers are loose sanity
bounds here; the `cpu` profile's numbers are in the README's results table.
"""

from __future__ import annotations

import pytest
from nbexec import metrics_of

pytestmark = pytest.mark.notebooks

U1_TEST_SHA256 = "18c6014a4b2c7324f250a63f8904a7b16b2b19f911129e346141507b0cbac950"


def test_nb02_rebuilds_u1_exactly_and_checks_the_splits():
    m = metrics_of("02")
    assert m["ml_u1_test_sha256"] == U1_TEST_SHA256
    assert m["ml_u1_train_test_overlap"] == 0
    assert m["ml_u1_cold_user_test_rows"] == 0 and 0 < m["ml_u1_cold_item_test_rows"] < 100
    rates = [m[f"clothing_{p}_recommended_rate"] for p in ("train", "val", "test")]
    assert max(rates) - min(rates) < 0.005  # stratified
    assert 0.5 < m["ml_u1_like_rate"] < 0.6


def test_nb02_our_pipeline_is_faster_than_the_article_s():
    m = metrics_of("02")
    assert m["article_pipeline_speedup"] > 1.0
    assert m["article_pipeline_speedup_user_batches"] > 1.0
    assert m["text_items_median_tokens"] < m["text_users_median_tokens"] < 128


def test_nb03_rating_models_beat_the_global_mean():
    m = metrics_of("03")
    assert m["ml_u1_rmse_single"] < 1.1
    assert m["ml_u1_rmse_single"] < m["ml_u1_rmse_global_mean"]
    assert m["ml_u1_rmse_bias"] < m["ml_u1_rmse_global_mean"]
    assert m["ml_u1_rmse_mf"] < 1.15
    assert 0.6 < m["ml_u1_mae_single"] < 0.95


def test_nb03_classification_and_ranking_are_better_than_chance():
    m = metrics_of("03")
    assert 0.55 < m["ml_u1_like_auc_single"] <= 1.0
    assert 0.0 < m["ml_u1_ndcg10_single"] <= 1.0 and 0.0 < m["ml_u1_ndcg10_popularity"] <= 1.0
    assert 0.0 <= m["ml_genres_f1_micro_single"] <= 1.0
    assert 0.8 < m["clothing_recommended_auc_single"] <= 1.0
    assert 0.8 < m["clothing_recommended_auc_logreg_probe"] <= 1.0
    assert m["clothing_rating_rmse_single"] < 1.0
    assert m["clothing_department_accuracy_single"] > 0.5
