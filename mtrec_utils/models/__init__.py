"""Models: towers (ID + text fusion), the multi-task model with task heads, classic baselines."""

from mtrec_utils.models.baselines import (
    SURPRISE_REFERENCE,
    BiasBaseline,
    MatrixFactorization,
    Popularity,
    global_mean,
    surprise_available,
    surprise_rmse,
)
from mtrec_utils.models.heads import TaskHead, task_loss, to_predictions
from mtrec_utils.models.multitask import MultiTaskModel, mlp
from mtrec_utils.models.towers import EncoderText, EntityTower, FrozenText, text_table

__all__ = [
    "SURPRISE_REFERENCE",
    "BiasBaseline",
    "EncoderText",
    "EntityTower",
    "FrozenText",
    "MatrixFactorization",
    "MultiTaskModel",
    "Popularity",
    "TaskHead",
    "global_mean",
    "mlp",
    "surprise_available",
    "surprise_rmse",
    "task_loss",
    "text_table",
    "to_predictions",
]
