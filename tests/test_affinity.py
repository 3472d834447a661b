"""Lookahead inter-task affinity (TAG): a hand-made linear problem, state left alone, a real MovieLens run."""

from __future__ import annotations

import copy
import dataclasses

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from mtrec_utils.data import GENRES
from mtrec_utils.data.tasks import movielens_tasks
from mtrec_utils.training.affinity import (
    AffinityRecorder,
    affinity_frame,
    lookahead_affinity,
    mean_cosine_matrix,
    shared_parameter_names,
)

matplotlib.use("Agg")

X = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
SCALES = {"a": 1.5, "b": 0.5}  # each task's head multiplies the shared prediction x @ w


def regression_task(name: str, label: str):
    rating = movielens_tasks(GENRES)["rating"]
    return dataclasses.replace(rating, name=name, label=label, data="d", label_range=None)


TASKS = [regression_task("a", "y1"), regression_task("b", "y2")]


class Scale(nn.Module):
    def __init__(self, value: float):
        super().__init__()
        self.value = nn.Parameter(torch.tensor(value, dtype=torch.float64))

    def forward(self, h):
        return self.value * h


class TwoTaskLinear(nn.Module):
    """Shared ``w`` (2,); task t predicts ``scale_t * (x @ w)``; optionally draws random numbers."""

    def __init__(self, draw: bool = False):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([0.2, -0.1], dtype=torch.float64))
        self.heads = nn.ModuleDict({n: Scale(s) for n, s in SCALES.items()})
        self.drop = nn.Dropout(0.5)
        self.draw = draw

    def forward(self, batch, names):
        h = batch["x"] @ self.w  # (B,)
        if self.draw:  # a model that uses the global random generator in its forward pass
            h = h + 0.0 * torch.rand(())
            h = self.drop(h) if not self.training else h
        return {n: self.heads[n](h).unsqueeze(-1) for n in names}  # (B, 1)


def batches(y1, y2) -> dict:
    t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    return {"d": {"x": X, "y1": t(y1), "y2": t(y2)}}


def by_hand(y1, y2, lr: float) -> np.ndarray:
    """Z[i, j] from the closed-form gradient of the MSE of ``scale * (x @ w)`` with respect to ``w``."""
    x, w = X.numpy(), np.array([0.2, -0.1])
    ys, scales = [np.array(y1), np.array(y2)], [SCALES["a"], SCALES["b"]]

    def loss(j, w):
        return np.mean((scales[j] * (x @ w) - ys[j]) ** 2)

    def grad(i):
        return (2 * (scales[i] * (x @ w) - ys[i]) * scales[i]) @ x / len(x)

    return np.array([[1 - loss(j, w - lr * grad(i)) / loss(j, w) for j in range(2)] for i in range(2)])


ALIGNED = ([1.0, 1.0, 2.0], [2.0, 1.0, 3.0])  # both tasks want larger w in both directions
OPPOSED = ([1.0, 1.0, 2.0], [-1.0, -1.0, -2.0])  # task b wants w to move the other way


def test_shared_parameters_follow_the_model_rule():
    from mtrec_utils.models import MultiTaskModel
    from mtrec_utils.models.sharing import build_model

    assert shared_parameter_names(TwoTaskLinear()) == ["w"]  # no shared_parameters(): all but heads
    tasks = [t for n, t in movielens_tasks(GENRES).items() if n != "genres"]
    from mtrec_utils.models import EntityTower

    towers = {k: EntityTower(num_entities=5, dim=4) for k in ("user", "item")}
    model = MultiTaskModel(towers, tasks, hidden=4)
    names = shared_parameter_names(model)
    assert names and all(n.startswith(("towers.", "trunks.")) for n in names)
    assert not any(n.startswith(("heads.", "biases.")) for n in names)
    mmoe = build_model("mmoe", {k: EntityTower(num_entities=5, dim=4) for k in ("user", "item")}, tasks, 4)
    assert not any(".gates." in n for n in shared_parameter_names(mmoe))


def test_aligned_gradients_give_positive_affinity_both_ways():
    z = lookahead_affinity(TwoTaskLinear(), TASKS, batches(*ALIGNED), lr=0.05)
    assert z.shape == (2, 2) and z[0, 1] > 0 and z[1, 0] > 0
    assert z[0, 0] > 0 and z[1, 1] > 0  # a small step on a task's own loss lowers it


def test_opposed_gradients_give_negative_affinity_both_ways():
    z = lookahead_affinity(TwoTaskLinear(), TASKS, batches(*OPPOSED), lr=0.05)
    assert z[0, 1] < 0 and z[1, 0] < 0
    assert z[0, 0] > 0 and z[1, 1] > 0


@pytest.mark.parametrize("ys", [ALIGNED, OPPOSED])
@pytest.mark.parametrize("lr", [0.01, 0.3])
def test_affinity_matches_a_computation_by_hand(ys, lr):
    z = lookahead_affinity(TwoTaskLinear(), TASKS, batches(*ys), lr=lr)
    np.testing.assert_allclose(z, by_hand(*ys, lr), rtol=1e-4, atol=1e-6)  # losses are float32
    frame = affinity_frame(z, ["a", "b"])
    assert frame.index.name == "step on" and frame.columns.name == "loss of"
    assert frame.loc["a", "b"] == z[0, 1]


def test_measuring_leaves_weights_gradients_optimizer_and_random_state_alone():
    model = TwoTaskLinear(draw=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    data = batches(*ALIGNED)
    model(data["d"], ["a", "b"])["a"].sum().backward()
    optimizer.step()  # the optimizer now has state (moments, step counts)
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.25)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    opt_state = copy.deepcopy(optimizer.state_dict())
    rng = torch.get_rng_state()
    model.train()
    lookahead_affinity(model, TASKS, data, lr=0.1)
    assert model.training  # mode restored
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    assert all(torch.equal(p.grad, torch.full_like(p, 0.25)) for p in model.parameters())
    after = optimizer.state_dict()
    assert after["param_groups"] == opt_state["param_groups"]
    for k, s in opt_state["state"].items():
        assert all(torch.equal(v, after["state"][k][name]) for name, v in s.items())
    assert torch.equal(torch.get_rng_state(), rng)


def test_bad_every_and_lr_are_rejected():
    for every in (0, -3, 1.5, True, None):
        with pytest.raises(ValueError, match="every="):
            AffinityRecorder(every=every, lr=0.1)
    for lr in (0, -0.1, float("nan"), float("inf"), "0.1"):
        with pytest.raises(ValueError, match="lr="):
            AffinityRecorder(every=1, lr=lr)
        with pytest.raises(ValueError, match="lr="):
            lookahead_affinity(TwoTaskLinear(), TASKS, batches(*ALIGNED), lr=lr)
    with pytest.raises(ValueError, match="shared="):
        lookahead_affinity(TwoTaskLinear(), TASKS, batches(*ALIGNED), lr=0.1, shared=["nope"])
    with pytest.raises(ValueError, match="no affinity measured yet"):
        AffinityRecorder(every=5, lr=0.1).matrix()


def test_mean_cosine_matrix_is_symmetric_with_ones_on_the_diagonal():
    frame = pd.DataFrame({"step": [0, 1, 2], "cos/a|b": [0.2, np.nan, 0.4], "loss/a": [1.0, 2.0, 3.0]})
    m = mean_cosine_matrix(frame, ["a", "b", "c"])
    assert m.loc["a", "b"] == m.loc["b", "a"] == pytest.approx(0.3)
    assert np.isnan(m.loc["a", "c"]) and (np.diag(m) == 1).all()


# --- a tiny real MovieLens joint run ------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_movielens(data_cache):
    """u1 of MovieLens-100K, a few hundred ratings, the tiny random encoder (no download)."""
    from mtrec_utils.core.config import resolve_profile
    from mtrec_utils.models.encoders import load_encoder
    from mtrec_utils.training.bundles import movielens_bundle

    profile = dataclasses.replace(
        resolve_profile("smoke"),
        max_train_ratings=600,
        max_test_ratings=200,
        max_eval_users=20,
        batch_size=64,
        max_length=16,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("MTREC_DATA", str(data_cache))
            mp.setenv("MTREC_OFFLINE", "1")
            encoder = load_encoder("tiny-random", device="cpu")
            return movielens_bundle(
                profile, encoder, torch.Generator().manual_seed(0), dim=16, max_val_users=20, progress=False
            )
    finally:
        torch.set_num_threads(threads)


def train(bundle, epoch_fn_of, seed: int = 0):
    """One joint run (as run_experiment starts it) with ``epoch_fn_of(bundle)``; its model and history."""
    from mtrec_utils.core.config import set_seed
    from mtrec_utils.models.sharing import build_model
    from mtrec_utils.training.bundles import init_heads
    from mtrec_utils.training.loop import fit

    tasks = bundle.select(["rating", "like", "interest"])
    set_seed(seed)
    bundle.generator.manual_seed(seed)
    model = init_heads(build_model("hard", bundle.make_towers(), tasks, hidden=16), bundle)
    history = fit(
        model, tasks, bundle.train, bundle.val, epochs=2, lr=3e-3, device="cpu", progress=False,
        epoch_fn=epoch_fn_of(bundle),
    )  # fmt: skip
    return model, history


@pytest.mark.parametrize("schedule", ["train_one_epoch", "joint"])
def test_recording_on_real_movielens_gives_a_finite_matrix_and_the_same_training(
    tiny_movielens, one_thread, schedule
):
    from mtrec_utils.training.schedules import TrainingLog, make_epoch_fn

    def plain(bundle):
        return None if schedule == "train_one_epoch" else make_epoch_fn("joint", TrainingLog())

    recorder = AffinityRecorder(every=3, lr=0.1)
    model_a, history_a = train(tiny_movielens, plain)
    model_b, history_b = train(tiny_movielens, lambda b: recorder.wrap(plain(b)))
    a, b = model_a.state_dict(), model_b.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bit-identical training
    assert not model_b._forward_pre_hooks  # the recorder's hook is gone after each epoch
    pd.testing.assert_frame_equal(history_a.drop(columns="seconds"), history_b.drop(columns="seconds"))

    steps = int(history_b["step"].iloc[-1])
    matrix = recorder.matrix()
    assert matrix.shape == (3, 3) and list(matrix.index) == ["rating", "like", "interest"]
    assert np.isfinite(matrix.to_numpy()).all() and (np.diag(matrix) > 0).all()
    history = recorder.history()
    assert history["step"].tolist() == list(range(0, steps, 3))
    assert "aff/rating>like" in history and "aff/like>rating" in history
    assert recorder.seconds > 0


def test_run_experiment_takes_the_recorder_and_trains_the_same(tiny_movielens, one_thread):
    from mtrec_utils.training.experiments import run_experiment, run_experiments

    settings = dict(seed=1, epochs=2, hidden=16, lr=3e-3, device="cpu")
    plain = run_experiment(tiny_movielens, ["rating", "like"], **settings)
    recorder = AffinityRecorder(every=2, lr=0.1)
    wrapped = run_experiment(tiny_movielens, ["rating", "like"], wrap_epoch=recorder.wrap, **settings)
    assert plain.test == wrapped.test and recorder.matrix().shape == (2, 2)
    # a live recorder reports back to this process: run_experiments refuses to send it to a worker
    with pytest.raises(ValueError, match="wrap_epoch"):
        run_experiments(
            [{"bundle": tiny_movielens, "task_names": ["rating"], "wrap_epoch": recorder.wrap}] * 2, workers=2
        )


def test_affinity_plots_draw_labelled_heatmaps():
    from mtrec_utils.viz.affinity import plot_affinity_and_cosine, plot_task_matrix

    z = affinity_frame(np.array([[0.02, -0.01], [0.005, 0.03]]), ["a", "b"])
    cos = mean_cosine_matrix(pd.DataFrame({"step": [0], "cos/a|b": [-0.3]}), ["a", "b"])
    left, right = plot_affinity_and_cosine(z, cos)
    assert left.get_xlabel() == "loss of" and left.get_ylabel() == "step on"
    assert "affinity" in left.get_title() and "cosine" in right.get_title()
    assert [t.get_text() for t in left.texts] == ["0.02", "-0.01", "0.005", "0.03"]
    assert len(plot_affinity_and_cosine(z)) == 1
    with pytest.raises(ValueError, match="square"):
        plot_task_matrix(z.iloc[:1])
