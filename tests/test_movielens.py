"""MovieLens-100K: parsed tables, GroupLens splits, local files, schema errors."""

from __future__ import annotations

import hashlib
import zipfile

import numpy as np
import pandas as pd
import pytest

from mtrec_utils.data import (
    GENRES,
    check_ratings,
    fetch,
    genre_matrix,
    load_movielens,
    movielens,
    movielens_split,
    split_sha256,
    write_split_file,
)


@pytest.fixture(scope="module")
def ml(data_cache):
    return load_movielens(data_cache)


def write_grouplens(data_cache, folder, edit=None):
    """Write u.data, u.item, u.user in GroupLens's own format from the verified tables."""
    raw = {
        name: fetch.read_canonical(
            (data_cache / "canonical" / "ml-100k" / f"{name}.tsv").read_bytes(), schema
        )
        for name, schema in movielens.SCHEMAS.items()
    }
    if edit:
        edit(raw)
    folder.mkdir(parents=True)
    for name, file, sep in [("ratings", "u.data", "\t"), ("items", "u.item", "|"), ("users", "u.user", "|")]:
        cols = [raw[name][c].astype(str) for c in raw[name].columns]
        lines = cols[0].str.cat(cols[1:], sep=sep)
        (folder / file).write_bytes(("\n".join(lines) + "\n").encode("latin-1"))


def test_tables_have_documented_columns_counts_and_types(ml):
    assert list(ml.ratings.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert ml.ratings.shape == (100_000, 4) and (ml.ratings.dtypes == "int64").all()
    assert ml.ratings.iloc[0].tolist() == [196, 242, 3, 881250949]  # u.data's first line
    assert list(ml.items.columns) == ["item_id", "title", "year", "release_date", "genres"]
    assert len(ml.items) == 1_682 and ml.items["year"].dtype == "Int64"
    assert list(ml.users.columns) == ["user_id", "age", "gender", "occupation", "zip_code"]
    assert len(ml.users) == 943 and set(ml.users["gender"]) == {"M", "F"}
    assert len(GENRES) == 19


def test_items_keep_titles_and_parse_year_and_genres(ml):
    items = ml.items.set_index("item_id")
    assert items.loc[1, "title"] == "Toy Story (1995)" and items.loc[1, "year"] == 1995
    assert items.loc[1, "genres"] == ["Animation", "Children's", "Comedy"]
    assert items.loc[1412, "year"] == 1995  # title ends with "(V)" after the year
    assert items.loc[267, "title"] == "unknown" and pd.isna(items.loc[267, "year"])
    assert items["year"].isna().sum() == 1
    assert items.loc[1366, "title"] == "JLG/JLG - autoportrait de décembre (1994)"  # latin-1 decoded
    assert items["title"].str.endswith(" ").sum() == 3  # u.item's trailing spaces are kept as is
    m = genre_matrix(ml.items)
    assert m.shape == (1_682, 19) and m.sum() == sum(map(len, ml.items["genres"]))
    assert m[0, GENRES.index("Comedy")] == 1.0


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_grouplens_splits_are_exact(ml, k):
    base, test = movielens_split(ml.ratings, k)
    assert len(base) == 80_000 and len(test) == 20_000
    key = ["user_id", "item_id"]
    for part in (base, test):
        assert part.index.equals(pd.RangeIndex(len(part)))
        du, di = part["user_id"].diff().iloc[1:], part["item_id"].diff().iloc[1:]
        assert ((du > 0) | ((du == 0) & (di > 0))).all()  # strictly sorted by (user, item)
    pairs = lambda df: set(zip(df.user_id, df.item_id))  # noqa: E731
    assert not pairs(base) & pairs(test)
    assert pairs(base) | pairs(test) == pairs(ml.ratings)
    fold = ml.ratings.iloc[(k - 1) * 20_000 : k * 20_000].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(test, fold)


def test_u1_test_starts_like_grouplens_and_hashes_its_file(ml, tmp_path):
    _, test = movielens_split(ml.ratings, 1)
    assert test.iloc[0].tolist() == [1, 6, 5, 887431973]
    path = write_split_file(test.sample(frac=1, random_state=0), tmp_path / "u1.test")
    assert path.read_text().startswith("1\t6\t5\t887431973\n1\t10\t3\t875693118\n")
    assert split_sha256(test) == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("k", [0, 6, "1", 1.0, True])
def test_split_rejects_bad_fold(ml, k):
    with pytest.raises(ValueError, match="k=.* is not valid; choose one of: 1, 2, 3, 4, 5"):
        movielens_split(ml.ratings, k)


def test_split_needs_all_ratings(ml):
    with pytest.raises(ValueError, match="all 100,000 rows"):
        movielens_split(ml.ratings.head(1000))


def test_schema_errors_say_what_is_wrong():
    good = pd.DataFrame({"user_id": [1, 1], "item_id": [1, 2], "rating": [5, 3], "timestamp": [10, 20]})
    check_ratings(good)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['timestamp'\]"):
        check_ratings(good.drop(columns="timestamp"))
    with pytest.raises(ValueError, match="'rating' has dtype float64"):
        check_ratings(good.astype({"rating": float}))
    with pytest.raises(ValueError, match="1 rating.* outside 1..5"):
        check_ratings(good.assign(rating=[5, 6]))
    with pytest.raises(ValueError, match=r"1 duplicated \(user_id, item_id\)"):
        check_ratings(good.assign(item_id=[2, 2]))


def test_local_grouplens_files_are_accepted(data_cache, ml, tmp_path, offline, no_pip):
    write_grouplens(data_cache, tmp_path / "ml-100k")
    local = load_movielens(tmp_path)
    assert local.source == f"local GroupLens files in {tmp_path / 'ml-100k'}"
    for name in ("ratings", "items", "users"):
        pd.testing.assert_frame_equal(getattr(local, name), getattr(ml, name))
    cached = load_movielens(tmp_path)
    assert cached.source.startswith("cache ") and "local GroupLens" in cached.source


def test_local_files_with_other_content_are_rejected_for_the_next_source(data_cache, tmp_path, offline):
    def edit(raw):
        raw["ratings"].loc[0, "rating"] = 4  # a valid rating, but not MovieLens's

    write_grouplens(data_cache, tmp_path / "ml-100k", edit)
    (tmp_path / "downloads").mkdir()
    name = fetch.load_manifest()["wheel"]["filename"]
    (tmp_path / "downloads" / name).write_bytes((data_cache / "downloads" / name).read_bytes())
    with pytest.warns(UserWarning, match="local GroupLens.*does not match the manifest"):
        ml = load_movielens(tmp_path)
    assert "PyPI wheel" in ml.source and ml.ratings.loc[0, "rating"] == 3


def test_local_files_breaking_the_schema_are_rejected_with_the_reason(data_cache, tmp_path, offline, no_pip):
    def edit(raw):
        raw["ratings"].loc[0, "rating"] = 7

    write_grouplens(data_cache, tmp_path / "ml-100k", edit)
    with pytest.warns(UserWarning) as warned, pytest.raises(fetch.DataUnavailableError, match="outside 1..5"):
        load_movielens(tmp_path)
    assert any("local GroupLens" in str(w.message) and "outside 1..5" in str(w.message) for w in warned)
    assert not (tmp_path / "canonical").exists()


def test_genre_matrix_is_multi_hot():
    items = pd.DataFrame({"genres": [["Action", "War"], [], ["unknown"]]})
    expected = np.zeros((3, 19), dtype=np.float32)
    expected[0, [1, 17]] = 1
    expected[2, 0] = 1
    np.testing.assert_array_equal(genre_matrix(items), expected)


def test_official_archive_is_downloaded_extracted_and_verified(data_cache, tmp_path, monkeypatch, no_pip):
    write_grouplens(data_cache, tmp_path / "src" / "ml-100k")
    archive = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in ("u.data", "u.item", "u.user"):
            zf.write(tmp_path / "src" / "ml-100k" / name, f"ml-100k/{name}")
        zf.writestr("ml-100k/README", "not extracted")
    monkeypatch.delenv("MTREC_OFFLINE", raising=False)
    monkeypatch.setattr(movielens, "OFFICIAL_URL", archive.as_uri())  # a file:// URL stands in for GroupLens
    root = tmp_path / "root"
    ml = load_movielens(root)
    assert ml.source == f"official archive {archive.as_uri()}" and len(ml.ratings) == 100_000
    kept = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert kept == [
        "canonical/ml-100k/items.tsv",
        "canonical/ml-100k/ratings.tsv",
        "canonical/ml-100k/source.json",
        "canonical/ml-100k/users.tsv",
        "downloads/ml-100k.zip",
    ]
