"""Encoder modes over seeds, on the whole clothing test split (notebook 08: LoRA against full fine-tuning).

One seed's difference between two modes is no finding: at seed 0 LoRA beat full fine-tuning on a
500-review test slice, at seed 2 it lost. A seed here is everything notebook 08's ``SEED`` draws: the
training and validation reviews, the shuffling and the heads' initial weights; the test split is
the same for every seed. :func:`finetune_seed` trains one mode at one seed exactly as section 2 of the
notebook does at ``SEED = seed``, so section 2's runs can stand in for the first seed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from torch import nn
from tqdm.auto import tqdm

from mtrec_utils.analyses.finetuning.finetune import FinetuneConfig, FinetuneResult, finetune
from mtrec_utils.core.config import set_seed
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

    Returns:
        Columns ``seed``, ``mode``, ``reused``, ``seconds`` and ``cpu_seconds`` (wall and process CPU time
        of training and evaluation, NaN when reused; on a busy machine the CPU time is the steadier
        figure), ``train_seconds`` and the metrics of :data:`KEPT`.
    """
    reuse = dict(reuse or {})
    if not configs or not seeds:
        raise ValueError(f"configs={list(configs)} and seeds={list(seeds)} must both be non-empty")
    todo = [(s, m) for s in seeds for m in configs if (m, s) not in reuse]
    bar = tqdm(total=len(todo), desc="mode x seed", disable=not (progress and todo))
    rows = []
    for seed in seeds:
        splits = seed_splits(tokenizer, budget, seed) if any(s == seed for s, _ in todo) else None
        for mode, config in configs.items():
            found, start, cpu = reuse.get((mode, seed)), time.perf_counter(), time.process_time()
            if found is None:
                found = finetune_seed(encoder_model, splits, config, tokenizer.pad_token_id, seed)
                bar.update(1)
            seconds = np.nan if (mode, seed) in reuse else time.perf_counter() - start
            cpu_seconds = np.nan if (mode, seed) in reuse else time.process_time() - cpu
            rows.append(
                {
                    "seed": seed,
                    "mode": mode,
                    "reused": (mode, seed) in reuse,
                    "seconds": seconds,
                    "cpu_seconds": cpu_seconds,
                    "train_seconds": found.metrics["train_seconds"],
                    **{k: found.metrics[k] for k in KEPT},
                }
            )
    bar.close()
    return pd.DataFrame(rows)


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
