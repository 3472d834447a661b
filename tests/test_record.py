import json

import numpy as np
import pytest
import torch

from mtrec_utils import __version__
from mtrec_utils.core.io import atomic_write_text
from mtrec_utils.core.record import load_metrics, read_metrics, record, start_run


def test_record_round_trip(tmp_path, capsys):
    start_run("03_demo", profile="smoke", seed=7, device="cpu", output_dir=tmp_path)
    record("ml_u1_rmse_mf", np.float32(0.93))
    record("ml_u1_rmse_mf", torch.tensor(0.91))  # recording again replaces the value
    record("clothing_sizes", {"train": 8, "test": 2})
    assert "recorded ml_u1_rmse_mf = 0.91" in capsys.readouterr().out
    data = read_metrics(tmp_path)["03_demo"]
    assert data["profile"] == "smoke" and data["seed"] == 7 and data["device"] == "cpu"
    assert data["version"] == __version__
    assert data["metrics"]["ml_u1_rmse_mf"] == pytest.approx(0.91)
    assert data["metrics"]["clothing_sizes"] == {"train": 8, "test": 2}


def test_start_run_resolves_auto_and_resets(tmp_path):
    start_run("nb", profile="smoke", output_dir=tmp_path)
    record("a_metric", 1)
    start_run("nb", profile="smoke", output_dir=tmp_path)
    assert load_metrics(tmp_path / "metrics" / "nb.json")["metrics"] == {}
    assert start_run("nb", profile="auto", output_dir=tmp_path).profile in {"cpu", "gpu"}


@pytest.mark.parametrize("name", ["RMSE", "1st", "ml-rmse", ""])
def test_bad_metric_names_are_refused(tmp_path, name):
    start_run("nb", profile="smoke", output_dir=tmp_path)
    with pytest.raises(ValueError, match="snake_case"):
        record(name, 1.0)


def test_non_finite_and_unknown_values_are_refused(tmp_path):
    start_run("nb", profile="smoke", output_dir=tmp_path)
    with pytest.raises(ValueError, match="non-finite"):
        record("x_nan", float("nan"))
    with pytest.raises(TypeError, match="cannot record"):
        record("x_obj", object())


def test_broken_metrics_file_gives_clear_error(tmp_path):
    path = tmp_path / "metrics" / "nb.json"
    atomic_write_text(path, '{"notebook": "nb"')
    with pytest.raises(ValueError, match="not valid JSON"):
        load_metrics(path)
    atomic_write_text(path, json.dumps({"notebook": "nb"}))
    with pytest.raises(ValueError, match="lacks the keys"):
        load_metrics(path)


def test_atomic_write_leaves_no_temporary_file(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "hello")
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_an_empty_group_records_none_not_nan():
    from mtrec_utils.core.record import or_none

    assert or_none(float("nan")) is None and or_none(np.float32(0.5)) == 0.5 and or_none(2) == 2.0
