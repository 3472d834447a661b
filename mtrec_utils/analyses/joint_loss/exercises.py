"""Check functions for the lab exercises (notebook 01).

Each ``check_*`` takes the learner's answer and returns a :class:`CheckResult`, which shows as
``Correct: ...`` or ``Not yet: ...`` when displayed (the last line of a notebook cell) or printed.
A correct answer passes; a wrong one gets a message saying what is wrong (a missing factor, a
swapped pair, a projection applied when it should not be...). Checks never raise on a wrong or
missing answer, so a notebook with unanswered exercises still runs end to end.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from mtrec_utils.analyses.joint_loss.gradients import effective_task_weights
from mtrec_utils.weighting.pcgrad import project_conflicting


@dataclass
class CheckResult:
    """Verdict of a check: ``passed`` and a ``message`` for the learner."""

    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        return ("Correct: " if self.passed else "Not yet: ") + self.message

    def _repr_pretty_(self, printer, cycle: bool) -> None:  # how IPython shows it: the verdict only
        printer.text(str(self))


def _call(fn: Callable, *args) -> tuple[Tensor | None, str]:
    """Call the learner's function; return ``(result, "")`` or ``(None, reason)``."""
    if fn is None:
        return None, "no answer given yet: define the function and pass it to the check"
    try:
        out = fn(*args)
    except NotImplementedError:
        return None, "the function still raises NotImplementedError: replace it with your code"
    except Exception as e:  # the learner's code may fail in any way; report it, do not crash
        return None, f"the function raised {type(e).__name__}: {e}"
    if out is None:
        return None, "the function returned None: did you forget `return`?"
    return torch.as_tensor(out, dtype=torch.float64), ""


def head_gradient(h: Tensor, y_hat: Tensor, r: Tensor, weight: float) -> Tensor:
    """Reference answer of exercise 1: gradient of ``weight * mean((y_hat - r)^2)`` w.r.t. ``w_r``.

    With ``y_hat = h @ w_r + b_r``: ``weight * 2 / N * h^T (y_hat - r)``.

    Args:
        h: ``(N, H)`` trunk outputs; y_hat: ``(N,)`` predictions; r: ``(N,)`` targets.
        weight: the task weight.

    Returns:
        ``(H,)`` gradient.
    """
    return weight * 2 / len(r) * h.T @ (y_hat - r)


# factor by which a common mistake scales the right answer -> what to tell the learner
def _head_mistakes(n: int, weight: float) -> dict[str, float]:
    single = {
        "the factor 2 from d/dy (y - r)^2 = 2 (y - r) is missing": 0.5,
        f"the 1/N of the mean is missing (your answer is N={n} times too large)": float(n),
        f"the task weight w={weight} is missing": 1 / weight,
        "the sign is flipped: use (y_hat - r), not (r - y_hat)": -1.0,
    }
    out = {}
    for size in (1, 2, 3):
        for combo in itertools.combinations(single, size):
            out["; ".join(combo)] = math.prod(single[c] for c in combo)
    return out


def check_head_gradient(fn: Callable[[Tensor, Tensor, Tensor, float], Tensor] | None) -> CheckResult:
    """Exercise 1: ``fn(h, y_hat, r, weight)`` must return the gradient of ``weight * MSE`` w.r.t. ``w_r``.

    Args:
        fn: the learner's function (see :func:`head_gradient` for the signature and shapes).
    """
    gen = torch.Generator().manual_seed(1)
    n, hidden, weight = 7, 3, 0.3
    h = torch.randn(n, hidden, generator=gen, dtype=torch.float64)
    y_hat = torch.randn(n, generator=gen, dtype=torch.float64)
    r = torch.randn(n, generator=gen, dtype=torch.float64)
    want = head_gradient(h, y_hat, r, weight)
    got, why = _call(fn, h, y_hat, r, weight)
    if got is None:
        return CheckResult(False, why)
    if got.shape != want.shape:
        hint = " (a sum over samples is missing, or h was not transposed)" if got.numel() != hidden else ""
        return CheckResult(
            False,
            f"the gradient must have the shape of w_r, {tuple(want.shape)}; got {tuple(got.shape)}{hint}",
        )
    if torch.allclose(got, want, rtol=1e-6, atol=1e-9):
        return CheckResult(True, "dL/dw_r = w * (2/N) * h^T (y_hat - r)")
    for message, factor in _head_mistakes(n, weight).items():
        if torch.allclose(got, factor * want, rtol=1e-6, atol=1e-9):
            return CheckResult(False, message)
    return CheckResult(
        False,
        f"off by {float((got - want).abs().max()):.3g}: apply the chain rule through y_hat = h w_r + b_r",
    )


def check_article_weights(answer: Sequence[float] | None, n1: int, n2: int) -> CheckResult:
    """Exercise 2: the weights ``(w_1, w_2)`` on the per-task mean losses implied by the article's 4.2.

    Either the raw weights ``(N1/(N1+N2), 1)`` or the same normalised to sum to 1 pass.

    Args:
        answer: the learner's ``(w_1, w_2)``.
        n1, n2: the sample counts of task 1 and task 2.
    """
    if answer is None:
        return CheckResult(False, "no answer given yet: compute (w_1, w_2) from n1 and n2")
    got = torch.as_tensor([float(a) for a in answer], dtype=torch.float64)
    if got.shape != (2,):
        return CheckResult(False, f"give two numbers (w_1, w_2); got {len(got)}")

    def close(w: Tensor) -> bool:
        return bool(torch.allclose(got, w, rtol=1e-6, atol=1e-12))

    raw = effective_task_weights([n1, n2], "article_4_2")
    if close(raw) or close(raw / raw.sum()):
        return CheckResult(
            True, f"L = {float(raw[0]):.4f} L_1 + 1 L_2: task 1's mean is shrunk by N1/(N1+N2)"
        )
    wrong = {
        "these are the factors in front of each per-sample loss; multiply by N_i to get weights on the mean L_i": (
            torch.tensor([1 / (n1 + n2), 1 / n2], dtype=torch.float64)
        ),
        "that is the mean of the task losses (article 3.1), not what 4.2 writes": torch.tensor([0.5, 0.5]),
        "that is a per-sample average over both tasks; 4.2 divides task 2 by N2 alone": (
            effective_task_weights([n1, n2], "per_sample")
        ),
        "task 1 and task 2 are swapped": raw.flip(0),
    }
    for message, w in wrong.items():
        if close(w.double()) or close(w.double() / w.sum()):
            return CheckResult(False, message)
    return CheckResult(
        False, "write 4.2 as w_1 L_1 + w_2 L_2 with L_i = (1/N_i) sum of task i's losses, and read off w_i"
    )


def check_projection(fn: Callable[[Tensor, Tensor], Tensor] | None) -> CheckResult:
    """Exercise 3: ``fn(g_i, g_j)`` must be PCGrad's projection of ``g_i`` (see :func:`project_conflicting`).

    Args:
        fn: the learner's function of two gradients of the same shape.
    """
    cases = {
        "conflicting": (torch.tensor([1.0, 1.0]), torch.tensor([-2.0, 0.5])),
        "agreeing": (torch.tensor([1.0, 1.0]), torch.tensor([2.0, 0.5])),
        "conflicting, 3-D": (torch.tensor([0.5, -1.0, 2.0]), torch.tensor([-1.0, 3.0, 0.5])),
    }
    for name, (g_i, g_j) in cases.items():
        g_i, g_j = g_i.double(), g_j.double()
        want = project_conflicting(g_i, g_j)
        got, why = _call(fn, g_i.clone(), g_j.clone())
        if got is None:
            return CheckResult(False, why)
        if got.shape != want.shape:
            return CheckResult(
                False, f"return a vector shaped like g_i, {tuple(want.shape)}; got {tuple(got.shape)}"
            )
        if torch.allclose(got, want, atol=1e-9):
            continue
        dot = float(g_i @ g_j)
        if name == "agreeing":
            return CheckResult(
                False, "g_i . g_j > 0 here: project only when the gradients conflict (dot < 0)"
            )
        if torch.allclose(got, g_i, atol=1e-9):
            return CheckResult(
                False, f"the gradients conflict (g_i . g_j = {dot:.3g} < 0) but g_i came back unchanged"
            )
        if torch.allclose(got, g_i - dot / float(g_j.norm()) * g_j, atol=1e-9):
            return CheckResult(
                False, "divide by ||g_j||^2, not ||g_j||: the result must be orthogonal to g_j"
            )
        if torch.allclose(got, g_i + dot / float(g_j @ g_j) * g_j, atol=1e-9):
            return CheckResult(False, "the sign is flipped: subtract the component along g_j")
        if torch.allclose(got, g_j - dot / float(g_i @ g_i) * g_i, atol=1e-9):
            return CheckResult(False, "you projected g_j; PCGrad projects g_i onto the normal plane of g_j")
        residual = float(got @ g_j)
        return CheckResult(
            False, f"case '{name}': the result should be orthogonal to g_j (dot = {residual:.3g})"
        )
    return CheckResult(True, "g_i - (g_i . g_j / ||g_j||^2) g_j when g_i . g_j < 0, else g_i")
