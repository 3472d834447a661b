"""The per-step savings of joint training keep what is computed: same batches, same random draws, same
bits where promised, the same values up to float rounding where not; the step profiler runs (speed is
never asserted)."""

from __future__ import annotations

import json
from itertools import islice

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mtrec_utils.data import GENRES
from mtrec_utils.data.datasets import (
    BatchLoader,
    NegativeSamplingDataset,
    TensorDictDataset,
    _as_is,
    make_loader,
    seen_matrix,
)
from mtrec_utils.data.tasks import movielens_tasks
from mtrec_utils.models import EntityTower, FrozenText, MultiTaskModel
from mtrec_utils.models.towers import sum_parts
from mtrec_utils.training.loop import _optimizer, make_accelerator, train_one_epoch
from mtrec_utils.weighting import EqualWeighting

TASKS = movielens_tasks(GENRES)


def _ratings(n: int) -> TensorDictDataset:
    rng = np.random.default_rng(n)
    return TensorDictDataset(
        user=rng.integers(0, 7, n), item=rng.integers(0, 9, n), rating=rng.uniform(1, 5, n).astype("float32")
    )


def _negatives(generator: torch.Generator | None) -> NegativeSamplingDataset:
    rng = np.random.default_rng(0)
    u, i = rng.integers(0, 7, 40), rng.integers(0, 30, 40)
    return NegativeSamplingDataset(u, i, seen_matrix(u, i, 7, 30), num_negatives=3, generator=generator)


def _plain(dataset, batch_size: int, shuffle: bool, generator) -> DataLoader:
    """What ``make_loader`` returned before: a plain DataLoader with the batch collate skipped."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, collate_fn=_as_is)


def _walk(loaders: dict, steps: int) -> list:
    """Batches of an interleaved schedule: each step takes one batch of every loader, restarting each."""

    def forever(loader):
        while True:
            yield from loader

    iters = {k: forever(v) for k, v in loaders.items()}
    return [{k: next(it) for k, it in iters.items()} for _ in range(steps)]


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a.dtype == b.dtype and torch.equal(a, b)


@pytest.mark.parametrize("n", [20, 23, 3])  # a multiple of the batch size, not one, fewer rows than a batch
def test_batch_loader_serves_the_batches_and_draws_of_a_dataloader(n):
    """Shared generator (shuffles and negatives), several epochs, both loaders restarting as a schedule does."""
    runs = []
    for kind in (_plain, make_loader):
        torch.manual_seed(5)
        g = torch.Generator().manual_seed(3)
        loaders = {"ratings": kind(_ratings(n), 5, True, g), "pairs": kind(_negatives(g), 4, True, g)}
        batches = _walk(loaders, 17)
        runs.append((batches, g.get_state(), torch.get_rng_state()))
    (a, ga, ta), (b, gb, tb) = runs
    assert _same(a, b)
    assert torch.equal(ga, gb) and torch.equal(ta, tb)


def test_batch_loader_draws_like_a_dataloader_without_a_generator_and_unshuffled():
    runs = []
    for kind in (_plain, make_loader):
        torch.manual_seed(11)
        shuffled, ordered = kind(_ratings(13), 4, True, None), kind(_ratings(13), 4, False, None)
        batches = [list(shuffled), list(ordered), next(iter(shuffled)), list(islice(shuffled, 2))]
        runs.append((batches, torch.get_rng_state()))
    assert _same(runs[0][0], runs[1][0])
    assert torch.equal(runs[0][1], runs[1][1])


def test_batch_loader_leaves_other_settings_to_the_dataloader():
    class ListOnly(TensorDictDataset):
        def __getitems__(self, idx):
            assert isinstance(idx, list)
            return super().__getitems__(idx)

    ds = ListOnly(x=np.arange(10))
    assert [b["x"].tolist() for b in make_loader(ds, 4)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    dropping = BatchLoader(_ratings(10), batch_size=4, drop_last=True, collate_fn=_as_is)
    assert not dropping._slices_ok() and [len(b["user"]) for b in dropping] == [4, 4]
    assert isinstance(make_loader(_ratings(5), 2), DataLoader) and len(make_loader(_ratings(5), 2)) == 3


@pytest.mark.parametrize("num_parts", [1, 2, 3, 4])
def test_sum_parts_is_stack_sum_bit_for_bit(num_parts):
    torch.manual_seed(num_parts)
    parts = [torch.randn(33, 8) for _ in range(num_parts)]
    for p in parts:
        p[0, 0], p[1, :2] = -0.0, torch.tensor([0.0, -0.0])  # signed zeros: stack().sum() gives +0.0
    expected = torch.stack(parts).sum(dim=0)
    assert torch.equal(sum_parts(parts).view(torch.int32), expected.view(torch.int32))


def test_frozen_text_gathers_table_rows():
    text = FrozenText(torch.randn(9, 5))
    idx = torch.tensor([[3, 3, 0], [8, 1, 3]])
    assert torch.equal(text(idx), text.table[idx]) and torch.equal(text(idx[0]), text.table[idx[0]])


def test_text_part_projects_each_entity_once_with_the_same_values_and_gradients():
    torch.manual_seed(0)
    tower = EntityTower(12, 8, text=FrozenText(torch.randn(12, 16)))
    idx = torch.tensor([3, 1, 3, 3, 7, 1, 0, 11, 3])
    calls = []
    tower.text_proj.register_forward_hook(lambda m, args, out: calls.append(len(args[0])))
    fast = tower.text_part(idx)
    (fast * torch.arange(8.0)).sum().backward()
    grads = [p.grad.clone() for p in tower.text_proj.parameters()]
    tower.zero_grad()
    plain = tower.text_proj(tower.text(idx))
    (plain * torch.arange(8.0)).sum().backward()
    assert calls == [5, 9]  # distinct entities, then every row
    torch.testing.assert_close(fast, plain, rtol=1e-6, atol=1e-6)
    for g, p in zip(grads, tower.text_proj.parameters()):
        torch.testing.assert_close(g, p.grad, rtol=1e-5, atol=1e-6)
    assert tower.text_part(idx.reshape(3, 3)).shape == (3, 3, 8)  # other shapes: every row


def test_the_cpu_optimizer_is_fused_adamw():
    model = torch.nn.Linear(3, 2)
    opt = _optimizer(model, None, 1e-3, None, 0.1, torch.device("cpu"))
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["fused"] is True


class _Reusing(EqualWeighting):
    """Returns the same weights tensor every step, rewritten in place (as a learned strategy may)."""

    def __init__(self, k):
        super().__init__(k)
        self.buffer, self.seen = torch.zeros(k), []

    def combine(self, losses, shared_params=None, step=0):
        result = super().combine(losses, shared_params, step)
        self.buffer.copy_(torch.arange(1.0, len(losses) + 1) * (step + 1))
        self.seen.append(losses.detach().double().numpy().copy())
        result.weights = self.buffer
        return result


def test_train_one_epoch_averages_the_losses_and_weights_of_every_step():
    torch.manual_seed(0)
    ds = _ratings(50)
    tasks = [TASKS["rating"]]
    model = MultiTaskModel({"user": EntityTower(7, 4), "item": EntityTower(9, 4)}, tasks, hidden=8)
    strategy = _Reusing(1)
    acc = make_accelerator("cpu")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = make_loader(ds, 16, True, torch.Generator().manual_seed(0))
    stats, step = train_one_epoch(model, tasks, {"ratings": loader}, opt, acc, strategy, progress=False)
    assert step == 4
    expected = 0.0
    for row in strategy.seen:  # the per-step float32 values, summed in float64 step by step
        expected += np.float64(np.float32(row[0]))
    assert stats["loss/rating"] == expected / 4
    assert stats["weight/rating"] == pytest.approx((1 + 2 + 3 + 4) / 4)


def test_step_profile_reports_every_phase(data_cache, monkeypatch, tmp_path, capsys):
    from mtrec_utils.workbook.bench import main
    from mtrec_utils.workbook.step_profile import PHASES

    monkeypatch.setenv("MTREC_DATA", str(data_cache))
    monkeypatch.setenv("MTREC_OFFLINE", "1")
    out = tmp_path / "steps.json"
    args = ["steps", "--profile", "smoke", "--source", "synthetic", "--steps", "3", "--repeats", "1"]
    assert main([*args, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["phases"]) == set(PHASES) and result["steps"] == 3
    assert sum(result["phases"].values()) == pytest.approx(result["wall_seconds"], rel=1e-6)
    assert {"Linear", "Dropout", "GELU"} <= set(result["forward"])
    assert "phases (share of the step)" in capsys.readouterr().out
