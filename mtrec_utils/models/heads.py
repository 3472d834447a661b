"""Task heads, task losses, and turning raw outputs into predictions.

Every task gets its own small head on top of the shared representation (the "shared bottom"
of multi-task learning). What the head outputs, and how it is trained, follows the task's kind:

==============  ==================================  ========================  ====================
kind            head output (B, num_outputs)        loss                      prediction
==============  ==================================  ========================  ====================
regression      ``lo + (hi - lo) * sigmoid(z)``     MSE                       the value
binary          logit                               BCE with logits           probability
multilabel      one logit per label                 BCE with logits           probabilities
multiclass      one logit per class                 cross-entropy             class probabilities
ranking         score (logit)                       BCE on sampled negatives  the score
==============  ==================================  ========================  ====================
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mtrec_utils.data.tasks import Task


class TaskHead(nn.Module):
    """A task's head: ``Linear -> GELU -> Dropout -> Linear``, bounded for bounded regression.

    Args:
        in_dim: width of the shared representation.
        task: the task (its kind, ``num_outputs`` and ``label_range``).
        hidden: width of the hidden layer (default ``in_dim // 2``).
        dropout: dropout before the last layer.
    """

    def __init__(self, in_dim: int, task: Task, hidden: int | None = None, dropout: float = 0.1):
        super().__init__()
        hidden = hidden or max(in_dim // 2, 8)
        self.task = task
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, task.num_outputs)
        )

    def forward(self, h: Tensor, offset: Tensor | float = 0.0) -> Tensor:
        """(B, in_dim) -> (B, num_outputs); ``offset`` (e.g. user + item biases) is added before bounding."""
        return self.link(self.net(h) + offset)

    def link(self, z: Tensor) -> Tensor:
        """The output from its pre-activation ``z`` (any shape): ``lo + (hi - lo) * sigmoid(z)`` when bounded."""
        if self.task.kind == "regression" and self.task.label_range is not None:
            lo, hi = self.task.label_range
            return lo + (hi - lo) * torch.sigmoid(z)
        return z

    @torch.no_grad()
    def init_from_labels(self, labels) -> None:
        """Start the output at the label mean (regression) or base rate (binary, multilabel)."""
        y = np.asarray(labels, dtype=np.float64)
        last = self.net[-1]
        if self.task.kind == "regression":
            mean = float(y.mean())
            if self.task.label_range is not None:
                lo, hi = self.task.label_range
                p = np.clip((mean - lo) / (hi - lo), 1e-3, 1 - 1e-3)
                mean = float(np.log(p / (1 - p)))
            last.bias.fill_(mean)
        elif self.task.kind in ("binary", "multilabel"):
            p = np.clip(y.mean(axis=0), 1e-3, 1 - 1e-3)
            last.bias.copy_(torch.as_tensor(np.log(p / (1 - p)), dtype=last.bias.dtype).reshape(-1))


def task_loss(task: Task, outputs: Tensor, labels: Tensor) -> Tensor:
    """The task's loss (a scalar mean over the batch).

    Args:
        task: the task.
        outputs: (B, num_outputs) raw head outputs.
        labels: (B,) or (B, num_outputs) labels (class ids for multiclass).
    """
    if task.kind == "multiclass":
        return F.cross_entropy(outputs.float(), labels.long())
    out = outputs.float().reshape(labels.shape)
    if task.kind == "regression":
        return F.mse_loss(out, labels.float())
    return F.binary_cross_entropy_with_logits(out, labels.float())


def to_predictions(task: Task, outputs: Tensor) -> np.ndarray:
    """Raw outputs (B, num_outputs) -> what the metrics read: values, probabilities or scores."""
    out = outputs.detach().float().cpu()
    if task.kind == "multiclass":
        return torch.softmax(out, dim=-1).numpy()
    if task.kind == "multilabel":
        return torch.sigmoid(out).numpy()
    out = out.reshape(-1)
    if task.kind == "binary":
        return torch.sigmoid(out).numpy()
    if task.kind == "regression" and task.label_range is not None:
        out = out.clamp(*task.label_range)
    return out.numpy()


def task_metric(task: Task, metric: str, y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """One metric of a non-ranking task from labels and :func:`to_predictions` output.

    ``accuracy`` rounds a regression prediction to the nearest label and takes the arg-max
    class of a multi-class one; ``f1`` and ``accuracy`` of a binary task threshold at 0.5;
    ``f1_micro`` / ``auc_macro`` are the multi-label micro F1 and the mean per-label AUC.
    """
    from mtrec_utils.core import metrics as M

    y_true = np.asarray(y_true)
    if metric in ("rmse", "mae", "auc", "logloss"):
        return getattr(M, metric)(y_true, y_pred)
    if metric == "f1":
        return M.f1(y_true, y_pred, threshold=0.5)
    if metric == "accuracy":
        if task.kind == "multiclass":
            return M.accuracy(y_true, y_pred.argmax(axis=1))
        if task.kind == "regression":
            return M.accuracy(y_true, np.rint(y_pred))
        return M.accuracy(y_true, y_pred, threshold=0.5)
    if metric == "f1_micro":
        return M.f1(y_true.ravel(), y_pred.ravel(), threshold=0.5)
    if metric == "auc_macro":
        cols = [j for j in range(y_true.shape[1]) if 0 < y_true[:, j].sum() < len(y_true)]
        return float(np.mean([M.auc(y_true[:, j], y_pred[:, j]) for j in cols]))
    raise ValueError(
        f"task {task.name!r}: metric {metric!r} is unknown; use rmse, mae, auc, logloss, f1, "
        "accuracy, f1_micro, auc_macro, or recall@K / ndcg@K / hr@K for ranking tasks"
    )
