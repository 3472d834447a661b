"""Uncertainty weighting (UW), Kendall, Gal and Cipolla, CVPR 2018."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mtrec_utils.weighting.base import CombineResult, WeightingStrategy, check_losses


class UncertaintyWeighting(WeightingStrategy):
    """Learn one log-variance per task: ``loss = sum_i exp(-s_i) L_i + s_i``.

    Kendall, Gal and Cipolla, "Multi-Task Learning Using Uncertainty to Weigh Losses for Scene
    Geometry and Semantics", CVPR 2018 (arXiv:1705.07115).

    Convention: ``s_i = log sigma_i^2`` is an ``nn.Parameter`` (``self.log_vars``, initialised
    to 0), and the weight of task ``i`` is ``w_i = exp(-s_i) = 1 / sigma_i^2``. The paper's
    regression form ``L_i / (2 sigma_i^2) + log sigma_i`` is exactly half of this term (same
    optimum, half the gradient); its classification form ``L_i / sigma_i^2 + log sigma_i`` has
    its optimum at ``s_i = log(2 L_i)`` instead. We use the single form above for every task, as
    most implementations do (e.g. LibMTL). For a fixed loss ``L_i > 0`` the best ``s_i`` is
    ``log L_i``, so UW drives each weight towards ``1 / L_i``.

    Put ``strategy.parameters()`` in the optimizer so ``s`` is learned.

    Args:
        num_tasks: number of tasks ``k``.
        init_log_var: initial ``s_i`` (0 means weight 1).
    """

    name = "uw"

    def __init__(self, num_tasks: int, init_log_var: float = 0.0) -> None:
        super().__init__(num_tasks)
        self.log_vars = nn.Parameter(torch.full((num_tasks,), float(init_log_var)))

    def combine(
        self, losses: Tensor, shared_params: Sequence[Tensor] | None = None, step: int = 0
    ) -> CombineResult:
        """``loss = sum_i exp(-s_i) L_i + s_i``; see :meth:`WeightingStrategy.combine`."""
        losses = check_losses(losses, self.num_tasks)
        s = self.log_vars.to(dtype=losses.dtype, device=losses.device)
        loss = (torch.exp(-s) * losses + s).sum()
        return CombineResult(loss=loss, weights=torch.exp(-s).detach())
