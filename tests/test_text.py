"""Text builders: item, user and review texts; max-length policy; no test-split leakage."""

from __future__ import annotations

import pandas as pd
import pytest

from mtrec_utils.data import load_movielens, movielens_split
from mtrec_utils.data.text import MAX_TEXT_CHARS, clothing_texts, item_texts, truncate_text, user_texts

ITEMS = pd.DataFrame(
    {
        "item_id": [1, 2, 3, 4],
        "title": ["Toy Story (1995)", "Heat (1995) ", "Alien (1979)", "unknown"],
        "year": pd.array([1995, 1995, 1979, None], dtype="Int64"),
        "genres": [["Animation", "Children's", "Comedy"], ["Action"], ["Horror", "Sci-Fi"], ["unknown"]],
    }
)
USERS = pd.DataFrame(
    {"user_id": [10, 20], "age": [24, 53], "gender": ["M", "F"], "occupation": ["technician", "other"]}
)
RATINGS = pd.DataFrame(
    {
        "user_id": [10, 10, 10, 10, 20],
        "item_id": [1, 2, 3, 4, 1],
        "rating": [5, 4, 2, 5, 3],
        "timestamp": [100, 300, 400, 900, 50],
    }
)


def test_item_text_example():
    texts = item_texts(ITEMS)
    assert texts.index.name == "item_id" and texts.index.tolist() == [1, 2, 3, 4]
    assert texts[1] == "Toy Story (1995). Genres: Animation, Children's, Comedy."
    assert texts[2] == "Heat (1995). Genres: Action."
    assert texts[4] == "unknown. Genres: unknown."


def test_user_text_lists_recent_liked_titles_newest_first():
    texts = user_texts(USERS, RATINGS, ITEMS, n_recent=2)
    assert texts.index.tolist() == [10, 20]
    assert texts[10] == "A 24-year-old man, occupation: technician. Recently liked: unknown; Heat (1995)."
    assert texts[20] == "A 53-year-old woman, occupation: other. Recently liked: nothing yet."
    assert "Toy Story" in user_texts(USERS, RATINGS, ITEMS, n_recent=5)[10]
    with pytest.raises(ValueError, match="n_recent=-1 is not valid"):
        user_texts(USERS, RATINGS, ITEMS, n_recent=-1)


def test_user_text_uses_only_the_ratings_it_is_given():
    train, test = RATINGS.iloc[:3], RATINGS.iloc[3:]
    assert "unknown" not in user_texts(USERS, train, ITEMS)[10]  # the newest like is in the test part
    assert "unknown" in user_texts(USERS, pd.concat([train, test]), ITEMS)[10]


def test_no_test_split_leakage_on_movielens(data_cache):
    ml = load_movielens(data_cache)
    base, test = movielens_split(ml.ratings, 1)
    texts = user_texts(ml.users, base, ml.items, n_recent=5)
    assert len(texts) == 943 and texts.str.len().max() <= MAX_TEXT_CHARS
    title = ml.items.set_index("item_id")["title"].str.strip()
    liked_titles = lambda r: r[r.rating >= 4].groupby("user_id")["item_id"].agg(lambda s: set(title[s]))  # noqa: E731
    train_liked = liked_titles(base)
    for uid, text in texts.items():
        listed = text.split("Recently liked: ", 1)[1][:-1]
        if listed != "nothing yet":
            assert set(listed.split("; ")) <= train_liked[uid], uid
    # The check has teeth: built from all ratings, many texts would name test-split likes.
    leaky = user_texts(ml.users, ml.ratings, ml.items, n_recent=5)
    assert (leaky != texts).sum() > 100


def test_clothing_text_joins_title_and_review():
    df = pd.DataFrame(
        {
            "title": ["Love it!", "Nice", "", "Only title", ""],
            "review_text": ["Great  fit.\r\nBuy it.", "Soft.", "Just text", "", ""],
        },
        index=[7, 8, 9, 10, 11],
    )
    texts = clothing_texts(df)
    assert texts.index.tolist() == [7, 8, 9, 10, 11]
    assert texts.tolist() == ["Love it! Great fit. Buy it.", "Nice. Soft.", "Just text", "Only title", ""]


def test_truncation_cuts_at_a_word_boundary():
    text = "word " * 200
    cut = truncate_text(text, 52)
    assert len(cut) <= 52 and cut == " ".join(["word"] * 10)
    assert truncate_text("short", 10) == "short"
    assert truncate_text("x" * 30, 10) == "x" * 10
    long = pd.DataFrame({"title": ["T"], "review_text": ["a " * 400]})
    assert len(clothing_texts(long)[0]) <= MAX_TEXT_CHARS
    assert len(clothing_texts(long, max_chars=20)[0]) <= 20
    with pytest.raises(ValueError, match="max_chars=0 is not valid"):
        truncate_text("abc", 0)
