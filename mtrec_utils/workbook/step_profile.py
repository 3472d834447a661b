"""Per-step profile of joint training: ``python -m mtrec_utils.bench steps``.

One joint MovieLens run (notebook 04: tasks ``rating``, ``like``, ``interest``; hard sharing; equal
weights; AdamW with weight decay 1.0) spends its time in many small steps: a batch of 512 ratings
and one of 512 liked ratings with 4 negatives each (2,560 pairs) go through two towers, the pair
trunk and three heads. This module builds that run as :func:`~mtrec_utils.training.experiments.run_experiment`
does, and profiles the steps of one epoch of the joint schedule
(:func:`~mtrec_utils.training.schedules.scheduled_epoch`, the code every run executes) with
``torch.profiler`` on one thread, reporting the share of each phase of a step:

- ``data``: drawing the batches (shuffled index slices, negative sampling);
- ``forward``: the model, split by module kind (``Linear``, ``GELU``, ``Dropout``, ...; ``glue`` is
  the model's own tensor code between modules: concatenations, sums, the text table lookup);
- ``loss``, ``combine`` (the weighting strategy), ``backward`` (split by autograd function),
  ``optimizer`` (AdamW's step), ``zero_grad`` and ``other`` (the rest of the loop: the finiteness
  check, the step log).

The bundle is the ``cpu`` profile's (all 80,000 ratings of u1.base). Its text embeddings come from
the on-disk cache when it holds them (``--source real``); otherwise (``--source synthetic``, the
default when no cache is found) the text tables are random with the encoder's width (384), so the
tensors, shapes and steps are the same and no encoder runs; only the embeddings' values differ.

Timings are also taken without the profiler (median seconds per step over ``--repeats`` epochs):
quote ratios, as shared machines are noisy. Speed is never asserted in unit tests.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any
from unittest import mock

import torch
from torch import nn

from mtrec_utils.core.config import check_choice, check_positive, resolve_profile, set_seed
from mtrec_utils.models.sharing import build_model
from mtrec_utils.models.towers import FrozenText
from mtrec_utils.training import bundles, schedules
from mtrec_utils.training.bundles import TaskBundle, init_heads, movielens_bundle
from mtrec_utils.training.loop import _optimizer, make_accelerator
from mtrec_utils.training.schedules import TrainingLog, make_epoch_fn
from mtrec_utils.weighting import get_strategy

SOURCES = ("auto", "real", "synthetic")
#: Width of the bundled MiniLM's embeddings (the synthetic text tables have it too).
TEXT_DIM = 384
#: Notebook 04's joint MovieLens tasks.
TASKS = ("rating", "like", "interest")
#: The phases of a step, in the order they are reported.
PHASES = ("data", "forward", "loss", "combine", "backward", "optimizer", "zero_grad", "other")


def _synthetic_text_table(encoder, texts: Sequence[str], mode: str = "frozen", **_: Any) -> FrozenText:
    """A random (N, 384) text table standing in for ``text_table`` (same shapes, no encoder run)."""
    g = torch.Generator().manual_seed(len(texts))
    return FrozenText(torch.randn(len(texts), TEXT_DIM, generator=g))


def step_bundle(profile: str = "cpu", source: str = "auto", seed: int = 0) -> tuple[TaskBundle, str]:
    """The MovieLens bundle of ``profile``; returns ``(bundle, source used)``.

    ``source``: ``"real"`` (the bundled MiniLM's embeddings; encodes whatever the cache lacks, which
    takes minutes on a CPU), ``"synthetic"`` (random text tables of the same shape), or ``"auto"``
    (real when the embedding cache file of this profile's ``max_length`` exists).
    """
    check_choice("source", source, SOURCES)
    prof = resolve_profile(profile)
    encoder = None
    if source in ("auto", "real"):
        from mtrec_utils.models.encoders import cache_file, load_encoder

        encoder = load_encoder("bundled-minilm")
        if source == "auto":
            source = "real" if cache_file(encoder, prof.max_length).exists() else "synthetic"
    generator = torch.Generator().manual_seed(seed)
    if source == "real":
        return movielens_bundle(prof, encoder, generator, progress=False), source
    with mock.patch.object(bundles, "text_table", _synthetic_text_table):
        return movielens_bundle(prof, None, generator, progress=False), source


class _Labelled:
    """A loader whose batches are drawn inside the profiler range ``step/data``."""

    def __init__(self, loader):
        self.loader, self.dataset = loader, loader.dataset

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator:
        it = iter(self.loader)
        while True:
            with torch.profiler.record_function("step/data"):
                batch = next(it, None)
            if batch is None:
                return
            yield batch


def _labelled(fn: Callable, label: str) -> Callable:
    def run(*args, **kwargs):
        with torch.profiler.record_function(label):
            return fn(*args, **kwargs)

    return run


@contextmanager
def _module_ranges(model: nn.Module):
    """Profiler ranges ``step/forward`` around the model and ``module/<kind>`` around each leaf module."""
    handles, open_ranges = [], {}

    def enter(label):
        def pre(module, args):
            rf = torch.profiler.record_function(label)
            rf.__enter__()
            open_ranges.setdefault(id(module), []).append(rf)

        return pre

    def leave(module, args, output):
        open_ranges[id(module)].pop().__exit__(None, None, None)

    leaves = [m for m in model.modules() if not list(m.children())]
    for m, label in [(model, "step/forward")] + [(m, f"module/{type(m).__name__}") for m in leaves]:
        handles.append(m.register_forward_pre_hook(enter(label)))
        handles.append(m.register_forward_hook(leave))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _run(bundle: TaskBundle, task_names: Sequence[str], seed: int, weight_decay: float, arch: str):
    """Model, optimizer, accelerator, strategy and epoch function exactly as ``run_experiment`` builds them."""
    tasks = bundle.select(task_names)
    set_seed(seed)
    bundle.generator.manual_seed(seed)
    model = init_heads(build_model(arch, bundle.make_towers(), tasks), bundle)
    strategy = get_strategy("ew", num_tasks=len(tasks))
    accelerator = make_accelerator("cpu")
    optimizer = _optimizer(model, strategy, 2e-3, None, weight_decay, accelerator.device)
    model, optimizer = accelerator.prepare(model, optimizer)
    log = TrainingLog()
    epoch_fn = make_epoch_fn("joint", log, None, bundle.generator)
    return tasks, model, optimizer, accelerator, strategy, log, epoch_fn


def _limit(log: TrainingLog, steps: int | None) -> None:
    """End each epoch after ``steps`` steps (``None``: the whole epoch)."""
    if steps is None:
        log.stop = None
        return
    start = [len(log.rows)]

    def stop() -> bool:
        return len(log.rows) - start[0] >= steps

    log.stop = stop
    start[0] = len(log.rows)


def time_steps(
    bundle: TaskBundle,
    task_names: Sequence[str] = TASKS,
    *,
    steps: int | None = None,
    repeats: int = 3,
    seed: int = 0,
    weight_decay: float = 1.0,
    arch: str = "hard",
) -> dict:
    """Seconds per step of the joint schedule, without the profiler: one untimed epoch, then ``repeats``."""
    tasks, model, optimizer, accelerator, strategy, log, epoch_fn = _run(
        bundle, task_names, seed, weight_decay, arch
    )
    per_step, step = [], 0
    for r in range(repeats + 1):
        _limit(log, steps if r else min(steps or 20, 20))
        before = len(log.rows)
        start = time.perf_counter()
        _, step = epoch_fn(model, tasks, bundle.train, optimizer, accelerator, strategy, step, None, False)
        if r:
            per_step.append((time.perf_counter() - start) / max(1, len(log.rows) - before))
    return {"seconds_per_step": statistics.median(per_step), "all": per_step, "steps": len(log.rows)}


def profile_steps(
    bundle: TaskBundle,
    task_names: Sequence[str] = TASKS,
    *,
    steps: int | None = None,
    seed: int = 0,
    weight_decay: float = 1.0,
    arch: str = "hard",
) -> dict:
    """One epoch (or ``steps`` steps) of the joint schedule under ``torch.profiler``; shares per phase.

    Returns:
        ``{"steps", "wall_seconds", "phases": {phase: seconds}, "forward": {kind: seconds},
        "backward": {autograd function: seconds}, "top_ops": [(op, self seconds)]}``.
    """
    tasks, model, optimizer, accelerator, strategy, log, epoch_fn = _run(
        bundle, task_names, seed, weight_decay, arch
    )
    loaders = {k: _Labelled(v) for k, v in bundle.train.items()}
    _limit(log, 5)  # warm up, unprofiled
    _, step = epoch_fn(model, tasks, loaders, optimizer, accelerator, strategy, 0, None, False)
    _limit(log, steps)
    with ExitStack() as stack:
        stack.enter_context(
            mock.patch.object(schedules, "task_loss", _labelled(schedules.task_loss, "step/loss"))
        )
        stack.enter_context(
            mock.patch.object(strategy, "combine", _labelled(strategy.combine, "step/combine"))
        )
        stack.enter_context(
            mock.patch.object(accelerator, "backward", _labelled(accelerator.backward, "step/backward"))
        )
        stack.enter_context(mock.patch.object(optimizer, "step", _labelled(optimizer.step, "step/optimizer")))
        stack.enter_context(
            mock.patch.object(optimizer, "zero_grad", _labelled(optimizer.zero_grad, "step/zero_grad"))
        )
        stack.enter_context(_module_ranges(accelerator.unwrap_model(model)))
        prof = stack.enter_context(torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]))
        before = len(log.rows)
        start = time.perf_counter()
        epoch_fn(model, tasks, loaders, optimizer, accelerator, strategy, step, None, False)
        wall = time.perf_counter() - start
    return _summarise(prof, wall, len(log.rows) - before)


def _summarise(prof, wall: float, steps: int) -> dict:
    """Phase, module-kind and backward-function seconds from the profiler's events."""
    phases: dict[str, float] = defaultdict(float)
    forward: dict[str, float] = defaultdict(float)
    backward: dict[str, float] = defaultdict(float)
    for e in prof.key_averages():
        seconds = e.cpu_time_total / 1e6
        if e.key.startswith("step/"):
            phases[e.key[5:]] += seconds
        elif e.key.startswith("module/"):
            forward[e.key[7:]] += seconds
        elif e.key.startswith("autograd::engine::evaluate_function: "):
            backward[e.key.split(": ", 1)[1]] += seconds
    forward["glue"] = max(0.0, phases["forward"] - sum(forward.values()))
    phases["other"] = max(0.0, wall - sum(phases[p] for p in PHASES if p != "other"))
    ops = sorted(
        (
            (e.key, e.self_cpu_time_total / 1e6)
            for e in prof.key_averages()
            if not e.key.startswith(("step/", "module/"))
        ),
        key=lambda kv: -kv[1],
    )
    return {
        "steps": steps,
        "wall_seconds": wall,
        "phases": {p: phases[p] for p in PHASES},
        "forward": dict(sorted(forward.items(), key=lambda kv: -kv[1])),
        "backward": dict(sorted(backward.items(), key=lambda kv: -kv[1])),
        "top_ops": ops[:15],
    }


def format_profile(result: dict, timing: dict | None = None) -> str:
    """The profile as text: each phase's share, the forward by module kind, the backward by function."""
    wall, steps = result["wall_seconds"], max(1, result["steps"])

    def line(name: str, seconds: float, total: float) -> str:
        return f"  {name:<28} {1e3 * seconds / steps:8.2f} ms/step {100 * seconds / total:6.1f} %"

    out = [f"{steps} steps profiled, {1e3 * wall / steps:.1f} ms/step under the profiler"]
    if timing is not None:
        out.append(f"without the profiler: {1e3 * timing['seconds_per_step']:.1f} ms/step (median)")
    out.append("phases (share of the step):")
    out += [line(p, s, wall) for p, s in result["phases"].items()]
    out.append("forward by module kind (share of the step):")
    out += [line(k, s, wall) for k, s in result["forward"].items()]
    out.append("backward by autograd function (share of the step, top 10):")
    out += [line(k, s, wall) for k, s in list(result["backward"].items())[:10]]
    out.append("top ops by self time (share of the step):")
    out += [line(k[:28], s, wall) for k, s in result["top_ops"][:10]]
    return "\n".join(out)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``steps`` subcommand's options."""
    p.add_argument("--profile", default="cpu", help="data profile of the bundle (default: cpu)")
    p.add_argument("--source", default="auto", choices=SOURCES, help="text embeddings (default: auto)")
    p.add_argument("--steps", type=int, default=None, help="steps profiled (default: one epoch)")
    p.add_argument("--repeats", type=int, default=3, help="unprofiled timed epochs, median kept (default 3)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--json", default=None, help="also write the result to this JSON file")


def steps_command(args: argparse.Namespace) -> int:
    """Run the ``steps`` subcommand: build the bundle, time and profile the steps, print the table."""
    check_positive("threads", args.threads, integer=True)
    torch.set_num_threads(args.threads)
    bundle, source = step_bundle(args.profile, args.source)
    timing = time_steps(bundle, steps=args.steps, repeats=args.repeats) if args.repeats else None
    result = profile_steps(bundle, steps=args.steps)
    result.update(source=source, profile=args.profile, threads=args.threads, timing=timing)
    print(format_profile(result, timing))
    print(
        f"({args.profile} profile, {source} text embeddings, {args.threads} thread(s), torch {torch.__version__})"
    )
    if args.json:
        from mtrec_utils.core.io import atomic_write_json

        atomic_write_json(args.json, result)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m mtrec_utils.bench steps", description=__doc__.split("\n\n")[0]
    )
    add_arguments(p)
    return steps_command(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
