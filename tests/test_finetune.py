"""Joint fine-tuning on clothing: data, loss, every mode on a tiny budget, memory meter, bad inputs."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from mtrec_utils.analyses.finetuning.finetune import (
    FinetuneConfig,
    build_model,
    evaluate_clothing,
    finetune,
    joint_loss,
)
from mtrec_utils.analyses.finetuning.memory import MemoryMeter
from mtrec_utils.data.finetune_data import BUDGETS, TASKS, budget_for, clothing_splits
from mtrec_utils.models.encoders import load_encoder
from mtrec_utils.models.peft_modes import MODES, adapt_encoder, trainable_parameters


@pytest.fixture(scope="module")
def tiny():
    return load_encoder("tiny-random", device="cpu")


@pytest.fixture(scope="module")
def splits(tiny):
    return clothing_splits(tiny.tokenizer, 64, 40, 16, torch.Generator().manual_seed(0))


def _run(tiny, splits, **kw):
    config = FinetuneConfig(**{"steps": 3, "batch_size": 8, **kw})
    pad_id, generator = tiny.tokenizer.pad_token_id, torch.Generator().manual_seed(0)
    return finetune(tiny.model, splits, config, pad_id, generator, progress=False)


def test_clothing_splits_sizes_and_labels(splits):
    assert {k: len(v) for k, v in splits.ids.items()} == {"train": 64, "val": 40, "test": 40}
    assert all(len(ids) <= 16 for part in splits.ids.values() for ids in part)
    y = splits.labels["train"]
    assert set(y) == set(TASKS) and set(y["recommended"].unique().tolist()) <= {0.0, 1.0}
    assert y["rating"].min() >= 1 and y["rating"].max() <= 5
    assert 0 <= int(y["department"].min()) and int(y["department"].max()) < len(splits.departments)
    assert not set(splits.texts["train"]) & set(splits.texts["test"]) - {""}


def test_budget_is_shared_and_checked():
    assert budget_for("cpu") == BUDGETS["cpu"] and budget_for("cpu") is not BUDGETS["cpu"]
    assert budget_for("cpu")["max_test"] is None  # the whole test split; validation stays a slice
    with pytest.raises(ValueError, match="profile='auto'"):
        budget_for("auto")


def test_joint_loss_is_the_weighted_sum():
    g = torch.Generator().manual_seed(0)
    out = {
        "recommended": torch.randn(5, generator=g),
        "rating": torch.randn(5, generator=g),
        "department": torch.randn(5, 3, generator=g),
    }
    y = {
        "recommended": torch.tensor([0.0, 1, 1, 0, 1]),
        "rating": torch.arange(5.0),
        "department": torch.tensor([0, 1, 2, 0, 1]),
    }
    total, parts = joint_loss(out, y, {"recommended": 2.0, "rating": 0.5, "department": 1.0})
    expected = (
        2 * F.binary_cross_entropy_with_logits(out["recommended"], y["recommended"])
        + 0.5 * F.mse_loss(out["rating"], y["rating"])
        + F.cross_entropy(out["department"], y["department"])
    )
    assert total.item() == pytest.approx(expected.item(), rel=1e-6) and set(parts) == set(TASKS)


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_trains_on_the_budget(tiny, splits, mode):
    r = _run(tiny, splits, mode=mode)
    assert r.trainable == trainable_parameters(adapt_encoder(tiny.model, mode, 8, 3)).trainable
    assert len(r.history) == 3 and r.step_seconds > 0 and r.samples_per_second > 0 and r.peak_memory_mb > 0
    assert r.memory_kind == "cpu_weights_grads_optimizer_saved_activations"
    assert 0 <= r.metrics["test_recommended_auc"] <= 1 and 0 <= r.metrics["val_department_accuracy"] <= 1
    assert 0 < r.metrics["test_rating_rmse"] < 5


def test_full_fine_tuning_needs_more_memory_than_lora(tiny, splits):
    full, lora, frozen = (_run(tiny, splits, mode=m) for m in ("full", "lora", "frozen"))
    assert full.peak_memory_mb > lora.peak_memory_mb > frozen.peak_memory_mb


def test_training_lowers_the_joint_loss(tiny, splits):
    r = _run(tiny, splits, mode="full", steps=40, lr=1e-3)
    assert r.history["loss"].tail(8).mean() < r.history["loss"].head(8).mean()


def test_task_specific_lora_has_one_module_per_task(tiny, splits):
    shared, per_task = _run(tiny, splits, mode="lora"), _run(tiny, splits, mode="lora", task_specific=True)
    assert per_task.mode == "lora_per_task" and per_task.trainable == 3 * shared.trainable


def test_heads_start_at_the_label_means(tiny, splits):
    model = build_model(tiny.model, splits, FinetuneConfig(mode="frozen"))
    assert model.heads["rating"].bias.item() == pytest.approx(splits.labels["train"]["rating"].mean().item())
    metrics = evaluate_clothing(model, splits, "val", tiny.tokenizer.pad_token_id)
    assert set(metrics) == {"val_recommended_auc", "val_rating_rmse", "val_department_accuracy"}


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"mode": "qlora"}, "mode="),
        ({"steps": 0}, "steps=0"),
        ({"lr": -1.0}, "lr=-1.0"),
        ({"weights": {"recommended": 1.0}}, "weights="),
        ({"mode": "ia3", "task_specific": True}, "task_specific"),
    ],
)
def test_bad_config_raises(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        FinetuneConfig(**kwargs).check()


def test_memory_meter_counts_saved_tensors_once():
    meter = MemoryMeter("cpu")
    a, b = torch.ones(1000, requires_grad=True), torch.ones(1000, requires_grad=True)
    with meter.saved_tensors():
        (a * b).sum()  # mul saves a and b: 2 x 4000 bytes
    assert meter.saved_bytes == 8000
    with meter.saved_tensors():
        (a * a).sum()  # the same storage twice counts once
    assert meter.saved_bytes == 4000
