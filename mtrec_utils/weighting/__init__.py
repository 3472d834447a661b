"""Task-weighting strategies behind one interface, and a registry.

- ``"ew"``: :class:`EqualWeighting`, weights 1 each (``reduction="mean"``: 1/k, the article's 3.1).
- ``"static"``: :class:`StaticWeighting`, fixed weights given as ``weights=[...]``.
- ``"uw"``: :class:`UncertaintyWeighting`, weights ``exp(-s_i)`` with learned ``s_i`` (Kendall 2018).
- ``"gradnorm"``: :class:`GradNorm`, learned weights summing to k (Chen 2018).
- ``"dwa"``: :class:`DynamicWeightAverage`, weights from loss ratios, summing to k (Liu 2019).
- ``"pcgrad"``: :class:`PCGrad`, weights 1, conflicting gradients projected (Yu 2020).

See :mod:`mtrec_utils.weighting.base` for how a training loop calls a strategy.
"""

from __future__ import annotations

from typing import Any

from mtrec_utils.weighting.base import CombineResult, WeightingStrategy, task_gradients
from mtrec_utils.weighting.dwa import DynamicWeightAverage, dwa_weights
from mtrec_utils.weighting.ew import EqualWeighting
from mtrec_utils.weighting.gradnorm import GradNorm
from mtrec_utils.weighting.pcgrad import PCGrad, pcgrad, project_conflicting
from mtrec_utils.weighting.static import StaticWeighting
from mtrec_utils.weighting.uw import UncertaintyWeighting

STRATEGIES: dict[str, type[WeightingStrategy]] = {
    "ew": EqualWeighting,
    "static": StaticWeighting,
    "uw": UncertaintyWeighting,
    "gradnorm": GradNorm,
    "dwa": DynamicWeightAverage,
    "pcgrad": PCGrad,
}


def get_strategy(name: str, **kwargs: Any) -> WeightingStrategy:
    """Build the strategy called ``name`` with ``kwargs`` (always ``num_tasks``).

    Example: ``get_strategy("static", num_tasks=2, weights=[0.7, 0.3])``.

    Raises:
        ValueError: for an unknown name (listing the valid ones) or bad arguments.
    """
    if name not in STRATEGIES:
        valid = ", ".join(repr(n) for n in STRATEGIES)
        raise ValueError(f"weighting strategy {name!r} is unknown; choose one of: {valid}")
    if "num_tasks" not in kwargs:
        raise ValueError(f"get_strategy({name!r}, ...) needs num_tasks=, the number of tasks (e.g. 2)")
    try:
        return STRATEGIES[name](**kwargs)
    except TypeError as e:
        raise ValueError(f"bad arguments for strategy {name!r}: {e}") from e


__all__ = [
    "STRATEGIES",
    "CombineResult",
    "DynamicWeightAverage",
    "EqualWeighting",
    "GradNorm",
    "PCGrad",
    "StaticWeighting",
    "UncertaintyWeighting",
    "WeightingStrategy",
    "dwa_weights",
    "get_strategy",
    "pcgrad",
    "project_conflicting",
    "task_gradients",
]
