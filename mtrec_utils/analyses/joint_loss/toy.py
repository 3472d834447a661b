"""A two-task toy problem with conflicting objectives on a 2-D parameter (notebook 01).

Each task is a quadratic bowl ``L_i(theta) = s_i / 2 (theta - c_i)^T A_i (theta - c_i) + b_i`` with its
own centre ``c_i``, shape ``A_i``, scale ``s_i`` and irreducible loss ``b_i > 0`` (the noise floor every
real task has), so no single ``theta`` minimises both: the
*Pareto set* (帕累托前沿) is the curve of minimisers of ``a L_1 + (1 - a) L_2`` for ``a`` in [0, 1],
which for quadratics has the closed form
``theta*(a) = (a s_1 A_1 + (1-a) s_2 A_2)^{-1} (a s_1 A_1 c_1 + (1-a) s_2 A_2 c_2)``.
Task 2 has a 10 times larger scale, so equal weights favour it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from mtrec_utils.core.config import check_positive
from mtrec_utils.weighting import get_strategy


@dataclass
class ToyProblem:
    """Two quadratic tasks on ``theta`` in R^2 (float64 tensors).

    Attributes:
        centers: ``(2, 2)`` minimiser of each task (row ``i`` = task ``i``).
        shapes: ``(2, 2, 2)`` symmetric positive-definite ``A_i``.
        scales: ``(2,)`` loss scales ``s_i``.
        floors: ``(2,)`` irreducible losses ``b_i`` (the minimum of each task).
        start: ``(2,)`` where trajectories start.
    """

    centers: Tensor = field(
        default_factory=lambda: torch.tensor([[-1.0, -0.5], [1.0, 0.5]], dtype=torch.float64)
    )
    shapes: Tensor = field(
        default_factory=lambda: torch.tensor(
            [[[1.0, 0.6], [0.6, 1.0]], [[1.0, -0.6], [-0.6, 1.0]]], dtype=torch.float64
        )
    )
    scales: Tensor = field(default_factory=lambda: torch.tensor([1.0, 10.0], dtype=torch.float64))
    floors: Tensor = field(default_factory=lambda: torch.tensor([0.1, 1.0], dtype=torch.float64))
    start: Tensor = field(default_factory=lambda: torch.tensor([0.0, -1.6], dtype=torch.float64))

    def losses(self, theta: Tensor) -> Tensor:
        """Task losses at ``theta``.

        Args:
            theta: ``(2,)`` or ``(..., 2)`` points.

        Returns:
            ``(2,)`` or ``(..., 2)``: ``[L_1, L_2]`` at each point.
        """
        diff = theta.unsqueeze(-2) - self.centers  # (..., 2 tasks, 2 dims)
        quad = torch.einsum("...ti,tij,...tj->...t", diff, self.shapes, diff)
        return 0.5 * self.scales * quad + self.floors

    def pareto_point(self, alpha: float) -> Tensor:
        """``(2,)`` minimiser of ``alpha L_1 + (1 - alpha) L_2`` (``alpha`` in [0, 1])."""
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha={alpha!r} is not valid; it must be in [0, 1] (the weight of task 1)")
        mats = torch.stack(
            [alpha * self.scales[0] * self.shapes[0], (1 - alpha) * self.scales[1] * self.shapes[1]]
        )
        rhs = (mats @ self.centers.unsqueeze(-1)).sum(0)  # (2, 1)
        return torch.linalg.solve(mats.sum(0), rhs).squeeze(-1)

    def pareto_front(self, num: int = 101) -> tuple[Tensor, Tensor, Tensor]:
        """The Pareto set and front, sampled at ``num`` task-1 weights.

        Returns:
            ``alphas (num,)``, ``thetas (num, 2)`` (parameter space), ``losses (num, 2)`` (loss space).
        """
        alphas = torch.linspace(0, 1, check_positive("num", num, integer=True), dtype=torch.float64)
        thetas = torch.stack([self.pareto_point(float(a)) for a in alphas])
        return alphas, thetas, self.losses(thetas)


@dataclass
class Trajectory:
    """One optimisation run on the toy: ``thetas (T+1, 2)``, ``losses (T+1, 2)``, ``weights (T, 2)``."""

    strategy: str
    thetas: np.ndarray
    losses: np.ndarray
    weights: np.ndarray


TOY_STRATEGIES = ("ew", "static", "uw", "gradnorm", "dwa", "pcgrad")


def run_strategy(
    problem: ToyProblem,
    name: str,
    steps: int = 300,
    lr: float = 0.02,
    generator: torch.Generator | None = None,
    strategy_lr: float | None = None,
    **kwargs,
) -> Trajectory:
    """Gradient descent on the toy with a weighting strategy; ``theta`` is the shared parameter.

    Args:
        problem: the toy problem.
        name: a strategy name (see :data:`mtrec_utils.weighting.STRATEGIES`).
        steps: gradient steps.
        lr: learning rate of ``theta``.
        generator: random source (PCGrad's task order).
        strategy_lr: learning rate of the strategy's own parameters (UW, GradNorm); default ``lr``.
        **kwargs: strategy options (``weights=`` for ``static``; ``alpha=`` for ``gradnorm``...).

    Returns:
        The :class:`Trajectory`.
    """
    check_positive("steps", steps, integer=True)
    if name == "pcgrad":
        kwargs.setdefault("generator", generator)
    strategy = get_strategy(name, num_tasks=2, **kwargs).to(torch.float64)
    theta = problem.start.clone().requires_grad_(True)
    groups = [{"params": [theta]}, {"params": list(strategy.parameters()), "lr": strategy_lr or lr}]
    opt = torch.optim.SGD(groups, lr=lr)
    thetas, losses, weights = [theta.detach().clone()], [], []
    for step in range(steps):
        task_losses = problem.losses(theta)
        losses.append(task_losses.detach())
        opt.zero_grad()
        result = strategy.combine(task_losses, [theta], step)
        result.backward()
        opt.step()
        thetas.append(theta.detach().clone())
        weights.append(result.weights)
    losses.append(problem.losses(theta.detach()))
    return Trajectory(
        name, torch.stack(thetas).numpy(), torch.stack(losses).numpy(), torch.stack(weights).numpy()
    )


def run_all(
    problem: ToyProblem,
    names: Sequence[str] = TOY_STRATEGIES,
    steps: int = 300,
    lr: float = 0.02,
    generator: torch.Generator | None = None,
    options: dict[str, dict] | None = None,
) -> dict[str, Trajectory]:
    """:func:`run_strategy` for each name; ``options[name]``: its keyword arguments (``strategy_lr``, ``weights``...)."""
    options = options or {}
    return {n: run_strategy(problem, n, steps, lr, generator, **options.get(n, {})) for n in names}


def combined_gradient(problem: ToyProblem, theta: Tensor, alpha: float) -> tuple[Tensor, Tensor, Tensor]:
    """Task gradients and their weighted sum at ``theta``.

    Returns:
        ``g1 (2,)``, ``g2 (2,)`` and ``alpha g1 + (1 - alpha) g2 (2,)``.
    """
    point = theta.detach().clone().requires_grad_(True)
    losses = problem.losses(point)
    g1, g2 = (torch.autograd.grad(loss, point, retain_graph=True)[0] for loss in losses)
    return g1, g2, alpha * g1 + (1 - alpha) * g2


def plot_landscape(
    problem: ToyProblem, trajectories: dict[str, Trajectory] | None = None, ax=None, lim: float = 2.0
):
    """Contours of both task losses, the Pareto set (black) and the trajectories, in parameter space.

    Returns:
        The matplotlib ``Axes``.
    """
    import matplotlib.pyplot as plt

    ax = ax if ax is not None else plt.subplots(figsize=(5.5, 5))[1]
    grid = torch.linspace(-lim, lim, 161, dtype=torch.float64)
    gx, gy = torch.meshgrid(grid, grid, indexing="xy")
    values = problem.losses(torch.stack([gx, gy], -1)).numpy()  # (161, 161, 2)
    for task, color in ((0, "tab:blue"), (1, "tab:orange")):
        levels = np.quantile(values[..., task], [0.02, 0.08, 0.2, 0.4, 0.7])
        ax.contour(gx.numpy(), gy.numpy(), values[..., task], levels=levels, colors=color, alpha=0.35)
        ax.plot(
            *problem.centers[task].numpy(), marker="*", ms=14, color=color, label=f"task {task + 1} minimum"
        )
    ax.plot(*problem.pareto_front()[1].numpy().T, color="black", lw=3, alpha=0.7, label="Pareto set")
    for i, (name, traj) in enumerate((trajectories or {}).items()):
        ax.plot(traj.thetas[:, 0], traj.thetas[:, 1], lw=1.5, label=name)
        ax.plot(
            *traj.thetas[-1], "o", ms=max(11 - 1.5 * i, 3), color=ax.lines[-1].get_color()
        )  # later on top
    ax.set(
        xlabel=r"$\theta_1$ (parameter, unitless)", ylabel=r"$\theta_2$ (parameter, unitless)", aspect="equal"
    )
    ax.legend(fontsize=8, loc="upper left")
    return ax


def plot_front(problem: ToyProblem, trajectories: dict[str, Trajectory] | None = None, ax=None):
    """The Pareto front in loss space and each trajectory's path to it.

    Returns:
        The matplotlib ``Axes``.
    """
    import matplotlib.pyplot as plt

    ax = ax if ax is not None else plt.subplots(figsize=(5.5, 5))[1]
    front = problem.pareto_front()[2].numpy()
    ax.plot(front[:, 0], front[:, 1], color="black", lw=3, alpha=0.7, label="Pareto front")
    for i, (name, traj) in enumerate((trajectories or {}).items()):
        ax.plot(traj.losses[:, 0], traj.losses[:, 1], lw=1.2, alpha=0.8, label=name)
        ax.plot(*traj.losses[-1], "o", ms=max(11 - 1.5 * i, 3), color=ax.lines[-1].get_color())
    ax.set(xlabel="task 1 loss $L_1$ (unitless)", ylabel="task 2 loss $L_2$ (unitless)")
    ax.legend(fontsize=8)
    return ax
