"""Clothing reviews for joint fine-tuning: tokenised once, labelled for three tasks, and the budgets.

:data:`BUDGETS` fixes, per profile, the training budget that every encoder mode of notebook 08
shares: the same reviews, the same number of steps of the same batch size, the same token limit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mtrec_utils.core.config import check_choice, check_positive
from mtrec_utils.data.datasets import pad_sequences

TASKS = ("recommended", "rating", "department")

# steps x batch_size = max_train: one pass over the training reviews at cpu and gpu. max_eval reviews of
# validation (model selection); max_test reviews of test, None = the whole test part (2,349 reviews):
# evaluation is cheap next to training, and a 500-review slice is too noisy to rank encoder modes.
BUDGETS: dict[str, dict[str, int | None]] = {
    "smoke": dict(max_train=300, max_eval=100, max_test=100, max_length=32, steps=6, batch_size=16),
    "cpu": dict(max_train=1600, max_eval=500, max_test=None, max_length=64, steps=100, batch_size=16),
    "gpu": dict(max_train=8192, max_eval=2000, max_test=None, max_length=128, steps=256, batch_size=32),
}

SAME_AS_EVAL = "max_eval"  # clothing_splits(max_test=...) default: as many test reviews as validation


def budget_for(profile: str) -> dict[str, int | None]:
    """The shared training budget of ``profile`` (``smoke``, ``cpu`` or ``gpu``), as a new dict."""
    check_choice("profile", profile, tuple(BUDGETS))
    return dict(BUDGETS[profile])


@dataclass
class ClothingSplits:
    """Tokenised clothing reviews and labels of each part (``train``, ``val``, ``test``).

    Attributes:
        ids: ``{part: [token ids of each review]}`` (tokenised once, not padded).
        texts: ``{part: [review text]}``.
        labels: ``{part: {task: (N,) tensor}}`` (float for recommended/rating, long for department).
        departments: class names of ``department``, in label order.
    """

    ids: dict[str, list[list[int]]]
    texts: dict[str, list[str]]
    labels: dict[str, dict[str, torch.Tensor]]
    departments: list[str]


def clothing_splits(
    tokenizer,
    max_train: int,
    max_eval: int,
    max_length: int,
    generator: torch.Generator,
    max_test: int | None | str = SAME_AS_EVAL,
) -> ClothingSplits:
    """The stratified 80/10/10 clothing split, tokenised: ``max_train``/``max_eval``/``max_test`` reviews.

    Args:
        tokenizer: a Hugging Face tokenizer.
        max_train: reviews drawn at random from the training part.
        max_eval: reviews drawn at random from the validation part (and from test, by default).
        max_length: token limit per review.
        generator: random source of the draws (train, then val, then test: the train and val draws do
            not depend on ``max_test``).
        max_test: reviews drawn at random from the test part; ``None``: all of it, in split order;
            ``"max_eval"`` (default): ``max_eval``.
    """
    from mtrec_utils.data import clothing_split, clothing_texts, load_clothing
    from mtrec_utils.data.prepare import sample_rows

    check_positive("max_train", max_train, integer=True)
    check_positive("max_eval", max_eval, integer=True)
    test_rows: int | None
    if max_test == SAME_AS_EVAL:
        test_rows = max_eval
    elif max_test is None or isinstance(max_test, int):
        test_rows = max_test if max_test is None else check_positive("max_test", max_test, integer=True)
    else:
        raise ValueError(
            f"max_test={max_test!r} is not valid; give a positive integer, None (all) or 'max_eval'"
        )
    df = load_clothing()
    df["department"] = df["department"].replace("", "(none)")
    departments = sorted(df["department"].unique())
    code = {d: i for i, d in enumerate(departments)}
    parts = clothing_split(df, seed=0)
    out = ClothingSplits({}, {}, {}, departments)
    for part, n in (("train", max_train), ("val", max_eval), ("test", test_rows)):
        rows = sample_rows(parts[part], n, generator)
        out.texts[part] = clothing_texts(rows).tolist()
        out.ids[part] = tokenizer(out.texts[part], truncation=True, max_length=max_length)["input_ids"]
        out.labels[part] = {
            "recommended": torch.tensor(rows["recommended"].to_numpy(np.float32)),
            "rating": torch.tensor(rows["rating"].to_numpy(np.float32)),
            "department": torch.tensor(rows["department"].map(code).to_numpy(np.int64)),
        }
    return out


def batches(ids, labels, batch_size, pad_id, generator, shuffle):
    """A DataLoader of padded batches: ``input_ids``, ``attention_mask`` (B, T) and each task's labels (B,)."""

    def collate(rows):
        input_ids, mask = pad_sequences([ids[i] for i in rows], pad_id)  # (B, T) each
        return {"input_ids": input_ids, "attention_mask": mask, **{k: v[rows] for k, v in labels.items()}}

    indices = list(range(len(ids)))  # a map-style dataset whose item i is i; collate reads the rows
    return torch.utils.data.DataLoader(
        indices,  # type: ignore[arg-type]  # DataLoader accepts any sequence; torch annotates Dataset
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        collate_fn=collate,
    )
