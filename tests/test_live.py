"""The live training view of notebook 04: it redraws during training, and an interrupt (the notebook's ■
button sends SIGINT) ends training after the current step, keeping the best epoch's weights."""

from __future__ import annotations

import os
import signal

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from mtrec_utils.data import GENRES
from mtrec_utils.data.datasets import TensorDictDataset, make_loader
from mtrec_utils.data.tasks import movielens_tasks
from mtrec_utils.models import EntityTower, MultiTaskModel
from mtrec_utils.training.loop import fit
from mtrec_utils.training.schedules import make_epoch_fn
from mtrec_utils.viz.live import LiveTrainingView, draw_training

TASKS = movielens_tasks(GENRES)
NAMES = ["rating", "like"]


def toy_run(*, log, callbacks, epochs=3, checkpoint_path=None):
    """A stand-in for run_experiment: 10 steps per epoch on made-up ratings."""
    rng = np.random.default_rng(0)
    u, i = rng.integers(0, 8, 640), rng.integers(0, 9, 640)
    r = rng.integers(1, 6, 640).astype("float32")
    ds = TensorDictDataset(user=u, item=i, rating=r, like=(r >= 4).astype("float32"))
    train = {"ratings": make_loader(ds, 64, True, torch.Generator().manual_seed(0))}
    torch.manual_seed(0)
    tasks = [TASKS[n] for n in NAMES]
    model = MultiTaskModel({"user": EntityTower(8, 8), "item": EntityTower(9, 8)}, tasks)
    val, epoch_fn = {"ratings": make_loader(ds, 256)}, make_epoch_fn("joint", log)
    hooks = {"callbacks": callbacks, "epoch_fn": epoch_fn, "checkpoint_path": checkpoint_path}
    return fit(model, tasks, train, val, epochs=epochs, lr=0.01, progress=False, **hooks)


def test_draw_training_plots_each_task_loss_and_weight():
    steps = pd.DataFrame(
        {
            "step": range(20),
            "loss/rating": np.linspace(2, 1, 20),
            "loss/like": 0.7,
            "weight/rating": 1.0,
            "weight/like": 1.0,
        }
    )
    fig = draw_training(Figure(), steps, NAMES)
    loss_ax, weight_ax = fig.axes
    assert len(loss_ax.lines) == 2 and len(weight_ax.lines) == 2
    assert loss_ax.get_xlabel() == "training step" and "task loss" in loss_ax.get_ylabel()


def test_a_run_without_stop_trains_every_epoch_and_shows_a_picture():
    view = LiveTrainingView(NAMES, redraw_every=5)
    history = view.train(toy_run, epochs=3)
    assert len(history) == 3 and len(view.log.rows) == 30
    assert view.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert view.status.value.startswith("finished") and view.stopped_at is None


def test_an_interrupt_ends_training_after_the_current_step_and_keeps_the_best_weights(tmp_path):
    view = LiveTrainingView(NAMES, redraw_every=100)
    redraw = view.log.on_step

    def interrupt_at_step_14(row):
        redraw(row)
        if row["step"] == 14:  # in epoch 2: what the kernel's interrupt button sends
            os.kill(os.getpid(), signal.SIGINT)

    view.log.on_step = interrupt_at_step_14
    before = signal.getsignal(signal.SIGINT)  # CI may start us with SIGINT ignored
    ckpt = tmp_path / "best.safetensors"
    history = view.train(toy_run, epochs=5, checkpoint_path=ckpt)  # no KeyboardInterrupt escapes
    assert [r["step"] for r in view.log.rows][-1] == 14  # no step after the interrupt
    assert len(history) == 2 and history["step"].iloc[-1] == 15  # epoch 2 cut short, then validated
    assert view.stopped_at == 14 and "stopped at step 14" in view.status.value
    assert ckpt.exists() and history.attrs["best_epoch"] in (1, 2)
    assert signal.getsignal(signal.SIGINT) is before  # Ctrl-C behaves as before afterwards
