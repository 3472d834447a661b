"""Where the time of one joint training step goes, measured with the PyTorch profiler.

:func:`profile_joint_step` runs whole training steps of a :class:`mtrec_utils.analyses.finetuning.finetune.JointFinetuner`
from raw review texts, with each phase inside a ``torch.profiler.record_function`` label
(:data:`PHASES`), and returns the time of each phase per step. Tokenisation is done inside the
step on purpose, as the article's pipeline does, to show what it costs; the workbook's own loop
tokenises once before training (:data:`REMEDIES` says what the workbook does about each phase).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch
from torch.profiler import ProfilerActivity, profile, record_function

from mtrec_utils.core.config import check_positive

PHASES = ("tokenise", "encoder_forward", "heads_and_loss", "backward", "optimizer")
REMEDIES = {
    "tokenise": "tokenise every text once before training; pad each batch to its longest text",
    "encoder_forward": "shorter token limit, dynamic padding, encode each distinct text once; a frozen "
    "encoder's embeddings are cached on disk (no encoder pass at all)",
    "heads_and_loss": "small heads on the pooled vector; nothing to gain here",
    "backward": "parameter-efficient modes skip the weight gradients of the frozen encoder; "
    "mixed precision on GPU; a frozen encoder has no encoder backward",
    "optimizer": "AdamW updates only the trainable weights: 0.3% of them with LoRA",
}


def profile_joint_step(
    model: torch.nn.Module,
    tokenizer,
    texts: Sequence[str],
    labels: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    weights: dict[str, float],
    max_length: int = 64,
    steps: int = 3,
) -> pd.DataFrame:
    """Profile ``steps`` joint training steps on one batch of raw ``texts`` (after one warm-up step).

    Args:
        model: a :class:`~mtrec_utils.analyses.finetuning.finetune.JointFinetuner` (its ``pooled`` and ``heads_forward``).
        tokenizer: the encoder's tokenizer.
        texts: B review texts (one batch).
        labels: ``{task: (B,) tensor}``.
        optimizer: over the model's trainable parameters.
        weights: task weights of the joint loss.
        max_length: token limit.
        steps: profiled steps (their times are averaged).

    Returns:
        DataFrame indexed by phase (:data:`PHASES`) with ``ms_per_step``, ``share`` (of the summed
        phases) and ``remedy``.
    """
    from mtrec_utils.analyses.finetuning.finetune import joint_loss

    check_positive("steps", steps, integer=True)
    if len(texts) == 0 or any(len(v) != len(texts) for v in labels.values()):
        raise ValueError(f"texts ({len(texts)}) must be non-empty and match every label tensor's length")
    device = next(model.parameters()).device
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    labels = {k: v.to(device) for k, v in labels.items()}

    def phase(name):
        if cuda:
            torch.cuda.synchronize(device)  # the previous phase's kernels belong to it
        return record_function(name)

    def one_step():
        with phase("tokenise"):
            batch = tokenizer(
                list(texts), padding="longest", truncation=True, max_length=max_length, return_tensors="pt"
            ).to(device)
        with phase("encoder_forward"):
            pooled = model.pooled(batch["input_ids"], batch["attention_mask"])  # (B, H)
        with phase("heads_and_loss"):
            loss, _ = joint_loss(model.heads_forward(pooled), labels, weights)
        with phase("backward"):
            loss.backward()
        with phase("optimizer"):
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize(device)

    model.train()
    one_step()  # warm-up: first-call allocations and kernel selection
    with profile(activities=activities) as prof:
        for _ in range(steps):
            one_step()
    totals = {e.key: e.cpu_time_total for e in prof.key_averages() if e.key in PHASES}  # microseconds
    ms = pd.Series({p: totals.get(p, 0.0) / 1000 / steps for p in PHASES}, name="ms_per_step")
    table = ms.to_frame()
    table["share"] = ms / ms.sum()
    table["remedy"] = pd.Series(REMEDIES)
    table.index.name = "phase"
    return table
