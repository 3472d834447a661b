"""Equal weighting (EW): every task gets the same weight."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mtrec_utils.core.config import check_choice
from mtrec_utils.weighting.base import CombineResult, WeightingStrategy, check_losses


class EqualWeighting(WeightingStrategy):
    """Equal weights: ``loss = sum_i w * L_i`` with ``w = 1`` (``"sum"``) or ``w = 1/k`` (``"mean"``).

    The default ``reduction="sum"`` (weights 1, as in LibMTL's EW) starts from the same scale as
    UW, GradNorm, DWA and PCGrad, whose weights are all 1 at the start. The article's section 3.1
    objective ``(1/k) sum_i L_i`` is ``reduction="mean"``: the same direction, a ``k`` times smaller
    step with plain SGD (and no difference at all with Adam, which is invariant to loss scale).

    Args:
        num_tasks: number of tasks ``k``.
        reduction: ``"sum"`` (weights 1) or ``"mean"`` (weights ``1/k``).
    """

    name = "ew"

    def __init__(self, num_tasks: int, reduction: str = "sum") -> None:
        super().__init__(num_tasks)
        self.reduction = check_choice("reduction", reduction, ("sum", "mean"))

    def combine(
        self, losses: Tensor, shared_params: Sequence[Tensor] | None = None, step: int = 0
    ) -> CombineResult:
        """``loss = sum_i w L_i``; see :meth:`WeightingStrategy.combine`."""
        losses = check_losses(losses, self.num_tasks)
        value = 1.0 if self.reduction == "sum" else 1.0 / self.num_tasks
        weights = torch.full((self.num_tasks,), value, dtype=losses.dtype, device=losses.device)
        return CombineResult(loss=(weights * losses).sum(), weights=weights)

    def extra_repr(self) -> str:
        return f"num_tasks={self.num_tasks}, reduction={self.reduction!r}"
