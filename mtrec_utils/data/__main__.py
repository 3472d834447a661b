"""``python -m mtrec_utils.data [--cache-dir DIR]``: fetch both datasets, print counts and sources."""

from __future__ import annotations

import argparse

from mtrec_utils.data import data_root, load_clothing, load_movielens


def main(argv: list[str] | None = None) -> int:
    """Fetch (or verify the cache of) MovieLens-100K and the clothing reviews; return 0 on success."""
    parser = argparse.ArgumentParser(prog="python -m mtrec_utils.data", description=__doc__)
    parser.add_argument("--cache-dir", default=None, help="data folder (default: $MTREC_DATA or data/cache)")
    args = parser.parse_args(argv)
    print(f"data folder: {data_root(args.cache_dir)}")
    ml = load_movielens(args.cache_dir)
    print(f"MovieLens-100K: {len(ml.ratings):,} ratings, {len(ml.items):,} items, {len(ml.users):,} users")
    print(f"  source: {ml.source}")
    reviews = load_clothing(args.cache_dir)
    print(f"clothing reviews: {len(reviews):,} reviews, {reviews['clothing_id'].nunique():,} products")
    print(f"  source: {reviews.attrs['source']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
