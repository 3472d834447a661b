"""Notebook 08's modes and seeds: section 2's modes side by side, the whole test split, one mode at one seed,
reuse, paired summary, words."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from mtrec_utils.analyses.finetuning.finetune import FinetuneConfig, finetune
from mtrec_utils.analyses.finetuning.seeds import (
    KEPT,
    compare_over_seeds,
    finetune_modes,
    finetune_seed,
    paired_summary,
    seed_splits,
)
from mtrec_utils.core.config import set_seed
from mtrec_utils.data import clothing_split, load_clothing
from mtrec_utils.data.finetune_data import budget_for, clothing_splits
from mtrec_utils.models.encoders import load_encoder
from mtrec_utils.viz.finetune import describe_over_seeds
from mtrec_utils.workbook.claims import ONE_SEED

TINY_BUDGET = {"max_train": 48, "max_eval": 24, "max_test": 32, "max_length": 16}


@pytest.fixture(scope="module")
def tiny():
    return load_encoder("tiny-random", device="cpu")


def _config(mode):
    return FinetuneConfig(mode=mode, steps=3, batch_size=8)


def test_budgets_test_on_the_whole_split_except_at_smoke():
    assert budget_for("cpu")["max_test"] is None and budget_for("gpu")["max_test"] is None
    smoke = budget_for("smoke")
    assert smoke["max_test"] == smoke["max_eval"]  # smoke keeps its small, fast slice


def test_max_test_none_takes_the_whole_test_part_and_leaves_train_and_val_alone(tiny):
    whole = clothing_splits(tiny.tokenizer, 40, 20, 16, torch.Generator().manual_seed(3), max_test=None)
    sliced = clothing_splits(tiny.tokenizer, 40, 20, 16, torch.Generator().manual_seed(3), max_test=10)
    default = clothing_splits(tiny.tokenizer, 40, 20, 16, torch.Generator().manual_seed(3))
    assert len(whole.ids["test"]) == len(clothing_split(load_clothing(), seed=0)["test"]) == 2349
    assert len(sliced.ids["test"]) == 10 and len(default.ids["test"]) == 20
    for part in ("train", "val"):
        assert whole.texts[part] == sliced.texts[part] == default.texts[part]
    assert set(sliced.texts["test"]) <= set(whole.texts["test"])
    with pytest.raises(ValueError, match="max_test=0"):
        clothing_splits(tiny.tokenizer, 40, 20, 16, torch.Generator(), max_test=0)


def test_finetune_seed_is_section_2_at_that_seed(tiny):
    """Section 2 draws its reviews with set_seed(SEED) and trains with set_seed(SEED): the same run."""
    pad = tiny.tokenizer.pad_token_id
    splits = seed_splits(tiny.tokenizer, TINY_BUDGET, 1)
    as_section_2 = finetune(tiny.model, splits, _config("lora"), pad, set_seed(1), progress=False)
    again = finetune_seed(tiny.model, seed_splits(tiny.tokenizer, TINY_BUDGET, 1), _config("lora"), pad, 1)
    for name in KEPT:
        assert again.metrics[name] == pytest.approx(as_section_2.metrics[name], abs=1e-6)
    assert len(splits.ids["test"]) == TINY_BUDGET["max_test"]
    other = finetune_seed(tiny.model, seed_splits(tiny.tokenizer, TINY_BUDGET, 2), _config("lora"), pad, 2)
    assert other.metrics["val_recommended_auc"] != again.metrics["val_recommended_auc"]


def test_compare_over_seeds_trains_what_is_not_reused(tiny):
    pad = tiny.tokenizer.pad_token_id
    first = finetune_seed(tiny.model, seed_splits(tiny.tokenizer, TINY_BUDGET, 0), _config("full"), pad, 0)
    configs = {m: _config(m) for m in ("lora", "full")}
    table = compare_over_seeds(
        tiny.model, tiny.tokenizer, TINY_BUDGET, configs, [0, 1], {("full", 0): first}, progress=False
    )
    assert list(zip(table["seed"], table["mode"])) == [(0, "lora"), (0, "full"), (1, "lora"), (1, "full")]
    assert table["reused"].tolist() == [False, True, False, False]
    reused = table.iloc[1]
    assert (
        math.isnan(reused["seconds"])
        and reused["test_recommended_auc"] == first.metrics["test_recommended_auc"]
    )
    assert (table.drop(index=1)["seconds"] > 0).all()
    assert table[list(KEPT)].notna().all().all()
    with pytest.raises(ValueError, match="non-empty"):
        compare_over_seeds(tiny.model, tiny.tokenizer, TINY_BUDGET, configs, [])


def test_paired_summary_means_stds_and_paired_difference():
    table = pd.DataFrame(
        {
            "seed": [0, 0, 1, 1, 2, 2],
            "mode": ["lora", "full"] * 3,
            "test_recommended_auc": [0.95, 0.94, 0.92, 0.93, 0.96, 0.94],
        }
    )
    s = paired_summary(table)
    assert s["num_seeds"] == 3 and s["lora_per_seed"] == [0.95, 0.92, 0.96]
    assert s["lora_mean"] == pytest.approx(0.943333, abs=1e-6)
    assert s["full_std"] == pytest.approx(pd.Series([0.94, 0.93, 0.94]).std(), abs=1e-12)
    assert s["diff_mean"] == pytest.approx(0.02 / 3, abs=1e-12)
    assert s["diff_std"] == pytest.approx(pd.Series([0.01, -0.01, 0.02]).std(), abs=1e-12)
    one = paired_summary(table[table["seed"] == 0])
    assert one["num_seeds"] == 1 and math.isnan(one["lora_std"]) and math.isnan(one["diff_std"])
    with pytest.raises(ValueError, match="adalora"):
        paired_summary(table, "adalora", "full")


def test_describe_over_seeds_says_the_numbers_and_the_verdict():
    s = {
        "num_seeds": 3,
        **{"lora_mean": 0.95, "lora_std": 0.01, "lora_per_seed": [0.94, 0.95, 0.96]},
        **{"full_mean": 0.94, "full_std": 0.02, "full_per_seed": [0.92, 0.94, 0.96]},
        **{"diff_mean": 0.01, "diff_std": 0.01},
    }
    text = describe_over_seeds(s, "no clear difference", test_reviews=2349)
    assert "0.950 ± 0.010 on 2,349 test reviews" in text and "+0.010 ± 0.010" in text
    assert "0.045" in text and text.endswith("Verdict: no clear difference.")
    assert describe_over_seeds(s, "not supported").endswith("full is better than lora.")
    one = {**s, "num_seeds": 1, "lora_per_seed": [0.95], "full_per_seed": [0.94]}
    assert describe_over_seeds(one, ONE_SEED).endswith(f"Verdict: {ONE_SEED}.")


def test_compare_over_seeds_in_two_workers_gives_the_table_of_one_after_another(tiny):
    """Each run draws its reviews and seeds itself: forked workers of one thread give the same metrics."""
    configs = {m: _config(m) for m in ("lora", "full")}
    args = (tiny.model, tiny.tokenizer, TINY_BUDGET, configs, [0, 1])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as notebook 08 (CPU_THREADS = 1) and each worker
    try:
        serial = compare_over_seeds(*args, progress=False)
    finally:
        torch.set_num_threads(threads)
    pooled = compare_over_seeds(*args, progress=False, workers=2)
    columns = ["seed", "mode", "reused", *KEPT]
    pd.testing.assert_frame_equal(serial[columns], pooled[columns])
    assert (pooled["seconds"] > 0).all() and not pooled["reused"].any()


def test_compare_over_seeds_rejects_bad_workers(tiny):
    configs = {"lora": _config("lora")}
    with pytest.raises(ValueError, match="workers=0 is not valid"):
        compare_over_seeds(tiny.model, tiny.tokenizer, TINY_BUDGET, configs, [0], workers=0)


def test_finetune_modes_side_by_side_gives_the_runs_of_one_after_another(tiny):
    """Section 2 (and 3's LoRA per task): each run seeds itself, so two forked workers of one thread give the
    results of the runs one after another, in the order of the configs whatever order they ran in."""
    pad = tiny.tokenizer.pad_token_id
    splits = seed_splits(tiny.tokenizer, TINY_BUDGET, 0)
    configs = {m: _config(m) for m in ("frozen", "full", "lora")}
    configs["lora_per_task"] = FinetuneConfig(mode="lora", task_specific=True, steps=3, batch_size=8)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as notebook 08 (CPU_THREADS = 1) and each worker
    try:
        one_by_one = {
            k: finetune(tiny.model, splits, c, pad, set_seed(0), progress=False) for k, c in configs.items()
        }
        serial = finetune_modes(tiny.model, splits, configs, pad, 0, progress=False)
    finally:
        torch.set_num_threads(threads)
    pooled = finetune_modes(tiny.model, splits, configs, pad, 0, workers=2, progress=False)
    assert list(serial) == list(pooled) == list(configs)
    assert pooled["lora_per_task"].mode == "lora_per_task" and pooled["full"].mode == "full"
    for label in configs:
        for name in KEPT:
            assert serial[label].metrics[name] == one_by_one[label].metrics[name], (label, name)
            assert pooled[label].metrics[name] == serial[label].metrics[name], (label, name)
        assert pooled[label].trainable == serial[label].trainable
        assert pooled[label].peak_memory_mb == serial[label].peak_memory_mb  # counted, not sampled
        pd.testing.assert_frame_equal(pooled[label].history, serial[label].history)
        assert pooled[label].step_seconds > 0
    assert pooled["frozen"].trainable == 0 < pooled["lora"].trainable < pooled["full"].trainable


def test_finetune_modes_rejects_no_configs_and_bad_workers(tiny):
    pad = tiny.tokenizer.pad_token_id
    splits = seed_splits(tiny.tokenizer, TINY_BUDGET, 0)
    with pytest.raises(ValueError, match="at least one mode"):
        finetune_modes(tiny.model, splits, {}, pad, 0)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="positive integer"):
            finetune_modes(tiny.model, splits, {"lora": _config("lora")}, pad, 0, workers=bad)
