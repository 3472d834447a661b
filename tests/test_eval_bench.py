"""Fast ranking scores equal the per-pair computation; the eval benchmark runs (speed is never asserted)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mtrec_utils.analyses.embedding.space import JointEmbeddingModel
from mtrec_utils.data import GENRES
from mtrec_utils.data.datasets import RankingEval
from mtrec_utils.data.tasks import movielens_tasks
from mtrec_utils.models import EntityTower, FrozenText, MultiTaskModel
from mtrec_utils.models.baselines import MatrixFactorization
from mtrec_utils.models.fusion import FusionTower
from mtrec_utils.models.sharing import MMoEModel, build_model
from mtrec_utils.training.evaluation import evaluate, ranking_scores
from mtrec_utils.workbook.bench import main
from mtrec_utils.workbook.eval_bench import eval_bench, per_pair_ranking_scores, per_pair_score_items

TASKS = movielens_tasks(GENRES)
NUM_USERS, NUM_ITEMS = 6, 11


def _towers(dim: int = 8, tower=EntityTower, **kw) -> dict:
    return {
        kind: tower(n, dim, text=FrozenText(torch.randn(n, 5)), **kw)
        for kind, n in (("user", NUM_USERS), ("item", NUM_ITEMS))
    }


def _model(arch: str, tower=EntityTower, **kw) -> MultiTaskModel:
    """A small random model of ``arch`` serving all four tasks, biases drawn, in eval mode."""
    torch.manual_seed(0)
    model = build_model(arch, _towers(tower=tower, **kw), list(TASKS.values()), hidden=12, num_experts=3)
    with torch.no_grad():
        for p in model.parameters():  # default inits leave the biases at 0 and the ID embeddings tiny
            p.add_(0.3 * torch.randn_like(p))
    return model.eval()


def _every_pair(model, name: str, users: torch.Tensor, num_items: int) -> torch.Tensor:
    """The straightforward computation: the model's forward pass on every (user, item) pair."""
    batch = {"user": users.repeat_interleave(num_items), "item": torch.arange(num_items).repeat(len(users))}
    return model(batch, [name])[name].reshape(len(users), num_items)


@pytest.mark.parametrize("arch", ["hard", "mmoe"])
@pytest.mark.parametrize("name", ["interest", "like", "rating"])
def test_fast_scores_equal_the_forward_pass_on_every_pair(arch, name):
    model = _model(arch)
    users = torch.tensor([4, 0, 2, 2, 5])  # unordered, with a repeat
    assert model._fast_pair_scorer(  # the fast path is the one taken
        name,
        model.towers["user"](users),
        model.towers["item"](torch.arange(NUM_ITEMS)),
        users,
        torch.arange(NUM_ITEMS),
    )
    expected = _every_pair(model, name, users, NUM_ITEMS)
    for chunk in (None, 1, 2, 64):
        scores = model.score_items(name, users, NUM_ITEMS, chunk=chunk)
        assert scores.shape == (5, NUM_ITEMS)
        torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        model.score_items(name, users, NUM_ITEMS), per_pair_score_items(model, name, users, NUM_ITEMS)
    )
    if name == "rating":
        assert ((expected >= 1) & (expected <= 5)).all() and expected.std() > 0.05  # bounded, not flat


@pytest.mark.parametrize("fusion", ["concat", "gate", "attention"])
def test_fusion_towers_score_like_the_forward_pass(fusion):
    model = _model("hard", tower=FusionTower, fusion=fusion, heads=2)
    users = torch.arange(NUM_USERS)
    torch.testing.assert_close(
        model.score_items("interest", users, NUM_ITEMS), _every_pair(model, "interest", users, NUM_ITEMS)
    )


def test_models_without_the_fast_path_fall_back_to_every_pair():
    class Doubled(MultiTaskModel):  # its own pair_outputs: the fast path would ignore it
        def pair_outputs(self, u, i, users, items, names):
            return {n: 2 * v for n, v in super().pair_outputs(u, i, users, items, names).items()}

    torch.manual_seed(0)
    users, items = torch.tensor([1, 3]), torch.arange(NUM_ITEMS)
    doubled = Doubled(_towers(), [TASKS["interest"]], hidden=12).eval()
    u, i = doubled.towers["user"](users), doubled.towers["item"](items)
    assert doubled._fast_pair_scorer("interest", u, i, users, items) is None
    torch.testing.assert_close(
        doubled.score_items("interest", users, NUM_ITEMS), _every_pair(doubled, "interest", users, NUM_ITEMS)
    )
    hard = _model("hard")
    wrapped = torch.nn.Sequential(hard.trunks["pair"][0])  # a wrapped first layer: no split
    hard.trunks["pair"][0] = wrapped
    assert hard._fast_pair_scorer("interest", hard.towers["user"](users), i, users, items) is None
    torch.testing.assert_close(
        hard.score_items("interest", users, NUM_ITEMS), _every_pair(hard, "interest", users, NUM_ITEMS)
    )
    mmoe = _model("mmoe").train()  # dropout on: per pair, as before
    assert mmoe._fast_pair_scorer("like", mmoe.towers["user"](users), i, users, items) is None
    assert mmoe.score_items("like", users, NUM_ITEMS).shape == (2, NUM_ITEMS)
    assert isinstance(mmoe, MMoEModel)


def test_joint_embedding_score_items_is_the_cosine_of_every_pair():
    torch.manual_seed(0)
    towers = {k: EntityTower(n, 8) for k, n in (("user", NUM_ITEMS), ("item", NUM_ITEMS))}
    model = JointEmbeddingModel(towers).eval()
    users = torch.tensor([0, 7, 3])
    torch.testing.assert_close(
        model.score_items("interest", users, NUM_ITEMS), _every_pair(model, "interest", users, NUM_ITEMS)
    )


def _ranking_eval(seed: int = 0) -> RankingEval:
    rng = np.random.default_rng(seed)
    exclude = torch.from_numpy(rng.random((4, NUM_ITEMS)) < 0.3)
    positives = [np.flatnonzero(~row.numpy())[:2] for row in exclude]
    return RankingEval(users=torch.tensor([5, 1, 2, 0]), positives=positives, exclude=exclude)


@pytest.mark.parametrize("arch", ["hard", "mmoe", "mf"])
def test_ranking_scores_mask_training_items_and_match_the_per_pair_path(arch):
    torch.manual_seed(0)
    model = _model(arch) if arch != "mf" else MatrixFactorization(NUM_USERS, NUM_ITEMS, [TASKS["interest"]])
    data = _ranking_eval()
    scores = ranking_scores(model, TASKS["interest"], data)
    assert scores.shape == (4, NUM_ITEMS) and scores.dtype == np.float32
    assert np.isneginf(scores[data.exclude.numpy()]).all()
    assert np.isfinite(scores[~data.exclude.numpy()]).all()
    np.testing.assert_allclose(
        scores, per_pair_ranking_scores(model, TASKS["interest"], data), rtol=1e-5, atol=1e-6
    )
    results = evaluate(model, [TASKS["interest"]], {"interactions": data})
    assert set(results) == {"interest/recall@10", "interest/ndcg@10"}


def test_eval_bench_reports_both_paths_with_equal_scores(tmp_path, capsys):
    result = eval_bench("mmoe", num_users=7, num_items=30, dim=8, hidden=16, repeats=1)
    assert {
        "per_pair_s",
        "fast_s",
        "speedup",
        "speedup_cpu",
        "max_abs_diff",
        "metrics",
        "metrics_identical",
    } <= set(result)
    assert result["max_abs_diff"] < 1e-5 * max(1.0, result["max_abs_score"])
    assert result["metrics_identical"] and set(result["metrics"]) == {"per_pair", "fast"}
    assert result["speedup"] == pytest.approx(result["per_pair_s"] / result["fast_s"])
    out = tmp_path / "eval.json"
    assert main(["eval", "--users", "5", "--items", "20", "--repeats", "1", "--json", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert saved["users"] == 5 and saved["items"] == 20 and saved["max_abs_diff"] < 1e-4
    assert "speedup" in capsys.readouterr().out
    assert main(["eval", "--arch", "cgc", "--users", "5"]) == 2
    assert "arch='cgc'" in capsys.readouterr().err
