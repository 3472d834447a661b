"""``bench precision``: float32 against bfloat16 autocast, end to end on a tiny model (speed never asserted)."""

from __future__ import annotations

import json

import pytest

from mtrec_utils.workbook.bench import main
from mtrec_utils.workbook.precision_bench import format_precision, precision_bench


def test_precision_bench_reports_speeds_and_the_price_in_accuracy(tmp_path, capsys):
    out = tmp_path / "precision.json"
    args = "precision --encoder tiny-random --batch-size 4 --length 16 --repeats 1 --json".split()
    assert main([*args, str(out)]) == 0
    result = json.loads(out.read_text())
    for key in ("matmul_gflops", "forward_ms", "train_step_ms"):
        part = result[key]
        assert part["float32"] > 0 and part["bfloat16"] > 0
        ratio = (
            part["bfloat16"] / part["float32"]
            if key == "matmul_gflops"
            else part["float32"] / part["bfloat16"]
        )
        assert part["speedup"] == pytest.approx(ratio)
    # bfloat16 keeps 8 bits of mantissa: close to float32, but not equal
    assert 0 < result["embedding_max_relative_error"] < 0.2 and 0.98 < result["embedding_min_cosine"] < 1
    assert "bfloat16 autocast" in capsys.readouterr().out


def test_precision_bench_restores_the_thread_count_and_checks_its_arguments():
    import torch

    before = torch.get_num_threads()
    result = precision_bench("tiny-random", batch_size=2, length=8, repeats=1, threads=1)
    assert torch.get_num_threads() == before and result["threads"] == 1
    assert "GFLOP/s" in format_precision(result)
    with pytest.raises(ValueError, match="length"):
        precision_bench("tiny-random", length=0)
    assert main(["precision", "--encoder", "tiny-random", "--repeats", "0"]) == 2
