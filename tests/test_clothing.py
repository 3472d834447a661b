"""Clothing reviews: parsed table, local Kaggle CSV, stratified split, schema errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mtrec_utils.data import check_clothing, clothing, clothing_split, fetch, load_clothing

COLUMNS = (
    "clothing_id age title review_text rating recommended positive_feedback_count division department class_name"
).split()


@pytest.fixture(scope="module")
def reviews(data_cache):
    return load_clothing(data_cache)


def write_kaggle_csv(df, path):
    """Write the table the way Kaggle ships it: original column names, an unnamed index, empty cells for missing."""
    out = df.rename(columns={v: k for k, v in clothing.KAGGLE_COLUMNS.items()}).replace("", np.nan)
    out.to_csv(path, index=True, encoding="utf-8")


def test_table_has_documented_columns_counts_and_types(reviews):
    assert list(reviews.columns) == COLUMNS and len(reviews) == 23_486
    for col in ("title", "review_text", "division", "department", "class_name"):
        assert reviews[col].map(type).eq(str).all()
    assert (reviews["title"] == "").sum() == 3_810 and (reviews["review_text"] == "").sum() == 845
    assert set(reviews["rating"]) == {1, 2, 3, 4, 5} and set(reviews["recommended"]) == {0, 1}
    assert reviews.loc[0, "review_text"] == "Absolutely wonderful - silky and sexy and comfortable"
    assert reviews["review_text"].str.contains("\n").sum() > 0  # line breaks survive the cache


def test_local_kaggle_csv_is_accepted(reviews, tmp_path, offline, no_pip):
    write_kaggle_csv(reviews, tmp_path / clothing.CSV_NAME)
    local = load_clothing(tmp_path)
    assert local.attrs["source"] == f"local Kaggle CSV {tmp_path / clothing.CSV_NAME}"
    pd.testing.assert_frame_equal(local, reviews)


def test_local_csv_with_other_content_is_rejected(reviews, tmp_path, offline, no_pip):
    changed = reviews.copy()
    changed.loc[5, "rating"] = 1 if changed.loc[5, "rating"] != 1 else 2
    write_kaggle_csv(changed, tmp_path / clothing.CSV_NAME)
    with (
        pytest.warns(UserWarning) as warned,
        pytest.raises(fetch.DataUnavailableError, match="does not match"),
    ):
        load_clothing(tmp_path)
    assert any("local Kaggle CSV" in str(w.message) for w in warned)
    assert not (tmp_path / "canonical").exists()


def test_schema_errors_say_what_is_wrong(reviews):
    small = reviews.head(50).copy()
    check_clothing(small)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['department'\]"):
        check_clothing(small.drop(columns="department"))
    with pytest.raises(ValueError, match="'age' has dtype float64"):
        check_clothing(small.astype({"age": float}))
    with pytest.raises(ValueError, match="outside 1..5"):
        check_clothing(small.assign(rating=0))
    with pytest.raises(ValueError, match="'recommended' must be 0 or 1"):
        check_clothing(small.assign(recommended=2))


def test_split_is_disjoint_covering_stratified_and_deterministic(reviews):
    parts = clothing_split(reviews, seed=0)
    sizes = {k: len(v) for k, v in parts.items()}
    assert sum(sizes.values()) == len(reviews)
    assert sizes["train"] == pytest.approx(0.8 * len(reviews), abs=2)
    assert sizes["val"] == pytest.approx(0.1 * len(reviews), abs=2)
    idx = [set(p.index) for p in parts.values()]
    assert not (idx[0] & idx[1] or idx[0] & idx[2] or idx[1] & idx[2])
    assert set().union(*idx) == set(reviews.index)
    share = reviews["recommended"].mean()
    for part in parts.values():
        assert part["recommended"].mean() == pytest.approx(share, abs=0.001)
        assert part.index.is_monotonic_increasing
    again = clothing_split(reviews, seed=0)
    assert all(parts[k].index.equals(again[k].index) for k in parts)
    other = clothing_split(reviews, seed=1)
    assert not parts["test"].index.equals(other["test"].index)


def test_split_by_rating_keeps_every_rating_share(reviews):
    parts = clothing_split(reviews, seed=3, stratify="rating")
    full = reviews["rating"].value_counts(normalize=True)
    for part in parts.values():
        share = part["rating"].value_counts(normalize=True)
        assert (share - full).abs().max() < 0.002


def test_split_rejects_bad_arguments(reviews):
    with pytest.raises(ValueError, match="stratify='department' is not valid"):
        clothing_split(reviews, stratify="department")
    with pytest.raises(ValueError, match="seed=-1 is not valid"):
        clothing_split(reviews, seed=-1)
    with pytest.raises(ValueError, match="fractions=.* is not valid"):
        clothing_split(reviews, fractions=(0.8, 0.3, 0.1))
