"""Classic baselines: global mean, user + item biases, matrix factorisation, popularity.

- :func:`global_mean` and :class:`BiasBaseline` are closed-form / alternating least squares.
- :class:`MatrixFactorization` is an ``nn.Module`` with the same interface as
  :class:`~mtrec_utils.models.multitask.MultiTaskModel`, so the package's training loop trains it.
- :class:`Popularity` scores an item by its number of training ratings, for every user alike.
- :func:`surprise_rmse` runs scikit-surprise on the same split, when it is installed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from mtrec_utils.data.tasks import Task

# RMSE of scikit-surprise's defaults on MovieLens-100K u1 (reference values quoted when not run here).
SURPRISE_REFERENCE = {"SVD": 0.9515, "SVD++": 0.9247, "BaselineOnly": 0.9599}


def global_mean(train_ratings) -> float:
    """Mean training rating: the prediction of the simplest baseline."""
    return float(np.mean(np.asarray(train_ratings, dtype=np.float64)))


class BiasBaseline:
    """``r_ui ~ mu + b_u + b_i``, fitted by alternating regularised least squares (like Surprise's BaselineOnly).

    Args:
        reg_user, reg_item: L2 regularisation of the user and item biases.
        epochs: alternating passes.
    """

    def __init__(self, reg_user: float = 15.0, reg_item: float = 10.0, epochs: int = 10):
        self.reg_user, self.reg_item, self.epochs = reg_user, reg_item, epochs

    def fit(self, users, items, ratings, num_users: int, num_items: int) -> BiasBaseline:
        """Fit on (N,) user indices, item indices and ratings."""
        u, i = np.asarray(users), np.asarray(items)
        r = np.asarray(ratings, dtype=np.float64)
        self.mu = r.mean()
        self.bu, self.bi = np.zeros(num_users), np.zeros(num_items)
        nu, ni = np.bincount(u, minlength=num_users), np.bincount(i, minlength=num_items)
        for _ in range(self.epochs):
            self.bi = np.bincount(i, r - self.mu - self.bu[u], num_items) / (ni + self.reg_item)
            self.bu = np.bincount(u, r - self.mu - self.bi[i], num_users) / (nu + self.reg_user)
        return self

    def predict(self, users, items, clip: tuple[float, float] = (1.0, 5.0)) -> np.ndarray:
        """(N,) predicted ratings, clipped to ``clip``."""
        return np.clip(self.mu + self.bu[np.asarray(users)] + self.bi[np.asarray(items)], *clip)


class MatrixFactorization(nn.Module):
    """Biased matrix factorisation ``mu + b_u + b_i + p_u . q_i`` for every task it serves.

    A regression task reads it as the rating; a binary or ranking task reads it as a logit.
    Same call as the language-model model: ``model(batch, names) -> {name: (B, 1)}``.

    Args:
        num_users, num_items: table sizes.
        tasks: the tasks it serves.
        dim: latent factors per user and item.
        mu: starting global offset (e.g. the training mean rating).
    """

    def __init__(self, num_users: int, num_items: int, tasks: Sequence[Task], dim: int = 64, mu: float = 0.0):
        super().__init__()
        self.tasks = {t.name: t for t in tasks}
        self.p, self.q = nn.Embedding(num_users, dim), nn.Embedding(num_items, dim)
        self.bu, self.bi = nn.Embedding(num_users, 1), nn.Embedding(num_items, 1)
        for emb in (self.p, self.q):
            nn.init.normal_(emb.weight, std=0.05)
        for emb in (self.bu, self.bi):
            nn.init.zeros_(emb.weight)
        self.mu = nn.Parameter(torch.tensor(float(mu)))

    @torch.no_grad()
    def init_biases(self, user_bias, item_bias) -> None:
        """Warm-start ``b_u``, ``b_i`` from a :class:`BiasBaseline` fit ((N,) arrays, rating units)."""
        self.bu.weight.copy_(torch.as_tensor(np.asarray(user_bias), dtype=torch.float32).reshape(-1, 1))
        self.bi.weight.copy_(torch.as_tensor(np.asarray(item_bias), dtype=torch.float32).reshape(-1, 1))

    def shared_parameters(self) -> list[nn.Parameter]:
        """All parameters (an MF model has no task-specific part)."""
        return list(self.parameters())

    def forward(self, batch: dict[str, Tensor], names: Sequence[str] | None = None) -> dict[str, Tensor]:
        """``{name: (B, 1)}`` from ``batch["user"]``, ``batch["item"]`` (B,)."""
        u, i = batch["user"], batch["item"]
        s = self.mu + self.bu(u) + self.bi(i) + (self.p(u) * self.q(i)).sum(-1, keepdim=True)  # (B, 1)
        return {n: s for n in (names or self.tasks)}


class Popularity(nn.Module):
    """Score of (user, item) = number of training interactions of the item (same for every user)."""

    def __init__(self, train_items, num_items: int, tasks: Sequence[Task]):
        super().__init__()
        self.tasks = {t.name: t for t in tasks}
        counts = np.bincount(np.asarray(train_items), minlength=num_items).astype(np.float32)
        self.register_buffer("counts", torch.as_tensor(counts))

    def forward(self, batch: dict[str, Tensor], names: Sequence[str] | None = None) -> dict[str, Tensor]:
        """``{name: (B, 1)}`` item counts."""
        s = self.counts[batch["item"]].unsqueeze(-1)
        return {n: s for n in (names or self.tasks)}


def surprise_available() -> bool:
    """True when scikit-surprise imports here."""
    try:
        import surprise  # noqa: F401
    except ImportError:
        return False
    return True


def surprise_rmse(
    train: pd.DataFrame,
    test: pd.DataFrame,
    algorithms: Sequence[str] = ("SVD", "SVD++", "BaselineOnly"),
    seed: int = 0,
) -> dict[str, float]:
    """Test RMSE of scikit-surprise's algorithms with their default settings.

    Args:
        train, test: DataFrames with user_id, item_id, rating.
        algorithms: names among ``"SVD"``, ``"SVD++"``, ``"BaselineOnly"``.
        seed: random_state of the algorithms that take one.

    Raises:
        ImportError: if scikit-surprise is not installed (see :func:`surprise_available`).
    """
    import surprise

    classes = {"SVD": surprise.SVD, "SVD++": surprise.SVDpp, "BaselineOnly": surprise.BaselineOnly}
    reader = surprise.Reader(rating_scale=(1, 5))
    trainset = surprise.Dataset.load_from_df(
        train[["user_id", "item_id", "rating"]], reader
    ).build_full_trainset()
    testset = list(test[["user_id", "item_id", "rating"]].itertuples(index=False, name=None))
    out = {}
    for name in algorithms:
        kwargs = {"random_state": seed} if name != "BaselineOnly" else {"verbose": False}
        algo = classes[name](**kwargs)
        algo.fit(trainset)
        out[name] = float(surprise.accuracy.rmse(algo.test(testset), verbose=False))
    return out
