"""Static weighting: fixed, hand-chosen task weights."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from mtrec_utils.weighting.base import CombineResult, WeightingStrategy, check_losses


class StaticWeighting(WeightingStrategy):
    """Fixed weights: ``loss = sum_i w_i L_i`` (the article's step 2, "weighted combination").

    The weights are used as given (not normalised), so ``weights=[0.5, 0.5]`` is the article's
    mean of two tasks and ``[1, 1]`` their sum.

    Args:
        num_tasks: number of tasks ``k``.
        weights: ``k`` non-negative finite numbers, at least one positive.

    Raises:
        ValueError: wrong length, a negative or non-finite weight, or all weights zero.
    """

    name = "static"
    weights: Tensor  # buffer, (num_tasks,)

    def __init__(self, num_tasks: int, weights: Sequence[float]) -> None:
        super().__init__(num_tasks)
        values = [float(w) for w in weights]
        if len(values) != num_tasks:
            raise ValueError(
                f"weights={values} has {len(values)} values but num_tasks={num_tasks}; give one weight per task"
            )
        bad = [w for w in values if not math.isfinite(w) or w < 0]
        if bad:
            raise ValueError(f"weights={values} contains {bad}: static weights must be finite and >= 0")
        if sum(values) == 0:
            raise ValueError(f"weights={values} are all zero: at least one task needs a positive weight")
        self.register_buffer("weights", torch.tensor(values))

    def combine(
        self, losses: Tensor, shared_params: Sequence[Tensor] | None = None, step: int = 0
    ) -> CombineResult:
        """``loss = sum_i w_i L_i``; see :meth:`WeightingStrategy.combine`."""
        losses = check_losses(losses, self.num_tasks)
        weights = self.weights.to(dtype=losses.dtype, device=losses.device)
        return CombineResult(loss=(weights * losses).sum(), weights=weights.clone())

    def extra_repr(self) -> str:
        return f"num_tasks={self.num_tasks}, weights={self.weights.tolist()}"
