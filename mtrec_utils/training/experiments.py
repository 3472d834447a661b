"""Run single-task and joint experiments over seeds, and the multi-task gain table.

One call trains one model with :func:`mtrec_utils.training.loop.fit` (early stopping on validation,
best weights restored) and measures it on the test split::

    result = run_experiment(bundle, ["rating", "like", "interest"], seed=0, strategy="uw", epochs=5)
    result.test          # {"rating/rmse": ..., "like/auc": ..., "interest/ndcg@10": ...}

:func:`run_seeds` repeats a set of named settings over seeds and returns one tidy row per
(setting, seed, metric); :func:`gain_table` turns single-task and joint rows into mean +- std per
metric and the gain of joint training, signed so that a positive gain is always an improvement.

Runs are independent, so :func:`run_experiments` (and ``run_seeds``) can train them side by side
in worker processes (``workers=``), and a :class:`RunMemo` keeps the runs already trained so that
a setting asked for again is not trained again::

    memo = RunMemo()
    rows = run_seeds(bundle, settings, seeds=[0, 1, 2], workers=default_workers(), memo=memo, epochs=5)
"""

from __future__ import annotations

import inspect
import os
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mtrec_utils.core.config import get_device
from mtrec_utils.core.pool import can_fork, check_workers, map_in_workers
from mtrec_utils.data.tasks import LOWER_IS_BETTER
from mtrec_utils.models.sharing import build_model
from mtrec_utils.training.bundles import TaskBundle, init_heads
from mtrec_utils.training.loop import evaluate, fit
from mtrec_utils.training.schedules import TrainingLog, make_epoch_fn
from mtrec_utils.weighting import get_strategy


@dataclass
class RunResult:
    """One trained model: its history (per epoch), step log, test metrics and training seconds."""

    history: pd.DataFrame
    log: TrainingLog
    test: dict[str, float]
    seconds: float
    model: torch.nn.Module


def run_experiment(
    bundle: TaskBundle,
    task_names: Sequence[str],
    *,
    seed: int = 0,
    arch: str = "hard",
    arch_kwargs: Mapping | None = None,
    strategy: str = "ew",
    schedule: str = "joint",
    epochs: int = 5,
    lr: float = 2e-3,
    encoder_lr: float | None = None,
    weight_decay: float = 0.0,
    patience: int | None = 2,
    monitor: str | None = None,
    hidden: int = 128,
    dropout: float = 0.1,
    cosine_every: int | None = None,
    tb_dir: str | Path | None = None,
    checkpoint_path: str | Path | None = None,
    device: str = "auto",
    mixed_precision: str = "no",
    strategy_kwargs: Mapping | None = None,
    progress: bool = False,
    state_path: str | Path | None = None,
    log: TrainingLog | None = None,
    callbacks: Sequence = (),
    wrap_epoch: Callable[[Callable], Callable] | None = None,
) -> RunResult:
    """Train one model on ``task_names`` of ``bundle`` and evaluate it on the test split.

    Args:
        bundle: from :func:`mtrec_utils.training.bundles.movielens_bundle` / ``clothing_bundle``.
        task_names: one name (single-task) or several (joint).
        seed: seeds the model's initialisation, shuffling and negatives (the data split stays fixed).
        arch: ``"hard"``, ``"mmoe"`` or ``"ple"`` (see :mod:`mtrec_utils.models.sharing`).
        arch_kwargs: the architecture's sizes for ``build_model`` (e.g. ``{"num_experts": 8}`` for
            ``"mmoe"``, ``{"num_levels": 1}`` for ``"ple"``); default: its defaults.
        strategy: weighting strategy name (``mtrec_utils.weighting.STRATEGIES``); used by ``"joint"``.
        schedule: ``"joint"``, ``"round_robin"`` or ``"proportional"``.
        epochs, lr, encoder_lr, weight_decay, patience, monitor: as for ``fit`` (monitor defaults
            to the first task's early-stopping metric, on validation data).
        hidden, dropout: trunk width and dropout.
        cosine_every: log gradient cosines on the shared parameters every this many steps.
        tb_dir, checkpoint_path, device, mixed_precision: as for ``fit``.
        strategy_kwargs: extra arguments of the strategy (e.g. ``weights=[...]`` for ``"static"``).
        state_path: training-state file; a killed run called again resumes from it (see ``fit``).
        log: the step log to write into (e.g. a live view's, :mod:`mtrec_utils.viz.live`); default a new one.
        callbacks: ``fit`` callbacks, called with the history after each epoch (True stops training).
        wrap_epoch: wraps the epoch function, e.g. ``AffinityRecorder(...).wrap``
            (:mod:`mtrec_utils.training.affinity`), to observe each step without changing the training.

    Returns:
        A :class:`RunResult` (the model holds the best validation epoch's weights).
    """
    from mtrec_utils.core.config import set_seed

    tasks = bundle.select(task_names)
    set_seed(seed)
    bundle.generator.manual_seed(seed)
    sizes = dict(arch_kwargs or {})
    model = init_heads(build_model(arch, bundle.make_towers(), tasks, hidden, dropout, **sizes), bundle)
    kwargs = dict(strategy_kwargs or {})
    if strategy == "dwa":
        kwargs.setdefault("period", max(len(bundle.train[s]) for s in {t.data for t in tasks}))
    if strategy == "pcgrad":
        kwargs.setdefault("generator", bundle.generator)
    weighting = get_strategy(strategy, num_tasks=len(tasks), **kwargs)
    log = log if log is not None else TrainingLog()
    epoch_fn = make_epoch_fn(schedule, log, cosine_every, bundle.generator)
    start = time.perf_counter()
    history = fit(
        model,
        tasks,
        bundle.train,
        bundle.val,
        epochs=epochs,
        lr=lr,
        encoder_lr=encoder_lr,
        weight_decay=weight_decay,
        strategy=weighting,
        monitor=monitor,
        patience=patience,
        checkpoint_path=checkpoint_path,
        tb_dir=tb_dir,
        device=device,
        mixed_precision=mixed_precision,
        progress=progress,
        epoch_fn=wrap_epoch(epoch_fn) if wrap_epoch else epoch_fn,
        state_path=state_path,
        callbacks=callbacks,
    )
    seconds = time.perf_counter() - start
    test = evaluate(model, tasks, bundle.test)
    return RunResult(history=history, log=log, test=test, seconds=seconds, model=model)


def run_seeds(
    bundle: TaskBundle,
    settings: Mapping[str, Mapping],
    seeds: Sequence[int],
    progress: bool = True,
    *,
    workers: int = 1,
    memo: RunMemo | None = None,
    **common,
) -> pd.DataFrame:
    """Run every setting for every seed; one row per (setting, seed, metric).

    Args:
        bundle: the dataset's bundle.
        settings: ``{label: run_experiment keyword arguments}``, each with ``task_names``.
        seeds: the seeds.
        progress: show one progress bar over all runs.
        workers: runs trained at once, each in a worker process of one thread (see
            :func:`run_experiments`); 1 trains them one after another in this process.
        memo: a :class:`RunMemo`: runs it already holds are not trained again, new ones are added.
        common: keyword arguments shared by every run (e.g. ``epochs=``).

    Returns:
        DataFrame with columns ``setting``, ``seed``, ``metric`` (``"<task>/<metric>"``), ``value``,
        ``seconds``, ``best_epoch``; the same rows, in the same order, whatever ``workers``.
    """
    jobs = [(label, seed) for label in settings for seed in seeds]
    runs = [{**common, **settings[label], "bundle": bundle, "seed": seed} for label, seed in jobs]
    results = run_experiments(runs, workers=workers, memo=memo, progress=progress, desc=f"{bundle.name} runs")
    return pd.concat(
        [result_rows(label, seed, result) for (label, seed), result in zip(jobs, results)], ignore_index=True
    )


# --- independent runs side by side, and runs kept by their settings -------------------------------

# run_experiment arguments that hand in live objects or resume from a file: such runs are never memoised
_UNMEMOISED = ("log", "callbacks", "state_path", "wrap_epoch")
# ... and those that report back to this process while training: such runs train here, not in a worker
_IN_PROCESS = ("log", "callbacks", "wrap_epoch")


def _given(value: Any) -> bool:
    """Whether an optional argument was given (not None, not an empty list of callbacks)."""
    return value is not None and not (isinstance(value, list | tuple) and not value)


def default_workers(jobs: int | None = None, device: str = "auto") -> int:
    """How many runs to train at once: one per usable CPU core, at most ``jobs``.

    1 where runs cannot be forked safely: on a GPU (CUDA cannot be used in a forked process, and the
    runs would share one device anyway) and off Linux (no cheap, safe ``fork``).
    """
    if not can_fork() or get_device(device).type != "cpu":
        return 1
    cores = len(os.sched_getaffinity(0))
    return max(1, min(cores, jobs) if jobs is not None else cores)


_SIGNATURE = inspect.signature(run_experiment)


def _bound(run: Mapping) -> dict[str, Any]:
    """``run`` as run_experiment's full arguments (defaults filled in), or a TypeError naming the problem."""
    try:
        bound = _SIGNATURE.bind(**run)
    except TypeError as err:
        raise TypeError(f"not run_experiment arguments ({err}): {sorted(run)}") from None
    bound.apply_defaults()
    return dict(bound.arguments)


def _canonical(value: Any) -> Any:
    """A hashable, order-stable form of a setting's value; TypeError for values without one."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return _canonical(value.item())
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _canonical(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_canonical(v) for v in value)
    raise TypeError(f"no settings key for a {type(value).__name__}")


@dataclass
class _RandomState:
    """The random state a run leaves behind: Python, NumPy, PyTorch (and CUDA), the bundle's generator."""

    python_rng: Any
    numpy_rng: Any
    torch_rng: torch.Tensor
    cuda_rngs: list[torch.Tensor] | None
    bundle_rng: torch.Tensor
    hash_seed: str | None

    @classmethod
    def capture(cls, bundle: TaskBundle) -> _RandomState:
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
        return cls(
            random.getstate(),
            np.random.get_state(),
            torch.get_rng_state(),
            cuda,
            bundle.generator.get_state(),
            os.environ.get("PYTHONHASHSEED"),
        )

    def restore(self, bundle: TaskBundle) -> None:
        random.setstate(self.python_rng)
        np.random.set_state(self.numpy_rng)
        torch.set_rng_state(self.torch_rng)
        if self.cuda_rngs is not None:
            torch.cuda.set_rng_state_all(self.cuda_rngs)
        bundle.generator.set_state(self.bundle_rng)
        if self.hash_seed is not None:
            os.environ["PYTHONHASHSEED"] = self.hash_seed


class RunMemo:
    """Runs already trained, kept by their full settings, so that one asked for again is not retrained.

    The key is every argument of :func:`run_experiment` with its defaults filled in: the bundle
    (the object itself, which the memo keeps alive), the task names in order, seed, arch and its
    kwargs, strategy and its kwargs, schedule, epochs, lr, encoder_lr, weight decay, patience,
    monitor, hidden, dropout, cosine_every, tb_dir, checkpoint_path, device and mixed precision
    (``progress`` is left out: it changes nothing). Runs given ``log``, ``callbacks`` or
    ``state_path`` are never kept, nor runs whose settings hold values other than numbers, strings,
    paths, lists and dicts.

    A hit returns the same :class:`RunResult` object as the first run (treat it as read-only) and
    leaves the random generators (Python, NumPy, PyTorch, the bundle's) where training it again
    would have left them. Files the first run wrote (TensorBoard logs, checkpoint) are not written
    again. ``trained`` and ``hits`` count the runs trained and the runs served from memory. The memo
    keeps every model it holds alive (on its device): :meth:`clear` lets them go.
    """

    def __init__(self) -> None:
        self._runs: dict[tuple, tuple[TaskBundle, RunResult, _RandomState]] = {}
        self.trained = 0
        self.hits = 0

    def __len__(self) -> int:
        return len(self._runs)

    def clear(self) -> None:
        """Forget every run (the counts stay)."""
        self._runs.clear()

    @staticmethod
    def key(run: Mapping) -> tuple | None:
        """The settings key of ``run`` (run_experiment keyword arguments), or None if it is not kept."""
        args = _bound(run)
        if any(_given(args[name]) for name in _UNMEMOISED):
            return None
        bundle = args.pop("bundle")
        args.pop("progress")
        try:
            return (id(bundle), _canonical(args))
        except TypeError:
            return None

    def get(self, key: tuple | None) -> tuple[RunResult, _RandomState] | None:
        found = self._runs.get(key) if key is not None else None
        return None if found is None else found[1:]

    def put(self, key: tuple | None, bundle: TaskBundle, result: RunResult, state: _RandomState) -> None:
        if key is not None:
            self._runs[key] = (bundle, result, state)


def run_experiments(
    runs: Sequence[Mapping],
    *,
    workers: int = 1,
    memo: RunMemo | None = None,
    progress: bool = False,
    desc: str = "runs",
) -> list[RunResult]:
    """Train independent runs, ``workers`` at a time; their results in the order of ``runs``.

    Args:
        runs: :func:`run_experiment` keyword arguments of each run, ``bundle`` and ``task_names``
            included (runs may use different bundles).
        workers: runs trained at once. 1: one after another in this process, exactly as calling
            ``run_experiment`` in a loop. More: each run trains in a worker process forked from this
            one (Linux; CPU only), with one PyTorch thread; the bundles are inherited, not copied.
            A run seeds itself (``set_seed`` and the bundle's generator), so its numbers are the
            same bit for bit as in a loop with one thread (the notebooks' ``CPU_THREADS = 1``),
            and afterwards the random generators of this process are where the loop would
            have left them.
        memo: a :class:`RunMemo`: runs it already holds, or that appear twice in ``runs``, are
            trained once; the runs trained here are added to it.
        progress: one progress bar over the runs.
        desc: its label.

    What comes back from a worker: the history (with its ``attrs``), the step log's rows (a new
    :class:`~mtrec_utils.training.schedules.TrainingLog` without ``probe``), the test metrics, the
    seconds, and the model as a state dict, from which ``RunResult.model`` is rebuilt here: same
    class, built from the run's bundle, arch (and its kwargs), hidden and dropout, on the CPU, in
    the mode the worker left it. Runs that report to this process while training (``log=`` for a live view,
    ``callbacks=``) need ``workers=1``.

    Raises:
        ValueError: ``workers`` is not a positive integer, or runs cannot train in workers here
            (not Linux, a device other than the CPU, ``log``/``callbacks`` given).
    """
    from tqdm.auto import tqdm

    check_workers(workers)
    jobs: list[dict] = [dict(run) for run in runs]
    bar = tqdm(total=len(jobs), desc=desc, disable=not progress)
    if memo is None and workers == 1:  # the plain loop
        results = []
        for run in jobs:
            results.append(run_experiment(**run))
            bar.update()
        bar.close()
        return results
    keys = [RunMemo.key(run) if memo is not None else None for run in jobs]
    todo: list[int] = []  # indices of the runs to train (first of each key not in the memo)
    first: dict[tuple, int] = {}
    for i, key in enumerate(keys):
        if key is None or (memo is not None and memo.get(key) is None and key not in first):
            todo.append(i)
            if key is not None:
                first[key] = i
    pool_size = min(workers, len(todo))
    if pool_size > 1:
        _check_forkable([jobs[i] for i in todo])
    trained = _train(jobs, todo, pool_size, memo, keys, bar)
    results = []
    state = None
    for i, key in enumerate(keys):
        if i in trained:
            result, state = trained[i]
        else:
            assert memo is not None and (found := memo.get(key)) is not None  # trained before
            result, state = found
            memo.hits += 1
            bar.update()
        results.append(result)
    if state is not None:
        state.restore(jobs[-1]["bundle"])  # where the last run, trained in a loop, would leave them
    bar.close()
    return results


def _check_forkable(runs: Sequence[Mapping]) -> None:
    if not can_fork():
        raise ValueError(f"workers > 1 needs Linux (fork); on {sys.platform} pass workers=1")
    for run in runs:
        args = _bound(run)
        if get_device(args["device"]).type != "cpu":
            raise ValueError(
                f"workers > 1 trains on the CPU only, but a run has device={args['device']!r} "
                f"({get_device(args['device'])}); pass workers=1 (default_workers() gives 1 on a GPU)"
            )
        given = [name for name in _IN_PROCESS if _given(args[name])]
        if given:
            raise ValueError(f"a run with {given} reports to this process while training; pass workers=1")


def _train(
    runs: list[dict], todo: list[int], pool_size: int, memo: RunMemo | None, keys: list, bar
) -> dict[int, tuple[RunResult, _RandomState]]:
    """Train ``runs[i]`` for ``i`` in ``todo``, here or in ``pool_size`` workers; store them in ``memo``.

    In workers, the runs start longest first (:func:`expected_cost`), so that the last ones to
    finish are short and no worker waits long for the others at the end; results do not depend
    on the order (each run seeds itself).
    """
    done: dict[int, tuple[RunResult, _RandomState]] = {}
    if pool_size <= 1:
        for i in todo:
            result = run_experiment(**runs[i])
            done[i] = result, _RandomState.capture(runs[i]["bundle"])
            bar.update()
            _remember(memo, keys[i], runs[i], *done[i])
        return done

    def received(i: int, payload: dict) -> None:
        done[i] = _receive(runs[i], payload)
        bar.update()
        _remember(memo, keys[i], runs[i], *done[i])

    order = sorted(todo, key=lambda i: -expected_cost(runs[i]))  # stable: ties keep their order
    map_in_workers(lambda i: _run_job(runs[i]), order, pool_size, on_result=received)
    return done


#: Step time of each architecture relative to hard sharing (MovieLens u1 at ``cpu``, one thread,
#: 2026-12-01: 7.9 s per joint epoch for hard sharing, 18.3 s for MMoE with 4 experts, 14.0 s for PLE).
ARCH_COST = {"hard": 1.0, "mmoe": 2.3, "ple": 1.8}


def expected_cost(run: Mapping) -> float:
    """A run's training work in "hard-sharing steps", to order runs longest first (not a time).

    Steps per epoch (the longest loader of the run's data sources) times the sources read per
    step (one forward and backward each) times :data:`ARCH_COST`. Epochs are not known in
    advance (early stopping), so runs of one bundle compare by their cost per epoch.
    """
    args = _bound(run)
    bundle = args["bundle"]
    sources = {t.data for t in bundle.select(args["task_names"])}
    steps = max(len(bundle.train[s]) for s in sources)
    per_step = 1 if args["schedule"] != "joint" else len(sources)
    return float(steps * per_step * ARCH_COST.get(args["arch"], 1.0))


def _remember(memo: RunMemo | None, key, run: Mapping, result: RunResult, state: _RandomState) -> None:
    if memo is not None:
        memo.trained += 1
        memo.put(key, run["bundle"], result, state)


def _run_job(run: dict) -> dict:
    """Train ``run`` (in a worker): what can be sent back to the parent."""
    result = run_experiment(**run)
    return {
        "history": result.history,
        "log_rows": result.log.rows,
        "test": result.test,
        "seconds": result.seconds,
        "state_dict": {k: v.detach().cpu() for k, v in result.model.state_dict().items()},
        "training": result.model.training,
        "random_state": _RandomState.capture(run["bundle"]),
    }


def _receive(run: Mapping, payload: dict) -> tuple[RunResult, _RandomState]:
    """A worker's payload as a RunResult, the model rebuilt from its state dict."""
    args = _bound(run)
    bundle = args["bundle"]
    tasks = bundle.select(args["task_names"])
    with torch.random.fork_rng(devices=[]):  # building draws initial weights: leave no trace of it
        arch_kwargs = args["arch_kwargs"] or {}
        model = build_model(
            args["arch"], bundle.make_towers(), tasks, args["hidden"], args["dropout"], **arch_kwargs
        )
        init_heads(model, bundle)
    model.load_state_dict(payload["state_dict"])
    model.train(payload["training"])
    log = TrainingLog(rows=payload["log_rows"])
    result = RunResult(payload["history"], log, payload["test"], payload["seconds"], model)
    return result, payload["random_state"]


def result_rows(label: str, seed: int, result: RunResult) -> pd.DataFrame:
    """The test metrics of one run as rows of :func:`run_seeds`'s table."""
    return pd.DataFrame(
        [
            {
                "setting": label,
                "seed": seed,
                "metric": m,
                "value": v,
                "seconds": result.seconds,
                "best_epoch": result.history.attrs["best_epoch"],
            }
            for m, v in result.test.items()
        ]
    )


# metric names recorded by notebook 04: (dataset, "<task>/<metric>") -> record() name stem
RECORD_NAMES = {
    ("movielens", "rating/rmse"): "ml_u1_rmse",
    ("movielens", "like/auc"): "ml_u1_like_auc",
    ("movielens", "interest/ndcg@10"): "ml_u1_ndcg10",
    ("movielens", "interest/recall@10"): "ml_u1_recall10",
    ("clothing", "recommended/auc"): "clothing_recommended_auc",
    ("clothing", "rating/rmse"): "clothing_rating_rmse",
    ("clothing", "department/accuracy"): "clothing_department_accuracy",
}


def metrics_to_record(dataset: str, results: pd.DataFrame, setting: str, suffix: str) -> dict[str, float]:
    """``{record name: value}`` for ``setting``'s means (and ``_std`` over seeds when there are several).

    Example: ``metrics_to_record("movielens", rows, "joint", "joint")`` gives ``ml_u1_rmse_joint``, ...
    """
    stats = summarize(results)
    out = {}
    for (ds, metric), stem in RECORD_NAMES.items():
        key = (setting, metric)
        if ds == dataset and key in stats.index:
            out[f"{stem}_{suffix}"] = float(stats["mean"].loc[key])
            if stats["n"].loc[key] > 1:
                out[f"{stem}_{suffix}_std"] = float(stats["std"].loc[key])
    return out


def best_setting(results: pd.DataFrame, metric: str, settings: Sequence[str]) -> tuple[str, float]:
    """The setting among ``settings`` with the best mean ``metric`` (lowest for rmse/mae/logloss)."""
    stats = summarize(results)
    means = {s: float(stats["mean"].loc[(s, metric)]) for s in settings if (s, metric) in stats.index}
    if not means:
        raise ValueError(f"metric={metric!r} was not measured for any of {list(settings)}")
    pick = min if metric.split("/")[1] in LOWER_IS_BETTER else max
    label = pick(means, key=means.__getitem__)
    return label, means[label]


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and std (over seeds; 0 for one seed) of every (setting, metric): columns ``mean``, ``std``, ``n``."""
    grouped = results.groupby(["setting", "metric"], sort=False)["value"]
    out = grouped.agg(["mean", "std", "count"]).rename(columns={"count": "n"})
    out["std"] = out["std"].fillna(0.0)
    return out


def gain_table(results: pd.DataFrame, single: Mapping[str, str], joint: str | Sequence[str]) -> pd.DataFrame:
    """The multi-task gain: each metric of each task, single-task against joint.

    Args:
        results: rows from :func:`run_seeds`.
        single: ``{task name: setting label of its single-task run}``.
        joint: the setting label(s) of the joint run(s) to compare (one column group each).

    Returns:
        One row per metric ``"<task>/<metric>"``: ``single`` and ``<joint>`` as "mean +- std",
        ``<joint> gain`` = improvement of the mean (positive = joint is better, whatever the
        metric's direction) and ``<joint> verdict`` ("helps" / "hurts" / "same" when the change is
        within one pooled std, or below 0.1% relative with one seed).
    """
    joint = [joint] if isinstance(joint, str) else list(joint)
    stats = summarize(results)
    rows = []
    for task, label in single.items():
        for metric in [m for (s, m) in stats.index if s == label and m.startswith(f"{task}/")]:
            s = stats.loc[(label, metric)]
            row = {"metric": metric, "single": f"{s['mean']:.4f} ± {s['std']:.4f}"}
            sign = -1.0 if metric.split("/")[1] in LOWER_IS_BETTER else 1.0
            for j in joint:
                if (j, metric) not in stats.index:
                    continue
                r = stats.loc[(j, metric)]
                gain = sign * (r["mean"] - s["mean"])
                noise = max(float(np.hypot(s["std"], r["std"])), 1e-3 * abs(s["mean"]))
                row[j] = f"{r['mean']:.4f} ± {r['std']:.4f}"
                row[f"{j} gain"] = gain
                row[f"{j} verdict"] = "same" if abs(gain) <= noise else ("helps" if gain > 0 else "hurts")
            rows.append(row)
    return pd.DataFrame(rows).set_index("metric")
