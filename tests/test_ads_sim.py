"""The ad-click simulator (position-based model) and its text features, on a synthetic MovieLens-shaped fixture."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mtrec_utils.data.ads_features import ad_keywords, clicked_ads, search_history, title_words
from mtrec_utils.data.ads_sim import (
    click_rate_by_position,
    examination,
    examination_curve,
    ipw_weights,
    simulate_ad_log,
    split_log,
    true_ndcg_at_k,
)

WORDS = ["Star", "Night", "City", "Dogs", "Love", "Return", "Story", "Heat", "River", "Ghost"]
GENRE_POOL = ["Action", "Comedy", "Drama", "Sci-Fi", "Children's", "Film-Noir", "Romance"]


def make_movielens(num_users: int = 40, num_items: int = 80, seed: int = 0):
    """Items, training ratings and held-out ratings with the MovieLens schema; popular movies are rated higher."""
    rng = np.random.default_rng(seed)
    ids = np.arange(1, num_items + 1)
    titles = [f"{WORDS[i % 10]} {WORDS[(3 * i + 1) % 10]} {i}, The ({1950 + i % 40})" for i in ids]
    genres = [list(rng.choice(GENRE_POOL, size=rng.integers(1, 3), replace=False)) for _ in ids]
    items = pd.DataFrame({"item_id": ids, "title": titles, "genres": genres})
    quality = rng.normal(size=num_items)
    p = np.exp(quality) / np.exp(quality).sum()
    rows = []
    for u in range(1, num_users + 1):
        n = 8 if u == num_users else int(rng.integers(30, 60))  # the last user has too few ratings
        rated = rng.choice(num_items, size=n, replace=False, p=p)
        ratings = np.clip(np.round(3 + quality[rated] + rng.normal(0, 0.7, n)), 1, 5).astype(int)
        rows.append(
            pd.DataFrame(
                {
                    "user_id": u,
                    "item_id": ids[rated],
                    "rating": ratings,
                    "timestamp": 880_000_000 + rng.permutation(n),
                }
            )
        )
    ratings = pd.concat(rows, ignore_index=True)
    held_out = rng.random(len(ratings)) < 0.5
    return items, ratings[~held_out].reset_index(drop=True), ratings[held_out].reset_index(drop=True)


@pytest.fixture(scope="module")
def ml():
    return make_movielens()


@pytest.fixture(scope="module")
def big_log(ml):
    items, train, pref = ml
    return simulate_ad_log(pref, train, items, num_slates=20_000, seed=1)


def test_slates_show_each_users_held_out_movies_once_at_positions_1_to_10(ml, big_log):
    items, train, pref = ml
    log = big_log
    assert len(log) == 20_000 * 10 and log["impression_id"].is_unique
    by_slate = log.groupby("slate_id")
    assert (by_slate["item_id"].nunique() == 10).all() and (by_slate["user_id"].nunique() == 1).all()
    assert (log["position"].to_numpy().reshape(-1, 10) == np.arange(1, 11)).all()
    truth = log.merge(pref, on=["user_id", "item_id"], how="left", suffixes=("", "_true"))
    assert truth["rating_true"].notna().all() and (truth["rating"] == truth["rating_true"]).all()
    assert (log["relevance"] == log["rating"] - 1).all()
    few = pref.groupby("user_id").size().loc[lambda c: c < 10].index
    assert len(few) and not log["user_id"].isin(few).any()  # relevance is known for every impression
    slates = log["logging_score"].to_numpy().reshape(-1, 10)
    assert (np.diff(slates, axis=1) <= 0).all()  # ranked by the logging score


@pytest.mark.parametrize("eta", [0.5, 1.0, 2.0])
def test_click_rate_per_position_matches_pbm_formula_within_sampling_error(ml, eta):
    items, train, pref = ml
    log = simulate_ad_log(pref, train, items, num_slates=20_000, eta=eta, seed=2)
    table = click_rate_by_position(log)
    curve = examination_curve(10, eta)
    assert np.allclose(table["examination"], curve)
    expected = curve * table["mean_attraction"].to_numpy()  # examination(k) * mean attraction at k
    z = (table["ctr"].to_numpy() - expected) / table["expected_se"].to_numpy()
    assert np.abs(z).max() < 4, z
    assert table["ctr"].iloc[0] > 2 * table["ctr"].iloc[-1]  # a visible position effect


def test_eta_zero_gives_no_position_effect(ml):
    items, train, pref = ml
    log = simulate_ad_log(pref, train, items, num_slates=20_000, eta=0.0, logging_policy="random", seed=3)
    assert (log["examination"] == 1.0).all()
    table = click_rate_by_position(log)
    z = (table["ctr"] - log["click"].mean()) / table["ctr_se"]
    assert np.abs(z).max() < 4, z
    assert np.allclose(examination_curve(10, 0.0), 1.0)


def test_popularity_logging_correlates_position_with_relevance(ml, big_log):
    mean_rel = big_log.groupby("position")["relevance"].mean()
    assert mean_rel.iloc[0] > mean_rel.iloc[-1] + 0.2
    items, train, pref = ml
    zero_noise = simulate_ad_log(pref, train, items, num_slates=200, logging_noise=0.0, seed=0)
    pop = train["item_id"].value_counts().reindex(zero_noise["item_id"], fill_value=0).to_numpy()
    assert (np.diff(pop.reshape(-1, 10), axis=1) <= 0).all()  # noise-free policy = pure popularity order


def test_same_seed_same_log_different_seed_different_log(ml):
    items, train, pref = ml
    a = simulate_ad_log(pref, train, items, num_slates=500, seed=7)
    b = simulate_ad_log(pref, train, items, num_slates=500, seed=7)
    c = simulate_ad_log(pref, train, items, num_slates=500, seed=8)
    pd.testing.assert_frame_equal(a, b)
    assert not a[["user_id", "item_id", "click"]].equals(c[["user_id", "item_id", "click"]])
    assert a.attrs["simulator"]["seed"] == 7 and a.attrs["simulator"]["eta"] == 1.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"eta": -0.5}, r"eta=-0.5 is not valid; it must be a number >= 0"),
        ({"click_noise": 1.5}, r"click_noise=1.5 .* >= 0.0 and <= 1.0"),
        ({"click_noise": -0.1}, r"click_noise=-0.1"),
        ({"logging_noise": -1.0}, r"logging_noise=-1.0 .* >= 0"),
        ({"slate_size": 0}, r"slate_size=0 is not valid; it must be an integer >= 1"),
        ({"slate_size": 2.5}, r"slate_size=2.5"),
        ({"slate_size": 500}, r"slate_size=500 .* no user has that many"),
        ({"num_slates": 0}, r"num_slates=0 is not valid; it must be an integer > 0"),
        ({"num_slates": True}, r"num_slates=True"),
        ({"logging_policy": "best"}, r"logging_policy='best' .* 'popularity', 'random'"),
        ({"seed": -1}, r"seed=-1"),
    ],
)
def test_parameters_are_validated(ml, kwargs, match):
    items, train, pref = ml
    with pytest.raises(ValueError, match=match):
        simulate_ad_log(pref, train, items, num_slates=kwargs.pop("num_slates", 10), **kwargs)


def test_bad_inputs_are_reported(ml):
    items, train, pref = ml
    with pytest.raises(ValueError, match=r"preference lacks column\(s\) \['rating'\]"):
        simulate_ad_log(pref.drop(columns="rating"), train, items)
    with pytest.raises(ValueError, match="not in items"):
        simulate_ad_log(pref, train, items[items["item_id"] > 5])
    with pytest.raises(ValueError, match="positions must be integers >= 1"):
        examination([0, 1, 2])


def brute_force_ndcg(scores, log, k):
    values = []
    for _, s in log.assign(score=scores).groupby("slate_id"):
        gain = (
            2.0 ** s.sort_values(["score", "position"], ascending=[False, True])["relevance"].to_numpy() - 1
        )
        ideal = np.sort(2.0 ** s["relevance"].to_numpy() - 1)[::-1]
        disc = 1 / np.log2(np.arange(2, len(s) + 2))
        if ideal[:k] @ disc[:k] > 0:
            values.append(gain[:k] @ disc[:k] / (ideal[:k] @ disc[:k]))
    return np.mean(values)


def test_true_ndcg_of_true_relevance_is_one_and_reversed_is_lower(big_log):
    train, test = split_log(big_log)
    rel = test["relevance"].to_numpy()
    assert true_ndcg_at_k(rel, test) == pytest.approx(1.0)
    reversed_ndcg = true_ndcg_at_k(-rel, test)
    logged_ndcg = true_ndcg_at_k(-test["position"].to_numpy(), test)
    assert reversed_ndcg < logged_ndcg < 1.0
    small = test[test["slate_id"] < test["slate_id"].min() + 200]
    scores = np.random.default_rng(0).integers(0, 3, len(small)).astype(float)  # many ties
    for k in (1, 5, 10):
        assert true_ndcg_at_k(scores, small, k=k) == pytest.approx(brute_force_ndcg(scores, small, k))
    with pytest.raises(ValueError, match="one per log row"):
        true_ndcg_at_k(scores[:-1], small)
    with pytest.raises(ValueError, match="k=0"):
        true_ndcg_at_k(scores, small, k=0)


def test_split_log_by_slate_in_time_order(big_log):
    train, test = split_log(big_log, test_fraction=0.25)
    assert len(train) + len(test) == len(big_log)
    assert set(train["slate_id"]).isdisjoint(test["slate_id"])
    assert train["slate_id"].max() < test["slate_id"].min()
    assert test["slate_id"].nunique() == 5_000
    with pytest.raises(ValueError, match="test_fraction=1.5"):
        split_log(big_log, test_fraction=1.5)


def test_ipw_weights_invert_the_examination_curve():
    positions = np.array([[1, 2, 10]])
    assert np.allclose(examination(positions, 2.0), [[1, 0.25, 0.01]])
    assert np.allclose(ipw_weights(positions, eta=1.0), [[1, 2, 10]])
    assert np.allclose(ipw_weights(positions, eta=1.0, max_weight=5), [[1, 2, 5]])
    with pytest.raises(ValueError, match="max_weight=0.5"):
        ipw_weights(positions, max_weight=0.5)


def test_title_words_and_keywords_contain_genres(ml, big_log):
    assert title_words("Usual Suspects, The (1995)") == ["usual", "suspects"]
    assert title_words("Schindler's List (1993)") == ["schindler's", "list"]
    assert title_words("Bloodsport 2 (1995)") == ["bloodsport", "2"]
    items = ml[0]
    keywords = ad_keywords(items)
    genres, titles = items.set_index("item_id")["genres"], items.set_index("item_id")["title"]
    sample = big_log.iloc[:2000]
    for item, words in zip(sample["item_id"], sample["keywords"].str.split(" ")):
        assert {g.lower() for g in genres[item]} <= set(words)
        assert set(title_words(titles[item])) <= set(words)
        assert words == keywords[item]


def test_search_history_uses_the_training_part_only(ml):
    items, train, pref = ml
    history = search_history(train, items)
    titles = items.set_index("item_id")["title"]
    for user, got in history.items():
        seen = train[train["user_id"] == user].sort_values("timestamp")
        assert got == titles[seen["item_id"]].tolist()  # oldest first, training titles only
        held_out_only = set(pref.loc[pref["user_id"] == user, "item_id"]) - set(seen["item_id"])
        assert not set(got) & set(titles[list(held_out_only)])
    recent = search_history(train, items, n_recent=3)
    assert all(recent[u] == history[u][-3:] for u in history.index)
    with pytest.raises(ValueError, match="n_recent=0"):
        search_history(train, items, n_recent=0)


def test_clicked_ads_come_from_the_given_log(big_log):
    train, test = split_log(big_log)
    clicked = clicked_ads(train)
    user = clicked.index[0]
    rows = train[(train["user_id"] == user) & (train["click"] == 1)]
    assert clicked[user] == rows["item_id"].tolist()
    assert sum(map(len, clicked)) == int(train["click"].sum())


def test_real_movielens_u1(data_cache):
    from mtrec_utils.data import load_movielens, movielens_split

    ml = load_movielens(data_cache)
    base, test = movielens_split(ml.ratings)
    log = simulate_ad_log(test, base, ml.items, num_slates=2_000, seed=0)
    eligible = test.groupby("user_id").size().loc[lambda c: c >= 10].index
    assert log["user_id"].isin(eligible).all() and log["click"].sum() > 0
    assert ad_keywords(ml.items)[50] == ["action", "adventure", "romance", "sci-fi", "war", "star", "wars"]
    assert (log["keywords"] == ad_keywords(ml.items).map(" ".join).reindex(log["item_id"]).to_numpy()).all()
    history = search_history(base, ml.items)
    assert len(history) == base["user_id"].nunique() and sum(map(len, history)) == len(base)
