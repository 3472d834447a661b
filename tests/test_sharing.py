"""Hard sharing and MMoE: shapes, gates, what is shared, and the factory."""

from __future__ import annotations

import pytest
import torch

from mtrec_utils.data import GENRES
from mtrec_utils.data.tasks import clothing_tasks, movielens_tasks
from mtrec_utils.models import EntityTower, MultiTaskModel
from mtrec_utils.models.sharing import MMoE, MMoEModel, build_model


def _towers(dim: int = 8) -> dict:
    torch.manual_seed(0)
    return {"user": EntityTower(5, dim), "item": EntityTower(7, dim)}


def _ml_tasks():
    t = movielens_tasks(GENRES)
    return [t["rating"], t["like"], t["genres"]]


def test_mmoe_mixes_experts_with_one_softmax_gate_per_task():
    torch.manual_seed(0)
    layer = MMoE(in_dim=6, hidden=4, task_names=["a", "b"], num_experts=3).eval()  # no dropout
    x = torch.randn(10, 6)
    gates = layer.gate_weights(x, ["a", "b"])
    assert gates["a"].shape == (10, 3)
    assert torch.allclose(gates["a"].sum(-1), torch.ones(10))
    out = layer(x, ["a", "b"])
    experts = torch.stack([e(x) for e in layer.experts], dim=1)  # (10, 3, 4)
    assert torch.allclose(out["a"], (gates["a"].unsqueeze(-1) * experts).sum(1))
    assert not torch.allclose(out["a"], out["b"])  # different gates, different mixtures


def test_mmoe_model_serves_pair_and_entity_tasks_like_the_hard_sharing_model():
    tasks = _ml_tasks()
    batch = {"user": torch.tensor([0, 1, 4]), "item": torch.tensor([2, 6, 0])}
    for arch in ("hard", "mmoe"):
        model = build_model(arch, _towers(), tasks, hidden=16, num_experts=2)
        out = model(batch)
        assert out["rating"].shape == (3, 1) and out["like"].shape == (3, 1)
        assert out["genres"].shape == (3, len(GENRES))
        assert ((out["rating"] >= 1) & (out["rating"] <= 5)).all()
    assert isinstance(build_model("hard", _towers(), tasks), MultiTaskModel)
    assert isinstance(build_model("mmoe", _towers(), tasks), MMoEModel)


def test_mmoe_shared_parameters_exclude_gates_and_heads():
    model = MMoEModel(_towers(), _ml_tasks(), hidden=16, num_experts=2)
    shared = {id(p) for p in model.shared_parameters()}
    gates = [p for trunk in model.trunks.values() for p in trunk.gates.parameters()]
    assert gates and not any(id(p) in shared for p in gates)
    assert not any(id(p) in shared for p in model.heads.parameters())
    assert all(id(p) in shared for p in model.towers.parameters())
    assert all(id(p) in shared for trunk in model.trunks.values() for p in trunk.experts.parameters())


def test_mmoe_score_items_matches_the_forward_pass():
    model = MMoEModel(_towers(), _ml_tasks(), hidden=16, num_experts=2).eval()
    scores = model.score_items("like", torch.tensor([0, 3]), num_items=7)  # (2, 7)
    batch = {"user": torch.tensor([3] * 7), "item": torch.arange(7)}
    assert torch.allclose(scores[1], model(batch, ["like"])["like"].reshape(-1), atol=1e-6)


def test_mmoe_on_entity_tasks_only():
    tasks = list(clothing_tasks(["a", "b", "c"]).values())
    model = build_model("mmoe", {"item": EntityTower(9, 8)}, tasks, hidden=16)
    out = model({"item": torch.tensor([0, 8])})
    assert out["department"].shape == (2, 3) and out["recommended"].shape == (2, 1)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="arch='cgc'.*'hard', 'mmoe', 'ple'"):
        build_model("cgc", _towers(), _ml_tasks())
    with pytest.raises(ValueError, match="num_experts"):
        MMoE(4, 4, ["a"], num_experts=0)
    with pytest.raises(ValueError, match="unknown task"):
        MMoEModel(_towers(), _ml_tasks())({"user": torch.tensor([0]), "item": torch.tensor([0])}, ["nope"])
