"""Cold-start buckets, thinning of training interactions and per-bucket metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtrec_utils.analyses.embedding.coldstart import (
    COUNT_EDGES,
    assign_buckets,
    bucket_labels,
    bucket_metrics,
    interaction_counts,
    thin_interactions,
)


def test_bucket_labels_and_assignment():
    assert bucket_labels() == ["0", "1-5", "6-20", "21-50", ">50"]
    assert bucket_labels((-1, 0, 1, np.inf)) == ["0", "1", ">1"]
    b = assign_buckets([0, 1, 5, 6, 20, 21, 50, 51, 400])
    assert list(b) == ["0", "1-5", "1-5", "6-20", "6-20", "21-50", "21-50", ">50", ">50"]
    assert b.ordered
    with pytest.raises(ValueError, match="edges"):
        bucket_labels((0, 0, 5))
    with pytest.raises(ValueError, match="counts"):
        assign_buckets([-2, 3])


def test_interaction_counts():
    assert interaction_counts([0, 2, 2, 2], 4).tolist() == [1, 0, 3, 0]


def test_thin_interactions_makes_the_chosen_entities_cold_and_is_seeded():
    idx = np.repeat(np.arange(20), 10)  # 20 entities with 10 rows each
    masks = [
        thin_interactions(idx, 0.5, keep=(0, 2), generator=torch.Generator().manual_seed(1)) for _ in range(2)
    ]
    assert (masks[0] == masks[1]).all()
    counts = interaction_counts(idx[masks[0]], 20)
    assert set(counts.tolist()) <= {0, 2, 10}
    assert (counts < 10).sum() == 10  # half the entities were thinned
    other = thin_interactions(idx, 0.5, keep=(0, 2), generator=torch.Generator().manual_seed(2))
    assert (other != masks[0]).any()
    assert thin_interactions(idx, 0.0).all()
    with pytest.raises(ValueError, match="fraction=1.5"):
        thin_interactions(idx, 1.5)
    with pytest.raises(ValueError, match="keep"):
        thin_interactions(idx, 0.5, keep=(-1,))


def test_bucket_metrics_groups_errors_by_training_count():
    counts = np.array([0, 3, 100])
    entity = np.array([0, 0, 1, 2, 2])
    y = np.array([4.0, 2.0, 3.0, 5.0, 1.0])
    p = np.array([3.0, 2.0, 5.0, 5.0, 2.0])
    table = bucket_metrics(entity, counts, y, p, COUNT_EDGES)
    assert list(table.index) == bucket_labels()
    assert table.loc["0", "rmse"] == pytest.approx(np.sqrt(0.5))
    assert table.loc["1-5", "rmse"] == pytest.approx(2.0)
    assert table.loc[">50", "mae"] == pytest.approx(0.5)
    assert table.loc["0", "rows"] == 2 and table.loc[">50", "entities"] == 1
    assert table.loc["6-20", "rows"] == 0 and np.isnan(table.loc["6-20", "rmse"])
    with pytest.raises(ValueError, match="aligned"):
        bucket_metrics(entity, counts, y, p[:2])


def test_predict_pairs_matches_the_model_called_directly():
    from test_joint import toy_bundle

    from mtrec_utils.analyses.embedding.coldstart import predict_pairs
    from mtrec_utils.models.sharing import build_model

    b = toy_bundle()
    torch.manual_seed(0)
    model = build_model("hard", b.make_towers(), b.select(["rating"])).eval()
    u, i = torch.tensor([0, 1, 2, 3]), torch.tensor([4, 5, 6, 7])
    direct = model({"user": u, "item": i}, ["rating"])["rating"].reshape(-1).detach().numpy()
    assert np.allclose(predict_pairs(model, u, i, batch_size=3), direct)
