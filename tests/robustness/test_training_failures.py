"""Training that goes wrong says so: a NaN/Inf loss stops at once (naming the step, the task and the last
good checkpoint, with no update made from it), out-of-memory says what to change, and a state file from
a different run is refused instead of silently resumed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from mtrec_utils.data import GENRES
from mtrec_utils.data.datasets import TensorDictDataset, make_loader
from mtrec_utils.data.tasks import movielens_tasks
from mtrec_utils.models import EntityTower, MultiTaskModel
from mtrec_utils.training.loop import fit
from mtrec_utils.training.resume import NonFiniteLossError, check_finite_losses

TASKS = movielens_tasks(GENRES)
NU, NI = 10, 12


def data(seed=0, n=640):
    rng = np.random.default_rng(seed)
    u, i = rng.integers(0, NU, n), rng.integers(0, NI, n)
    r = rng.integers(1, 6, n).astype("float32")
    ds = TensorDictDataset(user=u, item=i, rating=r, like=(r >= 4).astype("float32"))
    return {"ratings": make_loader(ds, 64, True, torch.Generator().manual_seed(seed))}


def model(hidden=16):
    torch.manual_seed(0)
    towers = {"user": EntityTower(NU, 8), "item": EntityTower(NI, 8)}
    return MultiTaskModel(towers, [TASKS["rating"], TASKS["like"]], hidden=hidden, dropout=0.0)


def poison_from(m: torch.nn.Module, call: int, value: float = float("nan")) -> None:
    """From the ``call``-th forward pass on, the rating output becomes ``value``."""
    calls = {"n": 0}

    def hook(module, inputs, out):
        calls["n"] += 1
        if calls["n"] >= call and "rating" in out:
            return {**out, "rating": out["rating"] * 0 + value}
        return None

    m.register_forward_hook(hook)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_non_finite_loss_stops_training_and_names_step_task_and_checkpoint(tmp_path, value):
    m, ckpt = model(), tmp_path / "best.safetensors"
    poison_from(m, 25, value)  # epoch 1 = 10 steps + 10 validation batches: call 25 is step 14
    with pytest.raises(NonFiniteLossError) as err:
        fit(
            m,
            [TASKS["rating"], TASKS["like"]],
            data(),
            data(1),
            epochs=3,
            lr=0.01,
            progress=False,
            checkpoint_path=ckpt,
        )
    assert (err.value.step, err.value.task) == (14, "rating")
    assert str(ckpt) in str(err.value) and "step 14" in str(err.value) and "'rating'" in str(err.value)
    assert ckpt.exists()
    assert all(torch.isfinite(p).all() for p in m.parameters())  # no update was made from the bad loss


def test_a_non_finite_loss_in_the_first_epoch_says_there_is_no_checkpoint():
    m = model()
    poison_from(m, 3)
    with pytest.raises(NonFiniteLossError, match="step 2.*no checkpoint was written yet"):
        fit(m, [TASKS["rating"]], data(), data(1), epochs=2, lr=0.01, progress=False)


def test_check_finite_losses_names_the_first_bad_task():
    check_finite_losses(np.array([0.5, 1.0]), ["a", "b"], 7)
    with pytest.raises(NonFiniteLossError, match="step 7: the loss of task 'b' is inf"):
        check_finite_losses(np.array([0.5, np.inf]), ["a", "b"], 7)


def test_out_of_memory_suggests_a_smaller_batch_and_profile():
    def oom_epoch(*args):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with pytest.raises(RuntimeError, match=r"(?s)out of memory.*batch size \(now 64; try 32\).*PROFILE="):
        fit(
            model(), [TASKS["rating"]], data(), data(1), epochs=1, lr=0.01, progress=False, epoch_fn=oom_epoch
        )


def test_a_state_file_of_a_different_run_is_refused(tmp_path):
    state = tmp_path / "state.pt"
    fit(model(), [TASKS["rating"]], data(), data(1), epochs=1, lr=0.01, progress=False, state_path=state)
    with pytest.raises(ValueError, match="different run.*settings.*delete it"):
        fit(model(), [TASKS["rating"]], data(), data(1), epochs=1, lr=0.02, progress=False, state_path=state)
    with pytest.raises(ValueError, match="different run.*params"):
        fit(
            model(hidden=8),
            [TASKS["rating"]],
            data(),
            data(1),
            epochs=1,
            lr=0.01,
            progress=False,
            state_path=state,
        )


def test_an_interrupted_fit_called_again_matches_an_uninterrupted_run(tmp_path):
    """Interrupt (Ctrl-C) in epoch 3 of 4, call fit again: the same as one run (DWA's state included)."""
    from mtrec_utils.training.loop import train_one_epoch
    from mtrec_utils.weighting import get_strategy

    def interrupted_in_epoch_3(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return train_one_epoch(*args)

    tasks, calls, state = [TASKS["rating"], TASKS["like"]], [], tmp_path / "state.pt"
    kw = dict(epochs=4, lr=0.01, progress=False, patience=10)
    whole = model()
    ref = fit(whole, tasks, data(), data(1), strategy=get_strategy("dwa", num_tasks=2, period=10), **kw)
    with pytest.raises(KeyboardInterrupt):
        fit(
            model(),
            tasks,
            data(),
            data(1),
            strategy=get_strategy("dwa", num_tasks=2, period=10),
            state_path=state,
            epoch_fn=interrupted_in_epoch_3,
            **kw,
        )
    m = model()
    out = fit(
        m,
        tasks,
        data(),
        data(1),
        strategy=get_strategy("dwa", num_tasks=2, period=10),
        state_path=state,
        **kw,
    )
    cols = [c for c in ref if c != "seconds"]
    assert len(out) == 4
    # same weights bit for bit; a validation sum may differ in its last bit in one process (1e-16)
    pd.testing.assert_frame_equal(out[cols], ref[cols], check_exact=False, rtol=1e-12)
    for (k, a), b in zip(whole.state_dict().items(), m.state_dict().values()):
        assert torch.equal(a, b), k
