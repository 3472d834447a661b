"""Implicit feedback: a user is also the set of items they rated (SVD++, Koren, KDD 2008).

Which items a user chose to rate says something about them, whatever the ratings were. SVD++
(Koren, "Factorization meets the neighborhood", KDD 2008) adds to the user's factor the normalised
sum of learned item vectors ``y_j`` over ``N(u)``, the items the user rated::

    history(u) = |N(u)|^(-1/2) * sum_{j in N(u)} y_j          (dim,)

- :class:`InteractionLists`: each user's rated items (the training split only: an item from a
  validation or test rating would tell the model which items are about to be asked about);
- :class:`ImplicitHistory`: the ``y_j`` table and the normalised sum, one more part of a user
  tower (:class:`~mtrec_utils.models.towers.EntityTower` ``history=``).

``y_j`` is a second item table, separate from the item tower's own ID embedding, as in SVD++.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F


@dataclass(frozen=True)
class InteractionLists:
    """The items each user rated, in compressed rows: user ``u``'s are ``items[offsets[u]:offsets[u + 1]]``.

    Attributes:
        offsets: (U + 1,) long, non-decreasing, ``offsets[0] = 0``, ``offsets[-1] = R``.
        items: (R,) long item indices in ``0..num_items-1``, ascending within each user, no repeats.
        num_items: I.
    """

    offsets: Tensor
    items: Tensor
    num_items: int

    @classmethod
    def from_pairs(cls, users, items, num_users: int, num_items: int) -> InteractionLists:
        """Lists from aligned (R,) user and item indices (repeated pairs count once).

        Raises:
            ValueError: different lengths, or an index outside ``0..num_users-1`` / ``0..num_items-1``.
        """
        u = np.asarray(users, dtype=np.int64).reshape(-1)
        i = np.asarray(items, dtype=np.int64).reshape(-1)
        if len(u) != len(i):
            raise ValueError(f"users and items differ in length: {len(u)} vs {len(i)}")
        for name, x, n in (("user", u, num_users), ("item", i, num_items)):
            if len(x) and (x.min() < 0 or x.max() >= n):
                raise ValueError(f"{name} indices must lie in 0..{n - 1}; got {x.min()}..{x.max()}")
        pairs = np.unique(u * num_items + i)  # sorted by (user, item), repeats dropped
        u, i = pairs // num_items, pairs % num_items
        offsets = np.concatenate([[0], np.cumsum(np.bincount(u, minlength=num_users))])
        return cls(torch.as_tensor(offsets), torch.as_tensor(i), int(num_items))

    @property
    def num_users(self) -> int:
        return len(self.offsets) - 1

    def counts(self) -> Tensor:
        """(U,) ``|N(u)|``: items rated per user."""
        return self.offsets[1:] - self.offsets[:-1]

    def of(self, user: int) -> list[int]:
        """The items user ``user`` rated, ascending."""
        return self.items[self.offsets[user] : self.offsets[user + 1]].tolist()


class ImplicitHistory(nn.Module):
    """``(B,) users -> (B, dim)``: ``|N(u)|^(-1/2) sum_{j in N(u)} y_j`` (zero for a user with no items).

    Args:
        lists: each user's rated items (:class:`InteractionLists`, training split only).
        dim: width of ``y_j``.
        init_std: standard deviation of the initial ``y_j`` (small, like the ID embeddings).
    """

    offsets: Tensor  # buffer, (U + 1,)
    items: Tensor  # buffer, (R,)

    def __init__(self, lists: InteractionLists, dim: int, init_std: float = 0.01):
        super().__init__()
        self.num_users, self.num_items, self.dim = lists.num_users, lists.num_items, dim
        self.y = nn.Embedding(lists.num_items, dim)
        nn.init.normal_(self.y.weight, std=init_std)
        self.register_buffer("offsets", lists.offsets.long(), persistent=False)  # (U + 1,)
        self.register_buffer("items", lists.items.long(), persistent=False)  # (R,)

    def bags(self, users: Tensor) -> Tensor:
        """(n,) user indices -> (n, dim), one weighted bag of ``y`` rows per user."""
        starts = self.offsets[users]  # (n,)
        lengths = self.offsets[users + 1] - starts  # (n,)
        bag_starts = torch.cumsum(lengths, 0) - lengths  # (n,): where each bag starts in ``flat``
        total = int(lengths.sum())
        # position in ``items`` of every element of every bag: start of its user + its rank in the bag
        shift = torch.repeat_interleave(starts - bag_starts, lengths)  # (total,)
        flat = self.items[torch.arange(total, device=users.device) + shift]  # (total,)
        weights = torch.repeat_interleave(lengths.clamp(min=1).to(self.y.weight.dtype).rsqrt(), lengths)
        return F.embedding_bag(flat, self.y.weight, bag_starts, mode="sum", per_sample_weights=weights)

    def forward(self, idx: Tensor) -> Tensor:
        """(B,) user indices -> (B, dim). On a CPU each distinct user of the batch is summed once."""
        if idx.device.type != "cpu" or idx.dim() != 1:
            return self.bags(idx.reshape(-1)).reshape(*idx.shape, self.dim)
        uniq, inverse = torch.unique(idx, return_inverse=True)  # (U,), (B,)
        return F.embedding(inverse, self.bags(uniq))  # (B, dim)

    def extra_repr(self) -> str:
        return f"num_users={self.num_users}, num_items={self.num_items}, dim={self.dim}"
