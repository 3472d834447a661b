"""The two-task toy problem: losses, Pareto front, trajectories under each strategy, plots."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from mtrec_utils.analyses.joint_loss.toy import (
    TOY_STRATEGIES,
    ToyProblem,
    combined_gradient,
    plot_front,
    plot_landscape,
    run_all,
    run_strategy,
)


@pytest.fixture(scope="module")
def problem():
    return ToyProblem()


@pytest.fixture(scope="module")
def trajectories(problem):
    options = {"static": {"weights": [0.8, 0.2]}, "gradnorm": {"strategy_lr": 0.002}, "dwa": {"period": 10}}
    return run_all(problem, steps=400, lr=0.02, generator=torch.Generator().manual_seed(0), options=options)


def test_losses_at_the_centres_are_the_floors(problem):
    losses = problem.losses(problem.centers)  # (2 points, 2 tasks)
    assert losses[0, 0] == pytest.approx(float(problem.floors[0]))
    assert losses[1, 1] == pytest.approx(float(problem.floors[1]))
    assert losses[0, 1] > problem.floors[1] and losses[1, 0] > problem.floors[0]  # the tasks conflict


def test_pareto_points_are_stationary_for_their_weight(problem):
    assert torch.allclose(problem.pareto_point(1.0), problem.centers[0])
    assert torch.allclose(problem.pareto_point(0.0), problem.centers[1])
    for alpha in (0.1, 0.5, 0.9):
        g1, g2, g = combined_gradient(problem, problem.pareto_point(alpha), alpha)
        assert g.norm() < 1e-10 and g1.norm() > 0.1  # the weighted gradient vanishes, not each task's
        assert torch.allclose(g, alpha * g1 + (1 - alpha) * g2)
    with pytest.raises(ValueError, match="alpha=1.5"):
        problem.pareto_point(1.5)


def test_pareto_front_trades_one_task_for_the_other(problem):
    alphas, thetas, losses = problem.pareto_front(21)
    assert alphas.shape == (21,) and thetas.shape == (21, 2) and losses.shape == (21, 2)
    assert (losses[1:, 0] <= losses[:-1, 0] + 1e-12).all()  # more weight on task 1: lower L_1
    assert (losses[1:, 1] >= losses[:-1, 1] - 1e-12).all()  # ... and higher L_2


def distance_to_front(problem, point):
    return float((problem.pareto_front(2001)[1] - torch.as_tensor(point)).norm(dim=1).min())


def test_every_strategy_ends_near_the_front_and_improves(problem, trajectories):
    assert set(trajectories) == set(TOY_STRATEGIES)
    for name, traj in trajectories.items():
        assert (
            traj.thetas.shape == (401, 2) and traj.losses.shape == (401, 2) and traj.weights.shape == (400, 2)
        )
        assert np.isfinite(traj.losses).all(), name
        assert traj.losses[-1].sum() < traj.losses[0].sum(), name
        assert distance_to_front(problem, traj.thetas[-1]) < 0.05, name


def test_fixed_weights_converge_to_their_pareto_point(problem, trajectories):
    assert np.allclose(trajectories["ew"].thetas[-1], problem.pareto_point(0.5).numpy(), atol=1e-3)
    assert np.allclose(trajectories["static"].thetas[-1], problem.pareto_point(0.8).numpy(), atol=1e-3)
    assert np.allclose(trajectories["static"].weights, [0.8, 0.2])


def test_uw_weights_approach_inverse_losses(trajectories):
    traj = trajectories["uw"]
    products = traj.weights * traj.losses[:-1]  # w_i L_i -> 1 at the optimum of s_i
    assert np.allclose(products[-1], 1.0, rtol=0.15)
    assert np.abs(products[-1] - 1).max() < np.abs(products[100] - 1).max()


def test_gradnorm_weights_sum_to_the_number_of_tasks(trajectories):
    assert np.allclose(trajectories["gradnorm"].weights.sum(axis=1), 2.0)


def test_run_strategy_rejects_unknown_names(problem):
    with pytest.raises(ValueError, match="unknown"):
        run_strategy(problem, "adam", steps=2)


def test_plots_have_labelled_axes(problem, trajectories):
    ax = plot_landscape(problem, trajectories)
    assert "theta" in ax.get_xlabel() and "unitless" in ax.get_ylabel()
    ax = plot_front(problem, trajectories)
    assert "task 1 loss" in ax.get_xlabel() and "task 2 loss" in ax.get_ylabel()
    assert len(ax.get_legend().get_texts()) == 1 + len(trajectories)


def test_strategy_lr_slows_the_weights_only(problem):
    fast = run_strategy(problem, "gradnorm", steps=50, lr=0.02)
    slow = run_strategy(problem, "gradnorm", steps=50, lr=0.02, strategy_lr=0.002)
    assert np.allclose(fast.thetas[1], slow.thetas[1])  # first theta step: same lr, same initial weights
    jitter = [np.abs(np.diff(t.weights[:, 1])).max() for t in (fast, slow)]
    assert jitter[1] < jitter[0] / 3
