"""The low-data setting: row subsampling, text-augmented bundles and history scores."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from mtrec_utils.analyses.embedding.lowdata import history_scores, subsample_rows, text_augmented_bundle
from mtrec_utils.data.datasets import TensorDictDataset, make_loader
from mtrec_utils.data.tasks import clothing_tasks
from mtrec_utils.models import FrozenText
from mtrec_utils.models.history import HistoryModel
from mtrec_utils.training.bundles import TaskBundle
from mtrec_utils.training.experiments import run_experiment


def review_bundle(n: int = 40) -> tuple[TaskBundle, list[str]]:
    g = torch.Generator().manual_seed(0)
    texts = [f"review number {j} {'great' if j % 2 else 'poor'} fit" for j in range(n)]
    emb = torch.randn(n, 6, generator=g)
    y = torch.tensor([float(j % 2) for j in range(n)])
    tasks = clothing_tasks(["a", "b"])

    def ds(rows: list[int]) -> TensorDictDataset:
        liked = y[rows]
        department = torch.zeros(len(rows)).long()
        return TensorDictDataset(
            item=torch.tensor(rows), recommended=liked, rating=1 + 4 * liked, department=department
        )

    train, val = list(range(0, 30)), list(range(30, n))
    train_loader = make_loader(ds(train), 8, shuffle=True, generator=g)
    val_loader, test_loader = make_loader(ds(val), 16), make_loader(ds(val), 16)
    item = {"num_entities": n, "use_id": False, "features": torch.randn(n, 2, generator=g)}
    labels = {"recommended": y[train].numpy(), "rating": (1 + 4 * y[train]).numpy()}
    bundle = TaskBundle(
        name="toy",
        tasks=tasks,
        train={"reviews": train_loader},
        val={"reviews": val_loader},
        test={"reviews": test_loader},
        texts={"item": FrozenText(emb)},
        tower_kwargs={"item": item},
        generator=g,
        labels=labels,
        dim=8,
    )
    return bundle, texts


def test_subsample_rows():
    rows = subsample_rows(100, 0.1, torch.Generator().manual_seed(0))
    assert len(rows) == 10 and (np.diff(rows) > 0).all()
    assert (rows == subsample_rows(100, 0.1, torch.Generator().manual_seed(0))).all()
    with pytest.raises(ValueError, match="fraction=0"):
        subsample_rows(100, 0)


def test_text_augmented_bundle_adds_copies_with_their_source_labels():
    b, texts = review_bundle()
    keep = np.array([0, 1, 2, 3])
    encoded = []

    def encode(ts):
        encoded.extend(ts)
        return torch.ones(len(ts), 6)

    aug, new = text_augmented_bundle(b, texts, keep, encode, lambda t, g: t.upper(), copies=2)
    assert new == [texts[j].upper() for j in (0, 0, 1, 1, 2, 2, 3, 3)] and encoded == new
    cols = aug.train["reviews"].dataset.tensors
    assert len(cols["item"]) == 12 and cols["item"][4:].tolist() == list(range(40, 48))
    assert cols["recommended"].tolist() == [0, 1, 0, 1] + [0, 0, 1, 1, 0, 0, 1, 1]
    assert aug.texts["item"].table.shape == (48, 6) and aug.tower_kwargs["item"]["features"].shape == (48, 2)
    assert torch.equal(aug.tower_kwargs["item"]["features"][40], b.tower_kwargs["item"]["features"][0])
    assert aug.val is b.val and b.texts["item"].table.shape == (40, 6)  # the original is untouched
    result = run_experiment(aug, ["recommended"], seed=0, epochs=1, device="cpu")
    assert math.isfinite(result.test["recommended/auc"])
    plain, none = text_augmented_bundle(b, texts, keep, encode)
    assert none == [] and len(plain.train["reviews"].dataset) == 4


def test_history_scores_masks_excluded_items():
    model = HistoryModel(5, dim=4)
    hist = torch.tensor([[5, 1, 2], [0, 3, 4]])
    exclude = torch.zeros(2, 5, dtype=torch.bool)
    exclude[0, 1] = True
    s = history_scores(model, hist, exclude, chunk=1)
    assert s.shape == (2, 5) and s[0, 1] == -np.inf and np.isfinite(s[1]).all()


def test_rank_with_histories_learns_a_sequence_rule():
    from mtrec_utils.analyses.embedding.lowdata import rank_with_histories

    torch.manual_seed(0)
    samples = [([(s + j) % 6 for j in range(3)], (s + 3) % 6) for s in range(6)] * 20
    hist = torch.tensor([[0, 1, 2], [2, 3, 4]])  # next items: 3 and 5
    exclude = torch.zeros(2, 6, dtype=torch.bool)

    def ndcg_with(positives: list[np.ndarray]) -> float:
        g = torch.Generator().manual_seed(0)
        return rank_with_histories(
            samples, hist, exclude, positives, 6, max_len=3, epochs=30, lr=2e-2, dim=16, generator=g
        )

    assert ndcg_with([np.array([3]), np.array([5])]) > 0.9
    assert ndcg_with([np.array([0]), np.array([0])]) < 0.7


def test_clothing_bundle_texts_replays_the_bundles_sample():
    from mtrec_utils.analyses.embedding.lowdata import clothing_bundle_texts
    from mtrec_utils.core.config import resolve_profile
    from mtrec_utils.data import clothing_texts, load_clothing
    from mtrec_utils.data.prepare import sample_rows

    profile = resolve_profile("smoke")
    g = torch.Generator().manual_seed(5)
    state = g.get_state()
    expected = clothing_texts(
        sample_rows(load_clothing(), profile.max_clothing_reviews, g).reset_index(drop=True)
    )
    texts = clothing_bundle_texts(profile, state)
    assert texts == expected.tolist() and len(texts) == profile.max_clothing_reviews


def test_augmentation_over_seeds_in_two_workers_gives_the_serial_rows_bit_for_bit(one_thread):
    from mtrec_utils.analyses.embedding.lowdata import augmentation_over_seeds, rank_with_histories
    from mtrec_utils.core.config import set_seed
    from mtrec_utils.models.history import augment_histories

    samples = [([(s + j) % 6 for j in range(4)], (s + 4) % 6) for s in range(6)] * 5
    hist = torch.tensor([[0, 1, 2, 3], [2, 3, 4, 5]])
    exclude = torch.zeros(2, 6, dtype=torch.bool)
    positives = [np.array([4]), np.array([0])]
    settings = {"none": (), "crop": ("crop",), "both": ("crop", "mask")}
    common = dict(num_items=6, epochs=2, dim=8)
    args = (samples, settings, [0, 1], 2, hist, exclude, positives)
    serial = augmentation_over_seeds(*args, workers=1, **common)
    pooled = augmentation_over_seeds(*args, workers=2, **common)
    pd.testing.assert_frame_equal(serial, pooled, check_exact=True)
    assert list(serial.columns) == ["augmentation", "seed", "pairs", "ndcg@10"]
    assert serial[["seed", "augmentation"]].values.tolist() == [[s, n] for s in (0, 1) for n in settings]
    assert serial["pairs"].tolist() == [30, 90, 90] * 2  # 2 augmented copies of each pair, none for "none"
    # one row is the notebook's loop body at that seed and setting
    g = torch.Generator().manual_seed(1)
    extra = augment_histories(samples, ("crop",), 2, 7, g)
    set_seed(1)
    by_hand = rank_with_histories(samples + extra, hist, exclude, positives, 6, epochs=2, dim=8, generator=g)
    assert serial.loc[(serial["seed"] == 1) & (serial["augmentation"] == "crop"), "ndcg@10"].item() == by_hand


def test_augmentation_over_seeds_needs_settings_and_seeds():
    from mtrec_utils.analyses.embedding.lowdata import augmentation_over_seeds

    hist, exclude = torch.zeros(1, 2, dtype=torch.long), torch.zeros(1, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="must both be non-empty"):
        augmentation_over_seeds([([0], 1)], {}, [0], 1, hist, exclude, [np.array([1])], 3)
