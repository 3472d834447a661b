"""Heads, towers, the multi-task model and the classic baselines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import f1_score, roc_auc_score

from mtrec_utils.core import metrics as M
from mtrec_utils.data import GENRES
from mtrec_utils.data.tasks import clothing_tasks, movielens_tasks
from mtrec_utils.models import (
    BiasBaseline,
    EncoderText,
    EntityTower,
    FrozenText,
    MatrixFactorization,
    MultiTaskModel,
    Popularity,
    TaskHead,
    surprise_available,
    surprise_rmse,
    task_loss,
    to_predictions,
)
from mtrec_utils.models.encoders import encode_texts, load_encoder
from mtrec_utils.models.heads import task_metric

TASKS = movielens_tasks(GENRES)
TEXTS = [
    "Toy Story (1995).",
    "GoldenEye (1995). Genres: Action, Adventure, Thriller.",
    "Heat",
    "Fargo (1996)",
]


@pytest.fixture(scope="module")
def tiny():
    return load_encoder("tiny-random", device="cpu")


def toy_model(tasks, dim=8):
    torch.manual_seed(0)
    towers = {
        "user": EntityTower(5, dim, FrozenText(torch.randn(5, 6))),
        "item": EntityTower(7, dim, features=torch.randn(7, 3)),
    }
    return MultiTaskModel(towers, tasks, hidden=16, dropout=0.0)


def test_bounded_regression_head_stays_in_range_and_starts_at_the_mean():
    head = TaskHead(4, TASKS["rating"])
    out = head(torch.randn(100, 4) * 100)
    assert out.shape == (100, 1) and out.min() >= 1 and out.max() <= 5
    head.init_from_labels([3.0, 4.0, 4.0, 5.0])
    torch.nn.init.zeros_(head.net[-1].weight)
    assert torch.allclose(head(torch.randn(3, 4)), torch.full((3, 1), 4.0), atol=1e-5)


def test_losses_match_torch():
    out, y = torch.randn(6, 1), torch.randint(0, 2, (6,)).float()
    assert torch.isclose(
        task_loss(TASKS["like"], out, y), torch.nn.functional.binary_cross_entropy_with_logits(out[:, 0], y)
    )
    assert torch.isclose(task_loss(TASKS["rating"], out, y), torch.nn.functional.mse_loss(out[:, 0], y))
    dept = clothing_tasks(["a", "b", "c"])["department"]
    logits, cls = torch.randn(6, 3), torch.randint(0, 3, (6,))
    assert torch.isclose(task_loss(dept, logits, cls), torch.nn.functional.cross_entropy(logits, cls))
    assert np.allclose(to_predictions(dept, logits).sum(1), 1.0)
    assert np.allclose(to_predictions(TASKS["like"], out), torch.sigmoid(out[:, 0]).numpy())


def test_task_metrics_match_scikit_learn():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 2, (50, 19)), rng.random((50, 19))
    assert np.isclose(task_metric(TASKS["genres"], "f1_micro", y, p), f1_score(y, p >= 0.5, average="micro"))
    assert np.isclose(task_metric(TASKS["genres"], "auc_macro", y, p), roc_auc_score(y, p, average="macro"))
    cl_rating = clothing_tasks(["a"])["rating"]
    assert task_metric(
        cl_rating, "accuracy", np.array([4, 5, 1]), np.array([4.4, 4.6, 2.0])
    ) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="unknown"):
        task_metric(TASKS["rating"], "r2", y[:, 0], p[:, 0])


def test_encoder_text_encodes_each_distinct_text_once_and_matches_separate_encoding(tiny):
    table = EncoderText(tiny, TEXTS, max_length=32)
    seen = []
    orig = table.model.forward

    def counting(*args, **kwargs):
        seen.append(tuple(kwargs["input_ids"].shape))
        return orig(*args, **kwargs)

    table.model.forward = counting
    out = table(torch.tensor([2, 0, 2, 2, 0]))
    assert seen == [(2, max(len(tiny.tokenizer(TEXTS[i])["input_ids"]) for i in (0, 2)))]
    expected = encode_texts(
        tiny, [TEXTS[i] for i in (2, 0, 2, 2, 0)], max_length=32, use_cache=False, progress=False
    )
    assert torch.allclose(out, expected, atol=1e-5)
    assert "ids" not in table.state_dict() and any(k.startswith("model.") for k in table.state_dict())


def test_entity_tower_fuses_its_inputs():
    tower = EntityTower(
        4, 6, FrozenText(torch.randn(4, 5)), torch.randn(4, 2), {"cat": torch.tensor([0, 1, 1, 2])}
    )
    assert tower(torch.tensor([0, 3])).shape == (2, 6)
    assert "features" not in tower.state_dict() and "text.table" not in tower.state_dict()
    with pytest.raises(ValueError, match="at least one input"):
        EntityTower(4, 6, use_id=False)


def test_multitask_model_serves_pair_and_item_tasks():
    model = toy_model([TASKS["rating"], TASKS["like"], TASKS["genres"]])
    batch = {"user": torch.tensor([0, 4]), "item": torch.tensor([1, 6])}
    out = model(batch)
    assert out["rating"].shape == (2, 1) and out["like"].shape == (2, 1) and out["genres"].shape == (2, 19)
    assert list(model(batch, ["like"])) == ["like"]
    with pytest.raises(ValueError, match="unknown task"):
        model(batch, ["ctr"])
    with pytest.raises(ValueError, match="need towers"):
        MultiTaskModel({"item": EntityTower(3, 4)}, [TASKS["rating"]])
    assert set(map(id, model.shared_parameters())).isdisjoint(map(id, model.heads.parameters()))


def test_score_items_equals_the_forward_pass_on_every_pair():
    model = toy_model([TASKS["interest"]]).eval()
    users = torch.tensor([1, 3])
    scores = model.score_items("interest", users, 7)
    batch = {"user": users.repeat_interleave(7), "item": torch.arange(7).repeat(2)}
    assert torch.allclose(scores, model(batch, ["interest"])["interest"].reshape(2, 7), atol=1e-6)


def test_bias_baseline_recovers_biases():
    rng = np.random.default_rng(0)
    u, i = rng.integers(0, 20, 4000), rng.integers(0, 30, 4000)
    bu, bi = rng.normal(0, 0.5, 20), rng.normal(0, 0.5, 30)
    r = 3.5 + bu[u] + bi[i] + rng.normal(0, 0.1, 4000)
    model = BiasBaseline(reg_user=1, reg_item=1).fit(u, i, r, 20, 30)
    assert np.corrcoef(model.bu, bu)[0, 1] > 0.95 and np.corrcoef(model.bi, bi)[0, 1] > 0.95
    assert model.predict([0], [0], clip=(1, 5))[0] == pytest.approx(
        np.clip(3.5 + bu[0] + bi[0], 1, 5), abs=0.1
    )


def test_mf_and_popularity_share_the_model_interface():
    mf = MatrixFactorization(3, 4, [TASKS["rating"], TASKS["like"]], dim=2, mu=3.5)
    out = mf({"user": torch.tensor([0, 2]), "item": torch.tensor([3, 1])})
    assert set(out) == {"rating", "like"} and out["rating"].shape == (2, 1)
    pop = Popularity([0, 1, 1, 3, 3, 3], 4, [TASKS["interest"]])
    assert pop({"item": torch.tensor([3, 2])})["interest"][:, 0].tolist() == [3.0, 0.0]


def test_surprise_runs_when_installed_and_says_so_when_not():
    train = pd.DataFrame({"user_id": [1, 1, 2, 2, 3], "item_id": [1, 2, 1, 3, 2], "rating": [5, 3, 4, 2, 1]})
    test = pd.DataFrame({"user_id": [3], "item_id": [1], "rating": [2]})
    if surprise_available():
        out = surprise_rmse(train, test, ["BaselineOnly", "SVD"])
        assert set(out) == {"BaselineOnly", "SVD"} and all(0 <= v <= 4 for v in out.values())
    else:
        with pytest.raises(ImportError):
            surprise_rmse(train, test)


def test_bias_warm_start_reproduces_the_baseline_at_the_start():
    rng = np.random.default_rng(1)
    u, i = rng.integers(0, 5, 300), rng.integers(0, 7, 300)
    r = np.clip(np.rint(3.5 + rng.normal(0, 0.6, 5)[u] + rng.normal(0, 0.6, 7)[i]), 1, 5)
    base = BiasBaseline(reg_user=1, reg_item=1).fit(u, i, r, 5, 7)
    batch = {"user": torch.as_tensor(u), "item": torch.as_tensor(i)}
    mf = MatrixFactorization(5, 7, [TASKS["rating"]], dim=2, mu=base.mu)
    torch.nn.init.zeros_(mf.p.weight)
    mf.init_biases(base.bu, base.bi)
    expected = base.mu + base.bu[u] + base.bi[i]
    assert np.allclose(mf(batch)["rating"][:, 0].detach().numpy(), expected, atol=1e-5)
    model = toy_model([TASKS["rating"]]).eval()
    model.heads["rating"].init_from_labels(r)
    torch.nn.init.zeros_(model.heads["rating"].net[-1].weight)
    model.init_biases(base.bu, base.bi)
    got = model(batch)["rating"][:, 0].detach().numpy()
    assert np.corrcoef(got, expected)[0, 1] > 0.97  # the sigmoid link is linearised at the mean
    assert abs(M.rmse(r, got) - M.rmse(r, expected)) < 0.05
