"""The article's data pipeline against ours, timed side by side on the same ratings and weights.

Both pipelines compute the same thing for a batch of B (user, item, rating) rows: encode the
user's text and the item's text with the language model, mean-pool, score = dot product, and
the squared error to the rating (then, in ``train`` mode, back-propagate through the encoder).

- **article**: a ``Dataset`` whose ``__getitem__`` tokenises the sample's two texts each time,
  padded to ``max_length`` = 128 tokens, and an encoder pass per rating: 2B sequences of 128 tokens.
- **ours**: texts tokenised once up front; each batch encodes each *distinct* user and item text
  once, padded to the longest text of the batch (:class:`~mtrec_utils.models.towers.EncoderText`).

The two give the same loss (up to float error): padding is masked out either way.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from mtrec_utils.models.encoders import Encoder, mean_pool
from mtrec_utils.models.towers import EncoderText

ARTICLE, OURS = "article", "ours"


class ArticlePairDataset(Dataset):
    """(user text, item text, rating) tokenised per sample and padded to ``max_length``, as the article does."""

    def __init__(self, user_texts, item_texts, users, items, labels, tokenizer, max_length: int = 128):
        self.user_texts, self.item_texts = list(user_texts), list(item_texts)
        self.users, self.items, self.labels = users, items, labels
        self.tokenizer, self.max_length = tokenizer, max_length

    def __len__(self) -> int:
        return len(self.users)

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        kw = {
            "return_tensors": "pt",
            "max_length": self.max_length,
            "padding": "max_length",
            "truncation": True,
        }
        u = self.tokenizer(self.user_texts[self.users[idx]], **kw)
        i = self.tokenizer(self.item_texts[self.items[idx]], **kw)
        return {
            "user_input_ids": u["input_ids"][0],
            "user_attention_mask": u["attention_mask"][0],
            "item_input_ids": i["input_ids"][0],
            "item_attention_mask": i["attention_mask"][0],
            "labels": torch.tensor(float(self.labels[idx])),
        }


def article_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int, int]:
    """Loss of one article-style batch; also the number of sequences encoded and their padded length."""

    def enc(ids, mask):  # noqa: E306
        return mean_pool(model(input_ids=ids, attention_mask=mask).last_hidden_state, mask)  # (B, H)

    u = enc(batch["user_input_ids"], batch["user_attention_mask"])  # 1 pass per rating
    i = enc(batch["item_input_ids"], batch["item_attention_mask"])
    loss = ((u * i).sum(-1) - batch["labels"]).pow(2).mean()
    return loss, 2 * len(u), batch["user_input_ids"].shape[1]


def our_loss(
    users: EncoderText, items: EncoderText, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, int, float]:
    """Loss of one batch of indices; also the number of distinct texts encoded and their mean padded length."""
    u, i = users(batch["user"]), items(batch["item"])  # (B, H) each, from U + I distinct texts
    loss = ((u * i).sum(-1) - batch["labels"]).pow(2).mean()
    nu, ni = len(batch["user"].unique()), len(batch["item"].unique())
    tu = int(users.lengths[batch["user"].unique()].max())
    ti = int(items.lengths[batch["item"].unique()].max())
    return loss, nu + ni, (nu * tu + ni * ti) / (nu + ni)


def _run(step, batch, train: bool, device) -> tuple[float, float, int, float]:
    """Time one step: (seconds, loss, sequences encoded, tokens per sequence)."""
    start = time.perf_counter()
    with torch.set_grad_enabled(train):
        loss, seqs, tokens = step(batch)
        if train:
            loss.backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, float(loss.detach()), seqs, tokens


def _summary(runs: list[tuple[float, float, int, float]], batch_size: int) -> dict:
    seconds = sum(r[0] for r in runs)
    return {
        "samples": batch_size * len(runs),
        "seconds": seconds,
        "samples_per_s": batch_size * len(runs) / seconds,
        "sequences_per_batch": float(np.mean([r[2] for r in runs])),
        "tokens_per_sequence": float(np.mean([r[3] for r in runs])),
        "mean_loss": float(np.mean([r[1] for r in runs])),
    }


def compare_pipelines(
    encoder: Encoder,
    user_texts: Sequence[str],
    item_texts: Sequence[str],
    users: np.ndarray,
    items: np.ndarray,
    labels: np.ndarray,
    batch_size: int = 32,
    max_length: int = 128,
    train: bool = True,
    warmup: int = 1,
) -> pd.DataFrame:
    """Time both pipelines on the same rows and weights, batch by batch in alternation.

    The article's time per batch includes its per-sample tokenisation (in ``__getitem__``);
    ours excludes the one-off tokenisation of all texts, reported as ``setup_s``.

    Args:
        encoder: the language model (its weights are not changed: no optimizer step).
        user_texts, item_texts: texts indexed by user / item index.
        users, items, labels: (N,) rows to run: N // batch_size batches, the first ``warmup`` untimed.
        batch_size: ratings per batch.
        max_length: the article's fixed padding length (and our truncation limit).
        train: time forward + backward (a training step) if True, else forward only.

    Returns:
        One row per pipeline: ``samples``, ``seconds``, ``samples_per_s``, ``sequences_per_batch``,
        ``tokens_per_sequence``, ``mean_loss`` and ``setup_s`` (one-off tokenisation, not in ``seconds``);
        ``.attrs["speedup"]`` = ours / article samples per second.
    """
    model, device = encoder.model, encoder.device
    was_training = model.training
    model.eval()  # no dropout, so both pipelines compute exactly the same function
    n_rows = len(users) // batch_size * batch_size  # whole batches only, the same for both
    users, items = np.asarray(users)[:n_rows], np.asarray(items)[:n_rows]
    labels = np.asarray(labels, dtype=np.float32)[:n_rows]
    if n_rows < (warmup + 1) * batch_size:
        raise ValueError(
            f"need at least {(warmup + 1) * batch_size} rows for warmup={warmup}, batch_size={batch_size}"
        )
    try:
        ds = ArticlePairDataset(user_texts, item_texts, users, items, labels, encoder.tokenizer, max_length)
        article_batches = iter(DataLoader(ds, batch_size=batch_size, shuffle=False))
        start = time.perf_counter()
        u_text = EncoderText(encoder, user_texts, max_length).to(device)
        i_text = EncoderText(encoder, item_texts, max_length).to(device)
        setup = time.perf_counter() - start
        art, our = [], []
        ours_data = {"user": users, "item": items, "labels": labels}
        for n, s in enumerate(range(0, n_rows, batch_size)):  # alternate, so both see the same machine load
            t0 = time.perf_counter()
            batch = {k: v.to(device) for k, v in next(article_batches).items()}  # tokenised in __getitem__
            load = time.perf_counter() - t0
            a = _run(lambda b: article_loss(model, b), batch, train, device)
            ours_batch = {
                k: torch.as_tensor(v[s : s + batch_size], device=device) for k, v in ours_data.items()
            }
            o = _run(lambda b: our_loss(u_text, i_text, b), ours_batch, train, device)
            model.zero_grad(set_to_none=True)
            if n >= warmup:
                art.append((a[0] + load, *a[1:]))
                our.append(o)
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    rows = [{**_summary(art, batch_size), "setup_s": 0.0}, {**_summary(our, batch_size), "setup_s": setup}]
    table = pd.DataFrame(rows, index=pd.Index([ARTICLE, OURS], name="pipeline"))
    table.attrs["speedup"] = table.loc[OURS, "samples_per_s"] / table.loc[ARTICLE, "samples_per_s"]
    return table
