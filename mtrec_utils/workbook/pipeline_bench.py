"""The article's data pipeline against ours, timed side by side on the same ratings and weights.

Both pipelines compute the same thing for a batch of (user, item, rating) rows: encode the
user's text and the item's text with the language model, mean-pool, score = dot product, and
the squared error to the rating (then, in ``train`` mode, back-propagate through the encoder).

- **article**: a ``Dataset`` whose ``__getitem__`` tokenises the sample's two texts each time,
  padded to ``max_length`` = 128 tokens, batches of B consecutive rows, and an encoder pass per
  rating: 2B sequences of 128 tokens.
- **ours**: texts tokenised once up front; batches of at most B ratings that share texts
  (:class:`~mtrec_utils.data.batching.SharedTextBatches`: grouped by user, items shared across
  users, length-aware); each batch encodes each *distinct* user and item text once, all in one
  encoder call with several short texts packed per row (:func:`packed_encode`; ``pack=False``:
  one call per tower, padded to its longest text, :class:`~mtrec_utils.models.towers.EncoderText`).

Both see every row once and give the same per-rating loss (up to float error): padding is masked
out either way, and the weights do not change during the comparison.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

from mtrec_utils.data.batching import SharedTextBatches, pack_sequences
from mtrec_utils.models.encoders import Encoder, mean_pool
from mtrec_utils.models.towers import EncoderText

ARTICLE, OURS, OURS_PER_TOWER = "article", "ours", "ours_per_tower"


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


def packed_encode(model: torch.nn.Module, seqs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Mean-pooled (S, H) embeddings of S token sequences in one encoder call; also the tokens it ran.

    The sequences are packed several to a row (:func:`~mtrec_utils.data.batching.pack_sequences`),
    each attending only to itself (a block-diagonal attention mask) with positions from 0, so each
    embedding is the one the sequence gets alone (up to float error), with less padding and one
    larger call instead of several small ones.
    """
    param = next(model.parameters())
    packed = {k: v.to(param.device) for k, v in pack_sequences(seqs).items()}
    seg = packed["segments"]  # (R, T), -1 = padding
    r, t = seg.shape
    same = (seg[:, :, None] == seg[:, None, :]) & (seg[:, :, None] >= 0)  # (R, T, T)
    same |= torch.eye(t, dtype=torch.bool, device=seg.device)  # padding attends to itself: no empty row
    mask = same[:, None]  # (R, 1, T, T), True = may attend
    if getattr(model.config, "_attn_implementation", None) != "sdpa":
        # eager attention adds the mask to its scores: it needs the additive float form (0 / -inf).
        # SDPA takes the boolean mask as it is, which spares a (R, 1, T, T) fill and the model's checks.
        additive = torch.zeros(mask.shape, dtype=param.dtype, device=seg.device)
        mask = additive.masked_fill_(~mask, torch.finfo(param.dtype).min)
    hidden = model(
        input_ids=packed["input_ids"], attention_mask=mask, position_ids=packed["position_ids"]
    ).last_hidden_state  # (R, T, H)
    flat, keep = seg.reshape(-1), seg.reshape(-1) >= 0
    sums = hidden.new_zeros((len(seqs), hidden.shape[-1])).index_add(
        0, flat[keep], hidden.reshape(r * t, -1)[keep]
    )
    return sums / packed["lengths"][:, None].to(hidden.dtype), r * t


def our_loss(
    users: EncoderText, items: EncoderText, batch: dict[str, torch.Tensor], pack: bool = True
) -> tuple[torch.Tensor, int, float]:
    """Loss of one batch of indices; also the number of distinct texts encoded and their mean padded length.

    With ``pack`` (and one encoder behind both), the batch's distinct user and item texts go through
    the encoder in one packed call (:func:`packed_encode`); else each tower encodes its own distinct
    texts, padded to its longest (:class:`~mtrec_utils.models.towers.EncoderText`).
    """
    uu, u_inv = batch["user"].unique(return_inverse=True)
    ui, i_inv = batch["item"].unique(return_inverse=True)
    nu, ni = len(uu), len(ui)
    if pack and users.model is items.model:
        seqs = [users.ids[u, : int(users.lengths[u])] for u in uu]
        seqs += [items.ids[i, : int(items.lengths[i])] for i in ui]
        emb, tokens = packed_encode(users.model, seqs)  # (U + I, H)
        u, i = emb[:nu][u_inv], emb[nu:][i_inv]  # (B, H) each
    else:
        u, i = users(batch["user"]), items(batch["item"])  # (B, H) each, from U + I distinct texts
        tokens = nu * int(users.lengths[uu].max()) + ni * int(items.lengths[ui].max())
    loss = ((u * i).sum(-1) - batch["labels"]).pow(2).mean()
    return loss, nu + ni, tokens / (nu + ni)


def our_batches(
    users: EncoderText, items: EncoderText, user_idx, item_idx, batch_size: int, seed: int = 0
) -> list[np.ndarray]:
    """Our batches of the rows ``(user_idx, item_idx)``: row indices, texts shared (see the module docstring)."""
    sampler = SharedTextBatches(
        np.asarray(user_idx),
        np.asarray(item_idx),
        batch_size,
        users.lengths.cpu().numpy(),
        items.lengths.cpu().numpy(),
        seed=seed,
    )
    return sampler.batches()


def _run(step, batch, train: bool, device) -> tuple[float, float, int, float, int]:
    """Time one step: (seconds, loss, sequences encoded, tokens per sequence, ratings)."""
    start = time.perf_counter()
    with torch.set_grad_enabled(train):
        loss, seqs, tokens = step(batch)
        if train:
            loss.backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, float(loss.detach()), seqs, tokens, len(batch["labels"])


def _summary(runs: list[tuple[float, float, int, float, int]], warmup: int) -> dict:
    """Speed over the timed batches (after ``warmup``); loss over all of them (every row once)."""
    timed = runs[warmup:]
    samples, seconds = sum(r[4] for r in timed), sum(r[0] for r in timed)
    return {
        "samples": samples,
        "seconds": seconds,
        "samples_per_s": samples / seconds,
        "batches": len(timed),
        "samples_per_batch": samples / len(timed),
        "sequences_per_batch": float(np.mean([r[2] for r in timed])),
        "tokens_per_sequence": float(np.mean([r[3] for r in timed])),
        "padded_tokens_per_batch": float(np.mean([r[2] * r[3] for r in timed])),
        "mean_loss": sum(r[1] * r[4] for r in runs) / sum(r[4] for r in runs),  # per rating, all rows
    }


def _flops(step, batch, train: bool) -> int:
    """FLOPs of one step (forward, and backward when ``train``), counted by PyTorch's ``FlopCounterMode``."""
    with FlopCounterMode(display=False) as counter, torch.set_grad_enabled(train):
        loss = step(batch)[0]
        if train:
            loss.backward()
    return int(counter.get_total_flops())


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
    seed: int = 0,
    batches: Sequence[np.ndarray] | None = None,
    count_flops: bool = False,
    between: Callable[[], object] | None = None,
    pack: bool = True,
    per_tower: bool = False,
) -> pd.DataFrame:
    """Time both pipelines on the same rows and weights, batch by batch in alternation.

    The article's time per batch includes its per-sample tokenisation (in ``__getitem__``);
    ours includes gathering its batch's rows but excludes the one-off tokenisation of all texts
    and the building of its batches, reported as ``setup_s``.

    Args:
        encoder: the language model (its weights are not changed: no optimizer step).
        user_texts, item_texts: texts indexed by user / item index.
        users, items, labels: (N,) rows to run; the first N // batch_size * batch_size of them, in
            N // batch_size batches of the article and (about as many) of ours; the first ``warmup``
            batches of each pipeline are untimed.
        batch_size: ratings per batch (the most, for ours).
        max_length: the article's fixed padding length (and our truncation limit).
        train: time forward + backward (a training step) if True, else forward only.
        seed: the seed of our batch order.
        batches: our batches (arrays of row indices that cover the rows once, each of at most
            ``batch_size``), e.g. drawn from the batching of a whole epoch; default: built here
            by :func:`our_batches`.
        count_flops: also count each pipeline's FLOPs per timed batch (an extra, untimed pass
            of each of our batches, after its timed one; the article's batches all have one shape,
            so its warm-up batch is counted) and report ``flops_per_batch`` and ``flops_per_s``.
        between: called after each pair of batches (e.g. to time a reference matmul under the
            same machine load).
        pack: ours encodes a batch's user and item texts in one packed encoder call
            (:func:`packed_encode`); else one padded call per tower.
        per_tower: with ``pack``, also time ours with one padded call per tower on the same
            batches (row ``ours_per_tower``, alternating with the others: packing's effect, same load).

    Returns:
        One row per pipeline: ``samples``, ``seconds``, ``samples_per_s``, ``batches``,
        ``samples_per_batch``, ``sequences_per_batch`` (texts encoded), ``tokens_per_sequence`` and
        ``padded_tokens_per_batch`` (tokens through the encoder, padding included) over the timed
        batches; ``mean_loss`` per rating over all rows; ``setup_s`` (ours: tokenising and batching);
        ``.attrs["speedup"]`` = ours / article samples per second.
    """
    model, device = encoder.model, encoder.device
    was_training = model.training
    model.eval()  # no dropout, so both pipelines compute exactly the same function
    n_rows = len(users) // batch_size * batch_size  # whole batches only, the same rows for both
    users, items = np.asarray(users)[:n_rows], np.asarray(items)[:n_rows]
    labels = np.asarray(labels, dtype=np.float32)[:n_rows]
    if n_rows < (warmup + 1) * batch_size:
        raise ValueError(
            f"need at least {(warmup + 1) * batch_size} rows for warmup={warmup}, batch_size={batch_size}"
        )
    if batches is not None:
        covered = np.sort(np.concatenate([np.asarray(b, dtype=np.int64) for b in batches]))
        if not np.array_equal(covered, np.arange(n_rows)) or max(len(b) for b in batches) > batch_size:
            raise ValueError(
                f"batches must cover rows 0..{n_rows - 1} once each, at most {batch_size} per batch"
            )
    try:
        ds = ArticlePairDataset(user_texts, item_texts, users, items, labels, encoder.tokenizer, max_length)
        article_batches = iter(DataLoader(ds, batch_size=batch_size, shuffle=False))
        start = time.perf_counter()
        u_text = EncoderText(encoder, user_texts, max_length).to(device)
        i_text = EncoderText(encoder, item_texts, max_length).to(device)
        ours = (
            our_batches(u_text, i_text, users, items, batch_size, seed) if batches is None else list(batches)
        )
        setup = time.perf_counter() - start
        ours_data = {
            k: torch.as_tensor(np.array(v))
            for k, v in {"user": users, "item": items, "labels": labels}.items()
        }
        art: list[tuple[float, float, int, float, int]] = []
        art_flops = 0
        variants = {OURS: pack, **({OURS_PER_TOWER: False} if per_tower and pack else {})}
        our: dict[str, list[tuple[float, float, int, float, int]]] = {v: [] for v in variants}
        our_flops: dict[str, list[int]] = {v: [] for v in variants}

        def art_step(b):
            return article_loss(model, b)

        for n in range(max(n_rows // batch_size, len(ours))):  # alternate, so both see the same machine load
            if n < n_rows // batch_size:
                t0 = time.perf_counter()  # the article's loading: tokenised in __getitem__
                batch = {k: v.to(device) for k, v in next(article_batches).items()}
                load = time.perf_counter() - t0
                if count_flops and n == 0 and warmup:  # count the untimed warm-up step itself
                    with FlopCounterMode(display=False) as counter:
                        a = _run(art_step, batch, train, device)
                    art_flops = int(counter.get_total_flops())  # every article batch has this shape
                else:
                    if count_flops and n == 0:
                        art_flops = _flops(art_step, batch, train)
                        model.zero_grad(set_to_none=True)
                    a = _run(art_step, batch, train, device)
                model.zero_grad(set_to_none=True)
                art.append((a[0] + load, *a[1:]))
            first_last = list(variants.items())[:: 1 if n % 2 else -1]  # alternate which variant goes first
            for variant, packed in first_last:
                if n >= len(ours):
                    break

                def our_step(b, packed=packed):
                    return our_loss(u_text, i_text, b, packed)

                t0 = time.perf_counter()  # our loading: gather the batch's rows
                rows = torch.as_tensor(ours[n])
                ours_batch = {k: v[rows].to(device) for k, v in ours_data.items()}
                load = time.perf_counter() - t0
                o = _run(our_step, ours_batch, train, device)
                model.zero_grad(set_to_none=True)
                our[variant].append((o[0] + load, *o[1:]))
                if count_flops:  # after the timed pass, so it warms nothing up for it
                    our_flops[variant].append(_flops(our_step, ours_batch, train) if n >= warmup else 0)
                    model.zero_grad(set_to_none=True)
            if between is not None:
                between()
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    rows_out = [{**_summary(art, warmup), "setup_s": 0.0}]
    rows_out += [{**_summary(our[v], warmup), "setup_s": setup} for v in variants]
    if count_flops:
        rows_out[0]["flops_per_batch"] = float(art_flops)
        rows_out[0]["flops_per_s"] = art_flops * (len(art) - warmup) / rows_out[0]["seconds"]
        for row, v in zip(rows_out[1:], variants):
            row["flops_per_batch"] = float(np.mean(our_flops[v][warmup:]))
            row["flops_per_s"] = sum(our_flops[v]) / row["seconds"]
    table = pd.DataFrame(rows_out, index=pd.Index([ARTICLE, *variants], name="pipeline"))
    table.attrs["speedup"] = table.loc[OURS, "samples_per_s"] / table.loc[ARTICLE, "samples_per_s"]
    return table
