"""PLE: shapes, gates over the right experts, whose gradients reach which experts, training, runs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from test_joint import toy_bundle

from mtrec_utils.data import GENRES
from mtrec_utils.data.tasks import movielens_tasks
from mtrec_utils.models import EntityTower
from mtrec_utils.models.sharing import CGC, PLE, SHARED, MMoEModel, PLEModel, build_model
from mtrec_utils.training.experiments import RunMemo, run_experiment, run_experiments


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: one thread is fastest on a shared machine (and workers train with one too)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _towers(dim: int = 8) -> dict:
    torch.manual_seed(0)
    return {"user": EntityTower(5, dim), "item": EntityTower(7, dim)}


def _ml_tasks():
    t = movielens_tasks(GENRES)
    return [t["rating"], t["like"], t["interest"], t["genres"]]


def _ple(num_levels: int, **kw) -> PLE:
    torch.manual_seed(0)
    sizes = {"num_task_experts": 2, "num_shared_experts": 3} | kw
    return PLE(in_dim=6, hidden=4, task_names=["a", "b"], num_levels=num_levels, **sizes).eval()


@pytest.mark.parametrize("num_levels", [1, 2])
def test_ple_layer_and_model_shapes(num_levels):
    x = torch.randn(10, 6)
    out = _ple(num_levels)(x, ["a", "b"])
    assert out.keys() == {"a", "b"} and out["a"].shape == (10, 4) and out["b"].shape == (10, 4)
    assert _ple(num_levels)(x, ["b"]).keys() == {"b"}  # one task asked for, one output
    model = build_model("ple", _towers(), _ml_tasks(), hidden=16, num_levels=num_levels)
    assert isinstance(model, PLEModel) and len(model.trunks["pair"].levels) == num_levels
    out = model({"user": torch.tensor([0, 1, 4]), "item": torch.tensor([2, 6, 0])})
    assert out["rating"].shape == (3, 1) and out["like"].shape == (3, 1) and out["interest"].shape == (3, 1)
    assert out["genres"].shape == (3, len(GENRES))
    assert ((out["rating"] >= 1) & (out["rating"] <= 5)).all()


def test_task_gates_mix_own_and_shared_experts_only():
    layer = _ple(num_levels=1)
    x = torch.randn(10, 6)
    (gates,) = layer.gate_weights(x, ["a", "b"])  # one level
    assert gates.keys() == {"a", "b"}  # no shared gate on the top level
    assert gates["a"].shape == (10, 2 + 3)  # own 2 + shared 3, not b's 2
    assert torch.allclose(gates["a"].sum(-1), torch.ones(10)) and (gates["a"] > 0).all()
    cgc = layer.levels[0]
    own = [e(x) for e in cgc.task_experts["a"]] + [e(x) for e in cgc.shared_experts]
    expected = (gates["a"].unsqueeze(-1) * torch.stack(own, dim=1)).sum(1)
    assert torch.allclose(layer(x, ["a"])["a"], expected, atol=1e-6)
    with torch.no_grad():  # task b's experts are not in a's mixture at all
        for p in cgc.task_experts["b"].parameters():
            p.add_(torch.randn_like(p))
    assert torch.allclose(layer(x, ["a"])["a"], expected, atol=1e-6)
    assert not torch.allclose(layer(x, ["a", "b"])["b"], layer(x, ["a", "b"])["a"])


def test_lower_levels_have_a_shared_gate_over_every_expert():
    layer = _ple(num_levels=2)
    x = torch.randn(10, 6)
    low, top = layer.gate_weights(x, ["a", "b"])
    assert low[SHARED].shape == (10, 2 * 2 + 3)  # both tasks' experts and the shared ones
    assert torch.allclose(low[SHARED].sum(-1), torch.ones(10))
    assert low["a"].shape == top["a"].shape == (10, 2 + 3) and SHARED not in top
    assert torch.allclose(top["b"].sum(-1), torch.ones(10))
    assert [lvl.shared_gate is not None for lvl in layer.levels] == [True, False]
    assert layer.levels[1].shared_experts[0][0].in_features == 4  # upper levels read the lower outputs


def _grad_norms(layer: PLE, loss: torch.Tensor) -> dict[str, float]:
    layer.zero_grad()
    loss.backward()

    def norm(module) -> float:
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        return float(sum(g.norm() ** 2 for g in grads) ** 0.5) if grads else 0.0

    return {
        f"{k}/{name}": norm(level.task_experts[name] if name != SHARED else level.shared_experts)
        for k, level in enumerate(layer.levels)
        for name in ("a", "b", SHARED)
    }


def test_a_task_expert_gets_no_gradient_from_another_tasks_loss():
    """What tells PLE from MMoE: a's experts are a's alone (every MMoE expert serves every task)."""
    x = torch.randn(16, 6)
    layer = _ple(num_levels=1)
    from_b = _grad_norms(layer, layer(x, ["b"])["b"].pow(2).mean())
    from_a = _grad_norms(layer, layer(x, ["a"])["a"].pow(2).mean())
    assert from_b["0/a"] == 0.0 and from_a["0/b"] == 0.0
    assert from_b["0/b"] > 0 and from_a["0/a"] > 0
    assert from_b[f"0/{SHARED}"] > 0 and from_a[f"0/{SHARED}"] > 0  # shared experts learn from both
    # two levels: a's top experts stay a's alone; below, the shared gate passes b's gradient to a's
    layer = _ple(num_levels=2)
    from_b = _grad_norms(layer, layer(x, ["b"])["b"].pow(2).mean())
    assert from_b["1/a"] == 0.0 and from_b["1/b"] > 0 and from_b[f"1/{SHARED}"] > 0
    assert from_b["0/a"] > 0 and from_b[f"0/{SHARED}"] > 0


def test_training_a_tiny_ple_lowers_both_losses():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 6, generator=g)
    w = torch.randn(6, 2, generator=g)
    targets = {"a": torch.sin(x @ w[:, 0]), "b": (x @ w[:, 1]) ** 2 / 6}  # two different tasks
    layer = _ple(num_levels=2, num_task_experts=1, num_shared_experts=1)
    heads = torch.nn.ModuleDict({n: torch.nn.Linear(4, 1) for n in targets})
    params = list(layer.parameters()) + list(heads.parameters())
    opt = torch.optim.Adam(params, lr=1e-2)

    def losses() -> dict[str, torch.Tensor]:
        hs = layer(x, ["a", "b"])
        return {n: (heads[n](hs[n]).squeeze(-1) - y).pow(2).mean() for n, y in targets.items()}

    with torch.no_grad():
        before = {n: v.item() for n, v in losses().items()}
    layer.train()
    for _ in range(60):
        opt.zero_grad()
        sum(losses().values()).backward()
        opt.step()
    layer.eval()
    with torch.no_grad():
        after = {n: v.item() for n, v in losses().items()}
    assert after["a"] < 0.7 * before["a"] and after["b"] < 0.7 * before["b"], (before, after)


def test_shared_parameters_are_towers_shared_experts_and_shared_gates():
    model = PLEModel(_towers(), _ml_tasks(), hidden=16, num_levels=2)
    shared = {id(p) for p in model.shared_parameters()}
    for ple in model.trunks.values():
        low, top = ple.levels
        assert all(id(p) in shared for p in low.shared_experts.parameters())
        assert all(id(p) in shared for p in top.shared_experts.parameters())
        assert all(id(p) in shared for p in low.shared_gate.parameters())
        for level in (low, top):
            assert not any(id(p) in shared for p in level.task_experts.parameters())
            assert not any(id(p) in shared for p in level.gates.parameters())
    assert not any(id(p) in shared for p in model.heads.parameters())
    assert all(id(p) in shared for p in model.towers.parameters())


@pytest.mark.parametrize("num_levels", [1, 2])
def test_ple_score_items_fast_path_matches_the_forward_pass(num_levels):
    model = build_model("ple", _towers(), _ml_tasks(), hidden=16, num_task_experts=2, num_levels=num_levels)
    model.eval()
    users, items = torch.tensor([0, 3]), torch.arange(7)
    u, i = model.towers["user"](users), model.towers["item"](items)
    for name in ("like", "rating", "interest"):
        assert model._fast_pair_scorer(name, u, i, users, items) is not None  # not the per-pair path
        scores = model.score_items(name, users, num_items=7)  # (2, 7)
        batch = {"user": torch.tensor([3] * 7), "item": items}
        assert torch.allclose(scores[1], model(batch, [name])[name].reshape(-1), atol=1e-6)
    model.trunks["pair"] = model.trunks["pair"].levels[0]  # not a PLE: the fast path steps aside
    assert model._pair_split(u, i, "like") is None
    assert isinstance(build_model("mmoe", _towers(), _ml_tasks()), MMoEModel)


def test_run_experiment_trains_ple_with_its_sizes_and_in_workers():
    bundle = toy_bundle()
    res = run_experiment(bundle, ["rating", "like"], epochs=1, arch="ple", strategy="pcgrad")
    assert np.isfinite(list(res.test.values())).all() and isinstance(res.model, PLEModel)
    run = dict(bundle=bundle, task_names=["rating", "interest"], epochs=1, arch="ple")
    run["arch_kwargs"] = {"num_levels": 1, "num_shared_experts": 2}
    assert RunMemo.key(run) != RunMemo.key({**run, "arch_kwargs": None})
    serial, parallel = run_experiments([run]), run_experiments([run], workers=2)
    assert len(parallel[0].model.trunks["pair"].levels) == 1  # rebuilt with the run's sizes
    assert len(parallel[0].model.trunks["pair"].levels[0].shared_experts) == 2
    assert serial[0].test == parallel[0].test


def test_run_experiment_with_ple_on_a_tiny_movielens_slice(data_cache, monkeypatch):
    from mtrec_utils.core.config import resolve_profile, set_seed
    from mtrec_utils.models.encoders import load_encoder
    from mtrec_utils.training.bundles import movielens_bundle

    monkeypatch.setenv("MTREC_DATA", str(data_cache))
    monkeypatch.setenv("MTREC_OFFLINE", "1")
    profile = dataclasses.replace(
        resolve_profile("smoke"),
        max_train_ratings=600,
        max_test_ratings=200,
        max_eval_users=15,
        max_length=16,
    )
    encoder = load_encoder("tiny-random", device="cpu")
    bundle = movielens_bundle(profile, encoder, set_seed(0), dim=8, max_val_users=15, progress=False)
    res = run_experiment(bundle, ["rating", "like", "interest"], epochs=1, arch="ple", hidden=16)
    assert 0.5 < res.test["rating/rmse"] < 2.0
    assert 0.0 <= res.test["interest/ndcg@10"] <= 1.0 and np.isfinite(res.test["like/auc"])


def test_ple_flops_are_counted_by_the_cost_model():
    from mtrec_utils.workbook import costmodel as cm

    tasks = ("rating", "like")
    hard, ple = (cm.model_flops("movielens", tasks, a, 32, 16, "train") for a in ("hard", "ple"))
    assert ple > hard > 0
    assert isinstance(cm.build_counted_model("clothing", ("recommended",), "ple", 32), PLEModel)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="num_task_experts"):
        build_model("ple", _towers(), _ml_tasks(), num_task_experts=0)
    with pytest.raises(ValueError, match="num_shared_experts"):
        build_model("ple", _towers(), _ml_tasks(), num_shared_experts=-1)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="num_levels"):
            PLE(4, 4, ["a"], num_levels=bad)
    with pytest.raises(ValueError, match="task_names"):
        CGC(4, 4, ["a", SHARED])
    with pytest.raises(ValueError, match="arch='cgc'.*'hard', 'mmoe', 'ple'"):
        build_model("cgc", _towers(), _ml_tasks())
    with pytest.raises(ValueError, match="unknown task"):
        PLEModel(_towers(), _ml_tasks())({"user": torch.tensor([0]), "item": torch.tensor([0])}, ["nope"])
