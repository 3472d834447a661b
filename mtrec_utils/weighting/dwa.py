"""Dynamic weight average (DWA), Liu, Johns and Davison, CVPR 2019."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mtrec_utils.core.config import check_positive
from mtrec_utils.weighting.base import CombineResult, WeightingStrategy, check_losses


def dwa_weights(loss_prev: Tensor, loss_prev2: Tensor, temperature: float = 2.0) -> Tensor:
    """DWA weights from the two previous average losses.

    ``w_i = k exp(r_i / T) / sum_j exp(r_j / T)`` with ``r_i = loss_prev_i / loss_prev2_i``.

    Args:
        loss_prev: ``(k,)`` average task losses of the last window ``t-1``.
        loss_prev2: ``(k,)`` average task losses of window ``t-2``.
        temperature: ``T``; large ``T`` gives weights close to 1.

    Returns:
        ``(k,)`` weights summing to ``k``.
    """
    ratio = loss_prev / loss_prev2
    return loss_prev.numel() * torch.softmax(ratio / temperature, dim=0)


class DynamicWeightAverage(WeightingStrategy):
    """Weight each task by how slowly its loss is falling (a slow task gets more weight).

    Liu, Johns and Davison, "End-to-End Multi-Task Learning with Attention", CVPR 2019
    (arXiv:1803.10704), equation 7: ``w_i(t) = k exp(r_i(t-1)/T) / sum_j exp(r_j(t-1)/T)``,
    ``r_i(t-1) = L_i(t-1) / L_i(t-2)``, where ``L_i(t)`` is the average loss of window ``t``.
    The paper's window is an epoch: pass ``period=len(train_loader)`` and the global ``step``.
    Weights are 1 in the first two windows. Equal loss ratios give equal weights (1 each).

    Args:
        num_tasks: number of tasks ``k``.
        temperature: ``T`` (paper: 2).
        period: steps per averaging window (an epoch in the paper).
    """

    name = "dwa"

    def __init__(self, num_tasks: int, temperature: float = 2.0, period: int = 1) -> None:
        super().__init__(num_tasks)
        self.temperature = float(check_positive("temperature", temperature))
        self.period = check_positive("period", period, integer=True)
        self._window = 0
        self._last_step = -1
        self._sum = torch.zeros(num_tasks, dtype=torch.float64)
        self._count = 0
        self._history: list[Tensor] = []  # average losses of finished windows

    def _advance(self, step: int) -> None:
        """Close finished windows so that ``self._window`` is the window of ``step``."""
        if step < self._last_step:
            raise ValueError(
                f"step={step} is smaller than the previous step {self._last_step}; pass the global step"
            )
        self._last_step = step
        while step // self.period > self._window:
            if self._count:
                self._history = (self._history + [self._sum / self._count])[-2:]
            self._sum = torch.zeros_like(self._sum)
            self._count = 0
            self._window += 1

    def combine(
        self, losses: Tensor, shared_params: Sequence[Tensor] | None = None, step: int = 0
    ) -> CombineResult:
        """``loss = sum_i w_i L_i`` with DWA weights; see :meth:`WeightingStrategy.combine`."""
        losses = check_losses(losses, self.num_tasks)
        self._advance(int(step))
        self._sum += losses.detach().to("cpu", torch.float64)
        self._count += 1
        if len(self._history) < 2:
            weights = torch.ones(self.num_tasks, dtype=torch.float64)
        else:
            weights = dwa_weights(self._history[1], self._history[0], self.temperature)
        weights = weights.to(dtype=losses.dtype, device=losses.device)
        return CombineResult(loss=(weights * losses).sum(), weights=weights)

    def get_extra_state(self) -> dict:
        """The running loss averages, so that ``state_dict`` (and a resumed training run) keeps them."""
        return {
            "window": self._window,
            "last_step": self._last_step,
            "sum": self._sum.clone(),
            "count": self._count,
            "history": [h.clone() for h in self._history],
        }

    def set_extra_state(self, state: dict) -> None:
        self._window, self._last_step, self._count = state["window"], state["last_step"], state["count"]
        self._sum, self._history = state["sum"].clone(), [h.clone() for h in state["history"]]

    def extra_repr(self) -> str:
        return f"num_tasks={self.num_tasks}, temperature={self.temperature}, period={self.period}"
