"""Data: MovieLens-100K and the clothing reviews, fetched, verified, cached, split and turned into text.

Quick start::

    from mtrec_utils.data import load_movielens, movielens_split, load_clothing, clothing_split
    ml = load_movielens()                      # .ratings, .items, .users, .source
    base, test = movielens_split(ml.ratings, k=1)
    reviews = load_clothing()
    parts = clothing_split(reviews, seed=0)    # {"train", "val", "test"}

``python -m mtrec_utils.data`` fetches both datasets and prints their counts and sources.
Where the data comes from, and how to place it by hand offline: ``data/README.md``.
"""

from mtrec_utils.data import fetch, text
from mtrec_utils.data.clothing import check_clothing, clothing_split, load_clothing
from mtrec_utils.data.fetch import DataUnavailableError, data_root
from mtrec_utils.data.movielens import (
    GENRES,
    MovieLens,
    check_ratings,
    genre_matrix,
    load_movielens,
    movielens_split,
    split_sha256,
    write_split_file,
)
from mtrec_utils.data.text import clothing_texts, item_texts, user_texts

__all__ = [
    "GENRES",
    "DataUnavailableError",
    "MovieLens",
    "check_clothing",
    "check_ratings",
    "clothing_split",
    "clothing_texts",
    "data_root",
    "fetch",
    "genre_matrix",
    "item_texts",
    "load_clothing",
    "load_movielens",
    "movielens_split",
    "split_sha256",
    "text",
    "user_texts",
    "write_split_file",
]
