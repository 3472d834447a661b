"""The cross-domain schedule and sampler, the shared adapter and training two domains together."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
from test_joint import toy_bundle

from mtrec_utils.analyses.embedding.crossdomain import (
    AdaptedText,
    CrossDomainSampler,
    SharedAdapter,
    domain_schedule,
    train_cross_domain,
    transfer_gain,
)
from mtrec_utils.data.datasets import TensorDictDataset, make_loader
from mtrec_utils.models import FrozenText
from mtrec_utils.models.sharing import build_model


def test_alternate_schedule_takes_domains_in_turn():
    assert domain_schedule({"a": 3, "b": 1}) == ["a", "b", "a", "a"]
    with pytest.raises(ValueError, match="mode='random'"):
        domain_schedule({"a": 1}, "random")
    with pytest.raises(ValueError, match="sizes"):
        domain_schedule({"a": 0})


def test_proportional_schedule_keeps_counts_and_is_seeded():
    def order(seed):
        return domain_schedule({"a": 30, "b": 10}, "proportional", torch.Generator().manual_seed(seed))

    assert Counter(order(0)) == {"a": 30, "b": 10}
    assert order(0) == order(0) and order(0) != order(1)


def test_sampler_serves_every_batch_of_every_domain_once():
    loaders = {d: make_loader(TensorDictDataset(x=torch.arange(n)), 4) for d, n in (("a", 10), ("b", 6))}
    sampler = CrossDomainSampler(loaders, "alternate")
    seen = {"a": [], "b": []}
    for d, batch in sampler:
        seen[d] += batch["x"].tolist()
    assert len(sampler) == 5 and seen == {"a": list(range(10)), "b": list(range(6))}


def test_adapter_starts_as_the_identity():
    adapter = SharedAdapter(6)
    x = torch.randn(3, 6)
    assert torch.equal(adapter(x), x)
    text = AdaptedText(FrozenText(x), adapter)
    assert text.dim == 6 and torch.equal(text(torch.tensor([2])), x[2:3])


def clothing_like_domain(adapter):
    """A second toy domain: 30 reviews read through the same adapter, one binary task."""
    from mtrec_utils.data.tasks import clothing_tasks
    from mtrec_utils.models import EntityTower

    g = torch.Generator().manual_seed(1)
    emb = torch.randn(30, 6, generator=g)
    y = (emb[:, 0] > 0).float()
    task = clothing_tasks(["a", "b"])["recommended"]
    tower = EntityTower(30, 8, text=AdaptedText(FrozenText(emb), adapter), use_id=False)
    model = build_model("hard", {"item": tower}, [task])
    data = {"reviews": make_loader(TensorDictDataset(item=torch.arange(30), recommended=y), 10)}
    return model, [task], make_loader(TensorDictDataset(item=torch.arange(30), recommended=y), 10), data


def test_training_two_domains_updates_the_shared_adapter_from_both():
    torch.manual_seed(0)
    adapter = SharedAdapter(6)
    b = toy_bundle()
    towers = {
        k: type(t)(t.num_entities, 8, text=AdaptedText(b.texts[k], adapter))
        for k, t in b.make_towers().items()
    }
    tasks_a = b.select(["rating", "like"])
    model_a = build_model("hard", towers, tasks_a)
    model_b, tasks_b, train_b, data_b = clothing_like_domain(adapter)
    before = adapter.net[-1].weight.detach().clone()
    models, tasks = {"ml": model_a, "cl": model_b}, {"ml": tasks_a, "cl": tasks_b}
    train = {"ml": b.train["ratings"], "cl": train_b}
    val, test = {"ml": b.val, "cl": data_b}, {"ml": b.test, "cl": data_b}
    g = torch.Generator().manual_seed(0)
    results = train_cross_domain(
        models, tasks, train, val, test, epochs=2, lr=1e-2, mode="proportional", generator=g
    )
    assert not torch.equal(before, adapter.net[-1].weight)
    assert set(results) == {"ml", "cl"}
    assert all(math.isfinite(v) for r in results.values() for v in r.values())
    assert 1 <= results["cl"]["best_epoch"] <= 2


def test_transfer_gain_is_positive_for_improvements():
    gain = transfer_gain({"r/rmse": 1.0, "c/auc": 0.8, "best_epoch": 3}, {"r/rmse": 0.9, "c/auc": 0.7})
    assert gain == pytest.approx({"r/rmse": 0.1, "c/auc": -0.1})


def test_domain_model_reads_text_through_the_given_adapter():
    from mtrec_utils.analyses.embedding.crossdomain import domain_model

    adapter = SharedAdapter(6)
    model, tasks = domain_model(toy_bundle(), adapter, ["rating"], use_id=False)
    assert [t.name for t in tasks] == ["rating"]
    assert model.towers["item"].id_emb is None and model.towers["user"].text.adapter is adapter
    out = model({"user": torch.tensor([0]), "item": torch.tensor([1])}, ["rating"])["rating"]
    assert out.shape == (1, 1)


def two_toy_domains():
    from mtrec_utils.analyses.embedding.crossdomain import cross_domain_over_seeds

    bundles = {"a": toy_bundle(), "b": toy_bundle(n=200)}
    kwargs = dict(text_dim=6, epochs=2, lr=1e-2)
    run = lambda seeds, **kw: cross_domain_over_seeds(  # noqa: E731
        bundles,
        {"a": "ratings", "b": "ratings"},
        {"a": ["rating", "like"], "b": ["rating"]},
        seeds,
        **kwargs,
        **kw,
    )
    return bundles, run


def test_cross_domain_runs_in_workers_equal_one_after_another_and_leave_the_bundles_alone():
    import numpy as np
    import pandas as pd

    from mtrec_utils.core.pool import can_fork

    if not can_fork():
        pytest.skip("worker processes need fork (Linux)")
    bundles, run = two_toy_domains()
    shuffle_state = bundles["a"].train["ratings"].generator.get_state()
    torch.manual_seed(123)
    serial = run([0, 1], workers=1)
    after_serial = torch.rand(3)
    torch.manual_seed(123)
    pooled = run([0, 1], workers=2)
    assert torch.equal(torch.rand(3), after_serial)  # the caller's random state, whichever way
    pd.testing.assert_frame_equal(pooled, serial)
    assert torch.equal(bundles["a"].train["ratings"].generator.get_state(), shuffle_state)
    assert set(serial["domain"]) == {"a", "b"} and set(serial["seed"]) == {0, 1}
    assert {"rating/rmse", "like/auc"} <= set(serial.loc[serial.domain == "a", "metric"])
    assert set(serial.loc[serial.domain == "b", "metric"]) >= {"rating/rmse"}
    assert np.isfinite(serial[["alone", "together", "gain"]].to_numpy()).all()
    # a seed's runs do not depend on the other seeds: seed 1 alone gives seed 1's rows
    one = run([1], workers=1).reset_index(drop=True)
    pd.testing.assert_frame_equal(one, serial[serial.seed == 1].reset_index(drop=True))


@pytest.mark.parametrize("change", ["one domain", "no seeds", "missing source"])
def test_cross_domain_over_seeds_rejects_what_it_cannot_run(change):
    from mtrec_utils.analyses.embedding.crossdomain import cross_domain_over_seeds

    bundles = {"a": toy_bundle(), "b": toy_bundle()}
    sources, tasks, seeds = {"a": "ratings", "b": "ratings"}, {"a": ["rating"], "b": ["rating"]}, [0]
    if change == "one domain":
        bundles = {"a": bundles["a"]}
    elif change == "no seeds":
        seeds = []
    else:
        sources = {"a": "ratings"}
    with pytest.raises(ValueError, match="two or more domains"):
        cross_domain_over_seeds(bundles, sources, tasks, seeds, text_dim=6, epochs=1, lr=1e-2)
