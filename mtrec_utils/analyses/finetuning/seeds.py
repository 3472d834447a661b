"""Encoder modes at one seed and over seeds (notebook 08: section 2's modes; LoRA against full fine-tuning).

One seed's difference between two modes is no finding: at seed 0 LoRA beat full fine-tuning on a
500-review test slice, at seed 2 it lost. A seed here is everything notebook 08's ``SEED`` draws: the
training and validation reviews, the shuffling and the heads' initial weights; the test split is
the same for every seed. :func:`finetune_seed` trains one mode at one seed exactly as section 2 of the
notebook does at ``SEED = seed``, so section 2's runs can stand in for the first seed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from torch import nn
from tqdm.auto import tqdm

from mtrec_utils.analyses.finetuning.finetune import FinetuneConfig, FinetuneResult, finetune
from mtrec_utils.core.config import set_seed
from mtrec_utils.core.pool import can_fork, check_workers, map_in_workers
from mtrec_utils.data.finetune_data import ClothingSplits, clothing_splits

KEPT = ("val_recommended_auc", "test_recommended_auc", "test_rating_rmse", "test_department_accuracy")


def seed_splits(tokenizer, budget: Mapping, seed: int) -> ClothingSplits:
    """The reviews notebook 08 draws at ``SEED = seed`` from ``budget`` (:func:`budget_for`)."""
    sizes = (budget["max_train"], budget["max_eval"], budget["max_length"])
    return clothing_splits(tokenizer, *sizes, set_seed(seed), max_test=budget.get("max_test", "max_eval"))


def finetune_seed(
    encoder_model: nn.Module, splits: ClothingSplits, config: FinetuneConfig, pad_id: int, seed: int
) -> FinetuneResult:
    """Train one mode at one seed as section 2 does: shuffling and heads seeded by ``seed``.

    Args:
        encoder_model: the pretrained encoder (copied, never changed).
        splits: :func:`seed_splits` of the same ``seed``.
        config: the mode and budget.
        pad_id: the tokenizer's padding id.
        seed: seeds Python, NumPy and PyTorch before the heads are built; the shuffling generator.

    Returns:
        The :class:`FinetuneResult`, evaluated on ``val`` and ``test``.
    """
    return finetune(encoder_model, splits, config, pad_id, set_seed(seed), progress=False)


def compare_over_seeds(
    encoder_model: nn.Module,
    tokenizer,
    budget: Mapping,
    configs: Mapping[str, FinetuneConfig],
    seeds: Sequence[int],
    reuse: Mapping[tuple[str, int], FinetuneResult] | None = None,
    progress: bool = True,
    workers: int = 1,
) -> pd.DataFrame:
    """Every mode of ``configs`` at every seed; one row per (seed, mode).

    Args:
        encoder_model: the pretrained encoder.
        tokenizer: its tokenizer.
        budget: the reviews drawn and the token limit (:func:`budget_for`, ``max_test`` included).
        configs: ``{mode label: config}``.
        seeds: the seeds.
        reuse: ``{(mode label, seed): result}`` already trained with the same config and reviews
            (section 2's runs at ``SEED``): taken as they are, not trained again.
        progress: show a progress bar over the runs.
        workers: runs trained at once. 1: one after another in this process. More: each run in a
            process forked from this one (Linux, CPU only) with one PyTorch thread. A run depends only on
            its seed and mode (it draws its reviews and seeds its training itself), so the metrics are
            the same, bit for bit, as one after another on one thread (notebook 08's ``CPU_THREADS = 1``);
            the wall-clock ``seconds`` of runs that shared the machine are longer.

    Returns:
        Columns ``seed``, ``mode``, ``reused``, ``seconds`` and ``cpu_seconds`` (wall and process CPU time
        of training and evaluation, NaN when reused; on a busy machine the CPU time is the steadier
        figure), ``train_seconds`` and the metrics of :data:`KEPT`.

    Raises:
        ValueError: no configs or seeds; ``workers`` not a positive integer, or above 1 where runs
            cannot be forked (not Linux, or the encoder is not on the CPU).
    """
    reuse = dict(reuse or {})
    if not configs or not seeds:
        raise ValueError(f"configs={list(configs)} and seeds={list(seeds)} must both be non-empty")
    check_workers(workers)
    todo = [(s, m) for s in seeds for m in configs if (m, s) not in reuse]
    bar = tqdm(total=len(todo), desc="mode x seed", disable=not (progress and todo))
    job = partial(_train_one, encoder_model, tokenizer, budget, configs)
    trained: dict[tuple[int, str], dict[str, float]] = {}
    if min(workers, len(todo)) > 1:
        trained = dict(zip(todo, _pooled(lambda key: job(*key), todo, workers, encoder_model, bar)))
    else:
        splits: dict[int, ClothingSplits] = {}  # one draw per seed, shared by its modes
        for seed, mode in todo:
            if seed not in splits:
                splits = {seed: seed_splits(tokenizer, budget, seed)}
            trained[seed, mode] = job(seed, mode, splits[seed])
            bar.update(1)
    bar.close()
    rows = []
    for seed in seeds:
        for mode in configs:
            found = reuse.get((mode, seed))
            row = _row(found.metrics, np.nan, np.nan) if found is not None else trained[seed, mode]
            rows.append({"seed": seed, "mode": mode, "reused": found is not None, **row})
    return pd.DataFrame(rows)


def _row(metrics: Mapping[str, float], seconds: float, cpu_seconds: float) -> dict[str, float]:
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "train_seconds": metrics["train_seconds"],
        **{k: metrics[k] for k in KEPT},
    }


def _train_one(
    encoder_model: nn.Module,
    tokenizer,
    budget: Mapping,
    configs: Mapping[str, FinetuneConfig],
    seed: int,
    mode: str,
    splits: ClothingSplits | None = None,
) -> dict[str, float]:
    """One (seed, mode) run: its row's timings and metrics (the reviews drawn here unless given)."""
    splits = splits if splits is not None else seed_splits(tokenizer, budget, seed)
    start, cpu = time.perf_counter(), time.process_time()
    found = finetune_seed(encoder_model, splits, configs[mode], tokenizer.pad_token_id, seed)
    return _row(found.metrics, time.perf_counter() - start, time.process_time() - cpu)


def finetune_modes(
    encoder_model: nn.Module,
    splits: ClothingSplits,
    configs: Mapping[str, FinetuneConfig],
    pad_id: int,
    seed: int,
    workers: int = 1,
    progress: bool = True,
) -> dict[str, FinetuneResult]:
    """Train every config of ``configs`` on the same reviews, each seeded by ``seed`` (notebook 08, sections 2-3).

    Each run calls ``set_seed(seed)`` before it builds its heads and shuffles, exactly as a run
    started on its own does, so no run depends on which ran before it.

    Args:
        encoder_model: the pretrained encoder (copied by each run, never changed).
        splits: the reviews (:func:`~mtrec_utils.data.finetune_data.clothing_splits`).
        configs: ``{label: config}``; the result keeps this order.
        pad_id: the tokenizer's padding id.
        seed: seeds each run.
        workers: runs trained at once. 1: one after another in this process. More: each run in a
            process forked from this one (Linux, CPU only) with one PyTorch thread; the metrics are
            the same, bit for bit, as one after another on one thread. Step times are then measured
            with the other cores busy with other runs (one run per core), so they are a little longer.
        progress: show a progress bar over the runs.

    Returns:
        ``{label: FinetuneResult}`` in the order of ``configs``.

    Raises:
        ValueError: no configs; ``workers`` not a positive integer, or above 1 where runs cannot be
            forked (not Linux, or the encoder is not on the CPU).
    """
    if not configs:
        raise ValueError("configs must name at least one mode, e.g. {'lora': FinetuneConfig(mode='lora')}")
    check_workers(workers)
    labels = list(configs)
    # Longest first, so that the last run to start is a short one (a run per task costs ~3 of the others).
    todo = sorted(labels, key=lambda k: -(configs[k].steps * (3 if configs[k].task_specific else 1)))
    job = partial(_finetune_label, encoder_model, splits, configs, pad_id, seed)
    bar = tqdm(total=len(todo), desc="modes", disable=not progress)
    if min(workers, len(todo)) > 1:
        found = dict(zip(todo, _pooled(job, todo, workers, encoder_model, bar)))
    else:
        found = {}
        for label in labels:
            found[label] = job(label)
            bar.update(1)
    bar.close()
    return {label: found[label] for label in labels}


def _finetune_label(
    encoder_model: nn.Module,
    splits: ClothingSplits,
    configs: Mapping[str, FinetuneConfig],
    pad_id: int,
    seed: int,
    label: str,
) -> FinetuneResult:
    return finetune(encoder_model, splits, configs[label], pad_id, set_seed(seed), progress=False)


def _pooled(
    job: Callable[..., Any], keys: Sequence[Any], workers: int, encoder_model: nn.Module, bar
) -> list:
    """``[job(key) for key in keys]`` in ``workers`` forked processes of one thread each
    (:func:`~mtrec_utils.core.pool.map_in_workers`); the encoder is inherited, not pickled."""
    _check_forkable(encoder_model)
    return map_in_workers(job, keys, workers, on_result=lambda key, result: bar.update(1))


def _check_forkable(encoder_model: nn.Module) -> None:
    if not can_fork():
        raise ValueError(f"workers > 1 needs Linux (fork); on {sys.platform} pass workers=1")
    device = next(encoder_model.parameters()).device
    if device.type != "cpu":
        raise ValueError(
            f"workers > 1 trains on the CPU only, but the encoder is on {device}; pass workers=1"
        )


def paired_summary(
    table: pd.DataFrame, method: str = "lora", baseline: str = "full", metric: str = "test_recommended_auc"
) -> dict[str, float | int | list[float]]:
    """Mean and std over seeds of ``metric`` for ``method`` and ``baseline``, and of their paired difference.

    Args:
        table: rows of :func:`compare_over_seeds`.
        method, baseline: two mode labels of ``table``.
        metric: a metric column.

    Returns:
        ``{mode}_mean``, ``{mode}_std`` (sample std, ddof=1; NaN with one seed), ``{mode}_per_seed`` for
        both modes; ``diff_mean``, ``diff_std`` of ``method - baseline`` paired by seed; ``num_seeds``.
    """
    wide = table.pivot(index="seed", columns="mode", values=metric)
    missing = {method, baseline} - set(wide.columns)
    if missing:
        raise ValueError(f"modes {sorted(missing)} are not in the table; it has {sorted(wide.columns)}")
    wide = wide[[method, baseline]].dropna()
    diff = wide[method] - wide[baseline]
    out: dict[str, float | int | list[float]] = {"num_seeds": len(wide)}
    for mode in (method, baseline):
        out[f"{mode}_mean"] = float(wide[mode].mean())
        out[f"{mode}_std"] = float(wide[mode].std(ddof=1)) if len(wide) > 1 else float("nan")
        out[f"{mode}_per_seed"] = [float(v) for v in wide[mode]]
    out["diff_mean"] = float(diff.mean())
    out["diff_std"] = float(diff.std(ddof=1)) if len(wide) > 1 else float("nan")
    return out
