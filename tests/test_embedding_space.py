"""The joint user-item space: in-batch softmax, the two-tower model, genre purity, PCA, neighbours."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_joint import toy_bundle

from mtrec_utils.analyses.embedding.space import (
    JointEmbeddingModel,
    genre_purity,
    in_batch_softmax_loss,
    neighbour_table,
    pca_2d,
    random_genre_purity,
    train_joint_embedding,
)
from mtrec_utils.data.datasets import TensorDictDataset, make_loader


def test_in_batch_softmax_matches_a_manual_computation_and_masks_duplicates():
    torch.manual_seed(0)
    u, i = torch.randn(4, 3), torch.randn(4, 3)
    un, inn = u / u.norm(dim=1, keepdim=True), i / i.norm(dim=1, keepdim=True)
    logits = un @ inn.T / 0.5
    manual = -(logits.diag() - logits.logsumexp(dim=1)).mean()
    assert in_batch_softmax_loss(u, i, 0.5) == pytest.approx(float(manual), rel=1e-5)
    items = torch.tensor([7, 7, 1, 2])  # rows 0 and 1 are the same item: not each other's negative
    masked = logits.clone()
    masked[0, 1] = masked[1, 0] = float("-inf")
    manual = -(masked.diag() - masked.logsumexp(dim=1)).mean()
    assert in_batch_softmax_loss(u, i, 0.5, items) == pytest.approx(float(manual), rel=1e-5)
    with pytest.raises(ValueError, match="temperature"):
        in_batch_softmax_loss(u, i, 0.0)


def test_joint_embedding_model_trains_both_tasks_in_one_space():
    b = toy_bundle()
    torch.manual_seed(0)
    model = JointEmbeddingModel(b.make_towers(), global_mean=3.0, temperature=0.2)
    out = model({"user": torch.tensor([0, 1]), "item": torch.tensor([2, 3])}, ["rating", "interest"])
    assert out["rating"].shape == (2, 1) and out["interest"].shape == (2, 1)
    assert model.score_items("interest", torch.tensor([0, 1, 2]), 15).shape == (3, 15)
    ratings = b.train["ratings"]
    t = ratings.dataset.tensors
    liked = make_loader(TensorDictDataset(user=t["user"][t["like"] > 0], item=t["item"][t["like"] > 0]), 16)
    history = train_joint_embedding(
        model, ratings, liked, b.select(["rating", "interest"]), b.val, epochs=3, lr=1e-2
    )
    assert len(history) == 3 and 1 <= history.attrs["best_epoch"] <= 3
    assert history["loss/rating"].iloc[-1] < history["loss/rating"].iloc[0]
    assert math.isfinite(history["val/interest/ndcg@10"].max())
    assert model.item_vectors().shape == (15, 8)


def test_genre_purity_counts_neighbours_that_share_a_genre():
    vectors = torch.tensor([[1.0, 0], [0.9, 0.1], [0, 1.0], [0.1, 0.9]])
    genres = np.array([[1, 0], [1, 0], [0, 1], [1, 1]])
    assert genre_purity(vectors, genres, k=1) == pytest.approx(1.0)  # 0<->1, 2<->3 share a genre
    assert genre_purity(vectors, genres, k=1, rows=[0]) == pytest.approx(1.0)
    assert genre_purity(vectors, np.array([[1, 0], [0, 1], [1, 0], [0, 1]]), k=1) == pytest.approx(0.0)
    assert random_genre_purity(genres) == pytest.approx(np.mean([2 / 3, 2 / 3, 1 / 3, 1.0]))
    with pytest.raises(ValueError, match="same rows"):
        genre_purity(vectors, genres[:3])


def test_pca_2d_finds_the_main_axis():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 1, generator=g) * torch.tensor([[5.0, 0, 0]]) + 0.1 * torch.randn(
        200, 3, generator=g
    )
    xy = pca_2d(x)
    assert xy.shape == (200, 2)
    assert abs(np.corrcoef(xy[:, 0], x[:, 0].numpy())[0, 1]) > 0.99


def test_neighbour_table_lists_nearest_titles_per_space():
    titles = ["a", "b", "c"]
    spaces = {
        "raw": torch.tensor([[1.0, 0], [0.9, 0.1], [0, 1.0]]),
        "flip": torch.tensor([[1.0, 0], [0, 1.0], [1, 0.1]]),
    }
    table = neighbour_table(spaces, titles, ["a"], k=1)
    assert table.loc[("a", "raw"), 1] == "b" and table.loc[("a", "flip"), 1] == "c"
    with pytest.raises(ValueError, match="not titles"):
        neighbour_table(spaces, titles, ["z"])
