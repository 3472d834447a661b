"""The throughput benchmark runs end to end on a tiny model (speed itself is never asserted)."""

import json
import os

import numpy as np
import pytest

from mtrec_utils.models.encoders import load_encoder
from mtrec_utils.workbook.bench import (
    child_peak_memory,
    encoder_step_flops,
    main,
    matmul_flops,
    own_peak_rss_mb,
)


def test_throughput_reports_both_pipelines(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = "throughput --encoder tiny-random --rows 48 --batch-size 16 --no-memory --json".split()
    rc = main([*args, str(out)])
    assert rc == 0
    result = json.loads(out.read_text())
    pipelines = {p["pipeline"]: p for p in result["pipelines"]}
    assert set(pipelines) == {"article", "ours", "ours_per_tower"}  # ours also unpacked, same batches
    assert pipelines["ours_per_tower"]["mean_loss"] == pytest.approx(pipelines["ours"]["mean_loss"], rel=1e-4)
    assert 0 < result["encoder_step_utilisation_per_tower"] and result["packed"]
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
    assert result["torch_threads"] == 1  # the default
    assert (
        pipelines["article"]["sequences_per_batch"] == 32 and pipelines["article"]["samples_per_batch"] == 16
    )
    assert pipelines["article"]["padded_tokens_per_batch"] == 32 * 128
    assert pipelines["ours"]["sequences_per_batch"] <= 32 and pipelines["ours"]["samples_per_batch"] <= 16
    assert result["epoch"]["ratings"] == 80_000 and result["epoch"]["padded_tokens_per_rating"] > 0
    assert result["matmul_probes"] > 0 and result["article_step_utilisation"] > 0
    assert "speedup (ours / article)" in capsys.readouterr().out


def test_bench_rows_are_whole_batches_of_an_epoch():
    from mtrec_utils.workbook.bench import bench_data

    data = bench_data(64, seed=1, tokenizer=load_encoder("tiny-random").tokenizer, batch_size=16)
    assert len(data["users"]) == len(data["items"]) == len(data["labels"]) == 64
    assert sorted(np.concatenate(data["batches"]).tolist()) == list(range(64))
    assert all(len(b) == 16 for b in data["batches"])


def test_each_pipeline_reports_its_own_peak_memory():
    """Each child reports its own peak, not the parent's (``ru_maxrss`` of a spawned child inherits it)."""
    rng = np.random.default_rng(0)
    data = {
        "user_texts": ["A 24-year-old man, technician.", "A 53-year-old woman, other."],
        "item_texts": ["Toy Story (1995). Genres: Animation.", "Heat"],
        "users": rng.integers(0, 2, 32),
        "items": rng.integers(0, 2, 32),
        "labels": np.ones(32, dtype=np.float32),
    }
    ballast = np.ones(2**30, dtype=np.uint8)  # 1 GiB resident in this process, well above a child's peak
    children = {p: child_peak_memory(p, "tiny-random", data, batch_size=16) for p in ("article", "ours")}
    parent = own_peak_rss_mb()
    del ballast
    assert {c["pipeline"] for c in children.values()} == {"article", "ours"}
    assert len({children["article"]["pid"], children["ours"]["pid"], os.getpid()}) == 3
    assert all(c["kind"] == "peak_rss" and 0 < c["peak_mb"] < parent for c in children.values())


def test_flop_counts_are_positive_and_scale_with_tokens():
    enc = load_encoder("tiny-random")
    short = encoder_step_flops(enc, ["a movie"] * 4, repeats=1)
    long = encoder_step_flops(enc, ["a much longer description of a movie with many words"] * 4, repeats=1)
    assert 0 < short["flops"] < long["flops"] and short["tokens"] < long["tokens"]
    assert matmul_flops(n=64, repeats=2) > 0


def test_bad_arguments_are_reported(capsys):
    assert main(["throughput", "--encoder", "tiny-random", "--rows", "0", "--no-memory"]) == 2
    assert "rows=0" in capsys.readouterr().err
