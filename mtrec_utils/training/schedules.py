"""Joint training schedules, a per-step training log, and the cosine between task gradients.

The article's step 3 names two ways to update a shared model on several tasks:

- ``"joint"`` (联合更新): every step draws one batch per data source, computes every task's loss
  and takes one step on their weighted sum (the weights come from a weighting strategy);
- alternating (交替更新): every step trains ONE task on one of its batches.
  ``"round_robin"`` takes the tasks in turn; ``"proportional"`` draws them at random, each as
  often as it has batches (so a big dataset gets more steps).

Same budget: in one epoch every task sees as many batches of its data under each schedule (a
joint step does the work of several alternating steps), so the schedules are compared epoch for
epoch, and their wall-clock seconds are reported next to the metrics.

:func:`make_epoch_fn` returns a drop-in replacement for
:func:`mtrec_utils.training.loop.train_one_epoch` (pass it to ``fit(..., epoch_fn=...)``) that also
writes each step's losses and weights, and every ``cosine_every`` steps the cosines between the
task gradients on the shared parameters, to a :class:`TrainingLog`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from mtrec_utils.core.config import check_choice, check_positive
from mtrec_utils.data.tasks import Task
from mtrec_utils.models.heads import task_loss
from mtrec_utils.training.resume import check_finite_losses
from mtrec_utils.weighting import EqualWeighting, task_gradients

SCHEDULES = ("joint", "round_robin", "proportional")


def alternating_order(
    sizes: Sequence[int], schedule: str, generator: torch.Generator | None = None
) -> list[int]:
    """The task index trained at each step of one alternating epoch.

    Args:
        sizes: batches per epoch of each task (task ``t`` appears ``sizes[t]`` times).
        schedule: ``"round_robin"`` (in turn, skipping tasks whose batches are used up) or
            ``"proportional"`` (a random order of the same multiset, drawn with ``generator``).

    Returns:
        ``sum(sizes)`` task indices.
    """
    check_choice("schedule", schedule, SCHEDULES[1:])
    for t, n in enumerate(sizes):
        check_positive(f"sizes[{t}]", int(n), integer=True)
    if schedule == "round_robin":
        return [t for j in range(max(sizes)) for t, n in enumerate(sizes) if j < n]
    flat = torch.as_tensor(np.repeat(np.arange(len(sizes)), sizes))
    return flat[torch.randperm(len(flat), generator=generator)].tolist()


def _restarting(loader) -> Iterator[dict]:
    """Batches of ``loader`` for ever, re-iterating it (fresh shuffles and negatives) when it ends."""
    while True:
        yield from loader


@dataclass
class TrainingLog:
    """Rows written during training: one per step (losses, weights) and one per cosine probe.

    ``on_step(row)`` is called after every step (e.g. to redraw a live plot); ``stop()`` is asked before
    every step, and True ends the epoch there (e.g. a Stop button; ``fit`` then validates and stops).
    """

    rows: list[dict] = field(default_factory=list)
    probe: dict | None = field(default=None, repr=False)  # the fixed batches the cosines are measured on
    on_step: Callable[[dict], None] | None = field(default=None, repr=False)
    stop: Callable[[], bool] | None = field(default=None, repr=False)

    def frame(self) -> pd.DataFrame:
        """The rows as a DataFrame sorted by ``step`` (NaN where a row has no value)."""
        return pd.DataFrame(self.rows).sort_values("step", kind="stable").reset_index(drop=True)


def probe_batches(loaders: Mapping[str, torch.utils.data.DataLoader], sources: Sequence[str], device) -> dict:
    """The next batch of each source's loader, drawn without moving any random generator along.

    The generators of the loaders and of their datasets (negative sampling) are restored
    afterwards, so measuring cosines does not change the run's shuffles or negatives.
    """
    found = [getattr(x, "generator", None) for s in sources for x in (loaders[s], loaders[s].dataset)]
    gens = {id(g): g for g in found if g is not None}
    states = {k: g.get_state() for k, g in gens.items()}
    with torch.random.fork_rng(devices=[]):
        batches = {s: _to(next(iter(loaders[s])), device) for s in sources}
    for k, g in gens.items():
        g.set_state(states[k])
    return batches


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def task_losses(model: torch.nn.Module, tasks: Sequence[Task], batches: Mapping[str, dict]) -> torch.Tensor:
    """``(k,)`` losses of ``tasks``, each on the batch of its data source (one forward per source)."""
    out = {}
    for s in sorted({t.data for t in tasks}):
        out.update(model(batches[s], [t.name for t in tasks if t.data == s]))
    return torch.stack([task_loss(t, out[t.name], batches[t.data][t.label]) for t in tasks])


def gradient_cosines(
    model: torch.nn.Module,
    tasks: Sequence[Task],
    batches: Mapping[str, dict],
    shared: Sequence[torch.Tensor] | None = None,
) -> np.ndarray:
    """Cosine similarity between the tasks' gradients on the shared parameters.

    Args:
        model: a multi-task model (``model.shared_parameters()`` is used when ``shared`` is None).
        tasks: the k tasks.
        batches: ``{data source: batch}`` on the model's device.
        shared: the parameters to compare gradients on.

    Returns:
        ``(k, k)`` matrix; entry ``(a, b)`` is ``cos(grad L_a, grad L_b)`` (NaN if a gradient is 0).
        Dropout is off while measuring, so the value depends on the weights only.
    """
    if shared is None:  # shared_parameters() is the multi-task model's method, not nn.Module's
        shared = cast(Any, model).shared_parameters()
    shared = list(shared)
    was_training = model.training
    model.eval()
    try:
        grads = task_gradients(task_losses(model, tasks, batches), shared)
    finally:
        model.train(was_training)
    flat = torch.stack([torch.cat([g.detach().float().reshape(-1) for g in gi]) for gi in grads])  # (k, P)
    norms = flat.norm(dim=1)
    cos = (flat @ flat.T) / (norms[:, None] * norms[None, :])
    return cos.cpu().numpy()


def scheduled_epoch(
    model,
    tasks: Sequence[Task],
    loaders: Mapping[str, torch.utils.data.DataLoader],
    optimizer,
    accelerator,
    strategy=None,
    step: int = 0,
    max_grad_norm: float | None = None,
    progress: bool = True,
    *,
    schedule: str = "joint",
    log: TrainingLog | None = None,
    cosine_every: int | None = None,
    generator: torch.Generator | None = None,
):
    """One epoch under ``schedule``; same arguments and return value as ``train_one_epoch``.

    ``"joint"`` runs ``max(len(loader))`` steps, each on every task's loss combined by ``strategy``;
    the alternating schedules run ``sum(len(loader of each task))`` steps of one task each, where
    the strategy is not used (weight 1 on the active task). Returns ``({"loss/<task>": mean,
    "weight/<task>": mean}, step)``; losses are averaged over the steps that computed them.
    """
    check_choice("schedule", schedule, SCHEDULES)
    strategy = strategy or EqualWeighting(len(tasks))
    sources = sorted({t.data for t in tasks})
    iters = {s: _restarting(loaders[s]) for s in sources}
    plan: Sequence[int | None]  # per step: None (joint: every task) or the one task's index
    if schedule == "joint":
        plan = [None] * max(len(loaders[s]) for s in sources)
    else:
        plan = alternating_order([len(loaders[t.data]) for t in tasks], schedule, generator)
    shared = model.shared_parameters() if hasattr(model, "shared_parameters") else None
    sums, counts, weight_sums = np.zeros(len(tasks)), np.zeros(len(tasks)), np.zeros(len(tasks))
    if log is not None and cosine_every and log.probe is None:  # one fixed probe batch for the whole run
        log.probe = probe_batches(loaders, sources, accelerator.device)
    model.train()
    done = 0
    for active in tqdm(plan, desc=f"train ({schedule})", leave=False, disable=not progress):
        if log is not None and log.stop is not None and log.stop():
            break
        group = list(range(len(tasks))) if active is None else [active]
        batches = {s: _to(next(iters[s]), accelerator.device) for s in sorted({tasks[t].data for t in group})}
        with accelerator.accumulate(model):
            losses = task_losses(model, [tasks[t] for t in group], batches)  # (len(group),)
            values = losses.detach().float().cpu().numpy()
            check_finite_losses(values, [tasks[t].name for t in group], step)  # before any update
            if active is None:
                result = strategy.combine(losses, shared, step)
                result.backward(accelerator.backward)
                weights = result.weights.detach().float().cpu().numpy()
            else:
                accelerator.backward(losses[0])
                weights = np.eye(len(tasks))[active]
            if max_grad_norm is not None and accelerator.sync_gradients:
                accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        sums[group] += values
        counts[group] += 1
        weight_sums += weights
        if log is not None:
            row = {"step": step, "schedule": schedule}
            row.update({f"loss/{tasks[t].name}": float(v) for t, v in zip(group, values)})
            row.update({f"weight/{t.name}": float(w) for t, w in zip(tasks, weights)})
            log.rows.append(row)
            if log.on_step is not None:
                log.on_step(row)
            if cosine_every and step % cosine_every == 0 and len(tasks) > 1:
                assert log.probe is not None  # drawn before the first step whenever cosine_every is set
                cos = gradient_cosines(model, tasks, log.probe, shared)
                cosines = {
                    f"cos/{tasks[i].name}|{tasks[j].name}": float(cos[i, j])
                    for i, j in itertools.combinations(range(len(tasks)), 2)
                }
                log.rows.append({"step": step, **cosines})
        step += 1
        done += 1
    stats = {f"loss/{t.name}": s / max(c, 1) for t, s, c in zip(tasks, sums, counts)}
    stats.update({f"weight/{t.name}": w / max(done, 1) for t, w in zip(tasks, weight_sums)})
    return stats, step


def make_epoch_fn(
    schedule: str = "joint",
    log: TrainingLog | None = None,
    cosine_every: int | None = None,
    generator: torch.Generator | None = None,
) -> Callable:
    """:func:`scheduled_epoch` with its options bound, for ``fit(..., epoch_fn=...)``.

    Args:
        schedule: ``"joint"``, ``"round_robin"`` or ``"proportional"``.
        log: where each step's losses and weights (and the cosines) are written, or None.
        cosine_every: measure gradient cosines every this many steps (None: never).
        generator: random source of the ``"proportional"`` order.
    """
    check_choice("schedule", schedule, SCHEDULES)
    if cosine_every is not None:
        check_positive("cosine_every", cosine_every, integer=True)
    return partial(
        scheduled_epoch, schedule=schedule, log=log, cosine_every=cosine_every, generator=generator
    )


def mixed_precision_for(device: torch.device | str) -> str:
    """``"bf16"`` on a GPU that supports it, ``"fp16"`` (with loss scaling) on older GPUs, ``"no"`` on CPU.

    bf16 autocast runs on CPU too, but several times slower than fp32 there, so CPU trains in fp32.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
