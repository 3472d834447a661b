"""Text for the language model: one string per item, per user and per review.

Max-length policy: every text is cut to at most ``max_chars`` characters (default
:data:`MAX_TEXT_CHARS` = 512, about 110-130 word-piece tokens of English), at the last word
boundary, so no word is split. The tokenizer then truncates to the profile's ``max_length``
tokens; cutting characters first keeps tokenisation cheap and the texts easy to read.

User texts use the TRAINING ratings only: pass the training split (e.g. u1.base), never all
ratings, or the model would see its test answers in the input.
"""

from __future__ import annotations

import pandas as pd

MAX_TEXT_CHARS = 512
LIKE_THRESHOLD = 4
_GENDER_WORDS = {"M": "man", "F": "woman"}


def truncate_text(text: str, max_chars: int = MAX_TEXT_CHARS) -> str:
    """Cut ``text`` to at most ``max_chars`` characters at a word boundary (a single long word is cut hard)."""
    if max_chars < 1:
        raise ValueError(
            f"max_chars={max_chars!r} is not valid; it must be a positive integer (for example 512)"
        )
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars + 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > 0 else cut[:max_chars]).rstrip()


def item_texts(items: pd.DataFrame, max_chars: int = MAX_TEXT_CHARS) -> pd.Series:
    """One text per movie, e.g. ``"Toy Story (1995). Genres: Animation, Children's, Comedy."``.

    Args:
        items: ``load_movielens().items`` (item_id, title, year, genres).
        max_chars: character limit (see the module docstring).

    Returns:
        Series of str indexed by item_id, name ``"text"``.
    """
    texts = []
    for title, year, genres in zip(items["title"], items["year"], items["genres"]):
        title = title.strip()
        if not pd.isna(year) and str(year) not in title:
            title = f"{title} ({year})"
        texts.append(truncate_text(f"{title}. Genres: {', '.join(genres)}.", max_chars))
    return pd.Series(texts, index=pd.Index(items["item_id"], name="item_id"), name="text")


def user_texts(
    users: pd.DataFrame,
    train_ratings: pd.DataFrame,
    items: pd.DataFrame,
    n_recent: int = 5,
    max_chars: int = MAX_TEXT_CHARS,
) -> pd.Series:
    """One text per user: profile plus the most recent liked titles (rating >= 4) of the training split.

    Example: ``"A 24-year-old man, occupation: technician. Recently liked: Star Wars (1977); Fargo (1996)."``

    Args:
        users: ``load_movielens().users`` (user_id, age, gender, occupation).
        train_ratings: TRAINING ratings only (e.g. u1.base); test ratings here would leak labels.
        items: ``load_movielens().items`` (item_id, title).
        n_recent: how many liked titles, most recent first (ties broken by item_id).
        max_chars: character limit (see the module docstring).

    Returns:
        Series of str indexed by user_id (every user of ``users``), name ``"text"``.
    """
    if isinstance(n_recent, bool) or not isinstance(n_recent, int) or n_recent < 0:
        raise ValueError(f"n_recent={n_recent!r} is not valid; it must be an integer >= 0 (for example 5)")
    titles = items.set_index("item_id")["title"].str.strip()
    liked = train_ratings[train_ratings["rating"] >= LIKE_THRESHOLD]
    liked = liked.sort_values(["user_id", "timestamp", "item_id"], ascending=[True, False, True])
    recent = liked.groupby("user_id").head(n_recent)
    recent_titles = recent["item_id"].map(titles).groupby(recent["user_id"]).agg("; ".join)
    texts = []
    for uid, age, gender, occupation in zip(
        users["user_id"], users["age"], users["gender"], users["occupation"]
    ):
        who = f"A {age}-year-old {_GENDER_WORDS.get(gender, 'person')}, occupation: {occupation}."
        liked_text = recent_titles.get(uid, "") if n_recent else ""
        texts.append(truncate_text(f"{who} Recently liked: {liked_text or 'nothing yet'}.", max_chars))
    return pd.Series(texts, index=pd.Index(users["user_id"], name="user_id"), name="text")


def clothing_texts(df: pd.DataFrame, max_chars: int = MAX_TEXT_CHARS) -> pd.Series:
    """One text per review: the title, then the review text (either may be empty).

    Args:
        df: ``load_clothing()`` rows (title, review_text).
        max_chars: character limit (see the module docstring).

    Returns:
        Series of str aligned with ``df.index``, name ``"text"``.
    """
    texts = []
    for title, review in zip(df["title"].fillna(""), df["review_text"].fillna("")):
        title, review = title.strip(), " ".join(review.split())
        if title and review:
            sep = " " if title[-1] in ".!?" else ". "
            text = f"{title}{sep}{review}"
        else:
            text = title or review
        texts.append(truncate_text(text, max_chars))
    return pd.Series(texts, index=df.index, name="text")
