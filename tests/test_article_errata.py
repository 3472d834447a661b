"""The article's section 5.2 code, run as printed: each mistake the workbook points out, shown."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from mtrec_utils.data.article import ARTICLE_CODE, article_source, load_article, missing_names
from mtrec_utils.data.datasets import ItemDataset, UserDataset, collate_users
from mtrec_utils.models.encoders import load_encoder

SUPPLIED = {"nn": torch.nn, "DataLoader": DataLoader, "tqdm": lambda x, **kw: x, "device": "cpu"}


@pytest.fixture(scope="module")
def tokenizer():
    return load_encoder("tiny-random", device="cpu").tokenizer


def test_the_blocks_are_the_article_text():
    assert set(ARTICLE_CODE) == {"item", "user", "joint", "main"}
    assert "label = self.labels[item]" in article_source("item")
    assert "item_attention_mask = torch.stack(item_encodings, dim=0)" in article_source("user")
    with pytest.raises(ValueError, match="block"):
        article_source("nope")


def test_imports_are_missing():
    assert {"nn", "DataLoader", "tqdm", "device"} <= set(missing_names("item"))
    assert {"AdamW", "classification_report"} <= set(missing_names("main"))
    with pytest.raises(NameError, match="'nn' is not defined"):
        load_article("item")


def test_article_item_dataset_indexes_labels_with_the_text(tokenizer):
    ns = load_article("item", **SUPPLIED)
    with pytest.raises(TypeError, match="list indices"):
        ns["ItemDataset"](["Toy Story (1995)", "GoldenEye (1995)"], [1, 0], tokenizer)[0]
    with pytest.raises(KeyError, match="Toy Story"):
        ns["ItemDataset"](pd.Series(["Toy Story (1995)", "GoldenEye (1995)"]), pd.Series([1, 0]), tokenizer)[
            0
        ]
    ours = ItemDataset(["Toy Story (1995)", "GoldenEye (1995)"], [1, 0], tokenizer)
    assert [float(ours[i]["labels"]) for i in range(2)] == [1.0, 0.0]


def test_article_user_dataset_returns_ids_as_the_attention_mask(tokenizer):
    ns = load_article("user", **SUPPLIED)
    ds = ns["UserDataset"](
        ["A 24-year-old man", "A woman"], [["Toy Story", "Fargo"], ["Heat"]], [1, 0], tokenizer
    )
    sample = ds[0]
    assert torch.equal(sample["item_input_ids"], sample["item_attention_mask"])
    assert sample["item_input_ids"].shape == (4, 128)  # 2 items -> 4 rows: ids and masks interleaved
    assert sample["item_attention_mask"].max() > 1  # token ids where a 0/1 mask belongs
    ours = collate_users([UserDataset(["A 24-year-old man"], [["Toy Story", "Fargo"]], [1], tokenizer)[0]])
    assert ours["item_input_ids"].shape[:2] == (1, 2) and ours["item_attention_mask"].max() == 1


def test_article_loss_applies_bce_to_two_class_logits():
    ns = load_article("item", **SUPPLIED)

    class Outputs:
        logits = torch.randn(2, 2)  # BertForSequenceClassification(num_labels=2)

    with pytest.raises(ValueError, match="Target size"):
        ns["ItemLoss"]()(Outputs(), torch.tensor([1, 0]))


def test_article_evaluate_takes_argmax_of_a_single_logit():
    ns = load_article("item", **SUPPLIED)

    class OneLogit(torch.nn.Module):
        def forward(self, input_ids, attention_mask=None):
            return type("Out", (), {"logits": torch.randn(len(input_ids), 1) * 10})()

    data = [
        {
            "input_ids": torch.zeros(4, dtype=torch.long),
            "attention_mask": torch.ones(4, dtype=torch.long),
            "labels": torch.tensor(float(i % 2)),
        }
        for i in range(6)
    ]
    preds, labels = ns["evaluate"](OneLogit(), data, batch_size=3)
    assert preds == [0] * 6 and sum(labels) == 3  # arg-max over one column is always 0


def test_article_joint_train_never_reads_the_second_dataset():
    class Untouchable:
        def __getattr__(self, name):
            raise AssertionError("dataset2 was read")

        def __len__(self):
            raise AssertionError("dataset2 was read")

    calls = []
    ns = load_article(
        "joint",
        tqdm=lambda x, **kw: x,
        device="cpu",
        torch=torch,
        dataloader=lambda ds, bs: DataLoader(ds, batch_size=bs),
    )
    model = torch.nn.Linear(3, 1)
    model.forward = lambda input_ids, attention_mask=None: type(
        "O", (), {"logits": input_ids.float() @ torch.ones(3, 1)}
    )()
    data = [{"input_ids": torch.ones(3), "attention_mask": torch.ones(3), "labels": torch.ones(1)}] * 4

    def loss_fn(outputs, labels):
        calls.append(1)
        return (outputs.logits - labels).pow(2).mean() + 0 * model.weight.sum()

    loss = ns["joint_train"](
        model, data, Untouchable(), 2, torch.optim.SGD(model.parameters(), lr=0.0), loss_fn
    )
    assert len(calls) == 2 and loss > 0  # two batches of dataset1 only; loss_fn2 never exists here
