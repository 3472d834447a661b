"""The scale-out entry point: runs under `accelerate launch`, data-parallel under torchrun (2 CPU processes)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mtrec_utils.analyses.finetuning.launch import build_parser, launch_command

MODULE = "mtrec_utils.analyses.finetuning.launch"
SMALL_RUN = "--encoder tiny-random --steps 3 --batch-size 8 --max-train 40 --max-eval 30 --max-length 16"
ARGS = ["-m", MODULE, *SMALL_RUN.split()]
BIN = Path(sys.executable).parent


def _env():
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}


def _result(proc) -> list[dict]:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def test_accelerate_launch_runs_the_entry_point(tmp_path):
    exe = BIN / "accelerate"
    if not exe.exists():
        pytest.skip("accelerate's launcher is not installed next to this Python")
    cmd = [str(exe), "launch", "--num_processes", "1", "--cpu", "--num_cpu_threads_per_process", "1", *ARGS]
    out = _result(subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=300))
    assert len(out) == 1 and out[0]["num_processes"] == 1 and out[0]["mode"] == "lora"
    assert out[0]["trainable"] == 2048 and 0 <= out[0]["test_recommended_auc"] <= 1


def test_two_processes_train_data_parallel(tmp_path):
    exe = BIN / "torchrun"
    if not exe.exists() or shutil.which("hostname") is None:
        pytest.skip("torchrun is not installed next to this Python")
    cmd = [
        str(exe),
        "--nproc_per_node",
        "2",
        "--master_port",
        "29517",
        *ARGS,
        "--output",
        str(tmp_path / "r.json"),
    ]
    out = _result(subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=300))
    assert len(out) == 1, "only the main process reports"
    assert out[0]["num_processes"] == 2 and out[0]["samples_per_second"] > 0
    assert json.loads((tmp_path / "r.json").read_text()) == out[0]


def test_launch_command_is_exact():
    cmd = launch_command(2, mode="lora", batch_size=32)
    assert cmd == f"accelerate launch --num_processes 2 -m {MODULE} --mode lora --batch-size 32"
    args = build_parser().parse_args(cmd.split(f"-m {MODULE} ")[1].split())
    assert args.mode == "lora" and args.batch_size == 32
