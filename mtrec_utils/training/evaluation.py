"""Evaluation: every task's metrics on held-out data, ranking included.

``evaluate(model, tasks, data)`` runs the model on each task's evaluation data (a DataLoader, or
a :class:`~mtrec_utils.data.datasets.RankingEval` for ranking tasks) and returns
``{"<task>/<metric>": value}``. Ranking scores every item for each user, masks the items the user
rated in training with -inf, and hands the matrix to :mod:`mtrec_utils.core.metrics`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from mtrec_utils.core import metrics as M
from mtrec_utils.data.datasets import RankingEval
from mtrec_utils.data.tasks import Task
from mtrec_utils.models.heads import task_metric, to_predictions


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


@torch.no_grad()
def ranking_scores(
    model: torch.nn.Module, task: Task, data: RankingEval, num_items: int | None = None
) -> np.ndarray:
    """(U, I) scores of ``data.users`` for every item, training items set to -inf."""
    device = next(model.parameters(), torch.empty(0)).device
    users, num_items = data.users.to(device), num_items or data.exclude.shape[1]
    score_items = getattr(model, "score_items", None)  # e.g. MultiTaskModel's chunked scorer
    if score_items is not None:
        scores = score_items(task.name, users, num_items)
    else:
        rows = []
        for u in users.split(64):
            batch = {
                "user": u.repeat_interleave(num_items),
                "item": torch.arange(num_items, device=device).repeat(len(u)),
            }
            rows.append(model(batch, [task.name])[task.name].reshape(len(u), num_items))
        scores = torch.cat(rows)
    scores = scores.float().cpu().masked_fill(data.exclude, float("-inf"))
    return scores.numpy()


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, tasks: Sequence[Task], data: Mapping[str, Any], device=None
) -> dict[str, float]:
    """Metrics of every task on ``data`` (``{data name: DataLoader or RankingEval}``), keyed ``"<task>/<metric>"``."""
    model.eval()
    device = device or next(model.parameters(), torch.empty(0)).device
    results: dict[str, float] = {}
    for t in [t for t in tasks if t.kind == "ranking"]:
        scores = ranking_scores(model, t, data[t.data])
        for m in t.metrics:
            name, k = m.split("@")
            fn = {"recall": M.recall_at_k, "ndcg": M.ndcg_at_k, "hr": M.hr_at_k}[name]
            results[f"{t.name}/{m}"] = fn(scores, data[t.data].positives, int(k))
    for s in sorted({t.data for t in tasks if t.kind != "ranking"}):
        group = [t for t in tasks if t.data == s and t.kind != "ranking"]
        preds: dict[str, list[np.ndarray]] = {t.name: [] for t in group}
        labels: dict[str, list[np.ndarray]] = {t.name: [] for t in group}
        for batch in data[s]:
            batch = _to(batch, device)
            out = model(batch, [t.name for t in group])
            for t in group:
                preds[t.name].append(to_predictions(t, out[t.name]))
                labels[t.name].append(batch[t.label].cpu().numpy())
        for t in group:
            y, p = np.concatenate(labels[t.name]), np.concatenate(preds[t.name])
            results.update({f"{t.name}/{m}": task_metric(t, m, y, p) for m in t.metrics})
    return results
