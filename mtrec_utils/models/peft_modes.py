"""Ways to adapt a pretrained encoder during joint training, and what each one trains.

:func:`adapt_encoder` returns a fresh copy of an encoder prepared in one of :data:`MODES`:

- ``frozen``:  no encoder weight trains; only the task heads learn (the cheapest baseline).
- ``full``:    every encoder weight trains (full fine-tuning, 全参数微调).
- ``lora``:    LoRA (Hu et al., 2021, "LoRA: Low-Rank Adaptation of Large Language Models"): a
  trainable low-rank update ``W + (alpha / r) B A`` on the attention ``query`` and ``value``
  projections, through ``peft``.
- ``adalora``: AdaLoRA (Zhang et al., 2023, "Adaptive Budget Allocation for Parameter-Efficient
  Fine-Tuning"): LoRA in SVD form whose rank budget is moved, during training, to the matrices that
  matter (``peft``; the training loop calls ``update_and_allocate`` after each backward pass).
- ``ia3``:     IA3 (Liu et al., 2022, "Few-Shot Parameter-Efficient Fine-Tuning is Better and
  Cheaper than In-Context Learning"): learned vectors that rescale keys, values and the
  feed-forward output (``peft``).
- ``adapter``: a bottleneck adapter (Houlsby et al., 2019, "Parameter-Efficient Transfer Learning
  for NLP") after the output projection of each transformer layer. ``peft`` has no bottleneck
  adapter for BERT-style encoders (its ``AdaptionPrompt`` is LLaMA-only), so
  :class:`BottleneckAdapter` is written here, in a dozen lines.

:func:`add_task_adapters` gives one shared frozen encoder a separate LoRA module per task.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence

import torch
from torch import nn

from mtrec_utils.core.config import check_choice, check_positive
from mtrec_utils.models.encoders import ParamCount, count_parameters

MODES = ("frozen", "full", "lora", "adalora", "ia3", "adapter")
PEFT_MODES = ("lora", "adalora", "ia3")
LORA_TARGETS = ("query", "value")
IA3_TARGETS = ("key", "value", "output.dense")
IA3_FEEDFORWARD = ("output.dense",)


class BottleneckAdapter(nn.Module):
    """``y = f(x) + up(gelu(down(f(x))))`` around a linear layer ``f``; starts as the identity.

    Args:
        inner: the wrapped ``nn.Linear`` (kept frozen by :func:`adapt_encoder`).
        bottleneck: width of the bottleneck (the adapter's "rank").

    Shapes: x (..., in_features) -> y (..., out_features).
    """

    def __init__(self, inner: nn.Linear, bottleneck: int = 8):
        super().__init__()
        self.inner = inner
        self.down = nn.Linear(inner.out_features, bottleneck)
        self.up = nn.Linear(bottleneck, inner.out_features)
        nn.init.zeros_(self.up.weight)  # zero update at the start: the pretrained model is unchanged
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inner(x)
        return h + self.up(nn.functional.gelu(self.down(h)))


def _layer_output_dense(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """(parent, attribute) of every transformer layer's final ``output.dense`` (not the attention's)."""
    found = []
    for name, module in model.named_modules():
        if name.endswith(".output") and not name.endswith("attention.output"):
            if isinstance(getattr(module, "dense", None), nn.Linear):
                found.append((module, "dense"))
    return found


def _peft_config(mode: str, rank: int, total_steps: int):
    from peft import AdaLoraConfig, IA3Config, LoraConfig

    if mode == "lora":
        return LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=list(LORA_TARGETS))
    if mode == "adalora":
        # starts at 1.5x the rank and prunes down to ``rank`` between 10% and 70% of the steps
        tinit, tfinal = max(total_steps // 10, 0), max(total_steps * 3 // 10, 0)
        tinit, tfinal = (0, 0) if tinit + tfinal >= total_steps else (tinit, tfinal)
        return AdaLoraConfig(
            init_r=max(rank * 3 // 2, rank + 1),
            target_r=rank,
            lora_alpha=2 * rank,
            lora_dropout=0.0,
            target_modules=list(LORA_TARGETS),
            total_step=total_steps,
            tinit=tinit,
            tfinal=tfinal,
        )
    return IA3Config(target_modules=list(IA3_TARGETS), feedforward_modules=list(IA3_FEEDFORWARD))


def _get_peft_model(model: nn.Module, config, **kwargs) -> nn.Module:
    from peft import get_peft_model

    with warnings.catch_warnings():  # peft asks transformers about a renamed attribute
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, config, **kwargs)


def adapt_encoder(model: nn.Module, mode: str, rank: int = 8, total_steps: int = 100) -> nn.Module:
    """A copy of ``model`` (a ``transformers`` BERT-style encoder) prepared for training in ``mode``.

    Args:
        model: the pretrained encoder; it is deep-copied, never changed.
        mode: one of :data:`MODES`.
        rank: LoRA rank r (``lora``), AdaLoRA's final rank, or the adapter bottleneck width.
        total_steps: training steps (AdaLoRA schedules its rank budget over them).

    Returns:
        The encoder; its forward takes ``input_ids`` and ``attention_mask`` (B, T) and returns an
        object with ``last_hidden_state`` (B, T, H). Only the parameters ``mode`` trains have
        ``requires_grad``.

    Raises:
        ValueError: for an unknown mode (listing the valid ones), a non-positive rank or step count.
    """
    check_choice("mode", mode, MODES)
    check_positive("rank", rank, integer=True)
    check_positive("total_steps", total_steps, integer=True)
    model = copy.deepcopy(model)
    if mode in PEFT_MODES:
        return _get_peft_model(model, _peft_config(mode, rank, total_steps))
    model.requires_grad_(mode == "full")
    if mode == "adapter":
        targets = _layer_output_dense(model)
        if not targets:
            raise ValueError(
                "mode='adapter' found no layer '*.output.dense' in this encoder (BERT-style only)"
            )
        for parent, attr in targets:
            setattr(parent, attr, BottleneckAdapter(getattr(parent, attr), rank))
    return model


def trainable_parameters(model: nn.Module) -> ParamCount:
    """``ParamCount(total, trainable)`` of an adapted encoder (wrappers and peft models included)."""
    return count_parameters(model)


def add_task_adapters(model: nn.Module, task_names: Sequence[str], rank: int = 8) -> nn.Module:
    """A copy of ``model`` with one LoRA module per task on the same frozen weights (``peft`` adapters).

    Select a task's module with ``model.set_adapter(task)``. ``peft`` switches ``requires_grad`` off
    for the inactive adapters; :func:`enable_all_adapters` switches every task's module back on so
    that one backward pass can train them all.

    Returns:
        A ``peft.PeftModel`` whose adapters are named after ``task_names``.
    """
    names = list(task_names)
    if not names or len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"task_names={names!r} is not valid; give distinct non-empty task names")
    config = _peft_config("lora", rank, 1)
    peft_model = _get_peft_model(copy.deepcopy(model), config, adapter_name=names[0])
    for name in names[1:]:
        peft_model.add_adapter(name, _peft_config("lora", rank, 1))
    enable_all_adapters(peft_model)
    return peft_model


def enable_all_adapters(model: nn.Module) -> None:
    """Set ``requires_grad`` on every LoRA weight of every adapter (peft leaves only the active one on)."""
    for name, p in model.named_parameters():
        if "lora_" in name:
            p.requires_grad_(True)
