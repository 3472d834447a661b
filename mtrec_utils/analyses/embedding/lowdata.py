"""The low-data setting (e.g. 10% of the training rows), with and without augmentation.

- :func:`subsample_rows`: the training rows a low-data run keeps;
- :func:`text_augmented_bundle`: a clothing-style bundle trained on those rows plus augmented
  copies of their texts (encoded once with the frozen encoder, through its disk cache); validation
  and test data stay exactly those of the full bundle;
- :func:`history_scores`: scores of every item for users represented by their histories
  (:class:`~mtrec_utils.models.history.HistoryModel`), ready for the ranking metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from mtrec_utils.data.augment import augment_texts
from mtrec_utils.data.datasets import TensorDictDataset, make_loader
from mtrec_utils.models.towers import FrozenText
from mtrec_utils.training.bundles import TaskBundle


def subsample_rows(num_rows: int, fraction: float, generator: torch.Generator | None = None) -> np.ndarray:
    """Sorted indices of ``max(1, round(fraction * num_rows))`` rows drawn without replacement.

    Raises:
        ValueError: unless 0 < fraction <= 1.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction={fraction!r} is not valid; it must be in (0, 1] (for example 0.1)")
    n = max(1, int(round(fraction * num_rows)))
    return np.sort(torch.randperm(num_rows, generator=generator)[:n].numpy())


def text_augmented_bundle(
    bundle: TaskBundle,
    texts: Sequence[str],
    keep: np.ndarray,
    encode: Callable[[list[str]], torch.Tensor],
    augmenter: Callable | None = None,
    copies: int = 0,
    generator: torch.Generator | None = None,
    data: str = "reviews",
    tower: str = "item",
) -> tuple[TaskBundle, list[str]]:
    """A bundle trained on training rows ``keep`` plus ``copies`` augmented texts of each.

    Each augmented copy is a new entity (row ``N + j`` of an extended text table) with the labels
    and numeric features of its source row; validation and test rows are unchanged.

    Args:
        bundle: a bundle whose ``tower`` reads a :class:`FrozenText` over ``texts`` (N rows) and whose
            training data ``data`` is a TensorDictDataset with the entity column ``tower``.
        texts: the N texts of the tower's entities.
        keep: positions (into the training dataset) of the rows to train on.
        encode: texts -> (M, H) embeddings (e.g. ``lambda t: encode_texts(encoder, t, ...)``).
        augmenter: ``(text, generator) -> text``; ``None`` or ``copies=0``: no augmentation.
        copies: augmented copies per kept row.
        generator: random source of the augmenter.

    Returns:
        ``(bundle, augmented texts)``.
    """
    base = bundle.train[data].dataset.tensors
    cols = {k: v[torch.as_tensor(keep, dtype=torch.long)] for k, v in base.items()}
    table: torch.Tensor = bundle.texts[tower].table
    kw = dict(bundle.tower_kwargs[tower])
    new_texts: list[str] = []
    if augmenter is not None and copies > 0:
        src_pos, new_texts = augment_texts([texts[int(e)] for e in cols[tower]], augmenter, copies, generator)
        src = torch.as_tensor(src_pos, dtype=torch.long)
        extra = {k: v[src] for k, v in cols.items()}
        extra[tower] = torch.arange(len(table), len(table) + len(src))
        entities = cols[tower][src]
        cols = {k: torch.cat([cols[k], extra[k]]) for k in cols}
        table = torch.cat([table, encode(new_texts).float()])
        if kw.get("features") is not None:
            kw["features"] = torch.cat([kw["features"], kw["features"][entities]])
    kw["num_entities"] = len(table)
    loader = make_loader(
        TensorDictDataset(**cols), bundle.train[data].batch_size, shuffle=True, generator=bundle.generator
    )
    labels = {k: cols[k].numpy() for k in bundle.labels}
    out = replace(
        bundle,
        train={**bundle.train, data: loader},
        texts={**bundle.texts, tower: FrozenText(table)},
        tower_kwargs={**bundle.tower_kwargs, tower: kw},
        labels=labels,
    )
    return out, new_texts


@torch.no_grad()
def history_scores(model, histories: torch.Tensor, exclude: torch.Tensor, chunk: int = 256) -> np.ndarray:
    """(U, I) scores of a history model for U users' padded histories, excluded items at -inf."""
    model.eval()
    rows = [model(histories[s : s + chunk]) for s in range(0, len(histories), chunk)]
    return torch.cat(rows).masked_fill(exclude, float("-inf")).numpy()


def rank_with_histories(
    samples,
    eval_histories: torch.Tensor,
    exclude: torch.Tensor,
    positives,
    num_items: int,
    item_text: torch.Tensor | None = None,
    *,
    max_len: int = 20,
    epochs: int = 5,
    lr: float = 3e-3,
    dim: int = 64,
    generator: torch.Generator | None = None,
) -> float:
    """Train a :class:`~mtrec_utils.models.history.HistoryModel` on ``samples``; return its test NDCG@10.

    Args:
        samples: (history, next item) training pairs (augmented ones included).
        eval_histories: (U, max_len) padded histories of the evaluated users.
        exclude, positives: the test ranking's excluded items (U, I) and held-out liked items.
        num_items, item_text: as for ``HistoryModel``.
        max_len, epochs, lr, dim: model and training settings.
        generator: random source of shuffling (the model's initialisation uses torch's global seed).
    """
    from mtrec_utils.core.metrics import ndcg_at_k
    from mtrec_utils.models.history import HistoryModel, pad_histories, train_history_model

    model = HistoryModel(num_items, dim, item_text)
    hist = pad_histories([h for h, _ in samples], max_len, model.pad_id)
    targets = torch.tensor([t for _, t in samples], dtype=torch.long)
    train_history_model(model, hist, targets, epochs=epochs, lr=lr, generator=generator)
    return ndcg_at_k(history_scores(model, eval_histories, exclude), positives, 10)


def augmentation_over_seeds(
    samples: Sequence[tuple[list[int], int]],
    settings: Mapping[str, Sequence[str]],
    seeds: Sequence[int],
    copies: int,
    eval_histories: torch.Tensor,
    exclude: torch.Tensor,
    positives,
    num_items: int,
    *,
    workers: int = 1,
    **rank_kwargs,
) -> pd.DataFrame:
    """NDCG@10 of :func:`rank_with_histories` for every augmentation setting at every seed.

    Each (seed, setting) run draws its augmented pairs from a generator seeded with ``seed``
    (:func:`~mtrec_utils.models.history.augment_histories`, mask id ``num_items + 1``), then seeds
    Python, NumPy and PyTorch with ``seed`` before the model is built, and shuffles with the same
    generator: a run depends only on its seed and setting, so the settings compare paired (same
    initial weights at a seed) and the runs can train at once.

    Args:
        samples: the (history, next item) training pairs.
        settings: ``{name: augmentation ops}``; ``()`` trains on ``samples`` alone.
        seeds: the seeds.
        copies: augmented copies per pair.
        eval_histories, exclude, positives, num_items: as for :func:`rank_with_histories`.
        workers: runs at once, each in a process forked from this one with one PyTorch thread
            (:func:`~mtrec_utils.core.pool.map_in_workers`); the numbers are the same, bit for bit,
            as one after another on one thread.
        rank_kwargs: the other arguments of :func:`rank_with_histories` (``item_text``, ``epochs``, ...).

    Returns:
        One row per (seed, setting), seeds outer: ``augmentation``, ``seed``, ``pairs`` (training pairs
        with the augmented ones) and ``ndcg@10``.
    """
    from mtrec_utils.core.config import set_seed
    from mtrec_utils.core.pool import map_in_workers
    from mtrec_utils.models.history import augment_histories

    if not settings or not seeds:
        raise ValueError(f"settings={list(settings)} and seeds={list(seeds)} must both be non-empty")

    def one(key: tuple[int, str]) -> dict:
        seed, name = key
        g = torch.Generator().manual_seed(seed)
        ops = settings[name]
        extra = augment_histories(samples, ops, copies, num_items + 1, g) if ops else []
        set_seed(seed)
        ndcg = rank_with_histories(
            list(samples) + extra, eval_histories, exclude, positives, num_items, generator=g, **rank_kwargs
        )
        return {"augmentation": name, "seed": seed, "pairs": len(samples) + len(extra), "ndcg@10": ndcg}

    keys = [(seed, name) for seed in seeds for name in settings]
    return pd.DataFrame(map_in_workers(one, keys, workers))


def clothing_bundle_texts(profile, generator_state: torch.Tensor) -> list[str]:
    """The review texts behind :func:`~mtrec_utils.training.bundles.clothing_bundle`'s rows, in its order.

    Args:
        profile: the profile the bundle was built with (its ``max_clothing_reviews``).
        generator_state: ``generator.get_state()`` taken just before ``clothing_bundle`` was called.
    """
    from mtrec_utils.data import clothing_texts, load_clothing
    from mtrec_utils.data.prepare import sample_rows

    g = torch.Generator()
    g.set_state(generator_state)
    df = sample_rows(load_clothing(), profile.max_clothing_reviews, g).reset_index(drop=True)
    return clothing_texts(df).tolist()
