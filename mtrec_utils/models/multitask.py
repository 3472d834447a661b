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
``"user"``) read one tower. Ranking scores every (user, item) pair: :meth:`MultiTaskModel.score_items`
runs each tower once per entity and splits the trunk's first Linear into a user part and an item
part, so that pairs are never concatenated (same scores up to float rounding). Single-task training is this model with one task; joint training
(notebook 04) is the same model with several, sharing the towers and trunks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mtrec_utils.data.tasks import Task
from mtrec_utils.models.heads import TaskHead

#: Bytes of pair activations per block when :meth:`MultiTaskModel.score_items` scores every pair, by
#: device type: on a CPU, blocks that stay in cache are fastest (``python -m mtrec_utils.bench eval``).
PAIR_BLOCK_BYTES = {"cpu": 4 * 2**20, "default": 64 * 2**20}


def _plain_linear(module: nn.Module) -> bool:
    """True for an ``nn.Linear`` itself (not a subclass or wrapper that may compute something else)."""
    return type(module) is nn.Linear


def _defined_by(cls: type, attr: str) -> type:
    """The class in ``cls``'s MRO whose body defines ``attr``."""
    return next(k for k in cls.__mro__ if attr in vars(k))


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
    def score_items(self, name: str, users: Tensor, num_items: int, chunk: int | None = None) -> Tensor:
        """Scores of pair task ``name`` for every (user, item): (U, num_items).

        Each tower runs once per entity (all ``users``, all items). In eval mode, with the plain trunk
        and :class:`TaskHead` built here, the pairs are then scored without running the network on
        each concatenated pair (see :meth:`_fast_pair_scorer`); otherwise (training mode, a subclass
        with its own ``pair_outputs``, wrapped layers) ``pair_outputs`` runs on every pair.

        Args:
            chunk: users per block; default: as many as keep one block's pair activations near
                :data:`PAIR_BLOCK_BYTES` (cache-sized on a CPU, where that is fastest).
        """
        items = torch.arange(num_items, device=users.device)
        u, i = self.towers["user"](users), self.towers["item"](items)  # (U, d), (I, d)
        fast = self._fast_pair_scorer(name, u, i, users, items)
        if fast is None:  # width: about the floats a pair's activations take at once
            block, width = self._per_pair_scorer(name, u, i, users, items), 4 * u.shape[-1]
        else:
            block, width = fast
        if chunk is None:
            budget = PAIR_BLOCK_BYTES.get(users.device.type, PAIR_BLOCK_BYTES["default"])
            chunk = max(1, budget // max(1, num_items * width * u.element_size()))
        rows = [block(slice(start, start + chunk)) for start in range(0, len(users), chunk)]
        return torch.cat(rows) if rows else u.new_zeros((0, num_items))

    def _per_pair_scorer(
        self, name: str, u: Tensor, i: Tensor, users: Tensor, items: Tensor
    ) -> Callable[[slice], Tensor]:
        """``block(rows) -> (n, I)``: ``pair_outputs`` on every (user of ``rows``, item) pair (the general path)."""

        def block(rows: slice) -> Tensor:
            uc, ids = u[rows], users[rows]  # (n, d), (n,)
            n, num_items = len(uc), len(i)
            out = self.pair_outputs(
                uc.repeat_interleave(num_items, dim=0),  # (n*I, d)
                i.repeat(n, 1),  # (n*I, d)
                ids.repeat_interleave(num_items),
                items.repeat(n),
                [name],
            )[name]
            return out.reshape(n, num_items)

        return block

    def _pair_split(self, u: Tensor, i: Tensor, name: str) -> tuple[Tensor, Tensor] | None:
        """The pair trunk's first Linear split by side: ``(W_u u + b (U, w), W_i i (I, w))``, or ``None``.

        The trunk reads ``[u, i]``, so ``W [u, i] + b = (W_u u + b) + W_i i``: each side is computed once
        per entity, and a pair's pre-activation is a sum; :meth:`_pair_rest` runs the rest of the trunk.
        ``None`` when the trunk is not the plain :func:`mlp` this is exact for.
        """
        trunk, d = self.trunks["pair"], u.shape[-1]
        if not (
            isinstance(trunk, nn.Sequential) and _plain_linear(trunk[0]) and trunk[0].in_features == 2 * d
        ):
            return None
        return F.linear(u, trunk[0].weight[:, :d], trunk[0].bias), F.linear(i, trunk[0].weight[:, d:])

    def _pair_rest(self, pu: Tensor, pi: Tensor, name: str) -> Tensor:
        """Both sides' parts ``(n, w)``, ``(I, w)`` from :meth:`_pair_split` -> the trunk's output on
        every pair (n*I, hidden): pre-activations ``(n, 1, w) + (1, I, w)``, then the rest of the trunk."""
        return self.trunks["pair"][1:]((pu[:, None, :] + pi[None]).flatten(0, 1))

    def _fast_pair_scorer(
        self, name: str, u: Tensor, i: Tensor, users: Tensor, items: Tensor
    ) -> tuple[Callable[[slice], Tensor], int] | None:
        """``(block, w)``: ``block(rows) -> (n, I)`` scores every pair exactly (up to float rounding)
        without concatenating pairs; ``w``, the trunk's output width, sizes the blocks. ``None`` where
        this is not exact: in training mode (dropout), or for a subclass, trunk or head not built here.

        - trunk: first Linear split by side (:meth:`_pair_split`), pairs formed by broadcasting
          ``(n, 1, w) + (1, I, w)``, then the rest of the trunk on the block;
        - head: its first Linear reads ``[h, u * i]``; the ``W_p (u * i)`` part is, per user, the items
          times ``W_p diag(u)``, a batched matmul; the biases ``b_u + b_i`` are a broadcast sum.
        """
        head = self.heads[name]
        if (
            self.training
            or _defined_by(type(self), "pair_outputs") is not _defined_by(type(self), "_pair_split")
            or type(head) is not TaskHead
            or not _plain_linear(head.net[0])
            or head.task.num_outputs != 1
        ):
            return None
        split = self._pair_split(u, i, name)
        if split is None:
            return None
        pu, pi = split  # (U, w), (I, w)
        first, d = head.net[0], u.shape[-1]
        w_trunk, w_prod = first.weight[:, : first.in_features - d], first.weight[:, first.in_features - d :]
        rest = head.net[1:]
        offset_u, offset_i = self.biases["user"](users), self.biases["item"](items).T  # (U, 1), (1, I)

        def block(rows: slice) -> Tensor:
            n = len(pu[rows])
            h = self._pair_rest(pu[rows], pi, name)  # (n*I, hidden)
            z = torch.bmm(i.expand(n, -1, -1), (w_prod * u[rows, None, :]).transpose(1, 2))  # (n, I, hh)
            z = z.flatten(0, 1).addmm_(h, w_trunk.T)  # (n*I, hh): the head's first Linear on [h, u * i]
            if first.bias is not None:
                z += first.bias
            return head.link(rest(z).reshape(n, -1) + (offset_u[rows] + offset_i))  # (n, I)

        return block, w_trunk.shape[1]
