"""The article's pipeline against ours: same loss, fewer and shorter sequences for ours."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtrec_utils.models.encoders import load_encoder
from mtrec_utils.workbook.pipeline_bench import ArticlePairDataset, compare_pipelines

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
    assert table.loc["article", "samples"] == table.loc["ours", "samples"] == 16  # first batch is a warm-up
    assert np.isclose(table.loc["article", "mean_loss"], table.loc["ours", "mean_loss"], rtol=1e-4)
    assert table.loc["article", "tokens_per_sequence"] == 32 > table.loc["ours", "tokens_per_sequence"]
    assert table.loc["ours", "sequences_per_batch"] <= 5 < table.loc["article", "sequences_per_batch"] == 16
    assert table.attrs["speedup"] > 0 and (table["samples_per_s"] > 0).all()
    assert all(torch.equal(a, b) for a, b in zip(before, encoder.model.parameters()))  # weights untouched
    assert all(p.grad is None for p in encoder.model.parameters())


def test_too_few_rows_are_rejected(encoder):
    with pytest.raises(ValueError, match="at least 16 rows"):
        compare_pipelines(encoder, USERS, ITEMS, [0] * 10, [0] * 10, [1.0] * 10, batch_size=8)
