"""Sweeps whose points are executed notebooks: a two-point sweep of a tiny notebook, grids, best point."""

from __future__ import annotations

import nbformat
import pandas as pd
import pytest

from mtrec_utils.workbook.sweep import SWEEP_POINTS, best_point, grid, run_sweep


@pytest.fixture(scope="module")
def tiny_notebook(tmp_path_factory):
    """A notebook with a parameters cell (X) that records x_squared and the profile it ran with."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(
        'PROFILE = "smoke"  # profile\nX = 1.0  # a number\nOUTPUT_DIR = "out"  # out'
    )
    params.metadata["tags"] = ["parameters"]
    body = nbformat.v4.new_code_cell(
        "from mtrec_utils.core.record import record, start_run\n"
        'start_run("tiny", profile=PROFILE, output_dir=OUTPUT_DIR)\n'
        'record("x_squared", X * X)\nrecord("ran_profile", PROFILE)'
    )
    nb.cells = [params, body]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path_factory.mktemp("nb") / "tiny.ipynb"
    nbformat.write(nb, path)
    return path


def test_two_point_sweep_executes_the_notebook_per_point(tiny_notebook, tmp_path):
    table = run_sweep(tiny_notebook, [{"X": 2.0}, {"X": 3.0}], tmp_path, base={"PROFILE": "smoke"})
    assert table["status"].tolist() == ["ok", "ok"]
    assert table["x_squared"].tolist() == [4.0, 9.0] and set(table["ran_profile"]) == {"smoke"}
    assert (tmp_path / "point_1" / "notebooks" / "tiny.ipynb").exists()
    assert best_point(table, "x_squared")["X"] == 3.0
    assert best_point(table, "x_squared", higher_is_better=False)["X"] == 2.0


def test_selected_metrics_only(tiny_notebook, tmp_path):
    table = run_sweep(tiny_notebook, [{"X": 5.0}], tmp_path, metrics=["x_squared", "absent"])
    assert table.loc[0, "x_squared"] == 25.0 and pd.isna(table.loc[0, "absent"])


def test_grid_and_points():
    assert grid(LR=[1e-3, 3e-3], LORA_RANK=[4, 8]) == [
        {"LR": 1e-3, "LORA_RANK": 4},
        {"LR": 1e-3, "LORA_RANK": 8},
        {"LR": 3e-3, "LORA_RANK": 4},
        {"LR": 3e-3, "LORA_RANK": 8},
    ]
    assert len(SWEEP_POINTS["smoke"]) == 2
    keys = {"LR", "LORA_RANK", "W_RECOMMENDED"}
    assert all(set(p) == keys for points in SWEEP_POINTS.values() for p in points)
    with pytest.raises(ValueError, match="non-empty"):
        grid(LR=[])


def test_bad_inputs(tiny_notebook, tmp_path):
    with pytest.raises(ValueError, match="not a file"):
        run_sweep(tmp_path / "missing.ipynb", [{"X": 1}], tmp_path)
    with pytest.raises(ValueError, match="points"):
        run_sweep(tiny_notebook, [], tmp_path)
    with pytest.raises(ValueError, match="PROFILE='fast'"):
        run_sweep(tiny_notebook, [{"PROFILE": "fast"}], tmp_path)
    table = pd.DataFrame({"X": [1, 2], "status": ["failed", "failed"], "m": [None, None]})
    with pytest.raises(ValueError, match="no sweep point"):
        best_point(table, "m")
    with pytest.raises(ValueError, match="metric='nope'"):
        best_point(table, "nope")


def test_parallel_points_give_the_serial_table(tiny_notebook, tmp_path):
    points = [{"X": 2.0}, {"X": 3.0}, {"X": 4.0}]
    serial = run_sweep(tiny_notebook, points, tmp_path / "serial", workers=1)
    parallel = run_sweep(tiny_notebook, points, tmp_path / "parallel", workers=2)
    assert parallel["x_squared"].tolist() == [4.0, 9.0, 16.0]
    pd.testing.assert_frame_equal(serial.drop(columns="seconds"), parallel.drop(columns="seconds"))
    with pytest.raises(ValueError, match="workers=0"):
        run_sweep(tiny_notebook, points, tmp_path, workers=0)
