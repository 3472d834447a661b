"""The throughput benchmark runs end to end on a tiny model (speed itself is never asserted)."""

import json

import pytest

from mtrec_utils.models.encoders import load_encoder
from mtrec_utils.workbook.bench import encoder_step_flops, main, matmul_flops


def test_throughput_reports_both_pipelines(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = "throughput --encoder tiny-random --rows 48 --batch-size 16 --no-memory --json".split()
    rc = main([*args, str(out)])
    assert rc == 0
    result = json.loads(out.read_text())
    pipelines = {p["pipeline"]: p for p in result["pipelines"]}
    assert set(pipelines) == {"article", "ours"}
    assert pipelines["article"]["tokens_per_sequence"] == 128  # the article pads every text to 128
    assert pipelines["ours"]["tokens_per_sequence"] < 128  # ours pads to the longest text of the batch
    assert pipelines["ours"]["mean_loss"] == pytest.approx(pipelines["article"]["mean_loss"], rel=1e-4)
    assert result["speedup"] == pytest.approx(
        pipelines["ours"]["samples_per_s"] / pipelines["article"]["samples_per_s"]
    )
    assert (
        0
        < result["encoder_step_utilisation"]
        == pytest.approx(result["encoder_step_flops_per_s"] / result["matmul_flops_per_s"])
    )
    assert "speedup (ours / article)" in capsys.readouterr().out


def test_flop_counts_are_positive_and_scale_with_tokens():
    enc = load_encoder("tiny-random")
    short = encoder_step_flops(enc, ["a movie"] * 4, repeats=1)
    long = encoder_step_flops(enc, ["a much longer description of a movie with many words"] * 4, repeats=1)
    assert 0 < short["flops"] < long["flops"] and short["tokens"] < long["tokens"]
    assert matmul_flops(n=64, repeats=2) > 0


def test_bad_arguments_are_reported(capsys):
    assert main(["throughput", "--encoder", "tiny-random", "--rows", "0", "--no-memory"]) == 2
    assert "rows=0" in capsys.readouterr().err
