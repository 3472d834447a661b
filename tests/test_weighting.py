"""Weighting strategies against hand-computed values on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch

from mtrec_utils.weighting import (
    STRATEGIES,
    DynamicWeightAverage,
    GradNorm,
    PCGrad,
    StaticWeighting,
    UncertaintyWeighting,
    dwa_weights,
    get_strategy,
    pcgrad,
    project_conflicting,
)


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def linear_losses(theta: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
    """Two losses whose gradients on ``theta`` are exactly ``g1`` and ``g2``."""
    return torch.stack([theta @ g1, theta @ g2])


# registry and input checks


def test_registry_lists_all_six_strategies():
    assert list(STRATEGIES) == ["ew", "static", "uw", "gradnorm", "dwa", "pcgrad"]
    for name, cls in STRATEGIES.items():
        assert cls.name == name
        kwargs = {"weights": [1.0, 1.0]} if name == "static" else {}
        assert isinstance(get_strategy(name, num_tasks=2, **kwargs), cls)


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="'ew', 'static', 'uw', 'gradnorm', 'dwa', 'pcgrad'"):
        get_strategy("magic", num_tasks=2)


def test_missing_num_tasks_and_bad_arguments_are_explained():
    with pytest.raises(ValueError, match="num_tasks"):
        get_strategy("ew")
    with pytest.raises(ValueError, match="bad arguments for strategy 'ew'"):
        get_strategy("ew", num_tasks=2, temperature=3)
    with pytest.raises(ValueError, match="num_tasks=0"):
        get_strategy("ew", num_tasks=0)


@pytest.mark.parametrize("losses", [t(1.0, 2.0).reshape(1, 2), t(1.0, 2.0, 3.0), torch.tensor(1.0)])
def test_losses_must_be_one_value_per_task(losses):
    with pytest.raises(ValueError, match=r"losses must be 1-D with one value per task, shape \(2,\)"):
        get_strategy("ew", num_tasks=2).combine(losses)


def test_losses_must_be_a_tensor():
    with pytest.raises(ValueError, match="torch.Tensor"):
        get_strategy("ew", num_tasks=2).combine([1.0, 2.0])


@pytest.mark.parametrize(
    "weights, match",
    [
        ([1.0], "has 1 values but num_tasks=2"),
        ([1.0, -0.5], "must be finite and >= 0"),
        ([1.0, float("nan")], "must be finite"),
        ([0.0, 0.0], "all zero"),
    ],
)
def test_static_weights_are_checked(weights, match):
    with pytest.raises(ValueError, match=match):
        StaticWeighting(2, weights)


@pytest.mark.parametrize("name", ["gradnorm", "pcgrad"])
def test_gradient_strategies_need_shared_params(name):
    with pytest.raises(ValueError, match="needs shared_params"):
        get_strategy(name, num_tasks=2).combine(t(1.0, 2.0).requires_grad_(), None, 0)


# loss-based strategies


def test_ew_sum_and_mean():
    losses = t(2.0, 4.0)
    summed = get_strategy("ew", num_tasks=2).combine(losses)
    mean = get_strategy("ew", num_tasks=2, reduction="mean").combine(losses)
    assert summed.weights.tolist() == [1.0, 1.0] and summed.loss.item() == 6.0
    assert mean.weights.tolist() == [0.5, 0.5] and mean.loss.item() == 3.0
    with pytest.raises(ValueError, match="reduction='max'"):
        get_strategy("ew", num_tasks=2, reduction="max")


def test_static_is_the_weighted_sum():
    result = StaticWeighting(3, [0.5, 0.0, 2.0]).combine(t(2.0, 7.0, 1.5))
    assert result.loss.item() == pytest.approx(0.5 * 2 + 2 * 1.5)
    assert result.weights.tolist() == [0.5, 0.0, 2.0]


def test_uw_weights_are_exp_minus_log_variance():
    uw = UncertaintyWeighting(2).double()
    with torch.no_grad():
        uw.log_vars.copy_(t(math.log(2.0), -math.log(3.0)))
    losses = t(4.0, 1.0)
    result = uw.combine(losses)
    assert result.weights.tolist() == pytest.approx([0.5, 3.0])
    assert result.loss.item() == pytest.approx(0.5 * 4 + math.log(2) + 3 * 1 - math.log(3))
    assert not result.weights.requires_grad


def test_uw_log_variance_is_learned_towards_log_loss():
    uw = UncertaintyWeighting(2).double()
    losses = t(4.0, 0.25)
    uw.combine(losses).backward()
    # d/ds (exp(-s) L + s) = 1 - exp(-s) L = 1 - L at s = 0
    assert uw.log_vars.grad.tolist() == pytest.approx([1 - 4.0, 1 - 0.25])
    with torch.no_grad():
        uw.log_vars.copy_(losses.log())
    uw.log_vars.grad = None
    uw.combine(losses).backward()
    assert uw.log_vars.grad.abs().max() < 1e-12  # optimum s_i = log L_i, weight 1 / L_i
    assert [p is uw.log_vars for p in uw.parameters()] == [True]


def test_dwa_formula_by_hand():
    w = dwa_weights(t(0.5, 1.0), t(1.0, 1.0), temperature=2.0)
    e1, e2 = math.exp(0.25), math.exp(0.5)
    assert w.tolist() == pytest.approx([2 * e1 / (e1 + e2), 2 * e2 / (e1 + e2)])
    assert float(w.sum()) == pytest.approx(2.0)


def test_dwa_equal_loss_ratios_give_equal_weights():
    dwa = DynamicWeightAverage(3, temperature=2.0, period=2)
    windows = [t(4.0, 2.0, 8.0), t(2.0, 1.0, 4.0), t(1.0, 0.5, 2.0)]  # every task halves
    weights = []
    for window, losses in enumerate(windows):
        for step in (2 * window, 2 * window + 1):
            weights.append(dwa.combine(losses, None, step).weights)
    assert all(w.tolist() == [1.0, 1.0, 1.0] for w in weights[:4])  # first two windows
    assert weights[4].tolist() == pytest.approx([1.0, 1.0, 1.0])


def test_dwa_gives_the_slower_task_more_weight_from_window_averages():
    dwa = DynamicWeightAverage(2, temperature=1.0, period=2)
    # window 0 averages (2, 2); window 1 averages (1, 2): task 1 fell, task 2 did not
    for step, losses in enumerate([t(3.0, 1.0), t(1.0, 3.0), t(1.0, 2.0), t(1.0, 2.0)]):
        dwa.combine(losses, None, step)
    w = dwa.combine(t(1.0, 1.0), None, 4).weights
    assert w.tolist() == pytest.approx(dwa_weights(t(1.0, 2.0), t(2.0, 2.0), 1.0).tolist())
    assert w[1] > w[0]
    with pytest.raises(ValueError, match="step=3 is smaller than the previous step 4"):
        dwa.combine(t(1.0, 1.0), None, 3)


# gradient-based strategies


def test_project_conflicting_removes_exactly_the_conflicting_component():
    g1, g2 = t(1.0, 1.0), t(-1.0, 0.0)
    projected = project_conflicting(g1, g2)
    assert projected.tolist() == pytest.approx([0.0, 1.0])  # (1,1) - (-1/1)(-1,0)
    assert float(projected @ g2) == pytest.approx(0.0)
    assert torch.equal(project_conflicting(g1, t(1.0, 0.0)), g1)  # no conflict: unchanged


def test_pcgrad_combined_gradient_by_hand():
    g = torch.stack([t(1.0, 1.0), t(-1.0, 0.0)])
    # g1' = (0, 1); g2' = (-1, 0) - (-1/2)(1, 1) = (-0.5, 0.5); sum = (-0.5, 1.5)
    assert pcgrad(g, torch.Generator().manual_seed(0)).tolist() == pytest.approx([-0.5, 1.5])


def test_pcgrad_strategy_sets_projected_shared_grads_and_plain_head_grads():
    theta = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    head = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    losses = linear_losses(theta, t(1.0, 1.0), t(-1.0, 0.0)) + torch.stack([head**2, head * 0])
    theta.grad = t(10.0, 10.0)  # gradient accumulation must add, not overwrite
    result = PCGrad(2, torch.Generator().manual_seed(0)).combine(losses, [theta], 0)
    result.backward()
    assert result.weights.tolist() == [1.0, 1.0]
    assert theta.grad.tolist() == pytest.approx([10 - 0.5, 10 + 1.5])
    assert float(head.grad) == pytest.approx(4.0)


def test_pcgrad_order_follows_the_generator():
    g = torch.randn(3, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    runs = [pcgrad(g, torch.Generator().manual_seed(s)) for s in (7, 7)]
    assert torch.equal(runs[0], runs[1])


def test_gradnorm_hand_case_moves_weights_the_right_way():
    theta = t(2.0, 1.0).requires_grad_()
    gn = GradNorm(2, alpha=1.5).double()
    losses = torch.stack([theta[0] ** 2, theta[1] ** 2])  # L = (4, 1); grad norms n = (4, 2)
    result = gn.combine(losses, [theta], 0)
    # G = (4, 2), target = mean(G) * 1 = 3, L_grad = |4-3| + |2-3| = 2
    assert result.loss.item() == pytest.approx(4 + 1 + 2)
    result.backward()
    assert gn.weights.grad.tolist() == pytest.approx([4.0, -2.0])  # sign(G_i - target) * n_i
    assert theta.grad.tolist() == pytest.approx([4.0, 2.0])  # from w_i L_i only, w held constant
    torch.optim.SGD(gn.parameters(), lr=0.1).step()
    assert gn.weights[0] < 1 < gn.weights[1]  # the task with the larger gradient loses weight


def test_gradnorm_favours_the_slower_task_and_renormalises():
    theta = t(1.0, 1.0).requires_grad_()
    gn = GradNorm(2, alpha=1.0).double()
    gn.combine(torch.stack([theta[0] ** 2, theta[1] ** 2]), [theta], 0)  # L(0) = (1, 1)
    with torch.no_grad():
        gn.weights.copy_(t(3.0, 1.0))
    gn.weights.grad = None
    # now L = (0.25, 1): task 1 trained fast (r = 0.4), task 2 slowly (r = 1.6)
    theta2 = t(0.5, 1.0).requires_grad_()
    result = gn.combine(torch.stack([theta2[0] ** 2, theta2[1] ** 2]), [theta2], 1)
    assert result.weights.tolist() == pytest.approx([1.5, 0.5])  # renormalised to sum to k = 2
    result.backward()
    # n = (1, 2), G = (1.5, 1.0), mean 1.25; targets 1.25 * (0.4, 1.6) = (0.5, 2.0)
    assert gn.weights.grad.tolist() == pytest.approx([1.0, -2.0])


def test_every_strategy_returns_detached_weights_and_a_backward():
    for name in STRATEGIES:
        theta = t(1.0, -2.0).requires_grad_()
        kwargs = {"weights": [0.3, 0.7]} if name == "static" else {}
        strategy = get_strategy(name, num_tasks=2, **kwargs).double()
        result = strategy.combine(torch.stack([(theta**2).sum(), (theta - 1).pow(2).sum()]), [theta], 0)
        assert result.weights.shape == (2,) and not result.weights.requires_grad
        result.backward()
        assert theta.grad is not None and torch.isfinite(theta.grad).all()


def test_each_strategy_cites_its_paper():
    papers = {"uw": "Kendall", "gradnorm": "Chen", "dwa": "Liu", "pcgrad": "Yu"}
    for name, author in papers.items():
        doc = STRATEGIES[name].__doc__
        assert author in doc and ("2018" in doc or "2019" in doc or "2020" in doc)


def test_backward_fn_replaces_loss_backward():
    theta = t(1.0, 2.0).requires_grad_()
    seen = []

    def backward_fn(loss):  # what accelerator.backward would do, and a record that it ran
        seen.append(loss.item())
        loss.backward()

    get_strategy("ew", num_tasks=2).combine(torch.stack([theta[0], theta[1] ** 2])).backward(backward_fn)
    assert seen == [1.0 + 4.0] and theta.grad.tolist() == [1.0, 4.0]
