"""Text features of the simulated ad log (article 6.1): ad keywords k_i, search history h_u, clicked ads A_u.

- Keywords of an ad (a MovieLens movie): its genres, then the words of its title, lower-cased,
  without the release year, stop words and one-letter words, each keyword once.
  ``"Usual Suspects, The (1995)"`` with genres Crime, Thriller -> ``["crime", "thriller", "usual", "suspects"]``.
- Search history h_u: the titles the user rated in the *training* ratings, oldest first (the
  held-out ratings define the true relevance and must not leak into the inputs).
- Clicked ads A_u: the ads the user clicked in a (training) ad log, in log order.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from mtrec_utils.core.config import check_positive

STOP_WORDS = frozenset(
    """a an the and or nor but of in on at to for from with without by about as into onto upon is are was
    be been it its it's this that these those i i'm i'll you your he his she her we our they their me him us
    them my not no do does don't if so up out over off what who whom how when where why all some than then
    too very can will just la le les el il lo de du des der die das den un une""".split()
)
_YEAR = re.compile(r"\s*\(\d{4}\)\s*$")
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")


def require_columns(df: pd.DataFrame, columns: list[str], name: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing}; it has {list(df.columns)}")


def title_words(title: str) -> list[str]:
    """Lower-cased words of a movie title without its year, stop words, one-letter words and repeats.

    Args:
        title: e.g. ``"Usual Suspects, The (1995)"``.

    Returns:
        e.g. ``["usual", "suspects"]`` (digits such as ``"2"`` in ``"Bloodsport 2"`` are kept).
    """
    words = _WORD.findall(_YEAR.sub("", title).lower())
    keep = [w for w in words if w not in STOP_WORDS and (len(w) > 1 or w.isdigit())]
    return list(dict.fromkeys(keep))


def ad_keywords(items: pd.DataFrame) -> pd.Series:
    """Keywords k_i of every ad: lower-cased genres, then title words (see :func:`title_words`).

    Args:
        items: MovieLens items with columns item_id, title, genres (list of str).

    Returns:
        Series indexed by item_id; each value a list of str (genres first, no repeats).
    """
    require_columns(items, ["item_id", "title", "genres"], "items")
    keywords = [
        list(dict.fromkeys([g.lower() for g in genres] + title_words(title)))
        for title, genres in zip(items["title"], items["genres"])
    ]
    return pd.Series(keywords, index=pd.Index(items["item_id"].to_numpy(), name="item_id"), name="keywords")


def search_history(
    train_ratings: pd.DataFrame, items: pd.DataFrame, n_recent: int | None = None
) -> pd.Series:
    """Search history h_u: the titles each user rated in ``train_ratings``, oldest first.

    Args:
        train_ratings: the training ratings only (user_id, item_id, rating, timestamp), e.g. u1.base.
        items: MovieLens items (item_id, title).
        n_recent: keep only the user's last ``n_recent`` titles (``None`` = all).

    Returns:
        Series indexed by user_id (users of ``train_ratings``); each value a list of titles.
    """
    require_columns(train_ratings, ["user_id", "item_id", "timestamp"], "train_ratings")
    require_columns(items, ["item_id", "title"], "items")
    if n_recent is not None:
        check_positive("n_recent", n_recent, integer=True)
    titles = items.set_index("item_id")["title"]
    unknown = ~train_ratings["item_id"].isin(titles.index)
    if unknown.any():
        raise ValueError(
            f"train_ratings has {int(unknown.sum())} item_id(s) not in items, e.g. "
            f"{int(train_ratings.loc[unknown, 'item_id'].iloc[0])}"
        )
    ordered = train_ratings.sort_values(["user_id", "timestamp", "item_id"], kind="stable")
    ordered = ordered.assign(title=titles.reindex(ordered["item_id"]).to_numpy())
    if n_recent is not None:
        ordered = ordered.groupby("user_id", sort=False).tail(n_recent)
    return ordered.groupby("user_id")["title"].agg(list).rename("history")


def clicked_ads(log: pd.DataFrame) -> pd.Series:
    """Clicked ads A_u: the item_ids each user clicked in ``log``, in log (slate, position) order.

    Pass the *training* part of the log (see :func:`mtrec_utils.data.ads_sim.split_log`) so that
    test clicks never become inputs.

    Args:
        log: an ad log with columns slate_id, position, user_id, item_id, click.

    Returns:
        Series indexed by user_id (users with at least one click); each value a list of item_ids.
    """
    require_columns(log, ["slate_id", "position", "user_id", "item_id", "click"], "log")
    clicks = log[np.asarray(log["click"]) == 1].sort_values(["slate_id", "position"])
    return clicks.groupby("user_id")["item_id"].agg(list).rename("clicked")
