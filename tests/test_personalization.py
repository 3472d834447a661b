"""Per-user quality, top-k list metrics and explanations of the personalization case study."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from mtrec_utils.analyses.cases import personalization as P
from mtrec_utils.data.tasks import movielens_tasks
from mtrec_utils.models import EntityTower, FrozenText, MultiTaskModel


def test_per_user_rmse_by_hand():
    out = P.per_user_rmse([1, 1, 2], [4, 2, 5], [3, 2, 5])
    assert out.loc[1, "rmse"] == pytest.approx(np.sqrt(0.5)) and out.loc[2, "rmse"] == 0.0
    assert out["num_test"].tolist() == [2, 1]
    with pytest.raises(ValueError, match="aligned"):
        P.per_user_rmse([1, 2], [3], [3, 4])


def test_user_groups_and_bucket_table():
    users = pd.DataFrame({"user_id": [1, 2, 3, 4], "age": [20, 30, 40, 60], "gender": ["M", "F", "M", "F"]})
    train = pd.DataFrame({"user_id": [1] * 5 + [2] * 30 + [3] * 80 + [4] * 120})
    groups = P.user_groups(users, train)
    assert groups["num_train"].tolist() == [5, 30, 80, 120]
    assert groups["activity"].astype(str).tolist() == ["<=20", "21-50", "51-100", ">100"]
    assert groups["age_group"].astype(str).tolist() == ["<=24", "25-34", "35-44", "45+"]
    per_user = pd.DataFrame({"ndcg": [0.1, 0.2, 0.3, 0.5]}, index=[1, 2, 3, 4])
    table = P.bucket_table(per_user, groups, "gender", ["ndcg"])
    assert table.loc["F", "ndcg_mean"] == pytest.approx(0.35) and table.loc["M", "ndcg_count"] == 2
    with pytest.raises(ValueError, match="by='city'"):
        P.bucket_table(per_user, groups, "city", ["ndcg"])
    with pytest.raises(ValueError, match=r"\['rmse'\]"):
        P.bucket_table(per_user, groups, "gender", ["rmse"])


def test_top_k_diversity_novelty_and_list_metrics():
    scores = np.array([[3.0, 2.0, 1.0, -np.inf], [-np.inf, 1.0, 2.0, 3.0]])
    top = P.top_k_items(scores, 2)
    assert top.tolist() == [[0, 1], [3, 2]]
    with pytest.raises(ValueError, match="fewer than k=4"):
        P.top_k_items(scores, 4)
    genres = np.array([[1, 0], [1, 0], [0, 1], [1, 1]], dtype=float)
    # list 1: same genre (distance 0); list 2: {0,1} vs {1}: Jaccard 1/2 -> distance 0.5
    assert P.intra_list_diversity(top, genres) == pytest.approx(0.25)
    counts = np.array([8, 4, 2, 1])
    assert P.novelty(np.array([[0, 3]]), counts, num_users=8) == pytest.approx(1.5)  # (0 + 3) / 2
    m = P.list_metrics(scores, counts, genres, num_users=8, k=2, head_fraction=0.25)
    assert m["coverage"] == 1.0 and m["arp"] == pytest.approx((8 + 4 + 1 + 2) / 4)
    assert m["head_share"] == pytest.approx(0.25) and m["diversity"] == pytest.approx(0.25)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    tasks = [t for n, t in movielens_tasks(["a", "b"]).items() if n in ("rating", "interest")]
    towers = {
        "user": EntityTower(5, 8, FrozenText(torch.randn(5, 6))),
        "item": EntityTower(7, 8, FrozenText(torch.randn(7, 6))),
    }
    return MultiTaskModel(towers, tasks, hidden=16).eval()


def test_explanations(model):
    vecs = torch.eye(4)
    vecs[1] = torch.tensor([1.0, 1.0, 0, 0])
    near = P.explain_by_history(vecs, [1, 2, 3], item=0, top=2)
    assert near[0][0] == 1 and near[0][1] == pytest.approx(1 / np.sqrt(2)) and len(near) == 2
    assert P.explain_by_history(vecs, [], item=0) == []
    attr = P.part_attribution(model, "interest", user=2, items=[0, 3, 6])
    assert list(attr.columns) == ["user:id", "user:text", "item:id", "item:text"] and len(attr) == 3
    # gradient x input of a part that is exactly zero vanishes
    with torch.no_grad():
        model.towers["item"].id_emb.weight.zero_()
    assert np.allclose(P.part_attribution(model, "interest", 2, [0, 1])["item:id"], 0.0)


def test_recommend_table(model):
    scores = np.array([0.1, 0.9, -np.inf, 0.5, 0.3, 0.2, 0.0])
    titles = [f"movie {i}" for i in range(7)]
    table = P.recommend_table(scores, titles, torch.randn(7, 4), history=[2], k=3)
    assert table["title"].tolist() == ["movie 1", "movie 3", "movie 4"]
    assert table["because you liked"].str.startswith("movie 2").all() and table.index.tolist() == [1, 2, 3]
