"""The sequential user-interest model used to measure sequence augmentation."""

from __future__ import annotations

import torch

from mtrec_utils.models.history import (
    HistoryModel,
    augment_histories,
    next_item_samples,
    pad_histories,
    train_history_model,
    user_histories,
)


def test_histories_samples_and_padding():
    h = user_histories([1, 1, 1, 0], [5, 3, 4, 2], [30, 10, 20, 5])
    assert h == {0: [2], 1: [3, 4, 5]}
    samples = next_item_samples(h, max_len=1)
    assert samples == [([3], 4), ([4], 5)]
    padded = pad_histories([[3], [1, 2, 3, 4]], max_len=3, pad_id=9)
    assert padded.tolist() == [[9, 9, 3], [2, 3, 4]]


def test_augment_histories_keeps_targets_and_is_seeded():
    samples = [(list(range(10)), 11), ([1, 2], 3)]
    aug = augment_histories(
        samples, ("crop", "mask", "reorder"), 3, mask_id=99, generator=torch.Generator().manual_seed(0)
    )
    assert [t for _, t in aug] == [11] * 3 + [3] * 3
    again = augment_histories(samples, ("crop", "mask", "reorder"), 3, 99, torch.Generator().manual_seed(0))
    assert aug == again


def test_history_model_learns_a_deterministic_next_item_rule():
    torch.manual_seed(0)
    # item i is always followed by item (i + 1) % 6
    samples = [([(s + j) % 6 for j in range(3)], (s + 3) % 6) for s in range(6)] * 20
    hist = pad_histories([h for h, _ in samples], 4, pad_id=6)
    targets = torch.tensor([t for _, t in samples])
    model = HistoryModel(6, dim=16, item_text=torch.randn(6, 5))
    assert model(hist[:2]).shape == (2, 6)
    losses = train_history_model(
        model, hist, targets, epochs=30, lr=2e-2, batch_size=32, generator=torch.Generator().manual_seed(0)
    )
    assert losses[-1] < 0.2 * losses[0]
    model.eval()
    assert (model(hist).argmax(dim=1) == targets).float().mean() > 0.95
