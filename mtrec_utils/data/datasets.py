"""PyTorch datasets and collate functions: the article's two datasets done right, and ours.

- :class:`ItemDataset` / :class:`UserDataset` are correct versions of the article's section 5.2
  classes: texts are tokenised once (in ``__init__``, not per ``__getitem__``) and padded per
  batch to the longest text in it (dynamic padding) by :func:`collate_items` / :func:`collate_users`.
- :class:`TensorDictDataset` serves rows of aligned tensors (user and item indices, labels) a
  whole batch at a time; the text of each user and item is looked up inside the model, where
  each distinct text in a batch is encoded once (see :mod:`mtrec_utils.models.towers`).
- :class:`NegativeSamplingDataset` and :class:`RankingEval` feed the ranking task.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler


def tokenize_once(tokenizer, texts: Sequence[str], max_length: int = 128) -> list[list[int]]:
    """Token ids of every text, truncated to ``max_length``, not padded (one tokenizer call)."""
    return tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]


def pad_sequences(seqs: Sequence[Sequence[int]], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad token-id lists to the longest one (dynamic padding).

    Returns:
        ``input_ids`` (B, T) long and ``attention_mask`` (B, T) long, T = longest sequence.
    """
    longest = max((len(s) for s in seqs), default=0)
    ids = torch.full((len(seqs), longest), pad_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(seqs), longest), dtype=torch.long)  # (B, T)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask


class ItemDataset(Dataset):
    """One item text and its label per sample (the article's ``ItemDataset``, corrected).

    Args:
        items: N item texts.
        labels: N labels (numbers).
        tokenizer: a Hugging Face tokenizer.
        max_length: token limit per text.
    """

    def __init__(self, items: Sequence[str], labels: Sequence[float], tokenizer, max_length: int = 128):
        if len(items) != len(labels):
            raise ValueError(f"items and labels differ in length: {len(items)} vs {len(labels)}")
        self.input_ids = tokenize_once(tokenizer, items, max_length)
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.float32))
        self.pad_id = tokenizer.pad_token_id or 0

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, idx: int) -> dict:
        return {"input_ids": self.input_ids[idx], "labels": self.labels[idx]}  # idx stays an index


def collate_items(batch: list[dict], pad_id: int = 0) -> dict[str, torch.Tensor]:
    """Batch :class:`ItemDataset` samples: ``input_ids``/``attention_mask`` (B, T), ``labels`` (B,)."""
    ids, mask = pad_sequences([b["input_ids"] for b in batch], pad_id)
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.stack([b["labels"] for b in batch])}


class UserDataset(Dataset):
    """One user text, the texts of some items, and a label per sample (the article's ``UserDataset``, corrected).

    Args:
        users: N user texts.
        items: N lists of item texts (e.g. the items the user rated).
        labels: N labels.
        tokenizer: a Hugging Face tokenizer.
        max_length: token limit per text.
    """

    def __init__(self, users, items, labels, tokenizer, max_length: int = 128):
        if not len(users) == len(items) == len(labels):
            raise ValueError(
                f"users, items, labels differ in length: {len(users)}, {len(items)}, {len(labels)}"
            )
        self.user_ids = tokenize_once(tokenizer, users, max_length)
        self.item_ids = [tokenize_once(tokenizer, its, max_length) if len(its) else [] for its in items]
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.float32))
        self.pad_id = tokenizer.pad_token_id or 0

    def __len__(self) -> int:
        return len(self.user_ids)

    def __getitem__(self, idx: int) -> dict:
        return {
            "user_input_ids": self.user_ids[idx],
            "item_input_ids": self.item_ids[idx],
            "labels": self.labels[idx],
        }


def collate_users(batch: list[dict], pad_id: int = 0) -> dict[str, torch.Tensor]:
    """Batch :class:`UserDataset` samples with separate ids and masks (the article used the ids twice).

    Returns:
        ``user_input_ids``, ``user_attention_mask`` (B, T); ``item_input_ids``,
        ``item_attention_mask`` (B, M, T2) with M = most items of a sample; ``item_mask`` (B, M)
        marks real items; ``labels`` (B,).
    """
    user_ids, user_mask = pad_sequences([b["user_input_ids"] for b in batch], pad_id)
    lists = [b["item_input_ids"] for b in batch]
    m = max((len(x) for x in lists), default=0)
    flat_ids, flat_mask = pad_sequences([s for x in lists for s in x], pad_id)  # (sum M_b, T2)
    t2 = flat_ids.shape[1] if len(flat_ids) else 0
    item_ids = torch.full((len(batch), m, t2), pad_id, dtype=torch.long)  # (B, M, T2)
    item_mask = torch.zeros((len(batch), m, t2), dtype=torch.long)  # (B, M, T2)
    start = 0
    for i, x in enumerate(lists):
        item_ids[i, : len(x)] = flat_ids[start : start + len(x)]
        item_mask[i, : len(x)] = flat_mask[start : start + len(x)]
        start += len(x)
    return {
        "user_input_ids": user_ids,
        "user_attention_mask": user_mask,
        "item_input_ids": item_ids,
        "item_attention_mask": item_mask,
        "item_mask": item_mask.amax(dim=-1) if t2 else torch.zeros((len(batch), m), dtype=torch.long),
        "labels": torch.stack([b["labels"] for b in batch]),
    }


class TensorDictDataset(Dataset):
    """Rows of aligned tensors, served a whole batch at a time (``__getitems__``).

    Example: ``TensorDictDataset(user=u, item=i, rating=r)``; a batch is
    ``{"user": (B,), "item": (B,), "rating": (B,)}``.
    """

    def __init__(self, **tensors):
        if not tensors:
            raise ValueError("TensorDictDataset needs at least one tensor, e.g. TensorDictDataset(user=...)")
        self.tensors = {
            k: v if torch.is_tensor(v) else torch.tensor(np.asarray(v))
            for k, v in tensors.items()  # a copy: pandas arrays may be read-only
        }
        sizes = {k: len(v) for k, v in self.tensors.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"tensors differ in length: {sizes}")

    def __len__(self) -> int:
        return len(next(iter(self.tensors.values())))

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        return {k: v[idx] for k, v in self.tensors.items()}

    def __getitems__(self, idx: list[int] | torch.Tensor) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(idx, dtype=torch.long)
        return {k: v.index_select(0, index) for k, v in self.tensors.items()}  # = v[index], cheaper


def _as_is(batch):
    return batch


class BatchLoader(DataLoader):
    """A ``DataLoader`` that serves a batch-fetching dataset (``__getitems__``) by slicing one index tensor.

    A plain ``DataLoader`` walks its sampler one index at a time in Python and hands each batch's
    list of indices to ``__getitems__``. This one takes the epoch's order as one tensor (the same
    ``randperm`` the sampler draws, or ``arange``) and hands the dataset slices of it. The batches
    and every random draw are those of the plain ``DataLoader`` with the same arguments, at the same
    moments: the seed its iterator draws for workers (from ``generator``, else the global generator),
    the shuffle at the first batch, and the second, unused ``randperm`` that ``RandomSampler`` draws
    when its indices run out. Any other setting (workers, pinned memory, a custom sampler,
    ``drop_last``, a dataset without ``__getitems__``) is served by ``DataLoader`` itself.
    """

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]  # DataLoader's iterator, or batches
        if not self._slices_ok():
            return super().__iter__()
        torch.empty((), dtype=torch.int64).random_(generator=self.generator)  # the iterator's worker seed
        return self._batches()

    def _slices_ok(self) -> bool:
        sampler, dataset = self.sampler, cast(Any, self.dataset)
        return (
            self.num_workers == 0
            and not self.pin_memory
            and hasattr(dataset, "__getitems__")
            and type(self.batch_sampler) is BatchSampler
            and self.batch_sampler.sampler is sampler
            and not self.batch_sampler.drop_last
            and (
                type(sampler) is SequentialSampler
                or (
                    isinstance(sampler, RandomSampler)
                    and type(sampler) is RandomSampler
                    and not sampler.replacement
                    and sampler.num_samples == len(dataset)
                )
            )
        )

    def _batches(self) -> Iterator[Any]:
        dataset, sampler = cast(Any, self.dataset), self.sampler
        n, size = len(dataset), int(self.batch_size or 1)
        shuffled, generator = isinstance(sampler, RandomSampler), None
        if isinstance(sampler, RandomSampler):
            generator = sampler.generator
            if generator is None:  # as RandomSampler does: a fresh generator seeded from the global one
                seed = int(torch.empty((), dtype=torch.int64).random_().item())
                generator = torch.Generator()
                generator.manual_seed(seed)
            order = torch.randperm(n, generator=generator)
        else:
            order = torch.arange(n)
        tensor_index = type(dataset).__getitems__ in _TENSOR_INDEXED
        for start in range(0, n, size):
            index = order[start : start + size]
            if shuffled and start + size > n:  # RandomSampler's indices run out while this batch is drawn
                torch.randperm(n, generator=generator)
            yield self.collate_fn(dataset.__getitems__(index if tensor_index else index.tolist()))
        if shuffled and n % size == 0:  # ... or when the batch after the last full one is asked for
            torch.randperm(n, generator=generator)


def make_loader(
    dataset: Dataset, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
) -> DataLoader:
    """A DataLoader; batch-fetching datasets (``__getitems__``) get whole batches by index slices
    (:class:`BatchLoader`) and skip the per-sample collate."""
    collate = _as_is if hasattr(dataset, "__getitems__") else None
    return BatchLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, collate_fn=collate
    )


def index_of(ids, vocabulary, name: str = "ids") -> np.ndarray:
    """Positions of ``ids`` in ``vocabulary`` (e.g. item_id -> row of the item table).

    Raises:
        ValueError: naming ``name`` if some id is not in ``vocabulary``.
    """
    import pandas as pd

    pos = pd.Index(vocabulary).get_indexer(np.asarray(ids))
    if (pos < 0).any():
        raise ValueError(
            f"{name}: {int((pos < 0).sum())} ids are not in the vocabulary, e.g. {np.asarray(ids)[pos < 0][:3]}"
        )
    return pos.astype(np.int64)


class NegativeSamplingDataset(Dataset):
    """Positive (user, item) pairs, each served with ``num_negatives`` items the user did not rate.

    A batch of B positives becomes B * (1 + num_negatives) rows ``{"user", "item", label}``; the
    negatives are drawn afresh at every batch from ``generator``.

    Args:
        users, items: (P,) indices of the positive pairs.
        seen: (num_users, num_items) bool, True where the user rated the item (never a negative).
        num_negatives: negatives per positive.
        generator: random source.
        label: name of the label key (default ``"interest"``).
    """

    def __init__(
        self,
        users,
        items,
        seen: torch.Tensor,
        num_negatives: int = 4,
        generator: torch.Generator | None = None,
        label: str = "interest",
    ):
        self.users, self.items = torch.as_tensor(users).long(), torch.as_tensor(items).long()
        self.seen, self.k, self.generator, self.label = seen, num_negatives, generator, label

    def __len__(self) -> int:
        return len(self.users)

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([idx])

    def __getitems__(self, idx: list[int] | torch.Tensor) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(idx, dtype=torch.long)
        u, pos = self.users.index_select(0, index), self.items.index_select(0, index)  # (B,)
        neg_u = u.repeat_interleave(self.k)  # (B*k,)
        neg = torch.randint(self.seen.shape[1], (len(neg_u),), generator=self.generator)
        for _ in range(10):  # redraw the few negatives that hit a rated item
            hit = self.seen[neg_u, neg]
            if not hit.any():
                break
            neg[hit] = torch.randint(self.seen.shape[1], (int(hit.sum()),), generator=self.generator)
        labels = torch.cat([torch.ones(len(u)), torch.zeros(len(neg))])
        return {"user": torch.cat([u, neg_u]), "item": torch.cat([pos, neg]), self.label: labels}


@dataclass
class RankingEval:
    """What the ranking metrics need: users to rank for, their held-out positives, items to skip.

    Attributes:
        users: (U,) user indices.
        positives: U arrays of held-out positive item indices.
        exclude: (U, num_items) bool, True for items not to rank (those rated in training).
    """

    users: torch.Tensor
    positives: list[np.ndarray]
    exclude: torch.Tensor


def seen_matrix(users, items, num_users: int, num_items: int) -> torch.Tensor:
    """(num_users, num_items) bool: True where (user, item) appears in the given pairs."""
    seen = torch.zeros((num_users, num_items), dtype=torch.bool)
    seen[torch.as_tensor(users).long(), torch.as_tensor(items).long()] = True
    return seen


def ranking_eval(
    seen: torch.Tensor,
    test_users,
    test_items,
    max_users: int | None = None,
    generator: torch.Generator | None = None,
) -> RankingEval:
    """Build a :class:`RankingEval`: each user's positives are its ``test_items``; ``seen`` is excluded.

    Args:
        seen: (num_users, num_items) bool of training interactions (from :func:`seen_matrix`).
        test_users, test_items: (P,) held-out positive pairs (e.g. test ratings >= 4).
        max_users: keep at most this many users (a random subset drawn with ``generator``).
    """
    tu, ti = np.asarray(test_users), np.asarray(test_items)
    users = np.unique(tu)
    if max_users is not None and len(users) > max_users:
        keep = torch.randperm(len(users), generator=generator)[:max_users].numpy()
        users = np.sort(users[keep])
    order = np.argsort(tu, kind="stable")
    tu, ti = tu[order], ti[order]
    starts = np.searchsorted(tu, users)
    ends = np.searchsorted(tu, users, side="right")
    positives = [ti[s:e] for s, e in zip(starts, ends)]
    users_t = torch.as_tensor(users, dtype=torch.long)
    return RankingEval(users=users_t, positives=positives, exclude=seen[users_t])


#: ``__getitems__`` methods that take a 1-D LongTensor of indices as well as a list (:class:`BatchLoader`).
_TENSOR_INDEXED = (TensorDictDataset.__getitems__, NegativeSamplingDataset.__getitems__)
