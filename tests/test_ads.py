"""The ads case study's joint CTR + interest model: PAL position tower, position feature, position-naive."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from test_ads_sim import make_movielens

from mtrec_utils.analyses.cases import ads
from mtrec_utils.data.ads_sim import examination_curve, simulate_ad_log, split_log, true_ndcg_at_k
from mtrec_utils.data.datasets import make_loader
from mtrec_utils.training.loop import fit


@pytest.fixture(scope="module")
def world():
    items, train, pref = make_movielens(num_users=40, num_items=80, seed=0)
    log = simulate_ad_log(pref, train, items, num_slates=1_500, eta=1.0, seed=0)
    user_ids = np.arange(1, 41)
    item_ids = items["item_id"].to_numpy()
    g = torch.Generator().manual_seed(0)
    return dict(
        items=items,
        train=train,
        log=log,
        user_ids=user_ids,
        item_ids=item_ids,
        user_text=torch.randn(40, 16, generator=g),
        item_text=torch.randn(80, 16, generator=g),
    )


def make_model(world, mode, **kw):
    torch.manual_seed(0)
    feats = ads.clicked_ads_features(world["log"], world["item_text"], world["user_ids"], world["item_ids"])
    tasks = list(ads.ads_tasks().values())
    return ads.build_ads_model(
        world["user_text"], world["item_text"], tasks, mode, user_features=feats, dim=8, hidden=16, **kw
    )


def test_pal_logit_is_the_logit_of_the_product():
    r, b = torch.linspace(-8, 8, 41), torch.linspace(-6, 6, 41).flip(0)
    p = torch.sigmoid(r.double()) * torch.sigmoid(b.double())
    assert torch.allclose(ads.pal_logit(r, b).double(), torch.log(p / (1 - p)), atol=1e-3)
    assert torch.isfinite(ads.pal_logit(torch.tensor([30.0]), torch.tensor([30.0]))).all()


def test_tasks_do_not_read_the_truth():
    tasks = ads.ads_tasks()
    assert set(tasks) == {"ctr", "interest"} and tasks["ctr"].data == "impressions"
    for col in ("relevance", "rating", "click_prob"):
        assert col not in tasks["ctr"].columns and col in tasks["ctr"].leaky_columns


def test_clicked_ads_features_average_the_clicked_ads(world):
    log, item_text = world["log"], world["item_text"]
    feats = ads.clicked_ads_features(log, item_text, world["user_ids"], world["item_ids"])
    assert feats.shape == (40, 17)
    user = int(log.loc[log["click"] == 1, "user_id"].iloc[0])
    clicked = log[(log["user_id"] == user) & (log["click"] == 1)]["item_id"].to_numpy() - 1
    assert torch.allclose(feats[user - 1, :16], item_text[clicked].mean(0), atol=1e-5)
    assert feats[user - 1, 16] == pytest.approx(np.log1p(len(clicked)))
    assert (feats[39] == 0).all()  # user 40 has too few held-out ratings: never shown a slate


@pytest.mark.parametrize("mode", ads.POSITION_MODES)
def test_forward_shapes_and_serving(world, mode):
    model = make_model(world, mode).eval()
    batch = {"user": torch.tensor([0, 1, 2]), "item": torch.tensor([3, 4, 5])}
    out = model({**batch, "position": torch.tensor([1, 5, 10])})
    assert out["ctr"].shape == (3, 1) and out["interest"].shape == (3, 1)
    serve = model(batch, ["ctr"])["ctr"]
    at_one = model({**batch, "position": torch.ones(3, dtype=torch.long)}, ["ctr"])["ctr"]
    if mode == "feature":
        assert torch.allclose(serve, at_one)  # served as if at position 1
    if mode == "ignore":
        assert torch.allclose(serve, out["ctr"])  # the position changes nothing
    if mode == "pal":  # serving drops the tower: relevance logit >= click logit at any position
        assert (serve >= at_one - 1e-6).all()
    with pytest.raises(ValueError, match="position must be in 1..10"):
        model({**batch, "position": torch.tensor([0, 1, 11])})
    with pytest.raises(ValueError, match="position_mode='x'"):
        make_model(world, "x")


def test_pal_learns_a_falling_position_curve_and_helpers_agree(world):
    log = world["log"]
    train_log, test_log = split_log(log, 0.2)
    ratings = world["train"]
    u, i = world["user_ids"], world["item_ids"]
    model = make_model(world, "pal")
    tasks = list(ads.ads_tasks().values())
    loaders = {
        "impressions": make_loader(ads.impression_dataset(train_log, u, i), 512, True),
        "history": make_loader(ads.interest_dataset(ratings, u, i), 512, True),
    }
    val = {
        "impressions": make_loader(ads.impression_dataset(test_log, u, i), 4096),
        "history": make_loader(ads.interest_dataset(ratings, u, i), 4096),
    }
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: one thread is fastest on a shared machine
    try:
        fit(model, tasks, loaders, val, epochs=6, lr=3e-2, progress=False)
    finally:
        torch.set_num_threads(threads)
    curve = ads.pal_position_curve(model)
    assert curve.shape == (10,) and curve[0] == 1.0
    assert curve[-1] < 0.6 and np.corrcoef(curve, examination_curve(10))[0, 1] > 0.8
    assert np.allclose(ads.position_curve(model, test_log.iloc[:500], u, i), curve, atol=1e-3)
    metrics = ads.evaluate_ads(model, test_log, u, i)
    assert 0.5 < metrics["auc"] < 1 and metrics["logloss"] > 0 and 0 <= metrics["ece"] < 0.2
    scores = ads.serving_scores(model, test_log, u, i)
    assert metrics["true_ndcg"] == pytest.approx(true_ndcg_at_k(scores, test_log))
    with pytest.raises(ValueError, match="no position tower"):
        ads.pal_position_curve(make_model(world, "ignore"))
    assert np.allclose(ads.position_curve(make_model(world, "ignore"), test_log.iloc[:200], u, i), 1.0)


def test_reference_rankings(world):
    train_log, test_log = split_log(world["log"], 0.2)
    refs = ads.reference_rankings(train_log, test_log)
    assert set(refs) == {"logged", "random", "click_rate", "oracle"}
    assert all(len(v) == len(test_log) for v in refs.values())
    assert true_ndcg_at_k(refs["oracle"], test_log) == pytest.approx(1.0)
    assert true_ndcg_at_k(refs["random"], test_log) < true_ndcg_at_k(refs["oracle"], test_log)
    assert isinstance(
        ads.impression_dataset(test_log, world["user_ids"], world["item_ids"]).tensors["click"], torch.Tensor
    ) and pd.api.types.is_integer_dtype(test_log["position"])


def _train_modes(world, workers, modes=("pal", "ignore")):
    train_log, test_log = split_log(world["log"], 0.2)
    u, i = world["user_ids"], world["item_ids"]
    sets = {
        "impressions": ads.impression_dataset(train_log, u, i),
        "history": ads.interest_dataset(world["train"], u, i),
    }
    val = {
        "impressions": make_loader(ads.impression_dataset(test_log, u, i), 4096),
        "history": make_loader(ads.interest_dataset(world["train"], u, i), 4096),
    }
    feats = ads.clicked_ads_features(world["log"], world["item_text"], u, i)
    tasks = list(ads.ads_tasks().values())

    def build(mode):
        return ads.build_ads_model(
            world["user_text"], world["item_text"], tasks, mode, user_features=feats, dim=8, hidden=16
        )

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return ads.train_modes(
            modes,
            build,
            sets,
            val,
            tasks,
            seed=3,
            batch_size=256,
            workers=workers,
            progress=False,
            epochs=2,
            lr=3e-2,
            monitor="ctr/logloss",
        )
    finally:
        torch.set_num_threads(threads)


def test_train_modes_in_workers_gives_the_models_of_one_after_another(world):
    serial_models, serial_hist = _train_modes(world, workers=1)
    pooled_models, pooled_hist = _train_modes(world, workers=2)
    assert list(pooled_models) == list(serial_models) == ["pal", "ignore"]
    for mode in serial_models:
        a, b = serial_models[mode].state_dict(), pooled_models[mode].state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bit for bit
        pd.testing.assert_frame_equal(
            serial_hist[mode].drop(columns="seconds"), pooled_hist[mode].drop(columns="seconds")
        )
        assert serial_hist[mode].attrs["best_epoch"] == pooled_hist[mode].attrs["best_epoch"]
        assert pooled_models[mode].training == serial_models[mode].training


def test_train_modes_trains_each_mode_as_if_alone(world):
    """A paired comparison: each mode starts from the seed, whatever trained before it (the notebook's
    earlier design shared one shuffling generator, so the second model read the batches the first left)."""
    after_pal, _ = _train_modes(world, workers=1, modes=("pal", "ignore"))
    alone, _ = _train_modes(world, workers=1, modes=("ignore",))
    a, b = after_pal["ignore"].state_dict(), alone["ignore"].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="at least one position mode"):
        ads.train_modes([], None, {}, {}, [], seed=0, batch_size=8)
    with pytest.raises(ValueError, match="workers=0 is not valid"):
        ads.train_modes(["pal"], None, {}, {}, [], seed=0, batch_size=8, workers=0)
