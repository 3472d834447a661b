"""The corrected ItemDataset/UserDataset, dynamic padding, batch datasets, ranking data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtrec_utils.data.datasets import (
    ItemDataset,
    NegativeSamplingDataset,
    TensorDictDataset,
    UserDataset,
    collate_items,
    collate_users,
    index_of,
    make_loader,
    pad_sequences,
    ranking_eval,
    seen_matrix,
    tokenize_once,
)
from mtrec_utils.models.encoders import load_encoder


@pytest.fixture(scope="module")
def tokenizer():
    return load_encoder("tiny-random", device="cpu").tokenizer


class CountingTokenizer:
    """Wraps a tokenizer and counts its calls."""

    def __init__(self, tok):
        self.tok, self.calls, self.pad_token_id = tok, 0, tok.pad_token_id

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.tok(*args, **kwargs)


def test_pad_sequences_pads_to_the_longest_and_masks_padding():
    ids, mask = pad_sequences([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_item_dataset_returns_the_label_of_the_index_and_tokenises_once(tokenizer):
    counting = CountingTokenizer(tokenizer)
    ds = ItemDataset(
        ["Toy Story (1995)", "GoldenEye (1995). Genres: Action, Adventure"], [1.0, 0.0], counting
    )
    assert counting.calls == 1
    assert float(ds[1]["labels"]) == 0.0 and float(ds[0]["labels"]) == 1.0
    batch = collate_items([ds[0], ds[1]], ds.pad_id)
    assert counting.calls == 1  # no tokenisation per sample
    longest = max(len(x) for x in ds.input_ids)
    assert batch["input_ids"].shape == (2, longest) < (2, 128)
    assert batch["attention_mask"].sum(1).tolist() == [len(x) for x in ds.input_ids]


def test_item_dataset_rejects_mismatched_lengths(tokenizer):
    with pytest.raises(ValueError, match="differ in length"):
        ItemDataset(["a", "b"], [1.0], tokenizer)


def test_user_dataset_keeps_ids_and_masks_apart(tokenizer):
    ds = UserDataset(
        ["A 24-year-old man", "A woman"], [["Toy Story", "Fargo (1996)"], ["Heat"]], [1, 0], tokenizer
    )
    batch = collate_users([ds[0], ds[1]], ds.pad_id)
    assert batch["item_input_ids"].shape[:2] == (2, 2) and batch["item_attention_mask"].shape[:2] == (2, 2)
    assert not torch.equal(batch["item_input_ids"], batch["item_attention_mask"])
    assert set(batch["item_attention_mask"].unique().tolist()) <= {0, 1}
    assert batch["item_mask"].tolist() == [[1, 1], [1, 0]]
    first = tokenize_once(tokenizer, ["Fargo (1996)"])[0]
    assert batch["item_input_ids"][0, 1, : len(first)].tolist() == first
    assert batch["labels"].tolist() == [1.0, 0.0]


def test_tensor_dict_dataset_serves_whole_batches():
    ds = TensorDictDataset(user=np.arange(10), rating=np.linspace(1, 5, 10).astype("float32"))
    batches = list(make_loader(ds, batch_size=4))
    assert [len(b["user"]) for b in batches] == [4, 4, 2]
    assert batches[0]["user"].tolist() == [0, 1, 2, 3] and ds[3]["user"] == 3
    with pytest.raises(ValueError, match="differ in length"):
        TensorDictDataset(a=np.arange(3), b=np.arange(4))


def test_shuffled_loader_is_reproducible_with_a_generator():
    ds = TensorDictDataset(x=np.arange(20))
    first = [b["x"].tolist() for b in make_loader(ds, 5, True, torch.Generator().manual_seed(1))]
    again = [b["x"].tolist() for b in make_loader(ds, 5, True, torch.Generator().manual_seed(1))]
    assert first == again and sorted(sum(first, [])) == list(range(20))


def test_index_of_maps_ids_and_rejects_unknown_ones():
    assert index_of([30, 10], [10, 20, 30]).tolist() == [2, 0]
    with pytest.raises(ValueError, match="item_id"):
        index_of([40], [10, 20, 30], "item_id")


def test_negative_sampling_never_draws_a_rated_item():
    seen = seen_matrix([0, 0, 1], [0, 1, 2], num_users=2, num_items=4)
    ds = NegativeSamplingDataset(
        [0, 0, 1], [0, 1, 2], seen, num_negatives=3, generator=torch.Generator().manual_seed(0)
    )
    batch = ds.__getitems__([0, 1, 2])
    assert len(batch["user"]) == 3 * 4 and batch["interest"].sum() == 3
    neg = batch["interest"] == 0
    assert not seen[batch["user"][neg], batch["item"][neg]].any()


def test_ranking_eval_groups_positives_and_excludes_training_items():
    seen = seen_matrix([0, 1], [0, 1], num_users=3, num_items=4)
    data = ranking_eval(seen, test_users=[1, 0, 1], test_items=[2, 3, 3])
    assert data.users.tolist() == [0, 1]
    assert [p.tolist() for p in data.positives] == [[3], [2, 3]]
    assert data.exclude.tolist() == [[True, False, False, False], [False, True, False, False]]
    small = ranking_eval(seen, [0, 1, 2], [1, 2, 3], max_users=2, generator=torch.Generator().manual_seed(0))
    assert len(small.users) == 2 and len(small.positives) == 2
