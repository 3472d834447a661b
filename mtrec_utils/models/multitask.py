"""The language-model recommender: towers (ID + text fusion), a shared trunk, one head per task.

::

    user tower u ─┐                                   ┌─ head "rating"   (B, 1)
                  ├─ [MLP([u, i]), u * i] (pair trunk) ┼─ head "like"     (B, 1)
    item tower i ─┤                                   └─ head "interest" (B, 1)
                  └──────────── MLP(i) (item trunk) ───── head "genres"   (B, 19)

The pair trunk is NeuMF's (He et al., WWW 2017): an MLP of the two vectors next to their
element-wise product, the generalised matrix factorisation that collaborative filtering needs.
Pair tasks also get a learned user bias and item bias, added to the head's pre-activation
(``b_u + b_i`` of the classic baseline ``mu + b_u + b_i``).

Pair tasks (``task.input == "pair"``) read a user and an item; entity tasks (``"item"``,
``"user"``) read one tower. Single-task training is this model with one task; joint training
(notebook 04) is the same model with several, sharing the towers and trunks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from mtrec_utils.data.tasks import Task
from mtrec_utils.models.heads import TaskHead


def mlp(in_dim: int, hidden: int, dropout: float) -> nn.Sequential:
    """``Linear -> GELU -> Dropout -> Linear -> GELU``: (B, in_dim) -> (B, hidden)."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.GELU()
    )


class MultiTaskModel(nn.Module):
    """Shared towers and trunks with one :class:`TaskHead` per task.

    Args:
        towers: ``{"user": tower, "item": tower}`` (pair tasks need both), each with ``.dim``.
        tasks: the tasks this model serves.
        hidden: width of the trunks.
        dropout: dropout inside the trunks and heads.
    """

    def __init__(
        self, towers: dict[str, nn.Module], tasks: Sequence[Task], hidden: int = 128, dropout: float = 0.1
    ):
        super().__init__()
        self.tasks = {t.name: t for t in tasks}
        self.towers = nn.ModuleDict(towers)
        needed = {"user", "item"} if any(t.input == "pair" for t in tasks) else set()
        needed |= {t.input for t in tasks if t.input != "pair"}
        missing = sorted(needed - set(towers))
        if missing:
            raise ValueError(f"tasks {list(self.tasks)} need towers {missing}; got towers {list(towers)}")
        self.trunks = nn.ModuleDict()
        if any(t.input == "pair" for t in tasks):
            if towers["user"].dim != towers["item"].dim:
                raise ValueError(
                    f"user and item towers differ in dim: {towers['user'].dim} vs {towers['item'].dim}"
                )
            self.trunks["pair"] = mlp(2 * towers["user"].dim, hidden, dropout)
            self.biases = nn.ModuleDict(
                {k: nn.Embedding(towers[k].num_entities, 1) for k in ("user", "item")}
            )
            for emb in self.biases.values():
                nn.init.zeros_(emb.weight)
        for kind in sorted({t.input for t in tasks} - {"pair"}):
            self.trunks[kind] = mlp(towers[kind].dim, hidden, dropout)
        width = {k: hidden + (towers["user"].dim if k == "pair" else 0) for k in self.trunks}
        self.heads = nn.ModuleDict({t.name: TaskHead(width[t.input], t, dropout=dropout) for t in tasks})

    @torch.no_grad()
    def init_biases(self, user_bias, item_bias, task: str = "rating") -> None:
        """Warm-start the pair biases from a classic baseline's ``b_u``, ``b_i`` (rating units, (N,) each).

        For a bounded regression head the biases act before the sigmoid, so they are divided by
        the link's slope at the head's starting point (call ``heads[task].init_from_labels`` first).
        """
        scale = 1.0
        head = self.heads[task]
        if head.task.kind == "regression" and head.task.label_range is not None:
            lo, hi = head.task.label_range
            p = torch.sigmoid(head.net[-1].bias.mean()).item()
            scale = 1.0 / ((hi - lo) * p * (1 - p))
        for key, values in (("user", user_bias), ("item", item_bias)):
            w = self.biases[key].weight
            w.copy_(torch.as_tensor(np.asarray(values), dtype=w.dtype).reshape(w.shape) * scale)

    def shared_parameters(self) -> list[nn.Parameter]:
        """Parameters of the towers and trunks (shared by the tasks), for weighting strategies."""
        return [p for m in (self.towers, self.trunks) for p in m.parameters() if p.requires_grad]

    def pair_outputs(
        self, u: Tensor, i: Tensor, users: Tensor, items: Tensor, names: Sequence[str]
    ) -> dict[str, Tensor]:
        """Heads of pair tasks from user/item vectors (B, d) and their indices (B,) (for the biases)."""
        h = torch.cat([self.trunks["pair"](torch.cat([u, i], dim=-1)), u * i], dim=-1)  # (B, hidden + d)
        offset = self.biases["user"](users) + self.biases["item"](items)  # (B, 1)
        return {n: self.heads[n](h, offset) for n in names}

    def forward(self, batch: dict[str, Tensor], names: Sequence[str] | None = None) -> dict[str, Tensor]:
        """Raw outputs of the named tasks (default: all) on one batch.

        Args:
            batch: ``{"user": (B,), "item": (B,), ...}`` entity indices (and labels, ignored).
            names: task names; towers and trunks run once per batch, shared by these tasks.

        Returns:
            ``{name: (B, num_outputs)}``.
        """
        names = list(names or self.tasks)
        unknown = [n for n in names if n not in self.tasks]
        if unknown:
            raise ValueError(f"unknown task(s) {unknown}; this model serves {list(self.tasks)}")
        vecs = {}
        for n in names:
            kinds = ("user", "item") if self.tasks[n].input == "pair" else (self.tasks[n].input,)
            for k in kinds:
                if k not in vecs:
                    vecs[k] = self.towers[k](batch[k])  # (B, d)
        out = {}
        pair = [n for n in names if self.tasks[n].input == "pair"]
        if pair:
            out.update(self.pair_outputs(vecs["user"], vecs["item"], batch["user"], batch["item"], pair))
        for kind in {self.tasks[n].input for n in names} - {"pair"}:
            h = self.trunks[kind](vecs[kind])  # (B, hidden)
            out.update({n: self.heads[n](h) for n in names if self.tasks[n].input == kind})
        return {n: out[n] for n in names}

    @torch.no_grad()
    def score_items(self, name: str, users: Tensor, num_items: int, chunk: int = 64) -> Tensor:
        """Scores of task ``name`` for every (user, item): (U, num_items); items are encoded once."""
        item_ids = torch.arange(num_items, device=users.device)
        items = self.towers["item"](item_ids)  # (I, d)
        rows = []
        for start in range(0, len(users), chunk):
            ids = users[start : start + chunk]  # (C,)
            u = self.towers["user"](ids)  # (C, d)
            uu, uid = (
                u.repeat_interleave(num_items, dim=0),
                ids.repeat_interleave(num_items),
            )  # (C*I, d), (C*I,)
            ii, iid = items.repeat(len(u), 1), item_ids.repeat(len(u))  # (C*I, d), (C*I,)
            rows.append(self.pair_outputs(uu, ii, uid, iid, [name])[name].reshape(len(u), num_items))
        return torch.cat(rows)
