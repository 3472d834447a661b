"""Schedules, the step log, gradient cosines, experiments over seeds, the gain table, bf16 on CPU."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from mtrec_utils.data import GENRES
from mtrec_utils.data.datasets import (
    NegativeSamplingDataset,
    TensorDictDataset,
    make_loader,
    ranking_eval,
    seen_matrix,
)
from mtrec_utils.data.tasks import movielens_tasks
from mtrec_utils.models import EntityTower, FrozenText, MultiTaskModel
from mtrec_utils.models.towers import EncoderText
from mtrec_utils.training.bundles import TaskBundle
from mtrec_utils.training.experiments import gain_table, run_experiment, run_seeds, summarize
from mtrec_utils.training.loop import fit
from mtrec_utils.training.schedules import (
    TrainingLog,
    alternating_order,
    gradient_cosines,
    make_epoch_fn,
    mixed_precision_for,
)


def toy_bundle(text_user=None, text_item=None, dim: int = 8, n: int = 240) -> TaskBundle:
    """12 users, 15 items, ratings driven by a hidden user-item affinity (no download)."""
    g = torch.Generator().manual_seed(0)
    nu, ni = 12, 15
    users, items = torch.randint(nu, (n,), generator=g), torch.randint(ni, (n,), generator=g)
    affinity = torch.randn(nu, generator=g)[users] + torch.randn(ni, generator=g)[items]
    ratings = (3 + affinity).round().clamp(1, 5)
    like = (ratings >= 4).float()
    ds = TensorDictDataset(user=users, item=items, rating=ratings, like=like)
    seen = seen_matrix(users, items, nu, ni)
    pairs = NegativeSamplingDataset(users[like > 0], items[like > 0], seen, 2, g)
    rank = ranking_eval(seen, users[:40][like[:40] > 0], items[:40][like[:40] > 0])
    text_user = text_user or FrozenText(torch.randn(nu, 6, generator=g))
    text_item = text_item or FrozenText(torch.randn(ni, 6, generator=g))
    tasks = {k: v for k, v in movielens_tasks(GENRES).items() if k != "genres"}
    data = {"ratings": make_loader(ds, 64), "interactions": rank}
    return TaskBundle(
        name="toy",
        tasks=tasks,
        train={
            "ratings": make_loader(ds, 32, shuffle=True, generator=g),
            "interactions": make_loader(pairs, 16),
        },
        val=data,
        test=data,
        texts={"user": text_user, "item": text_item},
        tower_kwargs={"user": {"num_entities": nu}, "item": {"num_entities": ni}},
        generator=g,
        labels={"rating": ratings.numpy(), "like": like.numpy()},
        dim=dim,
    )


def test_alternating_order_gives_each_task_its_batches():
    assert alternating_order([3, 1, 2], "round_robin") == [0, 1, 2, 0, 2, 0]
    order = alternating_order([5, 2], "proportional", torch.Generator().manual_seed(0))
    assert sorted(order) == [0] * 5 + [1] * 2
    again = alternating_order([5, 2], "proportional", torch.Generator().manual_seed(0))
    assert order == again  # reproducible with a generator
    with pytest.raises(ValueError, match="schedule='joint'"):
        alternating_order([1, 2], "joint")
    with pytest.raises(ValueError, match=r"sizes\[1\]"):
        alternating_order([1, 0], "round_robin")


def test_make_epoch_fn_rejects_bad_options():
    with pytest.raises(ValueError, match="schedule='sometimes'.*'joint', 'round_robin', 'proportional'"):
        make_epoch_fn("sometimes")
    with pytest.raises(ValueError, match="cosine_every"):
        make_epoch_fn("joint", cosine_every=0)


def test_gradient_cosines_of_identical_and_opposite_tasks():
    rating = movielens_tasks(GENRES)["rating"]
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = w

        def forward(self, batch, names):
            return {n: (batch["x"] @ self.w).unsqueeze(-1) for n in names}

    # task b's label sits on the other side of the prediction: its gradient points the other way
    b = type(rating)(**{**rating.__dict__, "name": "b", "label": "y2", "data": "d", "label_range": None})
    a = type(rating)(**{**rating.__dict__, "name": "a", "label": "y1", "data": "d", "label_range": None})
    x = torch.tensor([[1.0, 0.0]])
    batch = {"d": {"x": x, "y1": torch.tensor([0.0]), "y2": torch.tensor([2.0])}}
    cos = gradient_cosines(Tiny(), [a, b, a], batch, [w])
    assert cos.shape == (3, 3)
    assert cos[0, 1] == pytest.approx(-1.0) and cos[0, 2] == pytest.approx(1.0)


def test_joint_epoch_logs_losses_weights_and_cosines():
    bundle = toy_bundle()
    tasks = list(bundle.tasks.values())
    model = MultiTaskModel(bundle.make_towers(), tasks, hidden=8)
    log = TrainingLog()
    epoch_fn = make_epoch_fn("joint", log, cosine_every=2)
    history = fit(model, tasks, bundle.train, bundle.val, epochs=2, progress=False, epoch_fn=epoch_fn)
    frame = log.frame()
    steps = max(len(loader) for loader in bundle.train.values())
    assert history["step"].tolist() == [steps, 2 * steps]
    losses = frame.dropna(subset=["loss/rating"])
    assert len(losses) == 2 * steps and (losses[[f"weight/{t.name}" for t in tasks]] == 1.0).all().all()
    cos = frame.dropna(subset=["cos/rating|like"])
    assert len(cos) == steps  # every second step of 2 * steps
    assert cos.filter(like="cos/").abs().le(1 + 1e-6).all().all()


@pytest.mark.parametrize("schedule", ["round_robin", "proportional"])
def test_alternating_epoch_trains_one_task_per_step_on_the_same_budget(schedule):
    bundle = toy_bundle()
    tasks = list(bundle.tasks.values())
    model = MultiTaskModel(bundle.make_towers(), tasks, hidden=8)
    log = TrainingLog()
    epoch_fn = make_epoch_fn(schedule, log, generator=torch.Generator().manual_seed(1))
    history = fit(model, tasks, bundle.train, bundle.val, epochs=1, progress=False, epoch_fn=epoch_fn)
    frame = log.frame()
    sizes = {t.name: len(bundle.train[t.data]) for t in tasks}
    assert history["step"].iloc[0] == sum(sizes.values())
    weights = frame[[f"weight/{n}" for n in sizes]].to_numpy()
    assert (weights.sum(axis=1) == 1).all()  # one task per step
    assert dict(zip(sizes, weights.sum(axis=0).astype(int))) == sizes  # each task gets all its batches
    assert np.isfinite(history["loss/rating"]).all()


def test_run_experiment_restores_the_best_epoch_and_checkpoint(tmp_path):
    bundle = toy_bundle()
    outputs = {"checkpoint_path": tmp_path / "best.safetensors", "tb_dir": tmp_path / "tb"}
    res = run_experiment(bundle, ["rating", "like"], epochs=3, lr=1e-2, patience=1, strategy="uw", **outputs)
    best = res.history.attrs["best_epoch"]
    assert (
        res.history.loc[res.history.epoch == best, "val/rating/rmse"].item()
        == res.history.attrs["best_value"]
    )
    assert (tmp_path / "best.safetensors").exists() and list((tmp_path / "tb").iterdir())
    again = run_experiment(bundle, ["rating", "like"], epochs=3, lr=1e-2, patience=1, strategy="uw")
    assert res.test == pytest.approx(again.test)  # same seed, same result
    assert set(res.test) == {"rating/rmse", "rating/mae", "like/auc", "like/logloss"}


@pytest.mark.parametrize("strategy", ["ew", "static", "uw", "gradnorm", "dwa", "pcgrad"])
def test_every_strategy_trains_the_hard_and_mmoe_models(strategy):
    bundle = toy_bundle()
    kwargs = {"weights": [0.7, 0.3]} if strategy == "static" else {}
    task_names = ["rating", "like"]
    for arch in ("hard", "mmoe"):
        res = run_experiment(
            bundle, task_names, epochs=1, strategy=strategy, arch=arch, strategy_kwargs=kwargs, cosine_every=3
        )
        assert np.isfinite(list(res.test.values())).all()
        frame = res.log.frame()
        if strategy == "static":
            assert np.allclose(frame["weight/rating"].dropna(), 0.7)


def test_run_seeds_summarize_and_gain_table():
    bundle = toy_bundle()
    settings = {
        "single rating": {"task_names": ["rating"]},
        "single like": {"task_names": ["like"]},
        "joint": {"task_names": ["rating", "like"]},
    }
    rows = run_seeds(bundle, settings, seeds=[0, 1], epochs=1, progress=False)
    assert set(rows.columns) >= {"setting", "seed", "metric", "value", "seconds"}
    stats = summarize(rows)
    assert stats.loc[("joint", "rating/rmse"), "n"] == 2
    table = gain_table(rows, {"rating": "single rating", "like": "single like"}, "joint")
    assert set(table.index) == {"rating/rmse", "rating/mae", "like/auc", "like/logloss"}
    single = stats.loc[("single rating", "rating/rmse"), "mean"]
    joint = stats.loc[("joint", "rating/rmse"), "mean"]
    assert table.loc["rating/rmse", "joint gain"] == pytest.approx(
        single - joint
    )  # lower RMSE = positive gain
    assert set(table["joint verdict"]) <= {"helps", "hurts", "same"}


def test_gain_table_verdicts_follow_the_metric_direction():
    rows = pd.DataFrame(
        {
            "setting": ["s", "s", "j", "j"],
            "seed": [0] * 4,
            "metric": ["t/rmse", "t/auc"] * 2,
            "value": [1.0, 0.8, 0.9, 0.7],
        }
    )
    table = gain_table(rows, {"t": "s"}, "j")
    assert table.loc["t/rmse", "j verdict"] == "helps" and table.loc["t/auc", "j verdict"] == "hurts"


def test_mixed_precision_choice():
    assert mixed_precision_for("cpu") == "no"


def test_full_encoder_bf16_autocast_path_on_cpu():
    from mtrec_utils.models.encoders import load_encoder

    encoder = load_encoder("tiny-random", device="cpu")
    users = EncoderText(encoder, [f"user {i} likes films" for i in range(12)], max_length=16)
    items = EncoderText(encoder, [f"item {i} is a film" for i in range(15)], max_length=16)
    bundle = toy_bundle(users, items, dim=8)
    before = {k: v.clone() for k, v in encoder.model.state_dict().items()}
    dtypes = []
    handle = torch.nn.modules.module.register_module_forward_hook(
        lambda m, i, o: dtypes.append(o.dtype) if isinstance(m, torch.nn.Linear) else None
    )
    try:
        bf16_on_cpu = {"device": "cpu", "mixed_precision": "bf16"}
        res = run_experiment(bundle, ["rating", "like"], epochs=1, lr=1e-3, encoder_lr=1e-3, **bf16_on_cpu)
    finally:
        handle.remove()
    assert torch.bfloat16 in dtypes  # the forward pass ran under bf16 autocast
    assert np.isfinite(list(res.test.values())).all()
    trained = res.model.towers["user"].text.model.state_dict()
    assert any(not torch.equal(before[k], trained[k]) for k in before)  # the encoder was fine-tuned ...
    assert all(torch.equal(before[k], v) for k, v in encoder.model.state_dict().items())  # ... a copy of it
    assert res.model.towers["user"].text.model is res.model.towers["item"].text.model  # one shared encoder
    assert isinstance(res.model.towers["user"], EntityTower)


def test_measuring_cosines_does_not_change_the_run():
    bundle = toy_bundle()
    plain = run_experiment(bundle, ["rating", "like", "interest"], epochs=2)
    probed = run_experiment(bundle, ["rating", "like", "interest"], epochs=2, cosine_every=1)
    assert plain.test == pytest.approx(probed.test, rel=1e-6)
    assert probed.log.probe is not None and probed.log.frame().filter(like="cos/").notna().any().all()


def test_metrics_to_record_and_best_setting():
    from mtrec_utils.training.experiments import best_setting, metrics_to_record

    rows = pd.DataFrame(
        {
            "setting": ["a", "a", "b", "b"],
            "seed": [0, 1, 0, 1],
            "metric": ["rating/rmse"] * 4,
            "value": [0.9, 1.0, 0.8, 0.8],
        }
    )
    out = metrics_to_record("movielens", rows, "a", "joint")
    assert out == {
        "ml_u1_rmse_joint": pytest.approx(0.95),
        "ml_u1_rmse_joint_std": pytest.approx(np.std([0.9, 1.0], ddof=1)),
    }
    assert best_setting(rows, "rating/rmse", ["a", "b"]) == ("b", pytest.approx(0.8))  # lower RMSE wins
    with pytest.raises(ValueError, match="like/auc"):
        best_setting(rows, "like/auc", ["a"])


def test_joint_plots_draw_labelled_axes():
    import matplotlib

    matplotlib.use("Agg")
    from mtrec_utils.viz.joint import plot_gains, plot_step_curves, plot_validation, smooth

    frame = pd.DataFrame({"step": [0, 1, 2, 3], "loss/a": [4.0, 3.0, 2.0, 1.0], "weight/a": [1.0] * 4})
    ax = plot_step_curves(frame, "loss/", window=3, log_y=True)
    assert ax.get_xlabel().startswith("training step") and ax.get_yscale() == "log"
    assert smooth(frame["loss/a"], 3).tolist() == pytest.approx([3.5, 3.0, 2.0, 1.5])
    with pytest.raises(ValueError, match="cos/"):
        plot_step_curves(frame, "cos/")
    history = pd.DataFrame({"epoch": [1, 2], "val/a/rmse": [1.0, 0.9]})
    history.attrs["best_epoch"] = 2
    assert plot_validation({"run": history}, "val/a/rmse").get_xlabel() == "epoch"
    table = pd.DataFrame({"j gain": [0.1, -0.2]}, index=["a/auc", "a/rmse"])
    assert "gain" in plot_gains(table, ["j gain"]).get_xlabel()
