"""A battery of wrong parameters through the public API and the runner: each gets a ValueError (or exit
status 2) whose message names the parameter, the value given and what would be valid."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from mtrec_utils.core.config import get_device, resolve_profile, set_seed
from mtrec_utils.core.metrics import ndcg_at_k, recall_at_k
from mtrec_utils.data import clothing_split, movielens_split
from mtrec_utils.models.encoders import load_encoder
from mtrec_utils.models.sharing import build_model
from mtrec_utils.training.loop import check_fit_arguments, fit, make_accelerator
from mtrec_utils.training.schedules import alternating_order
from mtrec_utils.weighting import get_strategy
from mtrec_utils.workbook.notebooks import NOTEBOOKS_DIR
from mtrec_utils.workbook.run import main

SCORES, POSITIVES = [[0.3, 0.1, 0.2]], [[0]]
CLOTHING = pd.DataFrame({"recommended": [0, 1] * 10, "rating": [3, 5] * 10})

CASES = [
    # (call, words the message must contain)
    (lambda: resolve_profile("fast"), ["PROFILE='fast'", "'smoke'", "'auto'"]),
    (lambda: resolve_profile(""), ["PROFILE=''", "choose one of"]),
    (lambda: get_device("gpu0"), ["DEVICE='gpu0'", "'cuda'"]),
    (lambda: get_device(7), ["DEVICE=7", "choose one of"]),
    (lambda: set_seed(-1), ["SEED=-1", "non-negative integer"]),
    (lambda: set_seed(1.5), ["SEED=1.5", "non-negative integer"]),
    (lambda: get_strategy("mgda", num_tasks=2), ["'mgda'", "'ew'", "'pcgrad'"]),
    (lambda: get_strategy("ew"), ["num_tasks"]),
    (lambda: get_strategy("ew", num_tasks=0), ["num_tasks=0", "positive integer"]),
    (lambda: get_strategy("static", num_tasks=2, weights=[1.0, -0.5]), ["weights=", ">= 0"]),
    (lambda: get_strategy("static", num_tasks=2, weights=[1.0, 1.0, 1.0]), ["weights"]),
    (lambda: get_strategy("ew", num_tasks=2).combine(torch.ones(2, 2)), ["losses", "1-D"]),
    (lambda: get_strategy("ew", num_tasks=2).combine(torch.ones(3)), ["losses", "2"]),
    (lambda: load_encoder(""), ["ENCODER=''", "bundled-minilm"]),
    (lambda: load_encoder(3), ["ENCODER=3", "bundled-minilm"]),
    (lambda: check_fit_arguments(0, 1e-3), ["epochs=0", "positive integer"]),
    (lambda: check_fit_arguments(2.5, 1e-3), ["epochs=2.5", "positive integer"]),
    (lambda: check_fit_arguments(3, 0), ["lr=0", "positive number"]),
    (lambda: check_fit_arguments(3, -1e-3), ["lr=-0.001", "positive number"]),
    (lambda: check_fit_arguments(3, math.nan), ["lr=nan", "positive number"]),
    (lambda: check_fit_arguments(3, 1e-3, encoder_lr=-1.0), ["encoder_lr=-1.0"]),
    (lambda: check_fit_arguments(3, 1e-3, weight_decay=-0.1), ["weight_decay=-0.1", ">= 0"]),
    (lambda: check_fit_arguments(3, 1e-3, patience=0), ["patience=0", "positive integer"]),
    (lambda: check_fit_arguments(3, 1e-3, gradient_accumulation_steps=0), ["gradient_accumulation_steps=0"]),
    (lambda: check_fit_arguments(3, 1e-3, max_grad_norm=-1.0), ["max_grad_norm=-1.0"]),
    (lambda: fit(None, [], {}, {}, epochs=-2), ["epochs=-2"]),  # checked before anything else
    (lambda: make_accelerator(mixed_precision="fp8"), ["mixed_precision='fp8'", "'bf16'"]),
    (lambda: recall_at_k(SCORES, POSITIVES, k=0), ["k=0", "positive integer"]),
    (lambda: ndcg_at_k(SCORES, POSITIVES, k=-3), ["k=-3", "positive integer"]),
    (lambda: alternating_order([2, 3], "sideways"), ["schedule='sideways'", "'round_robin'"]),
    (lambda: build_model("cgc", {}, []), ["'cgc'", "'ple'"]),
    (lambda: movielens_split(pd.DataFrame(), k=6), ["k=6", "1, 2, 3, 4, 5"]),
    (lambda: clothing_split(CLOTHING, seed=-1), ["seed=-1", "non-negative integer"]),
    (lambda: clothing_split(CLOTHING, fractions=(0.5, 0.5, 0.5)), ["fractions=", "summing to 1"]),
    (lambda: clothing_split(CLOTHING, stratify="colour"), ["'colour'"]),
]


@pytest.mark.parametrize("call, words", CASES, ids=[str(i) for i in range(len(CASES))])
def test_bad_input_gets_a_clear_error(call, words):
    with pytest.raises(ValueError) as info:
        call()
    missing = [w for w in words if w not in str(info.value)]
    assert not missing, f"message {str(info.value)!r} lacks {missing}"


RUNNER_CASES = [
    (["--profile", "fast"], "PROFILE='fast' is not valid"),
    (["-p", "PROFILE", "3"], "PROFILE=3 is not valid"),
    (["-p", "DEVICE", "gpu"], "DEVICE='gpu' is not valid"),
    (["-p", "SEED", "-3"], "SEED=-3 is not valid"),
    (["-p", "SEED", "abc"], "SEED='abc' is not valid"),
    (["--only", "42"], "no notebook numbered ['42']"),
]


@pytest.mark.parametrize("argv, message", RUNNER_CASES, ids=[a[-1] for a, _ in RUNNER_CASES])
def test_runner_rejects_bad_parameters_before_running(argv, message, capsys, tmp_path):
    assert main([*argv, "--notebooks-dir", str(NOTEBOOKS_DIR), "--output-dir", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "notebooks").exists(), "nothing may run after a bad parameter"


def test_the_battery_is_large_enough():
    assert len(CASES) + len(RUNNER_CASES) >= 30
