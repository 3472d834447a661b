"""The interface every task-weighting strategy implements.

A strategy turns the per-task losses of one training step into something a training loop can
apply, and reports the per-task weights it used (so a notebook can plot them).

How a training loop uses a strategy (one call per step)::

    strategy = get_strategy("uw", num_tasks=2)          # or "ew", "static", "gradnorm", ...
    optimizer = torch.optim.AdamW([
        {"params": model.parameters()},
        {"params": strategy.parameters(), "weight_decay": 0.0},  # learned weights (UW, GradNorm), if any
    ], lr=1e-3)
    shared = [p for p in model.encoder.parameters() if p.requires_grad]
    for step, batch in enumerate(train_loader):
        losses = torch.stack([loss_rating, loss_like])   # (num_tasks,), each a scalar with a graph
        optimizer.zero_grad()
        result = strategy.combine(losses, shared, step)  # -> CombineResult
        result.backward()                                # or result.backward(accelerator.backward)
        optimizer.step()
        history.append(result.weights.tolist())          # (num_tasks,) weights used this step

``result.backward()`` is the only thing to call: for loss-based strategies it is
``result.loss.backward()``; gradient-based ones (PCGrad) also correct the ``.grad`` of the shared
parameters. ``shared_params`` are the parameters every task's loss depends on (the encoder or
trunk; GradNorm conventionally uses only the last shared layer). Strategies that do not need
them accept ``None``. Nothing is injected into a strategy from outside: all it needs is an
argument of :meth:`WeightingStrategy.combine` or of its constructor.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn


@dataclass
class CombineResult:
    """What :meth:`WeightingStrategy.combine` returns for one step.

    Attributes:
        loss: scalar tensor to back-propagate (always set; for PCGrad it is the plain sum that
            gives the task-specific parameters their gradients).
        weights: ``(num_tasks,)`` detached per-task weights used this step.
        shared_params: parameters whose gradients ``grads`` replaces (PCGrad), else empty.
        grads: combined gradients for ``shared_params`` (same shapes), or ``None``.
        raw_grads: the gradients that ``loss.backward()`` puts on ``shared_params`` (their
            plain sum over tasks), so :meth:`backward` can swap them for ``grads``.
    """

    loss: Tensor
    weights: Tensor
    shared_params: list[Tensor] = field(default_factory=list)
    grads: list[Tensor] | None = None
    raw_grads: list[Tensor] | None = None

    def backward(self, backward_fn: Callable[[Tensor], None] | None = None) -> None:
        """Back-propagate ``loss``; then, if ``grads`` is set, put them on the shared parameters.

        Gradients accumulate as usual (``p.grad += ...``), so gradient accumulation over
        micro-batches works: the shared parameters receive ``grads`` instead of ``raw_grads``.

        Args:
            backward_fn: what back-propagates a loss, e.g. ``accelerator.backward`` with Hugging
                Face Accelerate (default ``loss.backward()``). PCGrad's and GradNorm's per-task
                gradients are not loss-scaled, so use them with fp32 or bf16, not fp16 scaling.
        """
        if backward_fn is None:
            self.loss.backward()
        else:
            backward_fn(self.loss)
        if self.grads is None:
            return
        if self.raw_grads is None:
            raise TypeError("CombineResult.grads is set but raw_grads is None; set both or neither")
        with torch.no_grad():
            for p, g, raw in zip(self.shared_params, self.grads, self.raw_grads):
                if p.grad is None:  # no task touched p through ``loss``
                    p.grad = (g - raw).detach().clone()
                else:
                    p.grad.add_(g - raw)


def check_losses(losses: Tensor, num_tasks: int) -> Tensor:
    """Return ``losses`` if it is a 1-D tensor of ``num_tasks`` values, else raise ValueError."""
    if not isinstance(losses, Tensor):
        raise ValueError(
            f"losses must be a torch.Tensor of shape ({num_tasks},); got {type(losses).__name__}"
        )
    if losses.dim() != 1 or losses.numel() != num_tasks:
        raise ValueError(
            f"losses must be 1-D with one value per task, shape ({num_tasks},); got shape "
            f"{tuple(losses.shape)} (stack the task losses with torch.stack([...]))"
        )
    return losses


def check_shared_params(shared_params: Sequence[Tensor] | None, strategy: str) -> list[Tensor]:
    """Return ``shared_params`` as a non-empty list, else raise ValueError naming ``strategy``."""
    params = [p for p in (shared_params or []) if p.requires_grad]
    if not params:
        raise ValueError(
            f"{strategy} needs shared_params: the parameters every task depends on "
            "(e.g. list(model.encoder.parameters())), with requires_grad=True"
        )
    return params


def task_gradients(losses: Tensor, shared_params: Sequence[Tensor]) -> list[list[Tensor]]:
    """Per-task gradients of ``losses`` with respect to ``shared_params`` (graph kept).

    Args:
        losses: ``(num_tasks,)`` losses.
        shared_params: parameters of the shared part.

    Returns:
        ``grads[i][j]``: gradient of task ``i`` for parameter ``j`` (zeros where unused).
    """
    return [
        [
            g if g is not None else torch.zeros_like(p)
            for g, p in zip(
                torch.autograd.grad(loss, shared_params, retain_graph=True, allow_unused=True),
                shared_params,
            )
        ]
        for loss in losses
    ]


class WeightingStrategy(nn.Module, ABC):
    """Abstract base class: combine per-task losses into one update.

    Subclasses set ``name`` and implement :meth:`combine`. Learnable weights (UW, GradNorm) are
    ``nn.Parameter`` s of the strategy, so ``strategy.parameters()`` goes into the optimizer.

    Args:
        num_tasks: number of tasks ``k`` (>= 1).
    """

    name: str = "base"

    def __init__(self, num_tasks: int) -> None:
        super().__init__()
        if isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or num_tasks < 1:
            raise ValueError(f"num_tasks={num_tasks!r} is not valid; it must be a positive integer (e.g. 2)")
        self.num_tasks = num_tasks

    @abstractmethod
    def combine(
        self, losses: Tensor, shared_params: Sequence[Tensor] | None = None, step: int = 0
    ) -> CombineResult:
        """Combine one step's task losses.

        Args:
            losses: ``(num_tasks,)`` task losses of this step (each with its autograd graph).
            shared_params: parameters shared by all tasks (needed by GradNorm and PCGrad).
            step: global training step, counted from 0 (used by DWA's loss windows).

        Returns:
            A :class:`CombineResult`; call its ``backward()``.
        """

    def extra_repr(self) -> str:
        return f"num_tasks={self.num_tasks}"
