"""Tasks as data: one :class:`Task` entry per prediction task (the article's T_1 ... T_k).

A task says what it predicts (``label``), from which data (``data``, a key of the training
loaders), what its head sees (``input``: a user-item pair, or one entity), its loss, its metrics
and which input columns it reads (``columns``). Adding a task is adding one entry; the
training loop (:mod:`mtrec_utils.training.loop`) never changes.

MovieLens-100K on the u1 split: ``rating`` (regression), ``like`` (rating >= 4, binary),
``interest`` (rank the user's held-out liked items among the items they have not rated) and
``genres`` (multi-label, one row per item). Clothing reviews: ``recommended`` (binary),
``rating`` (regression) and ``department`` (multi-class).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mtrec_utils.core.config import check_choice

KINDS = ("regression", "binary", "multiclass", "multilabel", "ranking")
INPUTS = ("pair", "item", "user")
LOSSES = {  # kind -> loss name (see mtrec_utils.models.heads.task_loss)
    "regression": "mse",
    "binary": "bce",
    "multiclass": "cross_entropy",
    "multilabel": "bce",
    "ranking": "bce_sampled",
}
LOWER_IS_BETTER = ("rmse", "mae", "logloss")


@dataclass(frozen=True)
class Task:
    """One prediction task.

    Attributes:
        name: short name, unique among the tasks trained together (``"rating"``).
        kind: ``regression`` | ``binary`` | ``multiclass`` | ``multilabel`` | ``ranking``.
        label: the column (key of the training batch) holding the label.
        data: the training data it reads (key of the loaders dict, e.g. ``"ratings"``).
        input: what its head sees: ``"pair"`` (user and item) or one entity (``"item"``/``"user"``).
        metrics: metric names computed on evaluation (``"rmse"``, ``"auc"``, ``"ndcg@10"``, ...).
        monitor: the metric that early stopping watches.
        columns: the input columns the task reads (documentation and leakage check).
        num_outputs: width of the head's output (1, the number of classes or of labels).
        label_range: ``(low, high)`` for a bounded regression head, else ``None``.
        class_names: names of the classes or labels (multi-class / multi-label).
        leaky_columns: columns that must never be inputs, because they give the label away.
    """

    name: str
    kind: str
    label: str
    data: str
    input: str
    metrics: tuple[str, ...]
    monitor: str
    columns: tuple[str, ...] = ()
    num_outputs: int = 1
    label_range: tuple[float, float] | None = None
    class_names: tuple[str, ...] = ()
    leaky_columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_choice(f"Task({self.name!r}).kind", self.kind, KINDS)
        check_choice(f"Task({self.name!r}).input", self.input, INPUTS)
        if self.monitor not in self.metrics:
            raise ValueError(
                f"task {self.name!r}: monitor={self.monitor!r} is not one of its metrics {self.metrics}"
            )
        leaks = sorted(set(self.columns) & (set(self.leaky_columns) | {self.label}))
        if leaks:
            raise ValueError(f"task {self.name!r}: input columns {leaks} give the label away (label leakage)")
        if self.kind in ("multiclass", "multilabel") and self.num_outputs != len(self.class_names):
            raise ValueError(
                f"task {self.name!r}: num_outputs={self.num_outputs} != {len(self.class_names)} classes"
            )

    @property
    def loss(self) -> str:
        """Name of the loss this task is trained with (``mse``, ``bce``, ``cross_entropy``, ...)."""
        return LOSSES[self.kind]

    def higher_is_better(self, metric: str | None = None) -> bool:
        """Whether a larger value of ``metric`` (default: ``monitor``) is better."""
        return (metric or self.monitor) not in LOWER_IS_BETTER


def validate_labels(task: Task, labels, column: str | None = None) -> np.ndarray:
    """Check that ``labels`` fit ``task``'s loss, and return them as a NumPy array.

    Args:
        task: the task.
        labels: (N,) labels, or (N, num_outputs) for multi-label.
        column: the column name to quote in errors (default: ``task.label``).

    Returns:
        float32 array for regression/binary/multilabel/ranking, int64 for multiclass.

    Raises:
        ValueError: naming the task and the column, for NaN labels, ratings outside a bounded
            head's range, non-binary labels of a binary task, or class ids out of range.
    """
    column = column or task.label
    where = f"task {task.name!r}, column {column!r}"
    y = np.asarray(labels, dtype=np.float64)
    if y.size == 0:
        raise ValueError(f"{where}: no labels")
    if not np.isfinite(y).all():
        raise ValueError(
            f"{where}: {int((~np.isfinite(y)).sum())} labels are NaN or infinite; drop or fill them"
        )
    if task.kind == "multilabel":
        if y.ndim != 2 or y.shape[1] != task.num_outputs:
            raise ValueError(f"{where}: want shape (N, {task.num_outputs}), got {y.shape}")
    elif y.ndim != 1:
        raise ValueError(f"{where}: want one label per row, shape (N,), got {y.shape}")
    if task.kind in ("binary", "multilabel", "ranking") and not np.isin(y, (0.0, 1.0)).all():
        bad = np.unique(y[~np.isin(y, (0.0, 1.0))])[:5]
        raise ValueError(f"{where}: a {task.kind} task needs labels 0 or 1, found {bad.tolist()}")
    if task.kind == "regression" and task.label_range is not None:
        lo, hi = task.label_range
        if y.min() < lo or y.max() > hi:
            raise ValueError(
                f"{where}: labels span [{y.min():g}, {y.max():g}], outside the head's range [{lo:g}, {hi:g}]"
            )
    if task.kind == "multiclass":
        if not (np.equal(np.mod(y, 1), 0).all() and y.min() >= 0 and y.max() < task.num_outputs):
            raise ValueError(f"{where}: class ids must be integers in 0..{task.num_outputs - 1}")
        return y.astype(np.int64)
    return y.astype(np.float32)


def like_labels(ratings, threshold: float = 4.0) -> np.ndarray:
    """The ``like`` label: 1.0 where rating >= ``threshold``, else 0.0. Shape (N,)."""
    return (np.asarray(ratings, dtype=np.float64) >= threshold).astype(np.float32)


def movielens_tasks(genres: Sequence[str], k: int = 10) -> dict[str, Task]:
    """The four MovieLens u1 tasks, keyed by name.

    Args:
        genres: the genre names (``mtrec_utils.data.GENRES``, 19 of them).
        k: cut-off of the ranking metrics.
    """
    pair = ("user_id", "item_id")
    return {
        "rating": Task(
            "rating",
            "regression",
            "rating",
            "ratings",
            "pair",
            ("rmse", "mae"),
            "rmse",
            pair,
            label_range=(1.0, 5.0),
            leaky_columns=("like",),
        ),
        "like": Task(
            "like",
            "binary",
            "like",
            "ratings",
            "pair",
            ("auc", "logloss"),
            "auc",
            pair,
            leaky_columns=("rating",),
        ),
        "interest": Task(
            "interest",
            "ranking",
            "interest",
            "interactions",
            "pair",
            (f"recall@{k}", f"ndcg@{k}"),
            f"ndcg@{k}",
            pair,
            leaky_columns=("rating",),
        ),
        "genres": Task(
            "genres",
            "multilabel",
            "genres",
            "items",
            "item",
            ("f1_micro", "auc_macro"),
            "f1_micro",
            ("item_id", "title"),
            num_outputs=len(genres),
            class_names=tuple(genres),
        ),
    }


def clothing_tasks(departments: Sequence[str]) -> dict[str, Task]:
    """The three clothing tasks, keyed by name.

    The inputs are the review's text, the reviewer's age, the positive-feedback count and the
    product (``clothing_id``). The star ``rating`` is never an input of ``recommended`` (nor the
    reverse): each gives the other away. ``department`` never reads division/department/class
    nor the product, which sits in exactly one department.
    """
    cols = ("review_text", "title", "age", "positive_feedback_count", "clothing_id")
    hier = ("division", "department", "class_name", "clothing_id")  # a product sits in one department
    return {
        "recommended": Task(
            "recommended",
            "binary",
            "recommended",
            "reviews",
            "item",
            ("auc", "f1"),
            "auc",
            cols,
            leaky_columns=("rating",),
        ),
        "rating": Task(
            "rating",
            "regression",
            "rating",
            "reviews",
            "item",
            ("rmse", "accuracy"),
            "rmse",
            cols,
            label_range=(1.0, 5.0),
            leaky_columns=("recommended",),
        ),
        "department": Task(
            "department",
            "multiclass",
            "department",
            "reviews",
            "item",
            ("accuracy",),
            "accuracy",
            cols[:4],
            num_outputs=len(departments),
            class_names=tuple(departments),
            leaky_columns=hier,
        ),
    }


def describe_tasks(tasks: dict[str, Task] | Sequence[Task]):
    """A pandas DataFrame with one row per task (for display)."""
    import pandas as pd

    items = tasks.values() if isinstance(tasks, dict) else tasks
    rows = [
        {
            "task": t.name,
            "kind": t.kind,
            "label": t.label,
            "data": t.data,
            "head sees": t.input,
            "outputs": t.num_outputs,
            "loss": t.loss,
            "metrics": ", ".join(t.metrics),
            "early stopping on": t.monitor,
            "inputs": ", ".join(t.columns),
        }
        for t in items
    ]
    return pd.DataFrame(rows).set_index("task")
