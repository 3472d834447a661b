"""The article's pipeline against ours: same loss, fewer and shorter sequences for ours."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtrec_utils.models.encoders import load_encoder
from mtrec_utils.models.towers import EncoderText
from mtrec_utils.workbook.pipeline_bench import (
    ArticlePairDataset,
    compare_pipelines,
    our_batches,
    our_loss,
    packed_encode,
)

USERS = ["A 24-year-old man, technician. Recently liked: Star Wars (1977).", "A 53-year-old woman, other."]
ITEMS = [
    "Toy Story (1995). Genres: Animation.",
    "GoldenEye (1995). Genres: Action, Adventure, Thriller.",
    "Heat",
]


@pytest.fixture(scope="module")
def encoder():
    return load_encoder("tiny-random", device="cpu")


def test_article_dataset_pads_every_text_to_max_length(encoder):
    ds = ArticlePairDataset(USERS, ITEMS, [0, 1], [2, 0], [3.0, 4.0], encoder.tokenizer, max_length=128)
    sample = ds[1]
    assert sample["user_input_ids"].shape == (128,) and sample["item_input_ids"].shape == (128,)
    assert float(sample["labels"]) == 4.0


def test_both_pipelines_compute_the_same_loss_and_ours_encodes_less(encoder):
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 2, 24), rng.integers(0, 3, 24)
    before = [p.detach().clone() for p in encoder.model.parameters()]
    table = compare_pipelines(
        encoder, USERS, ITEMS, users, items, rng.integers(1, 6, 24), batch_size=8, max_length=32
    )
    assert list(table.index) == ["article", "ours"]
    assert table.loc["article", "samples"] == 16  # first batch is a warm-up
    assert 0 < table.loc["ours", "samples"] <= 16 and table.loc["ours", "samples_per_batch"] <= 8
    assert np.isclose(table.loc["article", "mean_loss"], table.loc["ours", "mean_loss"], rtol=1e-4)
    assert table.loc["article", "tokens_per_sequence"] == 32 > table.loc["ours", "tokens_per_sequence"]
    assert table.loc["ours", "sequences_per_batch"] <= 5 < table.loc["article", "sequences_per_batch"] == 16
    assert table.loc["article", "padded_tokens_per_batch"] == 16 * 32
    assert table.loc["ours", "padded_tokens_per_batch"] < 5 * 32
    assert table.attrs["speedup"] > 0 and (table["samples_per_s"] > 0).all()
    assert all(torch.equal(a, b) for a, b in zip(before, encoder.model.parameters()))  # weights untouched
    assert all(p.grad is None for p in encoder.model.parameters())


def test_our_batches_share_users_and_cover_every_row_once(encoder):
    users = np.repeat(np.arange(2), 16)  # two users, 16 ratings each, of the same 3 items
    items = np.tile(np.arange(3), 11)[:32]
    u_text, i_text = EncoderText(encoder, USERS, 32), EncoderText(encoder, ITEMS, 32)
    batches = our_batches(u_text, i_text, users, items, batch_size=8)
    assert sorted(np.concatenate(batches).tolist()) == list(range(32))
    assert all(len(b) == 8 and len(set(users[b])) + len(set(items[b])) <= 5 for b in batches)


def test_unpacked_ours_and_given_batches(encoder):
    users, items = np.repeat(np.arange(2), 8), np.tile(np.arange(3), 6)[:16]
    batches = [np.arange(0, 16, 2), np.arange(1, 16, 2)]  # ours as given
    args = (encoder, USERS, ITEMS, users, items, np.ones(16))
    table = compare_pipelines(*args, batch_size=8, max_length=32, batches=batches, pack=False)
    assert list(table.index) == ["article", "ours"] and table.loc["ours", "samples"] == 8
    assert np.isclose(table.loc["article", "mean_loss"], table.loc["ours", "mean_loss"], rtol=1e-4)
    with pytest.raises(ValueError, match="cover rows"):
        compare_pipelines(*args, batch_size=8, batches=[np.arange(8), np.arange(8)])


def test_too_few_rows_are_rejected(encoder):
    with pytest.raises(ValueError, match="at least 16 rows"):
        compare_pipelines(encoder, USERS, ITEMS, [0] * 10, [0] * 10, [1.0] * 10, batch_size=8)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])  # a boolean mask for SDPA, an additive one for eager
def test_packed_encoding_equals_encoding_each_text_alone(encoder, attention):
    texts = EncoderText(encoder, USERS + ITEMS, 32)
    seqs = [texts.ids[k, : int(texts.lengths[k])] for k in range(len(USERS + ITEMS))]
    before = encoder.model.config._attn_implementation
    encoder.model.eval()
    try:
        encoder.model.set_attn_implementation(attention)
        with torch.no_grad():
            packed, tokens = packed_encode(encoder.model, seqs)
            alone = torch.cat([texts(torch.tensor([k])) for k in range(len(seqs))])
    finally:
        encoder.model.set_attn_implementation(before)
    assert packed.shape == alone.shape and torch.allclose(packed, alone, atol=1e-5)
    assert tokens < len(seqs) * int(texts.lengths.max())  # less padding than one padded call


def test_our_loss_is_the_same_packed_or_per_tower(encoder):
    u_text, i_text = EncoderText(encoder, USERS, 32), EncoderText(encoder, ITEMS, 32)
    batch = {"user": torch.tensor([0, 1, 1, 0]), "item": torch.tensor([2, 0, 1, 2]), "labels": torch.ones(4)}
    encoder.model.eval()
    with torch.no_grad():
        packed, per_tower = (
            our_loss(u_text, i_text, batch, pack=True),
            our_loss(u_text, i_text, batch, pack=False),
        )
    assert torch.allclose(packed[0], per_tower[0], rtol=1e-5) and packed[1] == per_tower[1] == 5
