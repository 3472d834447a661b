"""Batches that share texts: every rating once per epoch, size limit, texts counted, seeded order."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mtrec_utils.data.batching import SharedTextBatches, batch_stats, pack_sequences
from mtrec_utils.data.datasets import TensorDictDataset


def ratings(n_users=30, n_items=50, n=700, seed=0):
    """Random ratings with a few repeated (user, item) pairs, as (users, items, user_lengths, item_lengths)."""
    rng = np.random.default_rng(seed)
    users, items = rng.integers(0, n_users, n), rng.zipf(1.5, n) % n_items
    users[:20], items[:20] = users[20:40], items[20:40]  # 20 repeated pairs
    return users, items, rng.integers(20, 80, n_users), rng.integers(5, 30, n_items)


def test_every_rating_is_in_exactly_one_batch_of_at_most_batch_size():
    users, items, lu, li = ratings()
    sampler = SharedTextBatches(users, items, 32, lu, li, seed=1)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        rows = np.concatenate(batches)
        assert sorted(rows.tolist()) == list(range(len(users)))
        assert all(0 < len(b) <= 32 for b in batches)
        assert len(sampler) == len(batches)


def test_sparse_ratings_still_fill_batches():
    users, items = np.arange(100), np.arange(100)  # 100 users, one rating each, nothing shared
    batches = SharedTextBatches(users, items, 32).batches()
    assert sorted(len(b) for b in batches) == [4, 32, 32, 32]


def test_a_dense_block_shares_texts_across_users():
    users, items = np.repeat(np.arange(4), 8), np.tile(np.arange(8), 4)  # 4 users x 8 items, all rated
    (batch,) = SharedTextBatches(users, items, 32).batches()
    assert batch_stats(batch, users, items) == {
        "ratings": 32,
        "users": 4,
        "items": 8,
        "texts": 12,  # not 64: each user and each item encoded once
        "padded_tokens": 0,
        "text_tokens": 0,
    }


def test_texts_and_padded_tokens_are_counted():
    users, items = np.array([0, 0, 1, 1]), np.array([0, 1, 1, 2])
    lu, li = np.array([10, 30]), np.array([4, 6, 8])
    stats = batch_stats([0, 1, 2], users, items, lu, li)  # users {0, 1}, items {0, 1}
    assert stats == {
        "ratings": 3,
        "users": 2,
        "items": 2,
        "texts": 4,
        "padded_tokens": 2 * 30 + 2 * 6,
        "text_tokens": 10 + 30 + 4 + 6,
    }


def test_short_and_long_texts_go_to_different_batches():
    users, items = np.zeros(64, dtype=int), np.arange(64)  # one user, 32 short and 32 long item texts
    li = np.where(np.arange(64) % 2 == 0, 5, 50)
    batches = SharedTextBatches(users, items, 32, [40], li, seed=0).batches()
    stats = sorted(
        (batch_stats(b, users, items, [40], li) for b in batches), key=lambda s: s["padded_tokens"]
    )
    assert [s["padded_tokens"] for s in stats] == [
        40 + 32 * 5,
        40 + 32 * 50,
    ]  # each padded to its own longest
    assert [s["ratings"] for s in stats] == [32, 32]


def test_the_same_seed_and_epoch_give_the_same_batches():
    users, items, lu, li = ratings()

    def epoch_batches(seed, epoch):
        sampler = SharedTextBatches(users, items, 16, lu, li, seed=seed)
        sampler.set_epoch(epoch)
        return [b.tolist() for b in sampler.batches()]

    assert epoch_batches(3, 0) == epoch_batches(3, 0)
    assert epoch_batches(3, 0) != epoch_batches(4, 0)
    assert epoch_batches(3, 0) != epoch_batches(3, 1)
    unshuffled = SharedTextBatches(users, items, 16, lu, li, shuffle=False)
    assert [b.tolist() for b in unshuffled.batches()] == [
        b.tolist() for b in SharedTextBatches(users, items, 16, lu, li, shuffle=False, seed=9).batches()
    ]


def test_works_as_a_dataloader_batch_sampler():
    users, items, lu, li = ratings(n=100)
    ds = TensorDictDataset(user=users, item=items, rating=np.ones(len(users), dtype=np.float32))
    sampler = SharedTextBatches(users, items, 16, lu, li)
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=lambda b: b)
    seen = torch.cat([b["user"] for b in loader])
    assert len(seen) == len(users) and sorted(seen.tolist()) == sorted(users.tolist())


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="batch_size"):
        SharedTextBatches([0], [0], 0)
    with pytest.raises(ValueError, match="aligned"):
        SharedTextBatches([0, 1], [0], 4)
    with pytest.raises(ValueError, match="item_lengths"):
        SharedTextBatches([0], [3], 4, item_lengths=[5, 5])


def test_pack_sequences_fills_rows_of_the_longest_length():
    seqs = [[1] * 6, [2] * 2, [3] * 3, [4] * 4, [5] * 1]  # longest 6: rows [6], [4, 2], [3, 1]
    packed = pack_sequences(seqs, pad_id=0)
    assert packed["input_ids"].shape == (3, 6)
    assert packed["lengths"].tolist() == [6, 2, 3, 4, 1]
    for k, s in enumerate(seqs):  # each sequence whole, in one row, positions from 0
        where = packed["segments"] == k
        assert int(where.sum()) == len(s) and int(where.any(dim=1).sum()) == 1
        assert packed["input_ids"][where].tolist() == s
        assert packed["position_ids"][where].tolist() == list(range(len(s)))
    assert (packed["input_ids"][packed["segments"] < 0] == 0).all()
    assert int((packed["segments"] < 0).sum()) == 3 * 6 - 16  # the only padding
    with pytest.raises(ValueError, match="empty"):
        pack_sequences([[1], []])
