"""A small sequential user-interest model, to measure interaction-sequence augmentation.

A user is represented by their chronological history of liked items: a GRU reads the item vectors
(ID embedding + projected frozen text embedding) and its last state is the user vector; the score
of item ``i`` is ``<user, item_i>``, trained as next-item prediction with a softmax over all items.

- :func:`user_histories`: each user's liked training items in time order;
- :func:`next_item_samples`: (history so far, next item) training pairs;
- :func:`augment_histories`: extra pairs whose history is cropped, masked or reordered
  (:mod:`mtrec_utils.data.augment`), the target unchanged;
- :func:`pad_histories`, :class:`HistoryModel`, :func:`train_history_model`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mtrec_utils.core.config import check_choice, check_positive
from mtrec_utils.data.augment import SEQUENCE_OPS, crop_sequence, mask_sequence, reorder_sequence


def user_histories(user_idx, item_idx, timestamps) -> dict[int, list[int]]:
    """``{user: [items in time order]}`` from aligned (N,) arrays (ties broken by item index)."""
    df = pd.DataFrame({"u": np.asarray(user_idx), "i": np.asarray(item_idx), "t": np.asarray(timestamps)})
    df = df.sort_values(["u", "t", "i"], kind="stable")
    return {int(u): g["i"].tolist() for u, g in df.groupby("u")}


def next_item_samples(histories: dict[int, Sequence[int]], max_len: int = 20) -> list[tuple[list[int], int]]:
    """Every (last ``max_len`` items before position t, item t) pair, t >= 1, of every history."""
    check_positive("max_len", max_len, integer=True)
    return [
        (list(h[max(0, t - max_len) : t]), int(h[t])) for h in histories.values() for t in range(1, len(h))
    ]


def augment_histories(
    samples: Sequence[tuple[list[int], int]],
    ops: Sequence[str],
    copies: int,
    mask_id: int,
    generator: torch.Generator | None = None,
    ratio: float = 0.6,
    p: float = 0.3,
) -> list[tuple[list[int], int]]:
    """``copies`` augmented versions of each sample, each with one op drawn from ``ops``.

    Args:
        samples: (history, target) pairs.
        ops: subset of :data:`~mtrec_utils.data.augment.SEQUENCE_OPS` (``crop``, ``mask``, ``reorder``).
        copies: augmented copies per sample.
        mask_id: the item id that stands for a masked item.
        generator: random source.
        ratio: crop length / reorder window as a share of the history; ``p``: mask probability.
    """
    ops = [check_choice("ops", op, SEQUENCE_OPS) for op in ops]
    out = []
    for hist, target in samples:
        for _ in range(copies):
            op = ops[int(torch.randint(len(ops), (1,), generator=generator))]
            if op == "crop":
                h = crop_sequence(hist, ratio, generator)
            elif op == "mask":
                h = mask_sequence(hist, p, mask_id, generator)
            else:
                h = reorder_sequence(hist, ratio, generator)
            out.append((h, target))
    return out


def pad_histories(histories: Sequence[Sequence[int]], max_len: int, pad_id: int) -> Tensor:
    """(N, max_len) long tensor: the last ``max_len`` items of each history, left-padded with ``pad_id``."""
    out = torch.full((len(histories), max_len), pad_id, dtype=torch.long)
    for r, h in enumerate(histories):
        h = list(h)[-max_len:]
        if h:
            out[r, max_len - len(h) :] = torch.as_tensor(h, dtype=torch.long)
    return out


class HistoryModel(nn.Module):
    """GRU over a user's item history -> user vector; scores every item by a dot product.

    Args:
        num_items: I; ids ``I`` (padding) and ``I + 1`` (mask) are reserved.
        dim: width d.
        item_text: (I, H) frozen text embeddings of the items, or ``None`` (IDs only).
    """

    def __init__(self, num_items: int, dim: int = 64, item_text: Tensor | None = None):
        super().__init__()
        self.num_items, self.pad_id, self.mask_id = num_items, num_items, num_items + 1
        self.id_emb = nn.Embedding(num_items + 2, dim, padding_idx=num_items)
        nn.init.normal_(self.id_emb.weight, std=0.01)
        self.text_proj = None
        if item_text is not None:
            self.register_buffer("text", F.pad(item_text.float(), (0, 0, 0, 2)), persistent=False)  # (I+2, H)
            self.text_proj = nn.Sequential(
                nn.LayerNorm(item_text.shape[1]), nn.Linear(item_text.shape[1], dim)
            )
        self.gru = nn.GRU(dim, dim, batch_first=True)

    def items(self, ids: Tensor) -> Tensor:
        """(...) item ids -> (..., d) item vectors (padding and mask: ID part only)."""
        v = self.id_emb(ids)
        if self.text_proj is not None:
            real = (ids < self.num_items).unsqueeze(-1)
            v = v + self.text_proj(self.text[ids]) * real
        return v

    def forward(self, histories: Tensor) -> Tensor:
        """(B, L) padded histories -> (B, I) scores of every item."""
        out, _ = self.gru(self.items(histories))  # (B, L, d)
        user = out[:, -1]  # (B, d): state after the last (most recent) item
        return user @ self.items(torch.arange(self.num_items, device=histories.device)).T


def train_history_model(
    model: HistoryModel,
    histories: Tensor,
    targets: Tensor,
    *,
    epochs: int = 5,
    lr: float = 3e-3,
    batch_size: int = 256,
    generator: torch.Generator | None = None,
) -> list[float]:
    """Next-item training with a full softmax over items; returns the mean loss of each epoch.

    Args:
        model: a :class:`HistoryModel`.
        histories: (N, L) padded histories; ``targets``: (N,) next items.
        epochs, lr, batch_size: AdamW settings.
        generator: random source of the shuffling.
    """
    check_positive("epochs", epochs, integer=True)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    losses = []
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(targets), generator=generator)
        total = 0.0
        for start in range(0, len(order), batch_size):
            b = order[start : start + batch_size]
            loss = F.cross_entropy(model(histories[b]), targets[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(b)
        losses.append(total / len(targets))
    return losses
