"""Fusion towers (sum, concat, gate, attention), MovieLens side features and fusion bundles."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from test_joint import toy_bundle

from mtrec_utils.models import FrozenText
from mtrec_utils.models.fusion import FUSIONS, FusionTower, movielens_side
from mtrec_utils.training.bundles import fusion_bundle
from mtrec_utils.training.experiments import run_experiment


def tower(fusion: str, **kw) -> FusionTower:
    torch.manual_seed(0)
    text = FrozenText(torch.randn(10, 6))
    cats = {"colour": torch.arange(10) % 3}
    return FusionTower(10, 8, fusion, text=text, features=torch.randn(10, 2), categories=cats, **kw)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_every_fusion_maps_indices_to_dim_and_learns(fusion):
    t = tower(fusion)
    assert t.part_names == ["id", "text", "features", "colour"]
    idx = torch.tensor([0, 3, 9])
    assert t.parts(idx).shape == (3, 4, 8)
    out = t(idx)
    assert out.shape == (3, 8) and torch.isfinite(out).all()
    out.sum().backward()
    assert t.text_proj[1].weight.grad.abs().sum() > 0  # the text part receives a gradient


def test_sum_fusion_is_the_sum_of_the_parts():
    t = tower("sum").eval()
    idx = torch.tensor([1, 2])
    assert torch.allclose(t(idx), t.parts(idx).sum(dim=1))


@pytest.mark.parametrize("fusion", ["gate", "attention"])
def test_gate_and_attention_weights_are_a_distribution_over_parts(fusion):
    t = tower(fusion).eval()
    w = t.part_weights(torch.arange(10))
    assert w.shape == (10, 4)
    assert torch.allclose(w.sum(dim=1), torch.ones(10), atol=1e-5) and (w >= 0).all()


def test_gate_with_equal_weights_equals_the_sum():
    t = tower("gate").eval()
    torch.nn.init.zeros_(t.mix.weight)
    torch.nn.init.zeros_(t.mix.bias)
    idx = torch.tensor([4, 5])
    assert torch.allclose(t(idx), t.parts(idx).sum(dim=1), atol=1e-6)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="fusion='max'"):
        FusionTower(5, 8, "max")
    with pytest.raises(ValueError, match="at least one part"):
        FusionTower(5, 8, "sum", use_id=False)
    with pytest.raises(ValueError, match="heads=3"):
        FusionTower(5, 8, "attention", heads=3)
    with pytest.raises(ValueError, match="no part weights"):
        tower("concat").part_weights(torch.tensor([0]))


def test_movielens_side_features_are_aligned_and_standardised():
    users = pd.DataFrame({"age": [20, 30, 40], "gender": ["M", "F", "M"], "occupation": ["a", "b", "c"]})
    items = pd.DataFrame({"year": [1990, None, 1994], "genres": [["Comedy"], ["Drama", "Comedy"], []]})
    side = movielens_side(users, items)
    age = side["user"]["features"]
    assert age.shape == (3, 1) and abs(float(age.mean())) < 1e-6
    assert side["user"]["categories"]["gender"].tolist() == [0, 1, 0]
    feats = side["item"]["features"]
    assert feats.shape == (3, 20) and torch.isfinite(feats).all()
    assert float(feats[1, 0]) == pytest.approx(0.0)  # the missing year is the median year
    assert feats[1, 1:].sum() == 2 and feats[2, 1:].sum() == 0


def test_fusion_bundle_trains_with_run_experiment_and_id_only_has_no_text():
    side = {"user": {"features": torch.randn(12, 2)}, "item": {"categories": {"g": torch.arange(15) % 4}}}
    fb = fusion_bundle(toy_bundle(), "gate", ("id", "text", "features", "categories"), side)
    towers = fb.make_towers()
    assert towers["user"].part_names == ["id", "text", "features"]
    assert towers["item"].part_names == ["id", "text", "g"]
    result = run_experiment(fb, ["rating", "like"], seed=0, epochs=2, lr=1e-2, device="cpu")
    assert all(math.isfinite(v) for v in result.test.values())
    id_only = fusion_bundle(toy_bundle(), "sum", ("id",)).make_towers()
    assert id_only["item"].part_names == ["id"] and id_only["item"].text is None
    with pytest.raises(ValueError, match="parts='genre'"):
        fusion_bundle(toy_bundle(), "sum", ("genre",))


def test_fusion_runs_are_reproducible_for_a_seed():
    runs = [
        run_experiment(fusion_bundle(toy_bundle(), "attention"), ["rating"], seed=3, epochs=1, device="cpu")
        for _ in range(2)
    ]
    assert np.isclose(runs[0].test["rating/rmse"], runs[1].test["rating/rmse"], rtol=1e-9)
