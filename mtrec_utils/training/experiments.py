"""Run single-task and joint experiments over seeds, and the multi-task gain table.

One call trains one model with :func:`mtrec_utils.training.loop.fit` (early stopping on validation,
best weights restored) and measures it on the test split::

    result = run_experiment(bundle, ["rating", "like", "interest"], seed=0, strategy="uw", epochs=5)
    result.test          # {"rating/rmse": ..., "like/auc": ..., "interest/ndcg@10": ...}

:func:`run_seeds` repeats a set of named settings over seeds and returns one tidy row per
(setting, seed, metric); :func:`gain_table` turns single-task and joint rows into mean +- std per
metric and the gain of joint training, signed so that a positive gain is always an improvement.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

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
) -> RunResult:
    """Train one model on ``task_names`` of ``bundle`` and evaluate it on the test split.

    Args:
        bundle: from :func:`mtrec_utils.training.bundles.movielens_bundle` / ``clothing_bundle``.
        task_names: one name (single-task) or several (joint).
        seed: seeds the model's initialisation, shuffling and negatives (the data split stays fixed).
        arch: ``"hard"`` or ``"mmoe"`` (see :mod:`mtrec_utils.models.sharing`).
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

    Returns:
        A :class:`RunResult` (the model holds the best validation epoch's weights).
    """
    from mtrec_utils.core.config import set_seed

    tasks = bundle.select(task_names)
    set_seed(seed)
    bundle.generator.manual_seed(seed)
    model = init_heads(build_model(arch, bundle.make_towers(), tasks, hidden, dropout), bundle)
    kwargs = dict(strategy_kwargs or {})
    if strategy == "dwa":
        kwargs.setdefault("period", max(len(bundle.train[s]) for s in {t.data for t in tasks}))
    if strategy == "pcgrad":
        kwargs.setdefault("generator", bundle.generator)
    weighting = get_strategy(strategy, num_tasks=len(tasks), **kwargs)
    log = log if log is not None else TrainingLog()
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
        epoch_fn=make_epoch_fn(schedule, log, cosine_every, bundle.generator),
        state_path=state_path,
        callbacks=callbacks,
    )
    seconds = time.perf_counter() - start
    test = evaluate(model, tasks, bundle.test)
    return RunResult(history=history, log=log, test=test, seconds=seconds, model=model)


def run_seeds(
    bundle: TaskBundle, settings: Mapping[str, Mapping], seeds: Sequence[int], progress: bool = True, **common
) -> pd.DataFrame:
    """Run every setting for every seed; one row per (setting, seed, metric).

    Args:
        bundle: the dataset's bundle.
        settings: ``{label: run_experiment keyword arguments}``, each with ``task_names``.
        seeds: the seeds.
        progress: show one progress bar over all runs.
        common: keyword arguments shared by every run (e.g. ``epochs=``).

    Returns:
        DataFrame with columns ``setting``, ``seed``, ``metric`` (``"<task>/<metric>"``), ``value``,
        ``seconds``, ``best_epoch``.
    """
    from tqdm.auto import tqdm

    frames = []
    jobs = [(label, seed) for label in settings for seed in seeds]
    for label, seed in tqdm(jobs, desc=f"{bundle.name} runs", disable=not progress):
        frames.append(
            result_rows(label, seed, run_experiment(bundle, seed=seed, **{**common, **settings[label]}))
        )
    return pd.concat(frames, ignore_index=True)


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
