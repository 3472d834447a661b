"""PCGrad (projecting conflicting gradients), Yu et al., NeurIPS 2020."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mtrec_utils.weighting.base import (
    CombineResult,
    WeightingStrategy,
    check_losses,
    check_shared_params,
    task_gradients,
)


def project_conflicting(g_i: Tensor, g_j: Tensor) -> Tensor:
    """Remove from ``g_i`` its component along ``g_j`` if the two conflict (``g_i . g_j < 0``).

    Args:
        g_i, g_j: gradients of two tasks, same shape (any).

    Returns:
        ``g_i - (g_i . g_j / ||g_j||^2) g_j`` when ``g_i . g_j < 0``, else ``g_i`` unchanged.
    """
    dot = (g_i * g_j).sum()
    if dot < 0:
        return g_i - dot / (g_j * g_j).sum() * g_j
    return g_i


def pcgrad(grads: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """PCGrad's combined gradient from flat per-task gradients.

    Each task's gradient is projected, in a random order of the other tasks, onto the normal
    plane of every task gradient it conflicts with; the projected gradients are summed.

    Args:
        grads: ``(k, P)`` flat per-task gradients.
        generator: random source for the order (``None``: torch's global generator).

    Returns:
        ``(P,)`` combined gradient.
    """
    out = grads.clone()
    k = grads.shape[0]
    for i in range(k):
        for j in torch.randperm(k, generator=generator).tolist():
            if j != i:
                out[i] = project_conflicting(out[i], grads[j])
    return out.sum(0)


class PCGrad(WeightingStrategy):
    """Project conflicting task gradients on the shared parameters, then sum them.

    Yu, Kumar, Gupta, Levine, Hausman and Finn, "Gradient Surgery for Multi-Task Learning",
    NeurIPS 2020 (arXiv:2001.06782). The weights are 1 (PCGrad edits the gradient of the sum
    of the losses); task-specific parameters get their plain gradients. The result carries the
    projected gradients: call ``result.backward()``, not ``result.loss.backward()``.

    Args:
        num_tasks: number of tasks ``k``.
        generator: ``torch.Generator`` for the random task order (``None``: global RNG).
    """

    name = "pcgrad"

    def __init__(self, num_tasks: int, generator: torch.Generator | None = None) -> None:
        super().__init__(num_tasks)
        self.generator = generator

    def combine(
        self, losses: Tensor, shared_params: Sequence[Tensor] | None = None, step: int = 0
    ) -> CombineResult:
        """See the class docstring and :meth:`WeightingStrategy.combine`; needs ``shared_params``."""
        losses = check_losses(losses, self.num_tasks)
        shared = check_shared_params(shared_params, "PCGrad")
        per_task = task_gradients(losses, shared)
        flat = torch.stack([torch.cat([g.detach().reshape(-1) for g in gi]) for gi in per_task])  # (k, P)
        combined = pcgrad(flat, self.generator)
        grads, raw, start = [], [], 0
        raw_flat = flat.sum(0)
        for p in shared:
            n = p.numel()
            grads.append(combined[start : start + n].view_as(p))
            raw.append(raw_flat[start : start + n].view_as(p))
            start += n
        weights = torch.ones(self.num_tasks, dtype=losses.dtype, device=losses.device)
        return CombineResult(
            loss=losses.sum(), weights=weights, shared_params=shared, grads=grads, raw_grads=raw
        )
