"""The joint loss and its gradient on a small shared model, verified numerically (notebook 01).

Model: a shared trunk ``h = tanh(x W1^T + b1)`` feeds a regression head ``y_hat = h w_r + b_r``
(MSE on task 1's data) and a classification head ``z = h w_c + b_c`` (BCE with logits on task 2's
data). The joint loss is ``w_1 L_1 + w_2 L_2`` with ``L_i`` the mean over task ``i``'s samples.
Parameters are a dict of tensors (float64 for the numerical checks): ``W1 (H, D)``, ``b1 (H,)``, ``w_r (H,)``, ``b_r ()``,
``w_c (H,)``, ``b_c ()``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from mtrec_utils.core.config import check_choice, check_positive
from mtrec_utils.weighting.base import task_gradients

Params = dict[str, Tensor]
PARAM_NAMES = ("W1", "b1", "w_r", "b_r", "w_c", "b_c")


@dataclass
class TwoTaskData:
    """Two tasks with their own samples: ``x1 (N1, D)``, ratings ``r (N1,)``; ``x2 (N2, D)``, labels ``y (N2,)``."""

    x1: Tensor
    r: Tensor
    x2: Tensor
    y: Tensor

    def to(self, dtype: torch.dtype) -> TwoTaskData:
        """A copy with every tensor cast to ``dtype`` (float32 trains about twice as fast on a CPU)."""
        return TwoTaskData(self.x1.to(dtype), self.r.to(dtype), self.x2.to(dtype), self.y.to(dtype))


def make_two_task_data(
    n1: int, n2: int, dim: int, generator: torch.Generator, conflict: float = 0.5, dtype=torch.float64
) -> TwoTaskData:
    """Synthetic two-task data whose targets pull the shared trunk in different directions.

    Task 1 regresses ``r = x u + noise``; task 2 classifies ``y ~ Bernoulli(sigmoid(3 x v))`` with
    ``cos(u, v) = -conflict``.

    Args:
        n1, n2: samples of task 1 and task 2.
        dim: input dimension ``D`` (>= 2).
        generator: random source.
        conflict: in [-1, 1]; 1 makes the two directions opposite.
        dtype: float dtype of the tensors.

    Returns:
        A :class:`TwoTaskData`.
    """
    for name, value in (("n1", n1), ("n2", n2), ("dim", dim)):
        check_positive(name, value, integer=True)
    if dim < 2 or not -1 <= conflict <= 1:
        raise ValueError(f"need dim >= 2 and -1 <= conflict <= 1; got dim={dim}, conflict={conflict}")
    basis = torch.linalg.qr(torch.randn(dim, 2, generator=generator, dtype=dtype))[0]  # (D, 2) orthonormal
    u = basis[:, 0]
    v = -conflict * u + math.sqrt(1 - conflict**2) * basis[:, 1]
    x1 = torch.randn(n1, dim, generator=generator, dtype=dtype)
    x2 = torch.randn(n2, dim, generator=generator, dtype=dtype)
    r = x1 @ u + 0.1 * torch.randn(n1, generator=generator, dtype=dtype)
    y = torch.bernoulli(torch.sigmoid(3 * (x2 @ v)), generator=generator)
    return TwoTaskData(x1, r, x2, y)


def init_params(dim: int, hidden: int, generator: torch.Generator, dtype=torch.float64) -> Params:
    """Random parameters of the shared model (scaled normal, zero biases)."""
    g = dict(generator=generator, dtype=dtype)
    return {
        "W1": torch.randn(hidden, dim, **g) / math.sqrt(dim),
        "b1": torch.zeros(hidden, dtype=dtype),
        "w_r": torch.randn(hidden, **g) / math.sqrt(hidden),
        "b_r": torch.zeros((), dtype=dtype),
        "w_c": torch.randn(hidden, **g) / math.sqrt(hidden),
        "b_c": torch.zeros((), dtype=dtype),
    }


def per_sample_losses(params: Params, data: TwoTaskData) -> tuple[Tensor, Tensor]:
    """Per-sample losses: squared errors ``(N1,)`` of task 1 and binary cross-entropies ``(N2,)`` of task 2."""
    h1 = torch.tanh(data.x1 @ params["W1"].T + params["b1"])  # (N1, H)
    h2 = torch.tanh(data.x2 @ params["W1"].T + params["b1"])  # (N2, H)
    sq_err = (h1 @ params["w_r"] + params["b_r"] - data.r) ** 2
    bce = F.binary_cross_entropy_with_logits(h2 @ params["w_c"] + params["b_c"], data.y, reduction="none")
    return sq_err, bce


def task_losses(params: Params, data: TwoTaskData) -> Tensor:
    """``(2,)`` tensor ``[L_1, L_2]``: mean squared error on task 1, mean cross-entropy on task 2."""
    sq_err, bce = per_sample_losses(params, data)
    return torch.stack([sq_err.mean(), bce.mean()])


def joint_loss(params: Params, data: TwoTaskData, weights: Sequence[float] = (0.5, 0.5)) -> Tensor:
    """Scalar ``w_1 L_1 + w_2 L_2`` (default: the article's mean of the two tasks)."""
    return (torch.as_tensor(weights, dtype=data.x1.dtype) * task_losses(params, data)).sum()


def analytic_grad(params: Params, data: TwoTaskData, weights: Sequence[float] = (0.5, 0.5)) -> Params:
    """Gradient of :func:`joint_loss` by the chain rule, written out by hand (no autograd).

    Returns:
        A dict with the same keys and shapes as ``params``.
    """
    w1, w2 = (float(w) for w in weights)
    h1 = torch.tanh(data.x1 @ params["W1"].T + params["b1"])  # (N1, H)
    h2 = torch.tanh(data.x2 @ params["W1"].T + params["b1"])  # (N2, H)
    d1 = w1 * 2 * (h1 @ params["w_r"] + params["b_r"] - data.r) / len(data.r)  # (N1,) dL/dy_hat
    d2 = w2 * (torch.sigmoid(h2 @ params["w_c"] + params["b_c"]) - data.y) / len(data.y)  # (N2,) dL/dz
    a1 = d1[:, None] * params["w_r"][None, :] * (1 - h1**2)  # (N1, H) dL/d(pre-activation)
    a2 = d2[:, None] * params["w_c"][None, :] * (1 - h2**2)  # (N2, H)
    return {
        "W1": a1.T @ data.x1 + a2.T @ data.x2,
        "b1": a1.sum(0) + a2.sum(0),
        "w_r": h1.T @ d1,
        "b_r": d1.sum(),
        "w_c": h2.T @ d2,
        "b_c": d2.sum(),
    }


def autograd_grad(loss_fn: Callable[[Params], Tensor], params: Params) -> Params:
    """Gradient of ``loss_fn(params)`` by PyTorch autograd."""
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    grads = torch.autograd.grad(loss_fn(leaves), list(leaves.values()))
    return dict(zip(leaves, grads))


def finite_difference_grad(loss_fn: Callable[[Params], Tensor], params: Params, eps: float = 1e-6) -> Params:
    """Central finite differences ``(f(p + eps) - f(p - eps)) / (2 eps)``, one entry at a time."""
    out = {}
    for name, value in params.items():
        grad = torch.zeros_like(value)
        for idx in range(value.numel()):
            shifted = {k: v.clone() for k, v in params.items()}
            flat = shifted[name].view(-1)
            flat[idx] = value.reshape(-1)[idx] + eps
            plus = float(loss_fn(shifted))
            flat[idx] = value.reshape(-1)[idx] - eps
            grad.view(-1)[idx] = (plus - float(loss_fn(shifted))) / (2 * eps)
        out[name] = grad
    return out


def relative_error(a: Tensor, b: Tensor) -> float:
    """``||a - b|| / max(||a||, ||b||)`` (0 when both are zero)."""
    scale = max(float(a.norm()), float(b.norm()))
    return 0.0 if scale == 0 else float((a - b).norm()) / scale


def gradcheck(
    params: Params, data: TwoTaskData, weights: Sequence[float] = (0.5, 0.5), eps: float = 1e-6
) -> dict[str, float]:
    """Compare :func:`analytic_grad` with autograd and with central finite differences.

    Returns:
        ``{"autograd": e1, "finite_diff": e2, "max": max(e1, e2)}``: the largest
        per-parameter :func:`relative_error` of each comparison.
    """

    def loss_fn(p):
        return joint_loss(p, data, weights)

    mine = analytic_grad(params, data, weights)
    refs = {
        "autograd": autograd_grad(loss_fn, params),
        "finite_diff": finite_difference_grad(loss_fn, params, eps),
    }
    out = {key: max(relative_error(mine[k], ref[k]) for k in mine) for key, ref in refs.items()}
    out["max"] = max(out.values())
    return out


def flatten(params: Params) -> Tensor:
    """All parameters as one vector ``(P,)`` (in ``PARAM_NAMES`` order)."""
    return torch.cat([params[k].reshape(-1) for k in PARAM_NAMES])


# kind -> (update direction, where the weight decay goes)
OPTIMIZER_RUNS: dict[str, tuple[str, str]] = {
    "sgd_l2_in_loss": ("sgd", "loss"),
    "sgd_article_rule": ("sgd", "article"),
    "torch_sgd_weight_decay": ("sgd", "torch"),
    "adam_l2_in_loss": ("adam", "loss"),
    "torch_adam_weight_decay": ("adam", "torch"),
    "torch_adamw": ("adamw", "torch"),
    "adam_article_rule": ("adam", "article"),
}


def run_optimizer(
    kind: str, params: Params, loss_fn: Callable[[Params], Tensor], lr: float, weight_decay: float, steps: int
) -> Tensor:
    """Train a copy of ``params`` for ``steps`` full-batch steps; return the final flat parameters ``(P,)``.

    ``kind`` (a key of ``OPTIMIZER_RUNS``) says where the weight decay goes: ``loss`` adds
    ``weight_decay/2 ||theta||^2`` to the loss; ``article`` applies the article's rule
    ``theta <- theta - lr * direction - lr * weight_decay * theta`` by hand, with ``direction`` the
    gradient (SGD) or Adam's ``m_hat / (sqrt(v_hat) + 1e-8)`` (betas 0.9, 0.999); ``torch`` passes
    ``weight_decay`` to the PyTorch optimizer.
    """
    method, decay = OPTIMIZER_RUNS[check_choice("kind", kind, OPTIMIZER_RUNS)]
    theta = [params[k].detach().clone().requires_grad_(True) for k in PARAM_NAMES]
    opt = None
    if decay != "article":
        cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[method]
        opt = cls(theta, lr=lr, weight_decay=weight_decay if decay == "torch" else 0.0)
    m = [torch.zeros_like(p) for p in theta]
    v = [torch.zeros_like(p) for p in theta]
    for t in range(1, steps + 1):
        loss = loss_fn(dict(zip(PARAM_NAMES, theta)))
        if decay == "loss":
            loss = loss + weight_decay / 2 * sum((p**2).sum() for p in theta)
        grads = torch.autograd.grad(loss, theta)
        with torch.no_grad():
            for p, g, mi, vi in zip(theta, grads, m, v):
                if opt is not None:
                    p.grad = g
                    continue
                mi.mul_(0.9).add_(0.1 * g)
                vi.mul_(0.999).add_(0.001 * g * g)
                adam = (mi / (1 - 0.9**t)) / ((vi / (1 - 0.999**t)).sqrt() + 1e-8)
                p.sub_(lr * (adam if method == "adam" else g) + lr * weight_decay * p)
        if opt is not None:
            opt.step()
    return torch.cat([p.detach().reshape(-1) for p in theta])


def compare_optimizers(
    params: Params,
    loss_fn: Callable[[Params], Tensor],
    lr: float = 0.1,
    weight_decay: float = 0.1,
    steps: int = 20,
) -> dict[str, float]:
    """Run every ``OPTIMIZER_RUNS`` entry and measure how far apart the final parameters are.

    Returns:
        max-abs differences: ``sgd_l2_vs_article`` and ``sgd_l2_vs_torch_sgd`` (equal up to
        rounding), ``adam_l2_vs_torch_adam`` (PyTorch's ``Adam(weight_decay)`` is an L2 term),
        ``adamw_vs_adam_article`` (AdamW is the article's rule with Adam's direction), and
        ``adam_l2_vs_adamw`` (clearly not equal); plus ``param_scale`` (max abs parameter).
    """
    final = {k: run_optimizer(k, params, loss_fn, lr, weight_decay, steps) for k in OPTIMIZER_RUNS}

    def diff(a: str, b: str) -> float:
        return float((final[a] - final[b]).abs().max())

    return {
        "sgd_l2_vs_article": diff("sgd_l2_in_loss", "sgd_article_rule"),
        "sgd_l2_vs_torch_sgd": diff("sgd_l2_in_loss", "torch_sgd_weight_decay"),
        "adam_l2_vs_torch_adam": diff("adam_l2_in_loss", "torch_adam_weight_decay"),
        "adamw_vs_adam_article": diff("torch_adamw", "adam_article_rule"),
        "adam_l2_vs_adamw": diff("adam_l2_in_loss", "torch_adamw"),
        "param_scale": float(final["torch_adamw"].abs().max()),
    }


OBJECTIVES = ("task_mean", "per_sample", "article_4_2")


def effective_task_weights(n_samples: Sequence[int], scheme: str, normalize: bool = False) -> Tensor:
    """Weights ``w_i`` on the per-task mean losses ``L_i`` that an objective implies.

    - ``task_mean``: ``(1/k) sum_i L_i`` (the article's 3.1 and 4.1): ``w_i = 1/k``.
    - ``per_sample``: one mean over all pooled samples: ``w_i = N_i / sum_j N_j``.
    - ``article_4_2``: ``1/(N1+N2) sum_{task 1} L + 1/N2 sum_{task 2} L`` (two tasks):
      ``w_1 = N1/(N1+N2)``, ``w_2 = 1``.

    Args:
        n_samples: ``N_i`` per task.
        scheme: one of ``OBJECTIVES``.
        normalize: divide by the sum, so the weights sum to 1.

    Returns:
        ``(k,)`` float64 weights.
    """
    check_choice("scheme", scheme, OBJECTIVES)
    n = torch.as_tensor(
        [check_positive("n_samples", int(x), integer=True) for x in n_samples], dtype=torch.float64
    )
    if scheme == "task_mean":
        w = torch.full_like(n, 1 / len(n))
    elif scheme == "per_sample":
        w = n / n.sum()
    else:
        if len(n) != 2:
            raise ValueError(f"scheme='article_4_2' is defined for 2 tasks; got {len(n)} sample counts")
        w = torch.stack([n[0] / n.sum(), torch.ones((), dtype=torch.float64)])
    return w / w.sum() if normalize else w


def task_gradient_cosine(losses: Tensor, shared_params: Sequence[Tensor]) -> Tensor:
    """``(k, k)`` cosine similarities of the task gradients on the shared parameters."""
    flat = torch.stack(
        [torch.cat([g.reshape(-1) for g in gi]) for gi in task_gradients(losses, shared_params)]
    )
    unit = flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-30)
    return (unit @ unit.T).detach()


def train_shared_model(
    params: Params, data: TwoTaskData, strategy, steps: int = 200, lr: float = 0.1, track_cosine: bool = True
) -> pd.DataFrame:
    """Full-batch SGD on the shared model with a weighting strategy; one history row per step.

    Args:
        params: initial parameters (copied, not modified).
        data: the two tasks' data.
        strategy: a :class:`~mtrec_utils.weighting.WeightingStrategy` for 2 tasks.
        steps: SGD steps.
        lr: learning rate (also for the strategy's own parameters, if any).
        track_cosine: compute the cosine (two extra backward passes per step); else NaN.

    Returns:
        DataFrame with ``step, loss_task1, loss_task2, weight_task1, weight_task2, cosine``
        (``cosine``: of the two task gradients on the shared trunk ``W1, b1``).
    """
    theta = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    shared = [theta["W1"], theta["b1"]]
    strategy = strategy.to(params["W1"].dtype)
    opt = torch.optim.SGD(list(theta.values()) + list(strategy.parameters()), lr=lr)
    rows = []
    for step in range(steps):
        losses = task_losses(theta, data)
        cosine = float(task_gradient_cosine(losses, shared)[0, 1]) if track_cosine else float("nan")
        opt.zero_grad()
        result = strategy.combine(losses, shared, step)
        result.backward()
        opt.step()
        rows.append([step, *losses.tolist(), *result.weights.tolist(), cosine])
    return pd.DataFrame(
        rows, columns=["step", "loss_task1", "loss_task2", "weight_task1", "weight_task2", "cosine"]
    )
