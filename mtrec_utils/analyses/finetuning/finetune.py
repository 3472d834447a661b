"""Joint fine-tuning of a text encoder on the clothing tasks, with step time and memory measured.

One review, three heads on the mean-pooled encoder output: ``recommended`` (binary, AUC),
``rating`` (regression, RMSE) and ``department`` (classes, accuracy); the joint loss is the
weighted sum of the three losses. Every mode of :mod:`mtrec_utils.models.peft_modes` trains on the same
budget: a fixed number of steps of a fixed batch size over the same reviews.

Texts are tokenised once before training and padded per batch (dynamic padding). Training goes
through Hugging Face Accelerate, so the same function runs data-parallel under
``accelerate launch --num_processes N -m mtrec_utils.analyses.finetuning.launch ...`` (see :mod:`mtrec_utils.analyses.finetuning.launch`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from mtrec_utils.analyses.finetuning.memory import MemoryMeter
from mtrec_utils.core.config import check_choice, check_positive
from mtrec_utils.core.metrics import accuracy, auc, rmse
from mtrec_utils.data.finetune_data import TASKS, ClothingSplits, batches
from mtrec_utils.models.encoders import mean_pool
from mtrec_utils.models.peft_modes import MODES, adapt_encoder, add_task_adapters, enable_all_adapters

DEFAULT_LR = {"frozen": 0.0, "full": 5e-5, "lora": 1e-3, "adalora": 1e-3, "ia3": 3e-3, "adapter": 1e-3}


class JointFinetuner(nn.Module):
    """An encoder and three task heads on its mean-pooled output.

    Args:
        encoder: an adapted encoder (:func:`mtrec_utils.models.peft_modes.adapt_encoder`).
        dim: H, the encoder's hidden size.
        num_departments: C, the classes of ``department``.
        task_adapters: if given, ``encoder`` holds one peft adapter per task and each task reads
            the text through its own adapter (one encoder pass per task).
    """

    def __init__(
        self, encoder: nn.Module, dim: int, num_departments: int, task_adapters: Sequence[str] | None = None
    ):
        super().__init__()
        self.encoder = encoder
        self.task_adapters = list(task_adapters) if task_adapters else None
        outputs = {"recommended": 1, "rating": 1, "department": num_departments}
        self.heads = nn.ModuleDict({task: nn.Linear(dim, n) for task, n in outputs.items()})

    def pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids and mask -> (B, H) mean-pooled text vectors (no graph if nothing trains)."""
        trains = any(p.requires_grad for p in self.encoder.parameters())
        with torch.set_grad_enabled(trains and torch.is_grad_enabled()):
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return mean_pool(hidden, attention_mask)  # (B, H)

    def heads_forward(self, pooled: dict[str, torch.Tensor] | torch.Tensor) -> dict[str, torch.Tensor]:
        """Per task: recommended and rating (B,), department (B, C); ``pooled`` may differ per task."""
        out = {}
        for name, head in self.heads.items():
            x = pooled[name] if isinstance(pooled, dict) else pooled
            out[name] = head(x).squeeze(-1) if name != "department" else head(x)
        return out

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.task_adapters is None:
            return self.heads_forward(self.pooled(input_ids, attention_mask))
        pooled = {}
        for task in self.task_adapters:  # one encoder pass per task, each through its own LoRA
            self.encoder.set_adapter(task)
            enable_all_adapters(self.encoder)
            pooled[task] = self.pooled(input_ids, attention_mask)
        return self.heads_forward(pooled)


def joint_loss(
    outputs: dict[str, torch.Tensor], labels: dict[str, torch.Tensor], weights: dict[str, float]
) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of BCE (recommended), MSE (rating) and cross-entropy (department); and each loss."""
    losses = {
        "recommended": F.binary_cross_entropy_with_logits(outputs["recommended"], labels["recommended"]),
        "rating": F.mse_loss(outputs["rating"], labels["rating"]),
        "department": F.cross_entropy(outputs["department"], labels["department"]),
    }
    total = sum(weights[k] * v for k, v in losses.items())
    return total, {k: float(v.detach()) for k, v in losses.items()}


@dataclass
class FinetuneConfig:
    """One training run's budget and settings.

    Attributes:
        mode: one of :data:`mtrec_utils.models.peft_modes.MODES`.
        steps: optimizer steps (the budget every mode shares).
        batch_size: reviews per step (per process under ``accelerate launch``).
        lr: learning rate of the trainable encoder weights (``None``: :data:`DEFAULT_LR` of the mode).
        head_lr: learning rate of the three heads.
        rank: LoRA/AdaLoRA rank or adapter width.
        weights: task weights of the joint loss.
        task_specific: one LoRA per task on the shared frozen encoder (``mode`` must be ``lora``).
        eval_batch_size: reviews per evaluation pass.
    """

    mode: str = "lora"
    steps: int = 100
    batch_size: int = 16
    lr: float | None = None
    head_lr: float = 3e-3
    rank: int = 8
    weights: dict[str, float] = field(default_factory=lambda: dict.fromkeys(TASKS, 1.0))
    task_specific: bool = False
    eval_batch_size: int = 64

    def check(self) -> None:
        """Raise ValueError naming the first bad setting."""
        check_choice("mode", self.mode, MODES)
        for name in ("steps", "batch_size", "rank", "eval_batch_size"):
            check_positive(name, getattr(self, name), integer=True)
        check_positive("head_lr", self.head_lr)
        if self.lr is not None and self.mode != "frozen":
            check_positive("lr", self.lr)
        if set(self.weights) != set(TASKS) or any(w < 0 for w in self.weights.values()):
            raise ValueError(f"weights={self.weights!r} is not valid; give a weight >= 0 for each of {TASKS}")
        if self.task_specific and self.mode != "lora":
            raise ValueError(f"task_specific=True needs mode='lora', not mode={self.mode!r}")


@dataclass
class FinetuneResult:
    """What one run measured (metrics only on the main process)."""

    mode: str
    trainable: int  # encoder weights that train (the heads are counted in ``head_params``)
    total: int  # all encoder weights, adapter weights included
    head_params: int
    step_seconds: float
    samples_per_second: float
    peak_memory_mb: float
    memory_kind: str
    metrics: dict[str, float]
    history: pd.DataFrame
    num_processes: int = 1

    def row(self) -> dict:
        """A flat dict for a comparison table."""
        keep = ("mode", "trainable", "total", "step_seconds", "samples_per_second", "peak_memory_mb")
        return {**{k: getattr(self, k) for k in keep}, **self.metrics}


@torch.no_grad()
def evaluate_clothing(
    model: JointFinetuner, splits: ClothingSplits, part: str, pad_id: int, batch_size: int = 64
) -> dict[str, float]:
    """``{part}_recommended_auc``, ``{part}_rating_rmse``, ``{part}_department_accuracy`` of ``model``.

    Reviews are batched in order of length, so that a batch pads little (the metrics do not depend on
    the order).
    """
    was_training, device = model.training, next(model.parameters()).device
    model.eval()
    order = sorted(range(len(splits.ids[part])), key=lambda i: len(splits.ids[part][i]))
    ids, y = [splits.ids[part][i] for i in order], {k: v[order] for k, v in splits.labels[part].items()}
    outs = {k: [] for k in TASKS}
    for batch in batches(ids, y, batch_size, pad_id, None, False):
        out = model(batch["input_ids"].to(device), batch["attention_mask"].to(device))
        for k in TASKS:
            outs[k].append(out[k].float().cpu())
    model.train(was_training)
    p = {k: torch.cat(v) for k, v in outs.items()}
    return {
        f"{part}_recommended_auc": auc(y["recommended"].numpy(), p["recommended"].numpy()),
        f"{part}_rating_rmse": rmse(y["rating"].numpy(), p["rating"].numpy()),
        f"{part}_department_accuracy": accuracy(y["department"].numpy(), p["department"].argmax(-1).numpy()),
    }


def build_model(encoder_model: nn.Module, splits: ClothingSplits, config: FinetuneConfig) -> JointFinetuner:
    """The adapted encoder and fresh heads, the heads' biases at the training label means."""
    config.check()
    if config.task_specific:
        encoder = add_task_adapters(encoder_model, TASKS, config.rank)
    else:
        encoder = adapt_encoder(encoder_model, config.mode, config.rank, config.steps)
    adapters = TASKS if config.task_specific else None
    model = JointFinetuner(encoder, encoder_model.config.hidden_size, len(splits.departments), adapters)
    y = splits.labels["train"]
    rate = float(y["recommended"].mean().clamp(1e-3, 1 - 1e-3))
    with torch.no_grad():
        model.heads["recommended"].bias.fill_(float(np.log(rate / (1 - rate))))
        model.heads["rating"].bias.fill_(float(y["rating"].mean()))
    return model


def finetune(
    encoder_model: nn.Module,
    splits: ClothingSplits,
    config: FinetuneConfig,
    pad_id: int,
    generator: torch.Generator,
    accelerator=None,
    parts: Sequence[str] = ("val", "test"),
    progress: bool = True,
) -> FinetuneResult:
    """Train encoder + heads jointly for ``config.steps`` steps, then evaluate on ``parts``.

    Args:
        encoder_model: the pretrained encoder (copied, never changed).
        splits: from :func:`clothing_splits`.
        config: the budget and settings.
        pad_id: the tokenizer's padding id.
        generator: shuffles the training reviews (and nothing else).
        accelerator: an ``accelerate.Accelerator`` (default: one for the encoder's device).
        parts: evaluated parts.
        progress: show a progress bar.

    Returns:
        A :class:`FinetuneResult`. Step time is the median wall time of steps 2.. (step 1 warms up).
        Memory: on CUDA the peak of ``torch.cuda.max_memory_allocated`` over training; on CPU the
        bytes of weights, gradients, optimizer state and the tensors saved for backward in one step
        (:class:`mtrec_utils.analyses.finetuning.memory.MemoryMeter`), since the process RSS never goes down.
    """
    if accelerator is None:
        from mtrec_utils.training.loop import make_accelerator

        accelerator = make_accelerator(str(next(encoder_model.parameters()).device.type))
    model = build_model(encoder_model, splits, config)
    lr = DEFAULT_LR[config.mode] if config.lr is None else config.lr
    enc_params = [p for p in model.encoder.parameters() if p.requires_grad]
    groups = [{"params": list(model.heads.parameters()), "lr": config.head_lr}]
    groups += [{"params": enc_params, "lr": lr}] if enc_params else []
    optimizer = torch.optim.AdamW(groups, weight_decay=0.01)
    loader = batches(splits.ids["train"], splits.labels["train"], config.batch_size, pad_id, generator, True)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    plain = accelerator.unwrap_model(model)
    meter = MemoryMeter(accelerator.device)
    rows, times, step, start = [], [], 0, time.perf_counter()
    bar = tqdm(
        total=config.steps, desc=f"{config.mode}", disable=not (progress and accelerator.is_main_process)
    )
    model.train()
    while step < config.steps:
        for batch in loader:
            t0 = time.perf_counter()
            with meter.saved_tensors(enabled=step == 1):
                out = model(batch["input_ids"], batch["attention_mask"])
                loss, losses = joint_loss(out, batch, config.weights)
                accelerator.backward(loss)
            optimizer.step()
            if hasattr(getattr(plain.encoder, "base_model", None), "update_and_allocate"):
                plain.encoder.base_model.update_and_allocate(step)  # AdaLoRA moves its rank budget
            meter.after_step(plain, optimizer, step)
            optimizer.zero_grad(set_to_none=True)
            meter.sync()
            times.append(time.perf_counter() - t0)
            rows.append({"step": step, "loss": float(loss.detach()), **losses})
            step += 1
            bar.update(1)
            if step >= config.steps:
                break
    bar.close()
    seconds = float(np.median(times[1:] if len(times) > 1 else times))
    metrics = {"train_seconds": time.perf_counter() - start}
    if accelerator.is_main_process:
        for part in parts:
            metrics.update(evaluate_clothing(plain, splits, part, pad_id, config.eval_batch_size))
    enc = list(plain.encoder.parameters())
    n = accelerator.num_processes
    return FinetuneResult(
        mode=config.mode + ("_per_task" if config.task_specific else ""),
        trainable=sum(p.numel() for p in enc if p.requires_grad),
        total=sum(p.numel() for p in enc),
        head_params=sum(p.numel() for p in plain.heads.parameters()),
        step_seconds=seconds,
        samples_per_second=n * config.batch_size / seconds,
        peak_memory_mb=meter.peak_mb(),
        memory_kind=meter.kind,
        metrics=metrics,
        history=pd.DataFrame(rows),
        num_processes=n,
    )
