"""A seeded ad-click simulator on real MovieLens preferences (article 6.1), position-based model (PBM).

No public ad log has text, so, as unbiased learning-to-rank research does (Joachims et al. 2017,
Chapelle & Zhang 2009), clicks are simulated on real preferences and the simulator keeps the truth:

- **Ads and users**: real MovieLens movies and users. Ad keywords and user search history come
  from :mod:`mtrec_utils.data.ads_features`.
- **Candidates (honest relevance)**: a slate for user u holds only movies that u rated in the
  *preference* part (e.g. u1.test), so the true relevance of every impression is known:
  ``relevance = rating - 1`` in 0..4. Users with fewer than ``slate_size`` such ratings get no
  slates (u1.test: 387 of 459 users). Bias of this choice: people rate movies they chose to
  watch (ratings are missing not at random), so relevance is skewed high (mean held-out rating
  about 3.5) compared with arbitrary movies, and candidates are few (median 25 per user in
  u1.test), so the same (user, ad) pair is shown many times.
- **Logging policy**: each slate draws ``slate_size`` of the user's candidates uniformly, then
  ranks them by ``z(log(1 + training ratings of the movie)) + logging_noise * N(0, 1)`` (the
  ``popularity`` policy): an imperfect ranker, so position and relevance are correlated as in real
  logs, and the noise moves each ad across positions, which makes the position effect learnable.
  The ``random`` policy ranks at random (no correlation). Users are drawn uniformly per slate.
- **Clicks**: ``click ~ Bernoulli(examination(k) * attraction(relevance))`` with
  ``examination(k) = (1 / k) ** eta`` for position k = 1, 2, ... and
  ``attraction(rel) = click_noise + (1 - click_noise) * (2**rel - 1) / (2**4 - 1)``: a 1-star
  movie is clicked with probability ``click_noise`` when examined, a 5-star movie always.

Defaults: ``slate_size=10``, ``eta=1.0``, ``click_noise=0.1``, ``logging_noise=0.25``. The rows of the
log are in time order (slate_id), so :func:`split_log` keeps the last slates for testing. The
confounding is mild (popular movies are also rated higher): on u1, ranking test slates by
per-ad click counts divided by summed true examination beats plain click rates by about 0.01 true
NDCG@10 with 20,000 slates, and loses with 2,000 (the correction adds variance).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mtrec_utils.core.config import check_choice
from mtrec_utils.data.ads_features import ad_keywords, require_columns

MAX_RELEVANCE = 4  # relevance = rating - 1, ratings 1..5
LOGGING_POLICIES = ("popularity", "random")
_CHUNK = 8192  # slates sampled per step (bounds memory: chunk x max candidates per user)


def _check_number(
    param: str, value, low: float, high: float | None = None, *, integer: bool = False, low_open: bool = False
) -> None:
    """Raise ValueError naming ``param``, ``value`` and the valid range unless ``value`` lies in it."""
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    ok = isinstance(value, kinds) and not isinstance(value, bool) and np.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and (high is None or value <= high)
    if not ok:
        kind = "an integer" if integer else "a number"
        rng = f"{'>' if low_open else '>='} {low}" + (f" and <= {high}" if high is not None else "")
        raise ValueError(f"{param}={value!r} is not valid; it must be {kind} {rng}")


def examination(positions, eta: float = 1.0) -> np.ndarray:
    """Probability that an ad at 1-based ``positions`` is examined: ``(1 / k) ** eta``.

    Args:
        positions: int array-like of positions k >= 1, any shape.
        eta: position-bias strength >= 0 (0 = no position effect).

    Returns:
        float64 array of the same shape as ``positions``.
    """
    _check_number("eta", eta, 0.0)
    k = np.asarray(positions, dtype=np.float64)
    if k.size and (k.min() < 1 or not np.all(k == np.round(k))):
        raise ValueError(f"positions must be integers >= 1 (1 = top of the slate); got min {k.min()}")
    return (1.0 / k) ** eta


def examination_curve(slate_size: int = 10, eta: float = 1.0) -> np.ndarray:
    """The true examination curve, shape (slate_size,): entry k-1 is ``examination(k, eta)``."""
    _check_number("slate_size", slate_size, 1, integer=True)
    return examination(np.arange(1, slate_size + 1), eta)


def attraction(relevance, click_noise: float = 0.1) -> np.ndarray:
    """Click probability of an examined ad: ``click_noise + (1 - click_noise) * (2**rel - 1) / 15``.

    Args:
        relevance: array-like of relevance grades 0..4 (``rating - 1``).
        click_noise: probability of clicking an irrelevant examined ad, in [0, 1].
    """
    _check_number("click_noise", click_noise, 0.0, 1.0)
    rel = np.asarray(relevance, dtype=np.float64)
    return click_noise + (1.0 - click_noise) * (2.0**rel - 1.0) / (2.0**MAX_RELEVANCE - 1.0)


def simulate_ad_log(
    preference: pd.DataFrame,
    history: pd.DataFrame,
    items: pd.DataFrame,
    *,
    num_slates: int = 10_000,
    slate_size: int = 10,
    eta: float = 1.0,
    click_noise: float = 0.1,
    logging_noise: float = 0.25,
    logging_policy: str = "popularity",
    seed: int = 0,
) -> pd.DataFrame:
    """Simulate an ad log of ``num_slates`` slates of ``slate_size`` ads (see the module docstring).

    Args:
        preference: held-out ratings (user_id, item_id, rating 1..5) that define true relevance, e.g. u1.test.
        history: training ratings (user_id, item_id), e.g. u1.base; used for the logging policy's popularity.
        items: MovieLens items (item_id, title, genres) for the keywords.
        num_slates: number of slates (impressions of slate_size ads each), > 0.
        slate_size: ads per slate, >= 1.
        eta: position-bias strength >= 0 in ``examination(k) = (1/k)**eta``.
        click_noise: attraction of an irrelevant ad, in [0, 1].
        logging_noise: std of the Gaussian noise added to the popularity score, >= 0.
        logging_policy: ``"popularity"`` (popularity + noise) or ``"random"``.
        seed: seed of the ``numpy.random.Generator`` that drives every draw (same seed, same log).

    Returns:
        DataFrame with one row per impression, sorted by (slate_id, position): impression_id,
        slate_id, user_id, item_id, position (1-based), keywords (space-separated str), rating,
        relevance (0..4), attraction, examination, click_prob, click (0/1, int8), logging_score.
        ``log.attrs["simulator"]`` holds the parameters.
    """
    params = _simulation_params(num_slates, slate_size, eta, click_noise, logging_noise, logging_policy, seed)
    require_columns(preference, ["user_id", "item_id", "rating"], "preference")
    require_columns(history, ["user_id", "item_id"], "history")
    keywords = ad_keywords(items).map(" ".join)
    unknown = ~preference["item_id"].isin(keywords.index)
    if unknown.any():
        raise ValueError(f"preference has {int(unknown.sum())} item_id(s) not in items")
    rng = np.random.default_rng(seed)
    cand = _candidates(preference, slate_size)
    popularity = _popularity_z(history, keywords.index) if logging_policy == "popularity" else None
    slate_user, item, rating = _draw_slates(rng, cand, num_slates, slate_size)
    item, rating, score = _rank_slates(rng, item, rating, popularity, logging_noise)
    log = _click_log(rng, cand.users[slate_user], item, rating, score, keywords, eta, click_noise)
    log.attrs["simulator"] = {**params, "num_users": len(cand.users)}
    return log


def _simulation_params(num_slates, slate_size, eta, click_noise, logging_noise, logging_policy, seed) -> dict:
    """Check :func:`simulate_ad_log`'s parameters (ValueError naming a bad one); return them for ``attrs``."""
    _check_number("num_slates", num_slates, 0, integer=True, low_open=True)
    _check_number("slate_size", slate_size, 1, integer=True)
    _check_number("eta", eta, 0.0)
    _check_number("click_noise", click_noise, 0.0, 1.0)
    _check_number("logging_noise", logging_noise, 0.0)
    check_choice("logging_policy", logging_policy, LOGGING_POLICIES)
    _check_number("seed", seed, 0, integer=True)
    return dict(
        num_slates=num_slates,
        slate_size=slate_size,
        eta=float(eta),
        click_noise=float(click_noise),
        logging_noise=float(logging_noise),
        logging_policy=logging_policy,
        seed=seed,
    )


@dataclass
class _Candidates:
    """Each eligible user's held-out movies as a padded table, one row per user (see :func:`_candidates`)."""

    users: np.ndarray  # (num_users,) sorted user ids with at least slate_size preference ratings
    count: np.ndarray  # (num_users,) candidates of each user
    item: np.ndarray  # (num_users, max count) item ids, padded with -1
    rating: np.ndarray  # (num_users, max count) their ratings, padded with 0


def _candidates(preference: pd.DataFrame, slate_size: int) -> _Candidates:
    """The candidate table of the users with at least ``slate_size`` preference ratings (ValueError if none)."""
    pref = preference[["user_id", "item_id", "rating"]].sort_values(["user_id", "item_id"])
    counts = pref.groupby("user_id").size()
    users = counts.index[counts >= slate_size].to_numpy()
    if len(users) == 0:
        most = int(counts.max()) if len(counts) else 0
        raise ValueError(
            f"slate_size={slate_size} is not valid for these data: no user has that many "
            f"preference ratings (most: {most})"
        )
    pref = pref[pref["user_id"].isin(users)]
    num_cand = counts.loc[users].to_numpy()
    row_user = np.searchsorted(users, pref["user_id"].to_numpy())
    col = np.arange(len(pref)) - np.repeat(np.cumsum(num_cand) - num_cand, num_cand)
    cand_item = np.full((len(users), num_cand.max()), -1, dtype=np.int64)
    cand_rating = np.zeros_like(cand_item)
    cand_item[row_user, col] = pref["item_id"].to_numpy()
    cand_rating[row_user, col] = pref["rating"].to_numpy()
    return _Candidates(users, num_cand, cand_item, cand_rating)


def _popularity_z(history: pd.DataFrame, item_ids: pd.Index) -> pd.Series:
    """The logging score's popularity: standardised log(1 + training ratings), indexed by ``item_ids``."""
    pop = np.log1p(history["item_id"].value_counts().reindex(item_ids, fill_value=0).astype(float))
    std = pop.std()
    return (pop - pop.mean()) / (std if std > 0 else 1.0)


def _draw_slates(rng: np.random.Generator, cand: _Candidates, num_slates: int, slate_size: int):
    """Draw a user per slate, then ``slate_size`` of that user's candidates uniformly, in chunks.

    Returns:
        ``(slate_user, item, rating)``: (num_slates,) row indices into ``cand`` and the
        (num_slates, slate_size) items and ratings, not yet ranked.
    """
    slate_user = rng.integers(0, len(cand.users), size=num_slates)
    width = cand.item.shape[1]
    picks = []
    for start in range(0, num_slates, _CHUNK):
        u = slate_user[start : start + _CHUNK]
        keys = rng.random((len(u), width))
        keys[np.arange(width) >= cand.count[u][:, None]] = 2.0  # padding is never drawn
        picks.append(np.argpartition(keys, slate_size - 1, axis=1)[:, :slate_size])
    pick = np.concatenate(picks)  # (num_slates, slate_size) column indices into the candidate table
    return slate_user, cand.item[slate_user[:, None], pick], cand.rating[slate_user[:, None], pick]


def _rank_slates(rng: np.random.Generator, item, rating, popularity: pd.Series | None, logging_noise: float):
    """Rank each slate by the logging score, best first: popularity z + noise, or noise alone (``None``).

    Returns:
        ``(item, rating, score)`` reordered within each slate.
    """
    noise = rng.standard_normal(item.shape)
    if popularity is not None:
        score = popularity.reindex(item.ravel()).to_numpy().reshape(item.shape) + logging_noise * noise
    else:
        score = noise
    order = np.lexsort((rng.random(item.shape), -score), axis=1)  # best score first, random tie-break
    take = np.take_along_axis
    return take(item, order, 1), take(rating, order, 1), take(score, order, 1)


def _click_log(rng: np.random.Generator, slate_users, item, rating, score, keywords, eta, click_noise):
    """Draw the position-based-model clicks of ranked slates; the log, one row per impression.

    ``slate_users`` is (num_slates,) user ids; ``item``, ``rating`` and ``score`` are
    (num_slates, slate_size), best first; ``keywords`` maps item ids to keyword strings.
    """
    num_slates, slate_size = item.shape
    position = np.tile(np.arange(1, slate_size + 1), num_slates)
    relevance = rating.ravel() - 1
    exam = examination(position, eta)
    attr = attraction(relevance, click_noise)
    click_prob = exam * attr
    click = (rng.random(click_prob.shape) < click_prob).astype(np.int8)
    return pd.DataFrame(
        {
            "impression_id": np.arange(num_slates * slate_size),
            "slate_id": np.repeat(np.arange(num_slates), slate_size),
            "user_id": np.repeat(slate_users, slate_size),
            "item_id": item.ravel(),
            "position": position,
            "keywords": keywords.reindex(item.ravel()).to_numpy(),
            "rating": rating.ravel(),
            "relevance": relevance,
            "attraction": attr,
            "examination": exam,
            "click_prob": click_prob,
            "click": click,
            "logging_score": score.ravel(),
        }
    )


def split_log(log: pd.DataFrame, test_fraction: float = 0.2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a log by slate in time order: the last ``test_fraction`` of slates are the test part.

    Returns:
        ``(train, test)``; no slate is in both, each keeps the log's row order and index.
    """
    _check_number("test_fraction", test_fraction, 0.0, 1.0, low_open=True)
    require_columns(log, ["slate_id"], "log")
    slates = np.unique(log["slate_id"].to_numpy())
    num_test = int(np.ceil(test_fraction * len(slates)))
    if not 0 < num_test < len(slates):
        raise ValueError(f"test_fraction={test_fraction!r} leaves an empty part for {len(slates)} slate(s)")
    is_test = log["slate_id"].isin(slates[len(slates) - num_test :]).to_numpy()
    return log[~is_test], log[is_test]


def click_rate_by_position(log: pd.DataFrame) -> pd.DataFrame:
    """Observed click rate per position with its standard error, next to the simulator's truth.

    Returns:
        DataFrame indexed by position: impressions, clicks, ctr, ctr_se (binomial standard error),
        and, when the log has them, expected_ctr (mean click_prob), expected_se (sampling error of ctr
        around it: ``sqrt(sum p(1-p)) / n``), mean_attraction, examination (true) and
        examination_est (= ctr / mean_attraction, the examination estimated with the true attraction).
    """
    require_columns(log, ["position", "click"], "log")
    g = log.groupby("position")
    out = pd.DataFrame({"impressions": g.size(), "clicks": g["click"].sum().astype(np.int64)})
    out["ctr"] = out["clicks"] / out["impressions"]
    out["ctr_se"] = np.sqrt(out["ctr"] * (1 - out["ctr"]) / out["impressions"])
    if "click_prob" in log.columns:
        p = log["click_prob"]
        out["expected_ctr"] = g["click_prob"].mean()
        out["expected_se"] = np.sqrt((p * (1 - p)).groupby(log["position"]).sum()) / out["impressions"]
    if {"attraction", "examination"} <= set(log.columns):
        out["mean_attraction"] = g["attraction"].mean()
        out["examination"] = g["examination"].mean()
        out["examination_est"] = out["ctr"] / out["mean_attraction"]
    return out


def ipw_weights(positions, eta: float = 1.0, max_weight: float | None = None) -> np.ndarray:
    """Inverse-propensity weights ``1 / examination(position)`` for unbiased click losses.

    Args:
        positions: 1-based positions, any shape.
        eta: the (true or estimated) position-bias strength.
        max_weight: clip weights at this value (>= 1) to reduce variance; ``None`` = no clipping.
    """
    w = 1.0 / examination(positions, eta)
    if max_weight is not None:
        _check_number("max_weight", max_weight, 1.0)
        w = np.minimum(w, max_weight)
    return w


def _dcg_per_slate(slate: np.ndarray, gain: np.ndarray, k: int) -> np.ndarray:
    """DCG@k of each run of equal ``slate`` values (rows already in ranked order within each slate)."""
    new = np.r_[True, slate[1:] != slate[:-1]]
    group = np.cumsum(new) - 1
    rank = np.arange(len(slate)) - np.flatnonzero(new)[group]  # 0-based rank within the slate
    disc = np.where(rank < k, 1.0 / np.log2(rank + 2.0), 0.0)
    return np.bincount(group, weights=gain * disc)


def true_ndcg_at_k(scores, log: pd.DataFrame, k: int = 10) -> float:
    """Mean NDCG@k of re-ranking each slate of ``log`` by ``scores``, against TRUE relevance (not clicks).

    Gain ``2**relevance - 1``, discount ``1 / log2(rank + 1)``; ties in ``scores`` keep the logged
    order. Slates whose ads all have relevance 0 (NDCG undefined) are skipped.

    Args:
        scores: (len(log),) model scores aligned with the rows of ``log``, higher = shown higher.
        log: a simulated log (slate_id, position, relevance), e.g. the test part of :func:`split_log`.
        k: cut-off, >= 1.
    """
    _check_number("k", k, 1, integer=True)
    require_columns(log, ["slate_id", "position", "relevance"], "log")
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if scores.shape != (len(log),) or np.isnan(scores).any():
        raise ValueError(
            f"scores must be {len(log)} numbers (one per log row, no NaN); got shape {scores.shape}"
        )
    slate, pos = log["slate_id"].to_numpy(), log["position"].to_numpy()
    gain = 2.0 ** log["relevance"].to_numpy(dtype=np.float64) - 1.0
    ranked = np.lexsort((pos, -scores, slate))
    ideal = np.lexsort((pos, -gain, slate))
    dcg = _dcg_per_slate(slate[ranked], gain[ranked], k)
    idcg = _dcg_per_slate(slate[ideal], gain[ideal], k)
    valid = idcg > 0
    if not valid.any():
        raise ValueError("no slate in log has an ad with relevance > 0; NDCG is undefined")
    return float(np.mean(dcg[valid] / idcg[valid]))
