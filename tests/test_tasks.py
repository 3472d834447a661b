"""Tasks as data: definitions, leakage guard, and label checks before training."""

from __future__ import annotations

import numpy as np
import pytest

from mtrec_utils.data import GENRES
from mtrec_utils.data.tasks import (
    LOSSES,
    Task,
    clothing_tasks,
    describe_tasks,
    like_labels,
    movielens_tasks,
    validate_labels,
)

DEPTS = ["Bottoms", "Dresses", "Intimate", "Jackets", "Tops", "Trend"]


def test_movielens_tasks_cover_the_four_u1_tasks():
    tasks = movielens_tasks(GENRES)
    assert list(tasks) == ["rating", "like", "interest", "genres"]
    assert [t.kind for t in tasks.values()] == ["regression", "binary", "ranking", "multilabel"]
    assert tasks["rating"].label_range == (1.0, 5.0) and tasks["rating"].loss == "mse"
    assert tasks["like"].loss == "bce" and tasks["interest"].metrics == ("recall@10", "ndcg@10")
    assert tasks["genres"].num_outputs == 19 and tasks["genres"].input == "item"
    assert not tasks["rating"].higher_is_better() and tasks["like"].higher_is_better()


def test_clothing_tasks_never_read_a_column_that_gives_the_label_away():
    tasks = clothing_tasks(DEPTS)
    assert "rating" not in tasks["recommended"].columns and "rating" in tasks["recommended"].leaky_columns
    assert "recommended" not in tasks["rating"].columns
    for col in ("division", "department", "class_name", "clothing_id"):
        assert col not in tasks["department"].columns
    assert tasks["department"].num_outputs == len(DEPTS) and tasks["department"].loss == "cross_entropy"


def test_a_task_reading_a_leaky_column_is_rejected():
    with pytest.raises(ValueError, match="label leakage"):
        reads_rating = {"columns": ("review_text", "rating"), "leaky_columns": ("rating",)}
        Task("recommended", "binary", "recommended", "reviews", "item", ("auc",), "auc", **reads_rating)
    with pytest.raises(ValueError, match="label leakage"):
        Task("like", "binary", "like", "ratings", "pair", ("auc",), "auc", columns=("like",))


def test_bad_task_definitions_name_the_problem():
    with pytest.raises(ValueError, match="kind"):
        Task("x", "clustering", "x", "d", "pair", ("auc",), "auc")
    with pytest.raises(ValueError, match="monitor"):
        Task("x", "binary", "x", "d", "pair", ("auc",), "rmse")
    with pytest.raises(ValueError, match="num_outputs"):
        Task(
            "x",
            "multiclass",
            "x",
            "d",
            "item",
            ("accuracy",),
            "accuracy",
            num_outputs=3,
            class_names=("a", "b"),
        )


def test_validate_labels_rejects_labels_that_do_not_fit_the_loss():
    t = movielens_tasks(GENRES)
    with pytest.raises(
        ValueError, match=r"task 'rating', column 'rating'.*outside the head's range \[1, 5\]"
    ):
        validate_labels(t["rating"], [1, 3, 6])
    with pytest.raises(ValueError, match=r"task 'like', column 'like'.*0 or 1"):
        validate_labels(t["like"], [0, 1, 4])
    with pytest.raises(ValueError, match=r"task 'rating', column 'stars'.*NaN"):
        validate_labels(t["rating"], [1.0, np.nan], column="stars")
    with pytest.raises(ValueError, match="shape"):
        validate_labels(t["genres"], np.zeros((3, 5)))
    dept = clothing_tasks(DEPTS)["department"]
    with pytest.raises(ValueError, match="class ids"):
        validate_labels(dept, [0, 6])
    with pytest.raises(ValueError, match="class ids"):
        validate_labels(dept, [0.5, 1])


def test_validate_labels_returns_arrays_of_the_right_type():
    t = movielens_tasks(GENRES)
    assert validate_labels(t["rating"], [1, 5]).dtype == np.float32
    assert validate_labels(clothing_tasks(DEPTS)["department"], [0, 5]).dtype == np.int64
    assert validate_labels(t["genres"], np.eye(19)[:2]).shape == (2, 19)


def test_like_labels_threshold_at_four_stars():
    assert like_labels([1, 3, 4, 5]).tolist() == [0.0, 0.0, 1.0, 1.0]


def test_describe_tasks_has_one_row_per_task():
    table = describe_tasks(movielens_tasks(GENRES))
    assert list(table.index) == ["rating", "like", "interest", "genres"]
    assert set(table["loss"]) <= set(LOSSES.values())
