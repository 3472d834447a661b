"""Check functions of the lab exercises: a right answer passes, a wrong one is told what is wrong."""

from __future__ import annotations

import pytest

from mtrec_utils.analyses.joint_loss.exercises import (
    CheckResult,
    check_article_weights,
    check_head_gradient,
    check_projection,
    head_gradient,
)
from mtrec_utils.weighting import project_conflicting


def not_done(*args):
    raise NotImplementedError


def test_head_gradient_reference_passes():
    result = check_head_gradient(head_gradient)
    assert isinstance(result, CheckResult) and result.passed and bool(result)
    assert str(result).startswith("Correct: ") and str(check_head_gradient(None)).startswith("Not yet: ")


@pytest.mark.parametrize(
    "answer, message",
    [
        (lambda h, y, r, w: 2 / len(r) * h.T @ (y - r), "task weight w=0.3 is missing"),
        (lambda h, y, r, w: w / len(r) * h.T @ (y - r), "factor 2"),
        (lambda h, y, r, w: w * 2 * h.T @ (y - r), "1/N of the mean is missing"),
        (lambda h, y, r, w: w * 2 / len(r) * h.T @ (r - y), "sign is flipped"),
        (
            lambda h, y, r, w: 2 * h.T @ (r - y),
            "too large); the task weight w=0.3 is missing; the sign is flipped",
        ),
        (lambda h, y, r, w: w * 2 / len(r) * (y - r), "must have the shape of w_r, (3,); got (7,)"),
        (lambda h, y, r, w: h.T @ y, "off by"),
        (None, "no answer given yet"),
        (not_done, "NotImplementedError"),
        (lambda h, y, r, w: None, "returned None"),
        (lambda h, y, r, w: h @ h, "raised RuntimeError"),
    ],
)
def test_head_gradient_mistakes_are_named(answer, message):
    result = check_head_gradient(answer)
    assert not result.passed
    assert message in result.message


def test_article_weights_accepts_raw_or_normalised():
    assert check_article_weights((80_000 / 80_942, 1.0), 80_000, 942).passed
    assert check_article_weights((80_000 / 160_942, 80_942 / 160_942), 80_000, 942).passed


@pytest.mark.parametrize(
    "answer, message",
    [
        ((1 / 80_942, 1 / 942), "factors in front of each per-sample loss"),
        ((0.5, 0.5), "mean of the task losses (article 3.1)"),
        ((80_000 / 80_942, 942 / 80_942), "per-sample average"),
        ((1.0, 80_000 / 80_942), "swapped"),
        ((0.2, 0.8), "read off w_i"),
        ((1.0, 2.0, 3.0), "give two numbers"),
        (None, "no answer given yet"),
    ],
)
def test_article_weight_mistakes_are_named(answer, message):
    result = check_article_weights(answer, 80_000, 942)
    assert not result.passed and message in result.message


def test_projection_reference_passes():
    assert check_projection(project_conflicting).passed


@pytest.mark.parametrize(
    "answer, message",
    [
        (lambda a, b: a - (a @ b) / (b @ b) * b, "project only when the gradients conflict"),
        (lambda a, b: a - (a @ b) / b.norm() * b if a @ b < 0 else a, "divide by ||g_j||^2"),
        (lambda a, b: a + (a @ b) / (b @ b) * b if a @ b < 0 else a, "sign is flipped"),
        (lambda a, b: b - (a @ b) / (a @ a) * a if a @ b < 0 else a, "you projected g_j"),
        (lambda a, b: a, "came back unchanged"),
        (lambda a, b: 0.5 * a if a @ b < 0 else a, "should be orthogonal to g_j"),
        (lambda a, b: a[:1], "shaped like g_i"),
        (not_done, "NotImplementedError"),
    ],
)
def test_projection_mistakes_are_named(answer, message):
    result = check_projection(answer)
    assert not result.passed and message in result.message
