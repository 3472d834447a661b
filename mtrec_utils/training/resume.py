"""Training that survives being killed: the state file, and the checks that stop a run going bad.

``fit(..., state_path=PATH)`` writes, after every epoch and atomically, everything the next epoch
depends on: the model and optimizer, the weighting strategy, early stopping, the history so far,
the best weights, and every random state (PyTorch's, NumPy's, Python's and each
``torch.Generator`` that shuffles a loader or samples negatives). Run the same ``fit`` call
again after a crash or a kill and it resumes after the last finished epoch; on CPU with the same
seed the result is the same as a run that was never interrupted. A kill in the middle of an epoch
loses only that epoch's steps.

The file is written with ``torch.save`` and read with ``torch.load(weights_only=True)``: it holds
tensors, numbers, strings, lists and dicts only, so loading it never runs code.

Also here: :class:`NonFiniteLossError` (a NaN or Inf task loss stops training at once, naming the
step, the task and the last good checkpoint) and :func:`out_of_memory_help`.

:class:`TrainingState` is the one object ``fit`` talks to: ``resume(epochs)`` says where to start,
``save(epoch, step, done, history, best)`` writes the state after an epoch.
"""

from __future__ import annotations

import io
import random
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple, cast

import numpy as np
import torch

from mtrec_utils.core.io import atomic_write_bytes

STATE_VERSION = 1


class NonFiniteLossError(FloatingPointError):
    """A task's loss became NaN or Inf; carries ``step``, ``task``, ``value`` and ``checkpoint``."""

    def __init__(self, step: int, task: str, value: float, checkpoint: str | None = None):
        self.step, self.task, self.value, self.checkpoint = step, task, value, checkpoint
        where = (
            f"the last good weights are in {checkpoint}"
            if checkpoint
            else "no checkpoint was written yet (pass checkpoint_path= or state_path= to keep one)"
        )
        super().__init__(
            f"training stopped at step {step}: the loss of task {task!r} is {value} (not finite); {where}. "
            "Lower the learning rate, clip gradients (max_grad_norm=1.0) or check the labels for NaN/Inf."
        )

    def with_checkpoint(self, checkpoint: str | None) -> NonFiniteLossError:
        """The same error, naming ``checkpoint`` as the last good weights."""
        return NonFiniteLossError(self.step, self.task, self.value, checkpoint)


def check_finite_losses(values: np.ndarray, task_names: Sequence[str], step: int) -> None:
    """Raise :class:`NonFiniteLossError` for the first task whose loss in ``values`` (k,) is NaN/Inf."""
    for name, value in zip(task_names, values):
        if not np.isfinite(value):
            raise NonFiniteLossError(step, name, float(value))


def out_of_memory_help(error: BaseException, batch_size: int | None = None) -> RuntimeError:
    """A RuntimeError that explains an out-of-memory error and what to change."""
    smaller = f" (now {batch_size}; try {max(1, batch_size // 2)})" if batch_size else ""
    return RuntimeError(
        f"out of memory while training: {str(error).splitlines()[0] if str(error) else type(error).__name__}. "
        f"Use a smaller batch size{smaller}, a shorter max_length, gradient_accumulation_steps=2 or more, "
        "mixed precision on a GPU, or a smaller profile (PROFILE='cpu' freezes the encoder, 'smoke' is tiny)."
    )


def random_sources(loaders: Mapping[str, object], extra: Iterable[object] = ()) -> list[torch.Generator]:
    """The distinct ``torch.Generator`` objects a training run draws from, in a stable order.

    Looks at each loader, its dataset and its sampler (shuffling, negative sampling), and at each
    object in ``extra`` (e.g. a strategy with a ``generator``), keeping each generator once.
    """
    found, seen = [], set()
    holders = [x for name in sorted(loaders) for x in _parts(loaders[name])] + list(extra)
    for holder in holders:
        gen = holder if isinstance(holder, torch.Generator) else getattr(holder, "generator", None)
        if isinstance(gen, torch.Generator) and id(gen) not in seen:
            seen.add(id(gen))
            found.append(gen)
    return found


def _parts(loader) -> list:
    return [loader, getattr(loader, "dataset", None), getattr(loader, "sampler", None)]


def capture_random_state(generators: Sequence[torch.Generator]) -> dict:
    """Every random state a run depends on, as tensors and plain numbers."""
    kind, keys, pos, has_gauss, cached = cast(tuple, np.random.get_state())  # the legacy tuple form
    version, internal, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
        "generators": [g.get_state() for g in generators],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_random_state(state: dict, generators: Sequence[torch.Generator]) -> None:
    """Put back what :func:`capture_random_state` saved (the same generators, in the same order)."""
    if len(state["generators"]) != len(generators):
        raise ValueError(
            f"the state file has {len(state['generators'])} random generators but this run has "
            f"{len(generators)}: it was written by a different setup; delete it to start afresh"
        )
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    for gen, gen_state in zip(generators, state["generators"]):
        gen.set_state(gen_state)
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_training_state(path: str | Path, state: dict) -> Path:
    """Write a training state (see the module docstring) atomically."""
    buffer = io.BytesIO()
    torch.save({"version": STATE_VERSION, **state}, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def load_training_state(path: str | Path) -> dict:
    """Read a state written by :func:`save_training_state`, refusing anything but plain data."""
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # a damaged file, or a pickle that carries code
        raise ValueError(
            f"{path} is not a readable training state ({type(err).__name__}: {str(err).splitlines()[0]}); "
            "delete it to train from the start"
        ) from err
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise ValueError(
            f"{path} is not a training state of version {STATE_VERSION}; delete it to start afresh"
        )
    return state


def cpu_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def run_config(model, tasks, strategy, *numbers) -> dict:
    """What must match for a state file to belong to this run (tasks, settings, parameter shapes)."""
    return {
        "tasks": [t.name for t in tasks],
        "strategy": type(strategy).__name__ if strategy is not None else "sum",
        "settings": [repr(x) for x in numbers],
        "params": [f"{k}:{tuple(v.shape)}" for k, v in model.state_dict().items()],
    }


def resume_into(path, config, model, optimizer, strategy, stopper, generators) -> dict:
    """Load the state at ``path`` into this run's objects; refuses a state from a different run."""
    state = load_training_state(path)
    if state["config"] != config:
        diff = [k for k in config if state["config"].get(k) != config[k]]
        raise ValueError(
            f"{path} holds the training state of a different run (its {', '.join(diff)} differ); "
            "delete it, or pass another state_path, to train this one from the start"
        )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if strategy is not None:
        strategy.load_state_dict(state["strategy"])
    stopper.best, stopper.best_epoch, stopper.bad_epochs = state["stopper"]
    restore_random_state(state["random"], generators)
    return state


class Resumed(NamedTuple):
    """Where a run starts: its first epoch, its step count, the history so far and the best weights."""

    first_epoch: int
    step: int
    history: list[dict]
    best: dict[str, torch.Tensor] | None


class TrainingState:
    """The resume bookkeeping of one ``fit`` run: its state file and the objects the file restores.

    Args:
        path: the state file, or ``None`` (nothing is resumed or saved).
        model: the (unwrapped) model; optimizer: its optimizer.
        strategy: the weighting strategy, or ``None``; stopper: the run's ``EarlyStopping``.
        loaders: the training loaders (their random generators are saved and restored).
        tasks, settings: what must match for a file to belong to this run (see :func:`run_config`).
    """

    def __init__(self, path, model, optimizer, strategy, stopper, loaders, tasks, settings: Sequence):
        self.path, self.model, self.optimizer = path, model, optimizer
        self.strategy, self.stopper = strategy, stopper
        self.generators = random_sources(loaders, [strategy] if strategy is not None else [])
        self.config = run_config(model, tasks, strategy, *settings)

    def resume(self, epochs: int) -> Resumed:
        """Load the state file, if there is one, into the run's objects; say where to start."""
        if self.path is None or not Path(self.path).exists():
            return Resumed(1, 0, [], None)
        state = resume_into(
            self.path, self.config, self.model, self.optimizer, self.strategy, self.stopper, self.generators
        )
        first = epochs + 1 if state["done"] else state["epoch"] + 1
        return Resumed(first, state["step"], state["history"], state["best"])

    def save(self, epoch: int, step: int, done: bool, history: list[dict], best) -> None:
        """Write the state after ``epoch`` (``done``: training is over); nothing without a path."""
        if self.path is None:
            return
        state = {"config": self.config, "epoch": epoch, "step": step, "done": done, "history": history}
        state["model"] = cpu_state(self.model.state_dict())
        state["optimizer"] = self.optimizer.state_dict()
        state["strategy"] = self.strategy.state_dict() if self.strategy is not None else {}
        state["best"] = best
        state["stopper"] = [self.stopper.best, self.stopper.best_epoch, self.stopper.bad_epochs]
        state["random"] = capture_random_state(self.generators)
        save_training_state(self.path, state)
