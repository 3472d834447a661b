"""The training engine: epochs, evaluation, early stopping, checkpoints, logging, label checks."""

from __future__ import annotations

import numpy as np
import pytest
import safetensors.torch
import torch

from mtrec_utils.core import metrics as M
from mtrec_utils.data import GENRES
from mtrec_utils.data.datasets import TensorDictDataset, make_loader, ranking_eval, seen_matrix
from mtrec_utils.data.tasks import movielens_tasks
from mtrec_utils.models import EntityTower, MatrixFactorization, MultiTaskModel, Popularity
from mtrec_utils.training.loop import (
    EarlyStopping,
    evaluate,
    fit,
    load_checkpoint,
    make_accelerator,
    save_checkpoint,
    train_one_epoch,
)
from mtrec_utils.weighting import get_strategy

TASKS = movielens_tasks(GENRES)
NU, NI = 12, 15


def toy_ratings(n=600, seed=0):
    rng = np.random.default_rng(seed)
    u, i = rng.integers(0, NU, n), rng.integers(0, NI, n)
    r = np.clip(np.rint(3 + rng.normal(0, 1, NU)[u] + rng.normal(0, 1, NI)[i]), 1, 5).astype("float32")
    return TensorDictDataset(user=u, item=i, rating=r, like=(r >= 4).astype("float32"))


def loaders(seed=0, batch_size=64):
    g = torch.Generator().manual_seed(seed)
    return {"ratings": make_loader(toy_ratings(), batch_size, True, g)}, {
        "ratings": make_loader(toy_ratings(200, 1), 256)
    }


def toy_model(tasks, seed=0):
    torch.manual_seed(seed)
    return MultiTaskModel(
        {"user": EntityTower(NU, 8), "item": EntityTower(NI, 8)}, tasks, hidden=16, dropout=0.0
    )


def test_early_stopping_counts_epochs_without_improvement():
    stop = EarlyStopping(patience=2, higher_is_better=False)
    assert [stop.step(v, e) for e, v in enumerate([1.0, 0.9, 0.95, 0.91], 1)] == [True, True, False, False]
    assert stop.should_stop and stop.best == 0.9 and stop.best_epoch == 2


def test_fit_learns_and_returns_a_history(tmp_path):
    train, val = loaders()
    model = toy_model([TASKS["rating"]])
    history = fit(
        model,
        [TASKS["rating"]],
        train,
        val,
        epochs=8,
        lr=0.02,
        progress=False,
        checkpoint_path=tmp_path / "best.safetensors",
        tb_dir=tmp_path / "tb",
    )
    assert {"epoch", "seconds", "loss/rating", "weight/rating", "val/rating/rmse", "val/rating/mae"} <= set(
        history
    )
    assert history["loss/rating"].iloc[-1] < history["loss/rating"].iloc[0]
    best = history.attrs["best_epoch"]
    assert history.attrs["best_value"] == pytest.approx(history["val/rating/rmse"].min())
    assert history.loc[history.epoch == best, "val/rating/rmse"].item() == history["val/rating/rmse"].min()
    assert evaluate(model, [TASKS["rating"]], val)["rating/rmse"] == pytest.approx(
        history.attrs["best_value"], rel=1e-5
    )
    assert list((tmp_path / "tb").glob("events.out.tfevents.*")), "TensorBoard scalars were not written"


def test_checkpoint_restores_the_best_weights(tmp_path):
    train, val = loaders()
    model = toy_model([TASKS["rating"]])
    fit(
        model,
        [TASKS["rating"]],
        train,
        val,
        epochs=3,
        lr=0.02,
        progress=False,
        checkpoint_path=tmp_path / "c.safetensors",
    )
    state = safetensors.torch.load_file(tmp_path / "c.safetensors")
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    fresh = load_checkpoint(toy_model([TASKS["rating"]], seed=1), tmp_path / "c.safetensors")
    batch = next(iter(val["ratings"]))
    model.eval(), fresh.eval()
    assert torch.equal(model(batch)["rating"], fresh(batch)["rating"])
    path = save_checkpoint(model, tmp_path / "again.safetensors")
    assert not list(tmp_path.glob(".again*.tmp")) and path.exists()  # written atomically, no leftovers


def test_early_stopping_stops_before_the_last_epoch():
    train, val = loaders()
    model = toy_model([TASKS["rating"]])
    history = fit(model, [TASKS["rating"]], train, val, epochs=50, lr=0.2, patience=1, progress=False)
    assert len(history) < 50 and len(history) == history.attrs["best_epoch"] + 1


def test_bad_labels_are_rejected_before_training():
    data = toy_ratings()
    data.tensors["rating"][3] = 6.0
    train = {"ratings": make_loader(data, 64)}
    with pytest.raises(ValueError, match=r"task 'rating', column 'rating'.*outside"):
        fit(toy_model([TASKS["rating"]]), [TASKS["rating"]], train, loaders()[1], epochs=1, progress=False)
    data.tensors["like"][0] = float("nan")
    with pytest.raises(ValueError, match=r"task 'like', column 'like'.*NaN"):
        fit(toy_model([TASKS["like"]]), [TASKS["like"]], train, loaders()[1], epochs=1, progress=False)
    with pytest.raises(ValueError, match="reads training data 'items'"):
        fit(toy_model([TASKS["genres"]]), [TASKS["genres"]], train, loaders()[1], epochs=1, progress=False)
    with pytest.raises(ValueError, match="monitor"):
        fit(
            toy_model([TASKS["rating"]]),
            [TASKS["rating"]],
            *loaders(),
            epochs=1,
            monitor="rating/auc",
            progress=False,
        )


@pytest.mark.parametrize("name", ["uw", "pcgrad"])
def test_joint_training_with_a_weighting_strategy(name):
    tasks = [TASKS["rating"], TASKS["like"]]
    model = toy_model(tasks)
    strategy = get_strategy(name, num_tasks=2)
    history = fit(model, tasks, *loaders(), epochs=2, lr=0.01, strategy=strategy, progress=False)
    assert {"loss/rating", "loss/like", "weight/rating", "weight/like", "val/like/auc"} <= set(history)
    if name == "uw":
        assert history["weight/rating"].iloc[-1] != 1.0  # learned weights moved


def test_train_one_epoch_cycles_the_shorter_loader():
    tasks = [TASKS["rating"], TASKS["genres"]]
    model = MultiTaskModel({"user": EntityTower(NU, 8), "item": EntityTower(NI, 8)}, tasks, hidden=16)
    items = TensorDictDataset(item=np.arange(NI), genres=np.eye(19, dtype="float32")[np.arange(NI) % 19])
    train = {"ratings": make_loader(toy_ratings(), 100), "items": make_loader(items, 10)}  # 6 vs 2 batches
    acc = make_accelerator("cpu")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    stats, step = train_one_epoch(model, tasks, train, opt, acc, progress=False)
    assert step == 6 and set(stats) == {"loss/rating", "loss/genres", "weight/rating", "weight/genres"}


def test_bf16_mixed_precision_runs_on_cpu():
    model = toy_model([TASKS["rating"]])
    history = fit(model, [TASKS["rating"]], *loaders(), epochs=1, mixed_precision="bf16", progress=False)
    assert np.isfinite(history["val/rating/rmse"]).all()
    out = model(next(iter(loaders()[1]["ratings"])))["rating"]
    assert out.dtype == torch.float32  # the autocast wrapper is removed after fit


def test_ranking_evaluation_matches_the_metrics_module():
    seen = seen_matrix([0, 1, 1], [0, 1, 2], NU, NI)
    data = ranking_eval(seen, [0, 0, 1, 2], [3, 4, 3, 0])
    pop = Popularity(np.r_[np.full(5, 3), np.full(3, 4), np.arange(NI)], NI, [TASKS["interest"]])
    got = evaluate(pop, [TASKS["interest"]], {"interactions": data})
    scores = np.tile(pop.counts.numpy(), (3, 1))
    scores[data.exclude.numpy()] = -np.inf
    assert got["interest/ndcg@10"] == pytest.approx(M.ndcg_at_k(scores, data.positives, 10))
    assert got["interest/recall@10"] == pytest.approx(M.recall_at_k(scores, data.positives, 10))


def test_mf_trains_with_the_same_engine():
    train, val = loaders()
    model = MatrixFactorization(NU, NI, [TASKS["rating"]], dim=4, mu=3.0)
    history = fit(model, [TASKS["rating"]], train, val, epochs=10, lr=0.02, weight_decay=0.1, progress=False)
    y = val["ratings"].dataset.tensors["rating"].numpy()
    constant = M.rmse(y, np.full_like(y, train["ratings"].dataset.tensors["rating"].mean().item()))
    assert history["loss/rating"].iloc[-1] < history["loss/rating"].iloc[0]
    assert history["val/rating/rmse"].min() < constant  # biases and factors beat the global mean


def test_callbacks_see_the_history_and_can_stop_training():
    seen = []

    def stop_after_two(history):
        seen.append(len(history))
        return len(history) >= 2

    fit(
        toy_model([TASKS["rating"]]),
        [TASKS["rating"]],
        *loaders(),
        epochs=5,
        callbacks=[stop_after_two],
        progress=False,
    )
    assert seen == [1, 2]


def test_accelerators_with_different_settings_can_follow_each_other():
    assert make_accelerator("cpu", "bf16").mixed_precision == "bf16"
    assert make_accelerator("cpu").mixed_precision == "no"
    with pytest.raises(ValueError, match="mixed_precision"):
        make_accelerator("cpu", "fp8")
