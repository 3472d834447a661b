"""GradNorm, Chen, Badrinarayanan, Lee and Rabinovich, ICML 2018."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor, nn

from mtrec_utils.weighting.base import (
    CombineResult,
    WeightingStrategy,
    check_losses,
    check_shared_params,
    task_gradients,
)


class GradNorm(WeightingStrategy):
    """Learn weights that balance the tasks' gradient norms on the shared parameters.

    Chen et al., "GradNorm: Gradient Normalization for Adaptive Loss Balancing in Deep
    Multitask Networks", ICML 2018 (arXiv:1711.02257).

    With ``n_i = ||grad_W L_i||`` on the shared parameters ``W`` (usually the last shared
    layer), ``G_i = w_i n_i``, ``G_bar = mean_i G_i`` and relative inverse training rates
    ``r_i = (L_i / L_i(0)) / mean_j (L_j / L_j(0))``, the weights ``w`` (``nn.Parameter``,
    initialised to 1) get the gradient of ``L_grad = sum_i |G_i - G_bar r_i^alpha|``, where the
    target ``G_bar r_i^alpha`` is a constant. The model gets the gradient of
    ``sum_i w_i L_i`` with ``w`` held constant. Both come from one ``backward()`` of the
    returned loss ``sum_i stopgrad(w_i) L_i + L_grad``, because ``n_i`` is detached, so
    ``L_grad`` only reaches ``w``.

    The paper renormalises ``w`` to sum to ``k`` after each optimizer step; here that happens
    at the start of the next :meth:`combine` (weights are first clamped to ``min_weight`` so a
    large step cannot make them negative). ``L_i(0)`` are the losses of the first call.

    Args:
        num_tasks: number of tasks ``k``.
        alpha: asymmetry ``alpha`` (paper: 0.12 to 3; larger pulls harder on slow tasks).
        min_weight: floor applied before renormalising.
    """

    name = "gradnorm"
    initial_losses: Tensor  # buffer, (num_tasks,): the losses of the first call (NaN before it)

    def __init__(self, num_tasks: int, alpha: float = 1.5, min_weight: float = 1e-3) -> None:
        super().__init__(num_tasks)
        if alpha < 0:
            raise ValueError(f"alpha={alpha!r} is not valid; it must be >= 0 (the paper uses 0.12 to 3)")
        self.alpha = float(alpha)
        self.min_weight = float(min_weight)
        self.weights = nn.Parameter(torch.ones(num_tasks))
        self.register_buffer("initial_losses", torch.full((num_tasks,), float("nan")))

    @torch.no_grad()
    def renormalize(self) -> None:
        """Clamp the weights to ``min_weight`` and rescale them to sum to ``num_tasks``."""
        self.weights.clamp_(min=self.min_weight)
        self.weights.mul_(self.num_tasks / self.weights.sum())

    def combine(
        self, losses: Tensor, shared_params: Sequence[Tensor] | None = None, step: int = 0
    ) -> CombineResult:
        """See the class docstring and :meth:`WeightingStrategy.combine`; needs ``shared_params``."""
        losses = check_losses(losses, self.num_tasks)
        shared = check_shared_params(shared_params, "GradNorm")
        self.renormalize()
        if torch.isnan(self.initial_losses).any():
            self.initial_losses.copy_(losses.detach())
        grads = task_gradients(losses, shared)  # grads[i][j]: task i, parameter j
        # a sum over the (never empty) shared parameters is a tensor, not sum()'s start value 0
        sq_norms = [cast(Tensor, sum((g.detach() ** 2).sum() for g in gi)) for gi in grads]
        norms = torch.stack([torch.sqrt(s) for s in sq_norms])
        w = self.weights.to(dtype=losses.dtype, device=losses.device)
        g_task = w * norms.to(w.dtype)  # (k,) G_i, differentiable in w only
        ratio = losses.detach() / self.initial_losses.to(losses.dtype).clamp_min(1e-12)
        target = (g_task.mean() * (ratio / ratio.mean()) ** self.alpha).detach()
        grad_loss = (g_task - target).abs().sum()
        loss = (w.detach() * losses).sum() + grad_loss
        return CombineResult(loss=loss, weights=w.detach().clone())

    def extra_repr(self) -> str:
        return f"num_tasks={self.num_tasks}, alpha={self.alpha}"
