"""The shared model's analytic gradient, the optimizer experiments and the objectives' weights."""

from __future__ import annotations

import pytest
import torch

from mtrec_utils.analyses.joint_loss.gradients import (
    OPTIMIZER_RUNS,
    analytic_grad,
    autograd_grad,
    compare_optimizers,
    effective_task_weights,
    finite_difference_grad,
    gradcheck,
    init_params,
    joint_loss,
    make_two_task_data,
    per_sample_losses,
    relative_error,
    run_optimizer,
    task_gradient_cosine,
    task_losses,
    train_shared_model,
)
from mtrec_utils.weighting import get_strategy


@pytest.fixture
def problem():
    g = torch.Generator().manual_seed(0)
    data = make_two_task_data(30, 12, 4, g, conflict=0.8)
    return init_params(4, 3, g), data


def test_data_shapes_and_conflict():
    g = torch.Generator().manual_seed(1)
    data = make_two_task_data(50, 20, 5, g, conflict=1.0)
    assert data.x1.shape == (50, 5) and data.r.shape == (50,)
    assert data.x2.shape == (20, 5) and set(data.y.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="conflict"):
        make_two_task_data(5, 5, 3, g, conflict=2.0)
    with pytest.raises(ValueError, match="n1=0"):
        make_two_task_data(0, 5, 3, g)


def test_analytic_gradient_matches_autograd_and_finite_differences(problem):
    params, data = problem
    errors = gradcheck(params, data, weights=(0.3, 0.7))
    assert errors["autograd"] < 1e-12
    assert errors["finite_diff"] < 1e-6
    assert errors["max"] == max(errors["autograd"], errors["finite_diff"])


def test_analytic_gradient_is_linear_in_the_task_weights(problem):
    params, data = problem
    g1 = analytic_grad(params, data, (1.0, 0.0))
    g2 = analytic_grad(params, data, (0.0, 1.0))
    both = analytic_grad(params, data, (0.25, 2.0))
    for name in params:
        assert torch.allclose(both[name], 0.25 * g1[name] + 2.0 * g2[name])
    assert g1["w_c"].abs().max() == 0 and g2["w_r"].abs().max() == 0  # each head sees one task


def test_finite_differences_on_a_known_function():
    params = {"a": torch.tensor([1.0, -2.0], dtype=torch.float64)}
    grad = finite_difference_grad(lambda p: (p["a"] ** 3).sum(), params)["a"]
    assert grad.tolist() == pytest.approx([3.0, 12.0], rel=1e-8)
    assert autograd_grad(lambda p: (p["a"] ** 3).sum(), params)["a"].tolist() == pytest.approx([3.0, 12.0])


def test_relative_error():
    assert relative_error(torch.zeros(3), torch.zeros(3)) == 0.0
    assert relative_error(torch.tensor([3.0, 4.0]), torch.tensor([0.0, 0.0])) == 1.0


def test_joint_loss_is_the_weighted_sum(problem):
    params, data = problem
    losses = task_losses(params, data)
    assert float(joint_loss(params, data, (0.2, 3.0))) == pytest.approx(
        float(0.2 * losses[0] + 3.0 * losses[1])
    )


def test_pooled_per_sample_mean_equals_per_sample_weights(problem):
    params, data = problem
    pooled = torch.cat(per_sample_losses(params, data)).mean()
    weights = effective_task_weights([len(data.r), len(data.y)], "per_sample")
    assert float(pooled) == pytest.approx(float((weights * task_losses(params, data)).sum()), rel=1e-12)


def test_sgd_with_decay_is_l2_but_adam_is_not(problem):
    params, data = problem
    out = compare_optimizers(params, lambda p: joint_loss(p, data), lr=0.1, weight_decay=0.1, steps=10)
    assert out["sgd_l2_vs_article"] < 1e-12
    assert out["sgd_l2_vs_torch_sgd"] < 1e-12
    assert out["adam_l2_vs_torch_adam"] < 1e-12
    assert out["adamw_vs_adam_article"] < 1e-12
    assert out["adam_l2_vs_adamw"] > 1e-3


def test_run_optimizer_checks_kind_and_leaves_params_alone(problem):
    params, data = problem
    before = {k: v.clone() for k, v in params.items()}
    final = run_optimizer("torch_adamw", params, lambda p: joint_loss(p, data), 0.1, 0.0, 3)
    assert final.shape == (sum(v.numel() for v in params.values()),)
    assert all(torch.equal(before[k], params[k]) for k in params)
    with pytest.raises(ValueError, match="kind='rmsprop'"):
        run_optimizer("rmsprop", params, lambda p: joint_loss(p, data), 0.1, 0.0, 3)
    assert len(OPTIMIZER_RUNS) == 7


def test_effective_task_weights_by_hand():
    assert effective_task_weights([3, 1], "task_mean").tolist() == [0.5, 0.5]
    assert effective_task_weights([3, 1], "per_sample").tolist() == [0.75, 0.25]
    assert effective_task_weights([3, 1], "article_4_2").tolist() == [0.75, 1.0]
    assert effective_task_weights([3, 1], "article_4_2", normalize=True).tolist() == pytest.approx(
        [3 / 7, 4 / 7]
    )
    assert effective_task_weights([2, 2, 4], "per_sample").tolist() == [0.25, 0.25, 0.5]


def test_effective_task_weights_errors():
    with pytest.raises(ValueError, match="defined for 2 tasks"):
        effective_task_weights([1, 2, 3], "article_4_2")
    with pytest.raises(ValueError, match="scheme='sum'"):
        effective_task_weights([1, 2], "sum")
    with pytest.raises(ValueError, match="n_samples=0"):
        effective_task_weights([0, 2], "per_sample")


def test_task_gradient_cosine_by_hand():
    theta = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    directions = torch.tensor([[1.0, 0.0], [-1.0, 1.0]], dtype=torch.float64)
    losses = torch.stack([theta @ d for d in directions])
    cos = task_gradient_cosine(losses, [theta])
    assert cos.flatten().tolist() == pytest.approx([1.0, -(2**-0.5), -(2**-0.5), 1.0])


def test_train_shared_model_history(problem):
    params, data = problem
    history = train_shared_model(params, data, get_strategy("ew", num_tasks=2), steps=30, lr=0.1)
    assert list(history.columns) == [
        "step",
        "loss_task1",
        "loss_task2",
        "weight_task1",
        "weight_task2",
        "cosine",
    ]
    assert len(history) == 30 and history["cosine"].between(-1, 1).all()
    first, last = history.iloc[0], history.iloc[-1]
    assert last.loss_task1 + last.loss_task2 < first.loss_task1 + first.loss_task2
