"""Inter-task affinity by lookahead (TAG: Fifty, Amid, Zhao, Yu, Anil and Finn, "Efficiently
Identifying Task Groupings for Multi-Task Learning", NeurIPS 2021).

How much does a step on task ``i``'s loss alone help task ``j``? Take the step on a copy of the
shared parameters and measure ``j``'s loss on the same batch before and after::

    theta_s' = theta_s - lr * grad_{theta_s} L_i(theta)           (plain SGD, shared parameters only)
    Z[i, j]  = 1 - L_j(theta_s', theta_j) / L_j(theta_s, theta_j)   positive: i's update lowers L_j

Rows are the task stepped on, columns the task whose loss is read; ``Z`` is not symmetric. To
first order ``Z[i, j] ~ lr * <g_i, g_j> / L_j``, so its sign is the sign of the gradient cosine that
:func:`~mtrec_utils.training.schedules.gradient_cosines` records, and its size also says how much
the loss moves. Averaged over training steps it gives a task x task matrix (:class:`AffinityRecorder`).

Choices made here (and why):

- The lookahead is a plain SGD step at ``lr``, as the paper's formula writes it (its code can use
  the optimizer's own update). With AdamW the real update is rescaled per coordinate; plain SGD
  keeps the measure a property of the gradients and weights only, and leaves the optimizer alone.
- Shared parameters: ``model.shared_parameters()`` where the model has it (the rule the weighting
  strategies and the gradient cosines use: the towers and trunks of
  :class:`~mtrec_utils.models.multitask.MultiTaskModel`, the towers and experts of
  :class:`~mtrec_utils.models.sharing.MMoEModel`); otherwise every trainable parameter outside
  ``model.heads``. Task heads (and MMoE gates, and the pair biases ``b_u + b_i``) stay as they are,
  so ``Z[i, j]`` for ``i != j`` only sees the shared part.
- Dropout is off while measuring (``model.eval()``, restored afterwards), as for the cosines, so the
  value depends on the weights and the batch only. The parameters are never written (the stepped
  copy goes through ``torch.func.functional_call``), gradients go through ``torch.autograd.grad``
  (no ``.grad`` is touched), and PyTorch's random state is saved and restored around the forward
  passes: a run that records affinities trains bit for bit like one that does not.

Use in a run (``fit`` takes an ``epoch_fn``)::

    recorder = AffinityRecorder(every=10, lr=0.1)
    fit(model, tasks, train, val, epoch_fn=recorder.wrap(make_epoch_fn("joint", log)))
    recorder.matrix()    # (k, k) DataFrame, mean over the measurements
    recorder.history()   # one row per measurement: step, aff/<i>><j>
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, cast

import numpy as np
import pandas as pd
import torch
from torch.func import functional_call

from mtrec_utils.core.config import check_positive
from mtrec_utils.data.tasks import Task
from mtrec_utils.models.heads import task_loss
from mtrec_utils.training.loop import train_one_epoch
from mtrec_utils.weighting import task_gradients

__all__ = [
    "AffinityRecorder",
    "affinity_frame",
    "lookahead_affinity",
    "mean_cosine_matrix",
    "shared_parameter_names",
]


def shared_parameter_names(model: torch.nn.Module) -> list[str]:
    """Names (as in ``model.named_parameters()``) of the parameters the lookahead step moves.

    ``model.shared_parameters()`` when the model defines it; otherwise every trainable parameter
    whose name does not start with ``heads.``.
    """
    if hasattr(model, "shared_parameters"):
        ids = {id(p) for p in cast(Any, model).shared_parameters()}
        return [n for n, p in model.named_parameters() if id(p) in ids]
    return [n for n, p in model.named_parameters() if p.requires_grad and not n.startswith("heads.")]


def _losses(call: Callable, tasks: Sequence[Task], batches: Mapping[str, dict]) -> torch.Tensor:
    """``(k,)`` losses, one forward of ``call(batch, names)`` per data source."""
    out = {}
    for s in sorted({t.data for t in tasks}):
        out.update(call(batches[s], [t.name for t in tasks if t.data == s]))
    return torch.stack([task_loss(t, out[t.name], batches[t.data][t.label]) for t in tasks])


@contextmanager
def _measuring(model: torch.nn.Module, device: torch.device):
    """Dropout off and PyTorch's random state (CPU and ``device``'s CUDA) kept, for the block."""
    was_training = model.training
    devices = [device] if device.type == "cuda" else []
    model.eval()
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        model.train(was_training)


def lookahead_affinity(
    model: torch.nn.Module,
    tasks: Sequence[Task],
    batches: Mapping[str, dict],
    lr: float,
    shared: Sequence[str] | None = None,
) -> np.ndarray:
    """Lookahead affinity of every task onto every other on one batch (TAG, Fifty et al. 2021).

    Args:
        model: called as ``model(batch, names) -> {name: (B, out)}``.
        tasks: the k tasks.
        batches: ``{data source: batch}`` on the model's device (one batch per ``task.data``).
        lr: step size of the plain SGD lookahead step (> 0).
        shared: names of the parameters stepped (default :func:`shared_parameter_names`).

    Returns:
        ``(k, k)`` float64 array; ``Z[i, j] = 1 - L_j(after a step on L_i) / L_j(now)``. The model,
        its gradients, the optimizer and the random state are left as they were.
    """
    check_positive("lr", lr)
    params = dict(model.named_parameters())
    names = list(shared) if shared is not None else shared_parameter_names(model)
    unknown = [n for n in names if n not in params]
    if unknown or not names:
        raise ValueError(f"shared={names!r}: not parameter names of the model (unknown: {unknown})")
    device = params[names[0]].device
    with _measuring(model, device), torch.enable_grad():
        losses = _losses(model, tasks, batches)  # (k,)
        grads = task_gradients(losses, [params[n] for n in names])  # grads[i][p]
        before = losses.detach().double()
        after = torch.empty(len(tasks), len(tasks), dtype=torch.float64)
        with torch.no_grad():
            for i, grad in enumerate(grads):
                moved = {n: params[n].detach() - lr * g for n, g in zip(names, grad)}
                step = lambda batch, wanted, moved=moved: functional_call(model, moved, (batch, wanted))  # noqa: E731
                after[i] = _losses(step, tasks, batches).double().cpu()
    return (1.0 - after / before.cpu()[None, :]).numpy()  # (k, k): row i stepped, column j read


def affinity_frame(matrix: np.ndarray, task_names: Sequence[str]) -> pd.DataFrame:
    """A ``(k, k)`` affinity array as a DataFrame: index "step on" (task i), columns "loss of" (task j)."""
    frame = pd.DataFrame(np.asarray(matrix, dtype=float), index=list(task_names), columns=list(task_names))
    return frame.rename_axis(index="step on", columns="loss of")


def mean_cosine_matrix(frame: pd.DataFrame, task_names: Sequence[str]) -> pd.DataFrame:
    """Mean gradient cosines of a training log (columns ``cos/<a>|<b>``) as a symmetric ``(k, k)`` DataFrame.

    The counterpart of :meth:`AffinityRecorder.matrix`, to plot the two side by side (1 on the
    diagonal; NaN for a pair the log has no cosine of).
    """
    names = list(task_names)
    out = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    for a, b in itertools.combinations(names, 2):
        col = f"cos/{a}|{b}"
        value = float(frame[col].mean()) if col in frame else float("nan")
        out.loc[a, b] = out.loc[b, a] = value
    return out.rename_axis(index="task", columns="task")


class _StepProbe:
    """An optimizer stand-in that calls ``before_step()`` and then the real ``step``."""

    def __init__(self, optimizer, before_step: Callable[[], None]):
        self._optimizer, self._before_step = optimizer, before_step

    def step(self, *args, **kwargs):
        self._before_step()
        return self._optimizer.step(*args, **kwargs)

    def zero_grad(self, *args, **kwargs):
        return self._optimizer.zero_grad(*args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._optimizer, name)


class AffinityRecorder:
    """Measures :func:`lookahead_affinity` every ``every`` training steps of a real run.

    :meth:`wrap` turns an epoch function (``train_one_epoch`` or one of
    :func:`~mtrec_utils.training.schedules.make_epoch_fn`) into one that, just before each
    optimizer step whose global step is a multiple of ``every``, measures the affinity on that
    step's batches (the latest batch of every data source; under an alternating schedule, the
    other sources' batches are from earlier steps) at the weights the step starts from.

    Args:
        every: measure every this many steps (positive integer; steps counted as ``fit`` does).
        lr: step size of the lookahead SGD step (positive).
        shared: names of the parameters stepped (default :func:`shared_parameter_names`).

    Attributes:
        seconds: wall-clock seconds spent measuring (what recording adds to the run).
        rows, matrices: the measurements so far (use one recorder per run: they accumulate).
    """

    def __init__(self, every: int = 10, lr: float = 0.1, shared: Sequence[str] | None = None):
        check_positive("every", every, integer=True)
        check_positive("lr", lr)
        self.every, self.lr, self.shared = every, float(lr), shared
        self.task_names: list[str] | None = None
        self.rows: list[dict] = []
        self.matrices: list[np.ndarray] = []
        self.seconds = 0.0

    def wrap(self, epoch_fn: Callable | None = None) -> Callable:
        """``epoch_fn`` (default ``train_one_epoch``) that also measures affinities; pass it to ``fit``."""
        inner = epoch_fn or train_one_epoch

        def recorded_epoch(
            model,
            tasks,
            loaders,
            optimizer,
            accelerator,
            strategy=None,
            step=0,
            max_grad_norm=None,
            progress=True,
        ):
            return self._epoch(
                inner, model, tasks, loaders, optimizer, accelerator, strategy, step, max_grad_norm, progress
            )

        return recorded_epoch

    @property
    def epoch_fn(self) -> Callable:
        """``train_one_epoch`` with the measurements (``fit(..., epoch_fn=recorder.epoch_fn)``)."""
        return self.wrap()

    def _epoch(
        self, inner, model, tasks, loaders, optimizer, accelerator, strategy, step, max_grad_norm, progress
    ):
        """``inner``'s epoch with a forward pre-hook keeping the batches and an optimizer that measures first."""
        self.task_names = [t.name for t in tasks]
        source_of = {t.name: t.data for t in tasks}
        batches: dict[str, dict] = {}  # latest batch of each data source
        state = {"step": step, "busy": False}

        def grab(module, args, kwargs):  # forward pre-hook: the batches the step trains on
            if state["busy"]:
                return
            batch = args[0] if args else kwargs.get("batch")
            wanted = (args[1] if len(args) > 1 else kwargs.get("names")) or list(source_of)
            for n in wanted:
                if n in source_of:
                    batches[source_of[n]] = batch

        def before_step():
            due = state["step"] % self.every == 0
            if due and len(tasks) > 1 and all(t.data in batches for t in tasks):
                state["busy"] = True
                try:
                    self._measure(accelerator.unwrap_model(model), tasks, batches, state["step"])
                finally:
                    state["busy"] = False
            state["step"] += 1

        handle = model.register_forward_pre_hook(grab, with_kwargs=True)
        try:
            probe = _StepProbe(optimizer, before_step)
            return inner(model, tasks, loaders, probe, accelerator, strategy, step, max_grad_norm, progress)
        finally:
            handle.remove()

    def _measure(self, model, tasks, batches, step: int) -> None:
        start = time.perf_counter()
        z = lookahead_affinity(model, tasks, batches, self.lr, self.shared)
        self.seconds += time.perf_counter() - start
        self.matrices.append(z)
        names = [t.name for t in tasks]
        row: dict[str, float] = {"step": step}
        row.update(
            {
                f"aff/{a}>{b}": float(z[i, j])
                for (i, a), (j, b) in itertools.product(enumerate(names), repeat=2)
            }
        )
        self.rows.append(row)

    def matrix(self) -> pd.DataFrame:
        """Mean affinity over the measurements: ``(k, k)`` DataFrame (see :func:`affinity_frame`).

        Raises:
            ValueError: if nothing was measured yet (no run, or fewer steps than ``every``).
        """
        if not self.matrices or self.task_names is None:
            raise ValueError(
                f"no affinity measured yet (every={self.every}): train with epoch_fn=recorder.wrap(...) "
                "for at least one step, with 2 or more tasks"
            )
        return affinity_frame(np.mean(self.matrices, axis=0), self.task_names)

    def history(self) -> pd.DataFrame:
        """One row per measurement: ``step`` and ``aff/<i>><j>`` (the training-log shape, for
        :func:`~mtrec_utils.viz.joint.plot_step_curves` with ``prefix="aff/"``)."""
        return pd.DataFrame(self.rows, columns=["step"] if not self.rows else None)
