"""Widgets of notebooks 06 and 07: the simulator controls redraw on a slider move; "recommend for user N"
shows history, an unseen top-k and explanations, and rejects an unknown user."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from mtrec_utils.data import GENRES
from mtrec_utils.data.ads_sim import click_rate_by_position
from mtrec_utils.data.tasks import movielens_tasks
from mtrec_utils.models import EntityTower, MultiTaskModel
from mtrec_utils.viz.case_widgets import (
    RecommendForUser,
    SimulatorControls,
    UserRecommender,
    draw_click_curve,
)


def fake_log(eta=1.0, click_noise=0.1, slate_size=10, n=400, seed=0):
    rng = np.random.default_rng(seed)
    pos = np.tile(np.arange(1, slate_size + 1), n)
    p = np.clip((1.0 / pos) ** eta * 0.5 + click_noise * 0.1, 0, 1)
    return pd.DataFrame(
        {"position": pos, "click": (rng.random(len(pos)) < p).astype("int8"), "click_prob": p}
    )


def test_click_curve_is_drawn_with_labelled_axes():
    fig = draw_click_curve(click_rate_by_position(fake_log()), 1.0)
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("position") and "click rate" in ax.get_ylabel()
    assert len(ax.lines) >= 2 and "4,000 impressions" in ax.get_title()


def test_simulator_controls_resimulate_and_redraw_on_each_slider():
    calls = []

    def simulate(**kw):
        calls.append(kw)
        return fake_log(**kw)

    view = SimulatorControls(simulate)
    first_image, first_top = view.image.value, view.table["ctr"].iloc[0]
    view.eta.value = 2.0
    assert calls[-1] == {"eta": 2.0, "click_noise": 0.1, "slate_size": 10}
    assert view.image.value != first_image
    view.slate.value = 5
    assert len(view.table) == 5 and calls[-1]["slate_size"] == 5
    view.noise.value = 0.3
    assert calls[-1]["click_noise"] == pytest.approx(0.3) and view.table["ctr"].iloc[0] != first_top


@pytest.fixture(scope="module")
def recommender():
    torch.manual_seed(0)
    tasks = movielens_tasks(GENRES)
    model = MultiTaskModel({"user": EntityTower(5, 8), "item": EntityTower(30, 8)}, [tasks["interest"]])
    users = np.array([0, 0, 0, 1, 1, 2])
    items = np.array([3, 4, 5, 3, 7, 9])
    likes = np.array([1, 1, 0, 1, 0, 0])
    return UserRecommender.build(
        model, np.arange(1, 6), [f"movie {i}" for i in range(30)], users, items, likes
    )


def test_recommend_shows_unseen_items_with_scores_and_explanations(recommender):
    table = recommender.recommend(1, k=10)
    assert len(table) == 10 and list(table.index) == list(range(1, 11))
    assert not set(table["title"]) & {"movie 3", "movie 4", "movie 5"}  # rated in training
    assert table["score"].is_monotonic_decreasing
    assert table["because you liked"].str.contains("movie 3|movie 4").all()
    assert {"user:id", "item:id"} <= set(table.columns)
    assert recommender.history(1) == ["movie 3", "movie 4"] and recommender.history(3) == []
    model, titles = recommender.model, recommender.titles
    wider = UserRecommender.build(
        model, np.arange(1, 6), titles, [0], [3], [1], rated_user=[0, 0], rated_item=[3, 11]
    )
    shown = set(wider.recommend(1, k=28)["title"])
    assert "movie 11" not in shown and "movie 4" in shown
    with pytest.raises(ValueError, match="user_id=99 is not a MovieLens user; choose one of 1..5"):
        recommender.recommend(99)


def test_recommend_for_user_widget_updates_when_the_user_changes(recommender):
    view = RecommendForUser(recommender, user_id=1, k=5)
    assert "<b>user 1</b> liked in training: movie 3; movie 4" in view.html.value
    view.user.value = 3
    assert "<b>user 3</b>" in view.html.value and "a cold user" in view.html.value
    assert view.html.value.count("<tr") == 5 + 2  # header rows + 5 items
