"""Hyperparameter sweeps where each point is an executed notebook.

:func:`run_sweep` executes a notebook once per point through :func:`mtrec_utils.workbook.notebooks.execute`
(papermill), with the point's values as notebook parameters, each into its own output folder,
and collects what each execution recorded into one DataFrame. Pick the best point on a
validation metric, never on a test metric.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from mtrec_utils.training.experiments import default_workers

# Points for notebook 08 (one factor at a time around LR=1e-3, LORA_RANK=8, W_RECOMMENDED=1).
SWEEP_POINTS: dict[str, list[dict[str, Any]]] = {
    "smoke": [
        {"LR": 3e-4, "LORA_RANK": 4, "W_RECOMMENDED": 1.0},
        {"LR": 3e-3, "LORA_RANK": 8, "W_RECOMMENDED": 2.0},
    ],
    "cpu": [
        {"LR": 1e-3, "LORA_RANK": 8, "W_RECOMMENDED": 1.0},
        {"LR": 3e-3, "LORA_RANK": 8, "W_RECOMMENDED": 1.0},
        {"LR": 1e-3, "LORA_RANK": 16, "W_RECOMMENDED": 1.0},
        {"LR": 1e-3, "LORA_RANK": 8, "W_RECOMMENDED": 3.0},
    ],
}
SWEEP_POINTS["gpu"] = SWEEP_POINTS["cpu"] + [
    {"LR": 3e-4, "LORA_RANK": 8, "W_RECOMMENDED": 1.0},
    {"LR": 1e-3, "LORA_RANK": 4, "W_RECOMMENDED": 1.0},
]


def grid(**values: Sequence[Any]) -> list[dict[str, Any]]:
    """Every combination of the given values: ``grid(LR=[1e-3, 3e-3], LORA_RANK=[4])`` -> 2 points."""
    if not values or any(isinstance(v, (str, bytes)) or len(v) == 0 for v in values.values()):
        raise ValueError(
            f"grid needs at least one parameter, each with a non-empty list of values; got {values}"
        )
    names = list(values)
    return [dict(zip(names, combo)) for combo in itertools.product(*values.values())]


def run_sweep(
    notebook: str | Path,
    points: Sequence[Mapping[str, Any]],
    output_dir: str | Path,
    base: Mapping[str, Any] | None = None,
    metrics: Sequence[str] | None = None,
    progress: bool = False,
    workers: int | None = None,
) -> pd.DataFrame:
    """Execute ``notebook`` once per point and collect its recorded metrics.

    Args:
        notebook: the .ipynb to execute.
        points: one dict of notebook parameters per execution.
        output_dir: point ``i`` writes under ``output_dir/point_<i>/`` (its executed copy and metrics).
        base: parameters shared by every point (a point's own values win).
        metrics: recorded names to keep (default: all of them).
        progress: show papermill's progress bar.
        workers: points executed at once, each in its own kernel (default: one per CPU core, at most
            one per point; 1 on a GPU, where the kernels would share one device). Give the points
            ``CPU_THREADS=1`` so that parallel kernels do not oversubscribe the cores. The table is the
            same, in the same order, whatever ``workers`` is: each point is a fresh kernel.

    Returns:
        One row per point: the point's parameters, ``status``, ``seconds`` and the metrics
        (missing ones are NaN, e.g. for a failed point; its error is in column ``error``).
    """
    from mtrec_utils.workbook.notebooks import check_parameters, execute

    notebook = Path(notebook)
    if not notebook.is_file():
        raise ValueError(f"notebook={str(notebook)!r} is not a file")
    if not points or not all(isinstance(p, Mapping) for p in points):
        raise ValueError("points must be a non-empty list of parameter dicts, e.g. [{'LR': 1e-3}]")
    params = [{**(base or {}), **point} for point in points]
    for p in params:
        check_parameters(p)
    if workers is None:
        workers = default_workers(len(points), str((base or {}).get("DEVICE", "auto")))
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers={workers!r} is not valid; give a positive integer (for example 1)")

    def one(i: int) -> dict[str, Any]:
        result = execute(notebook, Path(output_dir) / f"point_{i}", params[i], progress=progress)
        found = result.metrics if metrics is None else {k: result.metrics.get(k) for k in metrics}
        return {
            **points[i],
            "status": result.status,
            "seconds": result.seconds,
            **found,
            "error": result.error,
        }

    # Threads only wait here: each point runs in its own kernel process.
    with ThreadPoolExecutor(max_workers=min(workers, len(points))) as pool:
        rows = list(pool.map(one, range(len(points))))
    return pd.DataFrame(rows)


def best_point(table: pd.DataFrame, metric: str, higher_is_better: bool = True) -> pd.Series:
    """The row of ``table`` with the best ``metric`` among points that ran (``status == "ok"``)."""
    if metric not in table.columns:
        raise ValueError(f"metric={metric!r} is not a column; choose from {list(table.columns)}")
    ok = table[(table["status"] == "ok") & table[metric].notna()]
    if ok.empty:
        raise ValueError(f"no sweep point finished with a value for {metric!r}")
    return ok.loc[ok[metric].idxmax() if higher_is_better else ok[metric].idxmin()]
