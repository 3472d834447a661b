"""Multi-objective tuning (NSGA-II): the front, the pick rule, the plot, and studies on a tiny u1 slice."""

from __future__ import annotations

import dataclasses

import matplotlib
import numpy as np
import pandas as pd
import pytest

from mtrec_utils.core.config import resolve_profile, set_seed
from mtrec_utils.training.bundles import movielens_bundle
from mtrec_utils.training.experiments import run_experiment
from mtrec_utils.training.tuning import (
    SearchSpace,
    make_study,
    objectives,
    pareto_mask,
    pick,
    trial_settings,
    trials_frame,
    tune,
    validation_values,
)

matplotlib.use("Agg")
import optuna  # noqa: E402

TASKS = ["rating", "like", "interest"]
GOALS = {"val/rating/rmse": "minimize", "val/like/auc": "maximize", "val/interest/ndcg@10": "maximize"}
#: a tiny slice of the real u1 split (one trial: about a second on one thread)
TINY = dataclasses.replace(
    resolve_profile("smoke"),
    max_train_ratings=2000,
    max_test_ratings=400,
    max_eval_users=15,
    max_length=16,
    batch_size=128,
)
FAST = dict(epochs=1, device="cpu")


def brute_force_front(x: np.ndarray) -> np.ndarray:
    """Row i is on the front unless some row is <= everywhere and < somewhere (all minimised)."""
    n = len(x)
    return np.array(
        [not any((x[j] <= x[i]).all() and (x[j] < x[i]).any() for j in range(n)) for i in range(n)]
    )


def test_pareto_mask_finds_the_non_dominated_rows_in_any_direction():
    x = np.array([[1.0, 5.0], [2.0, 2.0], [3.0, 3.0], [5.0, 1.0], [2.0, 2.0], [1.0, 6.0]])
    assert pareto_mask(x, ["minimize", "minimize"]).tolist() == [True, True, False, True, True, False]
    flipped = x * [1, -1]  # second objective maximised: same geometry
    assert pareto_mask(flipped, ["minimize", "maximize"]).tolist() == [True, True, False, True, True, False]
    rng = np.random.default_rng(0)
    for _ in range(5):
        y = rng.integers(0, 6, size=(40, 3)).astype(float)  # many ties
        assert np.array_equal(pareto_mask(y, ["minimize"] * 3), brute_force_front(y))
    with pytest.raises(ValueError, match="direction 'min'"):
        pareto_mask(x, ["min", "minimize"])
    with pytest.raises(ValueError, match="do not match 3 directions"):
        pareto_mask(x, ["minimize"] * 3)


def fake_frame() -> pd.DataFrame:
    """A front of three trade-offs (a balanced one, two extremes) and one dominated point."""
    rows = [
        (0, 0.90, 0.70, 0.10),  # best rating, worst like and interest
        (1, 0.95, 0.78, 0.22),  # balanced
        (2, 1.00, 0.80, 0.25),  # best like and interest
        (3, 1.00, 0.70, 0.10),  # dominated by 0
    ]
    frame = pd.DataFrame(rows, columns=["number", *GOALS])
    frame["state"] = "COMPLETE"
    frame["pareto"] = pareto_mask(frame[list(GOALS)].to_numpy(), list(GOALS.values()))
    frame.attrs["objectives"] = dict(GOALS)
    return frame


def test_pick_rules_choose_a_front_point_by_their_stated_rule():
    frame = fake_frame()
    assert frame["pareto"].tolist() == [True, True, True, False]
    # utopia: normalised distances: trial 0 (0, 1, 1) -> 1.41, trial 1 (0.5, 0.2, 0.2) -> 0.57, trial 2 (1, 0, 0) -> 1
    assert pick(frame)["number"] == 1
    # mean rank: trial 0 (1, 3, 3) -> 2.33, trial 1 (2, 2, 2) -> 2, trial 2 (3, 1, 1) -> 1.67
    assert pick(frame, "mean_rank")["number"] == 2
    tied = fake_frame().iloc[[2, 0]].reset_index(drop=True)  # two extremes, equally far from utopia
    tied["number"] = [7, 5]
    tied["pareto"] = True
    two = dict(list(GOALS.items())[:2])  # on rating and like: (1, 0) and (0, 1), both 1 from utopia
    assert pick(tied, objectives=two)["number"] == 5  # a tie goes to the lower trial number
    assert pick(tied, "mean_rank", objectives=two)["number"] == 5
    with pytest.raises(ValueError, match="rule='best'"):
        pick(frame, "best")
    with pytest.raises(ValueError, match="no Pareto point"):
        pick(frame.assign(pareto=False))
    plain = frame.copy()
    plain.attrs = {}
    with pytest.raises(ValueError, match="no objectives"):
        pick(plain)


def fake_study(seed: int, n_trials: int = 24) -> optuna.Study:
    """A study of a known trade-off in (w_rating, lr), asked and told like tune does (population 6)."""
    study = make_study(list(GOALS.values()), seed=seed, population_size=6)
    space = SearchSpace()
    for _ in range(n_trials // 6):
        batch = [study.ask() for _i in range(6)]
        for trial in batch:
            a = trial.suggest_float("w_rating", *space.weight, log=True)
            b = trial.suggest_float("lr", *space.lr, log=True)
            trial.set_user_attr("weights", [a / (a + 2), 1 / (a + 2), 1 / (a + 2)])
            trial.set_user_attr("lr", b)
            trial.set_user_attr("weight_decay", 1.0)
        for trial in batch:
            a, b = trial.params["w_rating"], trial.params["lr"]
            study.tell(trial, [1 / (1 + a) + b, a / (1 + a), 0.5 - abs(np.log10(b) + 2.5)])
    return study


def test_trials_frame_marks_optunas_pareto_front_and_the_plot_highlights_it():
    study = fake_study(seed=0)
    frame = trials_frame(study, GOALS)
    assert len(frame) == 24 and frame["state"].eq("COMPLETE").all()
    assert set(frame.loc[frame.pareto, "number"]) == {t.number for t in study.best_trials}
    assert {"lr", "weight_decay", "w_rating", "weight/rating", "weight/like", "weight/interest"} <= set(frame)
    np.testing.assert_allclose(frame[["weight/rating", "weight/like", "weight/interest"]].sum(1), 1.0)
    assert frame.attrs["objectives"] == GOALS
    assert trials_frame(fake_study(seed=0), GOALS).equals(frame)  # the sampler's seed fixes the study

    from mtrec_utils.viz.tuning import plot_pareto

    chosen = pick(frame)
    axes = plot_pareto(frame, picked=chosen, title="fake study")
    assert len(axes) == 3  # one panel per pair of objectives
    assert axes[0].get_xlabel() == "val/rating/rmse (stars, lower is better)"
    assert axes[0].get_ylabel() == "val/like/auc (higher is better)"
    dominated, front, star = (c.get_offsets() for c in axes[0].collections)
    assert len(front) == frame.pareto.sum() and len(dominated) == (~frame.pareto).sum()
    assert star.tolist() == [[chosen["val/rating/rmse"], chosen["val/like/auc"]]]
    assert "picked (trial" in axes[0].get_legend().get_texts()[2].get_text()
    with pytest.raises(ValueError, match="two or more objectives"):
        plot_pareto(frame, objectives={"val/rating/rmse": "minimize"})
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture(scope="module")
def tiny_bundle(data_cache):
    """A tiny u1 slice of the real data with the tiny random encoder."""
    from mtrec_utils.models.encoders import load_encoder

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MTREC_DATA", str(data_cache))
        mp.setenv("MTREC_OFFLINE", "1")
        return movielens_bundle(TINY, load_encoder("tiny-random", device="cpu"), set_seed(0), progress=False)


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["seconds"])


def test_a_study_is_reproducible_and_the_same_with_two_workers(tiny_bundle, one_thread):
    assert objectives(tiny_bundle, TASKS) == GOALS
    serial = tune(tiny_bundle, TASKS, n_trials=4, population_size=2, seed=3, **FAST)
    assert len(serial) == 4 and serial["state"].eq("COMPLETE").all() and serial["pareto"].any()
    assert serial[list(GOALS)].notna().all().all() and (serial["seconds"] > 0).all()
    again = tune(tiny_bundle, TASKS, n_trials=4, population_size=2, seed=3, **FAST)
    pd.testing.assert_frame_equal(comparable(again), comparable(serial))
    parallel = tune(tiny_bundle, TASKS, n_trials=4, population_size=2, seed=3, workers=2, **FAST)
    pd.testing.assert_frame_equal(comparable(parallel), comparable(serial))
    other = tune(tiny_bundle, TASKS, n_trials=2, population_size=2, seed=4, **FAST)
    assert not np.allclose(other["lr"], serial["lr"][:2])
    # a picked trial's settings train the same model again: the same validation values
    best = pick(serial)
    rerun = run_experiment(tiny_bundle, TASKS, seed=0, **trial_settings(best, TASKS), **FAST)
    assert validation_values(rerun, list(GOALS)) == [best[c] for c in GOALS]


def test_a_fixed_range_is_no_parameter_and_a_study_can_be_continued(tiny_bundle, one_thread):
    space = SearchSpace(lr=(2e-3, 2e-3))
    study = make_study(list(GOALS.values()), seed=0, population_size=2)
    first = tune(tiny_bundle, TASKS, n_trials=2, population_size=2, space=space, study=study, **FAST)
    assert "lr" not in study.trials[0].params and (first["lr"] == 2e-3).all()
    more = tune(tiny_bundle, TASKS, n_trials=2, population_size=2, space=space, study=study, **FAST)
    assert more["number"].tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="directions"):
        tune(tiny_bundle, TASKS[:2], n_trials=1, study=study, **FAST)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"task_names": ["rating"]}, "two or more tasks"),
        ({"task_names": "rating"}, "two or more tasks"),
        ({"task_names": ["rating", "genre"]}, "unknown task"),
        ({"n_trials": 0}, "n_trials=0"),
        ({"workers": 0}, "workers=0"),
        ({"workers": True}, "workers=True"),
        ({"population_size": 1}, "population_size=1"),
        ({"lr": 1e-3}, r"\['lr'\] are set by tune"),
        ({"strategy": "uw", "weight_decay": 0.1}, r"\['strategy', 'weight_decay'\] are set by tune"),
    ],
)
def test_bad_arguments_are_refused_before_any_training(tiny_bundle, changes, match):
    args = {"task_names": TASKS, "n_trials": 2} | changes
    with pytest.raises(ValueError, match=match):
        tune(tiny_bundle, **args)


@pytest.mark.parametrize(
    "space",
    [
        dict(lr=(1e-2, 1e-3)),
        dict(weight=(0.0, 1.0)),
        dict(weight_decay=(1.0,)),
        dict(lr=(1e-3, float("inf"))),
    ],
)
def test_bad_search_spaces_are_refused(space):
    with pytest.raises(ValueError, match="0 < low <= high"):
        SearchSpace(**space)


def test_a_study_needs_known_directions():
    with pytest.raises(ValueError, match="direction='min' is not valid"):
        make_study(["min", "maximize"])
