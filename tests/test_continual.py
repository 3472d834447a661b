"""Continual learning on time-ordered MovieLens (notebook 10, section 1): split, methods, metrics, plots."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from mtrec_utils.analyses.outlook import continual as C
from mtrec_utils.data import GENRES
from mtrec_utils.data.datasets import TensorDictDataset
from mtrec_utils.data.movielens import MovieLens
from mtrec_utils.data.tasks import movielens_tasks
from mtrec_utils.models.sharing import build_model
from mtrec_utils.models.towers import EntityTower


def fake_movielens(
    num_ratings: int = 800, num_users: int = 30, num_items: int = 40, seed: int = 0
) -> MovieLens:
    """MovieLens-shaped tables: distinct (user, item) pairs, shuffled timestamps with ties."""
    rng = np.random.default_rng(seed)
    pairs = rng.choice(num_users * num_items, size=num_ratings, replace=False)
    ratings = pd.DataFrame(
        {
            "user_id": pairs // num_items + 1,
            "item_id": pairs % num_items + 1,
            "rating": rng.integers(1, 6, num_ratings),
            "timestamp": 880_000_000 + rng.integers(0, 400, num_ratings) * 1000,
        }
    )
    users = pd.DataFrame(
        {
            "user_id": np.arange(1, num_users + 1),
            "age": 30,
            "gender": "F",
            "occupation": "writer",
            "zip_code": "00000",
        }
    )
    items = pd.DataFrame(
        {
            "item_id": np.arange(1, num_items + 1),
            "title": [f"Movie {i} (1995)" for i in range(1, num_items + 1)],
            "year": 1995,
            "release_date": "",
            "genres": [["Drama"]] * num_items,
        }
    )
    return MovieLens(ratings, items, users, "test")


def tiny_data(ml: MovieLens | None = None, seed: int = 0) -> C.ContinualData:
    sizes = replace(C.CONTINUAL_SIZES["smoke"], max_ratings=None, epochs=1, batch_size=64)
    return C.prepare_continual(ml or fake_movielens(), None, sizes, seed=seed, device="cpu", progress=False)


def tiny_model(num_users: int = 30, num_items: int = 40):
    torch.manual_seed(0)
    tasks = [movielens_tasks(GENRES)[n] for n in C.TASKS]
    towers = {"user": EntityTower(num_users, dim=8), "item": EntityTower(num_items, dim=8)}
    return build_model("hard", towers, tasks, hidden=16, dropout=0.0), tasks


def batch_of(n: int = 32, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    rating = torch.randint(1, 6, (n,), generator=g).float()
    return {
        "user": torch.randint(0, 30, (n,), generator=g),
        "item": torch.randint(0, 40, (n,), generator=g),
        "rating": rating,
        "like": (rating >= 4).float(),
    }


# --- the split --------------------------------------------------------------------------------


def test_split_is_time_ordered_complete_equal_and_deterministic():
    ratings = fake_movielens().ratings
    periods = C.split_by_time(ratings, 4, test_fraction=0.2, seed=3)
    assert [p.index for p in periods] == [0, 1, 2, 3]
    for before, after in zip(periods, periods[1:]):  # every rating of a period precedes the next period's
        last = pd.concat([before.train, before.test])["timestamp"].max()
        assert last <= pd.concat([after.train, after.test])["timestamp"].min()
    rows = np.concatenate([np.r_[p.train.index, p.test.index] for p in periods])
    assert sorted(rows) == list(ratings.index)  # every rating exactly once
    sizes = [len(p.train) + len(p.test) for p in periods]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == len(ratings)
    assert all(len(p.test) == round(0.2 * (len(p.train) + len(p.test))) for p in periods)
    again = C.split_by_time(ratings, 4, test_fraction=0.2, seed=3)
    for a, b in zip(periods, again):
        pd.testing.assert_frame_equal(a.train, b.train)
        pd.testing.assert_frame_equal(a.test, b.test)
    other = C.split_by_time(ratings, 4, test_fraction=0.2, seed=4)
    assert not periods[0].test.index.equals(other[0].test.index)  # the seed draws the test parts


def test_split_on_real_data_matches_the_period_boundaries(data_cache):
    from mtrec_utils.data import load_movielens

    ratings = load_movielens(data_cache).ratings
    periods = C.split_by_time(ratings, 4)
    assert [len(p.train) + len(p.test) for p in periods] == [25_000] * 4
    table = C.describe_periods(periods)
    assert table["new users (share)"].iloc[0] == 1.0 and (table["new users (share)"].iloc[1:] < 1).all()
    assert str(table["from"].iloc[0]) == "1997-09-20" and str(table["to"].iloc[-1]) == "1998-04-22"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_periods": 1}, "num_periods"),
        ({"num_periods": 0}, "num_periods"),
        ({"num_periods": 2.5}, "num_periods"),
        ({"num_periods": 4, "test_fraction": 0.0}, "test_fraction"),
        ({"num_periods": 4, "test_fraction": 1}, "test_fraction"),
    ],
)
def test_split_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        C.split_by_time(fake_movielens().ratings, **kwargs)


# --- replay -----------------------------------------------------------------------------------


def test_reservoir_keeps_at_most_its_size_and_only_rows_offered():
    buffer = C.ReservoirBuffer(50, torch.Generator().manual_seed(0))
    buffer.add(range(30))
    assert sorted(buffer.rows) == list(range(30))  # fewer than its size: keeps all
    buffer.add(range(30, 1000))
    assert len(buffer) == 50 and buffer.seen == 1000
    assert set(buffer.rows) <= set(range(1000)) and len(set(buffer.rows)) == 50
    assert np.mean(buffer.rows) > 200  # later rows get in too (uniform sample: mean about 500)
    with pytest.raises(ValueError, match="buffer_size"):
        C.ReservoirBuffer(0)


def test_replay_trains_on_the_new_period_and_past_rows_only(monkeypatch):
    data = tiny_data()
    method = C.Replay(data, buffer_size=40)
    seen = {}
    monkeypatch.setattr(method, "_fit", lambda train, t, strategy=None: seen.setdefault(t, train))
    method.start(tiny_model()[0])
    assert set(method.buffer.rows) <= set(data.train[0].index)
    for t in (1, 2):
        method.learn(t)
        used = seen[t]
        new = used.index.isin(data.train[t].index)
        past = set(pd.concat(data.train[:t]).index)
        assert new.sum() == len(data.train[t]) and set(used.index[~new]) <= past
        assert (~new).sum() == 40 and method.stored_ratings == 40
        assert set(method.buffer.rows) <= past | set(data.train[t].index)


# --- EWC --------------------------------------------------------------------------------------


def test_ewc_penalty_is_zero_at_the_anchor_quadratic_and_weighted_by_the_fisher():
    theta = torch.nn.Parameter(torch.tensor([1.0, 2.0, 3.0]))
    anchor, fisher = theta.detach().clone(), torch.tensor([2.0, 0.0, 0.5])
    penalty = C.EWCPenalty([theta], [anchor], [fisher], lam=10.0)
    assert penalty.penalty().item() == 0.0
    delta = torch.tensor([0.1, 5.0, -0.2])
    with torch.no_grad():
        theta.copy_(anchor + delta)
    expected = 0.5 * 10.0 * float((fisher * delta**2).sum())  # the middle entry has Fisher 0: free
    assert penalty.penalty().item() == pytest.approx(expected)
    with torch.no_grad():
        theta.copy_(anchor + 2 * delta)
    assert penalty.penalty().item() == pytest.approx(4 * expected)
    assert list(penalty.parameters()) == []  # the model's parameters are not the strategy's
    losses = torch.tensor([0.3, 0.7], requires_grad=True)
    result = penalty.combine(losses)
    assert result.loss.item() == pytest.approx(1.0 + 4 * expected)
    result.backward()
    assert torch.allclose(theta.grad, 10.0 * fisher * 2 * delta)  # d/dtheta: lambda * F * (theta - anchor)


def test_ewc_penalty_rejects_bad_arguments():
    p = torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(ValueError, match="ewc_lambda"):
        C.EWCPenalty([p], [p.detach()], [torch.ones(3)], lam=-1.0)
    with pytest.raises(ValueError, match="shapes"):
        C.EWCPenalty([p], [torch.zeros(2)], [torch.ones(3)], lam=1.0)
    with pytest.raises(ValueError, match="anchors"):
        C.EWCPenalty([p], [], [], lam=1.0)


def test_diagonal_fisher_is_nonnegative_and_zero_where_no_data_reaches():
    model, tasks = tiny_model()
    batch = batch_of(64)
    batch["user"] = batch["user"] % 10  # users 10..29 never appear
    ds = TensorDictDataset(**batch)
    fisher = C.diagonal_fisher(model, tasks, ds, batch_size=16)
    params = [p for p in model.parameters() if p.requires_grad]
    assert [f.shape for f in fisher] == [p.shape for p in params]
    assert all((f >= 0).all() for f in fisher)
    rows = dict(zip([n for n, p in model.named_parameters() if p.requires_grad], fisher))
    user_rows = rows["towers.user.id_emb.weight"]
    assert user_rows[10:].abs().sum() == 0 and user_rows[:10].abs().sum() > 0
    assert all(p.grad is None for p in params)


# --- adapters ---------------------------------------------------------------------------------


def test_adapters_leave_the_frozen_base_unchanged():
    model, tasks = tiny_model()
    model.eval()
    batch = batch_of()
    before_out = model(batch)["rating"].detach().clone()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    adapters = C.PeriodAdapters(model, rank=2)
    assert len(adapters.layers) == 2  # the pair trunk's two Linear layers
    k = adapters.add()
    assert torch.equal(model(batch)["rating"], before_out)  # a new update starts at zero
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(trainable) == 4 and sum(p.numel() for p in trainable) == adapters.num_parameters(k)
    opt = torch.optim.SGD(trainable, lr=0.5)
    for _ in range(5):
        loss = (model(batch)["rating"].squeeze(-1) - batch["rating"]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert not torch.equal(model(batch)["rating"], before_out)  # the update learnt something
    after = model.state_dict()
    for name, value in before.items():  # every base weight as it was (wrapped Linears: under .base)
        wrapped = name.replace(".weight", ".base.weight").replace(".bias", ".base.bias")
        assert torch.equal(after.get(name, after.get(wrapped)), value), name
    adapters.use(None)
    assert torch.equal(model(batch)["rating"], before_out)
    k2 = adapters.add()
    assert k2 == 1 and all(
        not p.requires_grad for p in [*adapters.layers[0].down[:1], *adapters.layers[0].up[:1]]
    )


def test_adapter_method_trains_only_its_update_and_the_rows_of_new_ids():
    ml = fake_movielens()
    ml.ratings["timestamp"] += ml.ratings["user_id"] * 10**6  # users arrive one after another
    data = tiny_data(ml)
    method = C.Adapter(data, rank=2, new_ids=True)
    method.start(tiny_model()[0])
    model = method.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    method.learn(1)
    after = model.state_dict()
    new_users = set(data.train[1]["user_id"]) - set(data.train[0]["user_id"])
    assert new_users
    is_new = torch.as_tensor(np.isin(data.users, list(new_users)))
    for key in ("towers.user.id_emb.weight", "biases.user.weight"):
        assert torch.equal(after[key][~is_new], before[key][~is_new]), key  # users seen before: untouched
        assert not torch.equal(after[key][is_new], before[key][is_new]), key  # new users: trained
    rows = {f"towers.{k}.id_emb.weight" for k in ("user", "item")} | {
        f"biases.{k}.weight" for k in ("user", "item")
    }
    assert any(".base." in k for k in before)  # the trunk's Linears were wrapped by start()
    for key in set(before) - rows:  # everything else, the frozen trunk and heads included, as it was
        assert torch.equal(after[key], before[key]), key
    assert len(after) > len(before)  # plus the period's update
    assert not any(p.requires_grad for p in [model.towers["user"].id_emb.weight, model.biases["user"].weight])
    assert method.extra_parameters > method.adapters.num_parameters(0)
    assert method.model_for(0) is model and method.adapters.layers[0].active is None
    method.model_for(3)
    assert method.adapters.layers[0].active == 0  # a period not trained yet: the latest update


# --- metrics ----------------------------------------------------------------------------------


def test_forgetting_on_a_hand_made_matrix():
    rmse = np.array(
        [
            [1.00, 1.20, 1.30],
            [0.95, 0.90, 1.25],
            [1.10, 1.00, 0.85],
        ]
    )
    # period 0: best before the end 0.95, final 1.10 -> 0.15; period 1: best 0.90, final 1.00 -> 0.10
    np.testing.assert_allclose(C.forgetting(rmse, higher_is_better=False), [0.15, 0.10])
    auc = np.array([[0.70, 0.5], [0.65, 0.72]])
    np.testing.assert_allclose(C.forgetting(auc, higher_is_better=True), [0.05])
    improved = np.array([[1.0, 1.2], [0.9, 0.8]])
    np.testing.assert_allclose(C.forgetting(improved, higher_is_better=False), [-0.1])  # backward transfer
    with pytest.raises(ValueError, match="square"):
        C.forgetting(np.zeros((2, 3)), higher_is_better=False)
    with pytest.raises(ValueError, match="square"):
        C.forgetting(np.zeros((1, 1)), higher_is_better=False)


def test_summary_reads_the_diagonal_the_last_row_and_the_costs():
    a = np.array([[1.0, 1.2], [1.1, 0.9]])
    auc = np.array([[0.7, 0.6], [0.68, 0.75]])
    table = C.summarize({"naive": {"rating/rmse": a, "like/auc": auc}}, {"naive": {"seconds": 2.0}})
    row = table.loc["naive"]
    assert row["new_period_rmse"] == pytest.approx(0.95) and row["final_rmse"] == pytest.approx(1.0)
    assert row["forgetting_rmse"] == pytest.approx(0.1) and row["forgetting_auc"] == pytest.approx(0.02)
    assert row["seconds"] == 2.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"methods": ["naive", "gem"]}, "method"),
        ({"methods": []}, "methods"),
        ({"methods": ["naive", "naive"]}, "methods"),
        ({"profile": "laptop"}, "PROFILE"),
        ({"buffer": 10}, "unknown size"),
    ],
)
def test_run_continual_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        C.run_continual(encoder=None, movielens=fake_movielens(), progress=False, **kwargs)


def test_tiny_end_to_end_run_gives_finite_numbers_for_every_method(data_cache):
    from mtrec_utils.data import load_movielens

    ml = load_movielens(data_cache)
    result = C.run_continual(
        "smoke",
        None,
        seed=0,
        movielens=ml,
        device="cpu",
        progress=False,
        max_ratings=2_000,
        epochs=1,
        batch_size=512,
        hidden=16,
        dim=8,
    )
    assert list(result.summary.index) == list(C.METHODS)
    assert np.isfinite(result.summary.to_numpy(dtype=float)).all()
    for method, by_metric in result.matrices.items():
        for metric, a in by_metric.items():
            assert a.shape == (4, 4) and np.isfinite(a).all(), (method, metric)
        np.testing.assert_array_equal(by_metric["rating/rmse"][0], result.matrices["naive"]["rating/rmse"][0])
    assert result.summary.loc["adapter", "forgetting_rmse"] == pytest.approx(0.0, abs=0.02)
    assert result.summary.loc["replay", "stored_ratings"] == C.CONTINUAL_SIZES["smoke"].buffer_size
    assert result.summary.loc["naive", "stored_ratings"] == 0
    recorded = result.metrics_to_record()
    for m in C.METHODS:
        assert f"ml_continual_forgetting_{m}" in recorded and f"ml_continual_new_period_rmse_{m}" in recorded
    assert len(result.accuracy) == len(C.METHODS) * 2 * 16
    assert result.matrix("ewc").shape == (4, 4)


def _tiny_continual(ml, **kwargs):
    sizes = dict(max_ratings=2_000, epochs=1, batch_size=512, hidden=16, dim=8)
    return C.run_continual(
        "smoke", None, seed=0, movielens=ml, device="cpu", progress=False, **sizes, **kwargs
    )


def test_methods_trained_in_workers_equal_one_after_another_bit_for_bit(data_cache):
    from mtrec_utils.core.pool import can_fork
    from mtrec_utils.data import load_movielens

    if not can_fork():
        pytest.skip("worker processes need fork (Linux)")
    ml = load_movielens(data_cache)
    serial = _tiny_continual(ml, workers=1)
    pooled = _tiny_continual(ml, workers=2)
    alone = _tiny_continual(ml, workers=1, methods=["ewc"])  # no other method ran before it
    assert list(pooled.summary.index) == list(C.METHODS) == list(serial.matrices)
    for method, by_metric in serial.matrices.items():
        for metric, a in by_metric.items():
            np.testing.assert_array_equal(pooled.matrices[method][metric], a, err_msg=f"{method} {metric}")
    for metric, a in serial.matrices["ewc"].items():
        np.testing.assert_array_equal(alone.matrices["ewc"][metric], a)
    costs = ["stored_ratings", "extra_parameters"]
    pd.testing.assert_frame_equal(pooled.summary[costs], serial.summary[costs])


def test_run_continual_rejects_a_bad_workers_count():
    with pytest.raises(ValueError, match="workers"):
        C.run_continual(encoder=None, movielens=fake_movielens(), progress=False, workers=0)


def test_methods_start_costliest_first():
    assert sorted(C.METHODS, key=lambda m: -C.METHOD_COST[m])[0] == "scratch"
    assert set(C.METHOD_COST) == set(C.METHODS)


# --- plots ------------------------------------------------------------------------------------


def test_plots_label_their_axes_and_reject_bad_input(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mtrec_utils.viz.continual import plot_accuracy_matrices, plot_forgetting_and_cost

    a = np.array([[1.0, 1.2], [1.1, 0.9]])
    auc = np.array([[0.7, 0.6], [0.68, 0.75]])
    matrices = {
        "naive": {"rating/rmse": a, "like/auc": auc},
        "replay": {"rating/rmse": a - 0.05, "like/auc": auc},
    }
    fig = plot_accuracy_matrices(matrices, "like/auc", path=tmp_path / "m.png")
    heatmaps = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in heatmaps] == ["naive", "replay"]
    assert (
        heatmaps[0].get_ylabel() == "trained through period"
        and heatmaps[1].get_xlabel() == "tested on period"
    )
    assert (tmp_path / "m.png").stat().st_size > 0
    costs = {"naive": {"seconds": 1.0, "stored_ratings": 0}, "replay": {"seconds": 1.5, "stored_ratings": 40}}
    summary = C.summarize(matrices, costs)
    fig2 = plot_forgetting_and_cost(summary)
    assert all(ax.get_ylabel() and ax.get_xlabel() == "method" for ax in fig2.axes)
    with pytest.raises(ValueError, match="metric"):
        plot_accuracy_matrices(matrices, "rating/mae")
    with pytest.raises(ValueError, match="empty"):
        plot_accuracy_matrices({})
    with pytest.raises(ValueError, match="columns"):
        plot_forgetting_and_cost(summary.drop(columns="seconds"))
    plt.close("all")
