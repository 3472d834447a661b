"""Notebooks 06 and 07 at smoke: the recorded numbers exist, are in range, and back the text's claims."""

from __future__ import annotations

import pytest
from nbexec import metrics_of


@pytest.fixture(scope="module")
def ads_metrics():
    return metrics_of("06")


@pytest.fixture(scope="module")
def personalization_metrics():
    return metrics_of("07")


@pytest.mark.notebooks
def test_ads_metrics_are_recorded_and_sane(ads_metrics):
    m = ads_metrics
    for name in ("ads_ctr_auc_joint", "ads_ctr_auc_feature", "ads_ctr_auc_naive"):
        assert 0.6 < m[name] < 1.0, name  # clicks are predictable from user, ad and position
    assert m["ads_ctr_auc_joint"] > m["ads_ctr_auc_naive"]  # the logged position explains clicks
    for name in ("ads_true_ndcg10_debiased", "ads_true_ndcg10_naive", "ads_true_ndcg10_feature"):
        assert m["ads_true_ndcg10_logged"] < m[name] < 1.0, name  # every model re-ranks better than the log
    assert m["ads_true_ndcg10_debias_gain"] == pytest.approx(
        m["ads_true_ndcg10_debiased"] - m["ads_true_ndcg10_naive"], abs=1e-12
    )
    curve = [m[f"ads_pal_position_curve_{k}"] for k in range(1, 11)]
    assert curve[0] == 1.0 and curve[-1] < 0.8 and all(a >= b - 0.05 for a, b in zip(curve, curve[1:]))


@pytest.mark.notebooks
def test_personalization_metrics_are_recorded_and_sane(personalization_metrics):
    m = personalization_metrics
    assert 0 < m["ml_u1_coverage_at10_joint"] <= 1
    assert 0 <= m["ml_u1_ndcg10_cold_users_joint"] <= 1 and m["ml_u1_num_cold_users"] > 0
    assert m["ml_u1_coverage_at10_popularity"] < m["ml_u1_coverage_at10_joint"]  # one list for everybody
    assert m["ml_u1_head_share_popularity"] > 0.95  # popularity recommends (almost) only head items
    for key in ("joint", "single", "mf", "popularity"):
        assert 0 <= m[f"ml_u1_diversity_{key}"] <= 1 and m[f"ml_u1_novelty_{key}"] > 0
    assert m["ml_u1_novelty_popularity"] < m["ml_u1_novelty_joint"]


@pytest.mark.notebooks
def test_every_activity_bucket_is_recorded_even_when_empty(personalization_metrics):
    keys = ("le20", "21_50", "51_100", "gt100")
    names = [f"ml_u1_{m}_activity_{k}_joint" for m in ("ndcg10", "rmse") for k in keys]
    assert set(names) <= set(personalization_metrics)  # a fixed set of names at every seed and profile
    values = [personalization_metrics[n] for n in names]
    assert None in values  # the smoke slice has no user with more than 100 training ratings
    assert all(v is None or 0.0 <= v < 5.0 for v in values)
