"""Profiler breakdown of one joint step: every phase measured, shares add up, bad inputs."""

from __future__ import annotations

import pytest
import torch

from mtrec_utils.analyses.finetuning.finetune import FinetuneConfig, build_model
from mtrec_utils.analyses.finetuning.profiling import PHASES, REMEDIES, profile_joint_step
from mtrec_utils.data.finetune_data import TASKS, clothing_splits
from mtrec_utils.models.encoders import load_encoder

WEIGHTS = dict.fromkeys(TASKS, 1.0)


@pytest.fixture(scope="module")
def setup():
    tiny = load_encoder("tiny-random", device="cpu")
    splits = clothing_splits(tiny.tokenizer, 16, 8, 16, torch.Generator().manual_seed(0))
    labels = {k: v[:8] for k, v in splits.labels["train"].items()}
    return tiny, splits, labels


def _profile(setup, mode, **kw):
    tiny, splits, labels = setup
    model = build_model(tiny.model, splits, FinetuneConfig(mode=mode))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    return profile_joint_step(
        model, tiny.tokenizer, splits.texts["train"][:8], labels, optimizer, WEIGHTS, max_length=16, **kw
    )


def test_every_phase_is_timed_and_shares_add_up(setup):
    table = _profile(setup, "full", steps=1)
    assert list(table.index) == list(PHASES)
    assert (table["ms_per_step"] > 0).all()
    assert table["share"].sum() == pytest.approx(1.0)
    assert table["remedy"].tolist() == [REMEDIES[p] for p in PHASES]


def test_the_step_trains(setup):
    tiny, splits, labels = setup
    model = build_model(tiny.model, splits, FinetuneConfig(mode="full"))
    before = model.heads["department"].weight.detach().clone()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    profile_joint_step(
        model, tiny.tokenizer, splits.texts["train"][:8], labels, optimizer, WEIGHTS, 16, steps=1
    )
    assert not torch.equal(before, model.heads["department"].weight)


def test_bad_inputs_raise(setup):
    tiny, splits, labels = setup
    model = build_model(tiny.model, splits, FinetuneConfig(mode="frozen"))
    opt = torch.optim.AdamW(model.heads.parameters())
    with pytest.raises(ValueError, match="steps=0"):
        profile_joint_step(model, tiny.tokenizer, splits.texts["train"][:8], labels, opt, WEIGHTS, steps=0)
    with pytest.raises(ValueError, match="match every label"):
        profile_joint_step(model, tiny.tokenizer, splits.texts["train"][:5], labels, opt, WEIGHTS)
