"""Joint embedding (联合嵌入): users and items in one space, and how to look at that space.

:class:`JointEmbeddingModel` is a two-tower model: a user tower and an item tower map into the
same ``d``-dimensional space, and both tasks read only geometry in it:

- user interest: ``s(u, i) = cos(u, i) / tau``, trained with the in-batch softmax (InfoNCE) of
  :func:`in_batch_softmax_loss`: each liked (user, item) pair against the other items of the batch;
- rating: ``mu + b_u + b_i + <u, i> / sqrt(d)`` (biased matrix factorisation), trained with MSE.

:func:`train_joint_embedding` trains both at once. To look at a space: :func:`genre_purity` (share
of an item's nearest neighbours that share a genre with it), :func:`pca_2d` for a 2-D picture and
:func:`neighbour_table` for a few well-known movies.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from itertools import cycle

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mtrec_utils.core.config import check_positive
from mtrec_utils.core.similarity import cosine_top_k
from mtrec_utils.data.tasks import Task
from mtrec_utils.training.evaluation import evaluate


def in_batch_softmax_loss(
    u: Tensor, i: Tensor, temperature: float = 0.1, items: Tensor | None = None
) -> Tensor:
    """InfoNCE over a batch of positive pairs: row ``b`` must pick item ``b`` among all B items.

    Args:
        u, i: (B, d) user and item vectors of B liked pairs.
        temperature: tau, the softmax temperature on cosine similarities.
        items: (B,) item ids; other rows with the same item are not counted as negatives.

    Returns:
        Scalar mean cross-entropy.
    """
    check_positive("temperature", temperature)
    logits = F.normalize(u, dim=-1) @ F.normalize(i, dim=-1).T / temperature  # (B, B)
    if items is not None:
        same = (items[:, None] == items[None, :]) & ~torch.eye(len(items), dtype=torch.bool, device=u.device)
        logits = logits.masked_fill(same, float("-inf"))
    return F.cross_entropy(logits, torch.arange(len(u), device=u.device))


class JointEmbeddingModel(nn.Module):
    """User and item towers in one space; ``rating`` and ``interest`` read only that space.

    Args:
        towers: ``{"user": tower, "item": tower}`` with equal ``.dim`` and ``.num_entities``.
        global_mean: mu, the mean training rating.
        temperature: tau of the interest score.
    """

    def __init__(self, towers: dict[str, nn.Module], global_mean: float = 3.5, temperature: float = 0.1):
        super().__init__()
        self.towers = nn.ModuleDict(towers)
        self.biases = nn.ModuleDict({k: nn.Embedding(towers[k].num_entities, 1) for k in ("user", "item")})
        for emb in self.biases.values():
            nn.init.zeros_(emb.weight)
        self.mu, self.temperature = float(global_mean), check_positive("temperature", temperature)

    def forward(self, batch: dict[str, Tensor], names: Sequence[str] = ("rating",)) -> dict[str, Tensor]:
        """``{"rating": (B, 1), "interest": (B, 1)}`` for the pairs ``batch["user"]``, ``batch["item"]``."""
        u, i = self.towers["user"](batch["user"]), self.towers["item"](batch["item"])  # (B, d) each
        out = {}
        if "rating" in names:
            bias = self.biases["user"](batch["user"]) + self.biases["item"](batch["item"])  # (B, 1)
            out["rating"] = self.mu + bias + (u * i).sum(-1, keepdim=True) / u.shape[-1] ** 0.5
        if "interest" in names:
            out["interest"] = F.cosine_similarity(u, i, dim=-1).unsqueeze(-1) / self.temperature
        return out

    @torch.no_grad()
    def score_items(self, name: str, users: Tensor, num_items: int) -> Tensor:
        """(U, num_items) interest scores of ``users`` for every item (cosine / tau)."""
        items = F.normalize(self.towers["item"](torch.arange(num_items, device=users.device)), dim=-1)
        return F.normalize(self.towers["user"](users), dim=-1) @ items.T / self.temperature

    @torch.no_grad()
    def item_vectors(self) -> Tensor:
        """(num_items, d) every item's vector (dropout off)."""
        self.eval()
        tower = self.towers["item"]
        return tower(torch.arange(tower.num_entities))


def train_joint_embedding(
    model: JointEmbeddingModel,
    ratings: torch.utils.data.DataLoader,
    liked: torch.utils.data.DataLoader,
    tasks: Sequence[Task],
    val: dict,
    *,
    epochs: int = 5,
    lr: float = 2e-3,
    weight_decay: float = 0.0,
    interest_weight: float = 1.0,
) -> pd.DataFrame:
    """Train rating (MSE) and interest (in-batch softmax) together; keep the best validation epoch.

    Args:
        model: a :class:`JointEmbeddingModel`.
        ratings: batches ``{"user", "item", "rating"}``; one epoch = one pass over it.
        liked: batches ``{"user", "item"}`` of liked pairs (cycled alongside ``ratings``).
        tasks: the ``rating`` and ``interest`` tasks (metrics and the monitor ``interest/ndcg@10``).
        val: ``{"ratings": DataLoader, "interactions": RankingEval}``.
        epochs, lr, weight_decay: AdamW settings.
        interest_weight: weight of the in-batch softmax loss (rating weight 1; 0 = rating only).

    Returns:
        History: one row per epoch with the mean losses and the validation metrics.
    """
    check_positive("epochs", epochs, integer=True)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    rows, best, best_state = [], -np.inf, None
    for epoch in range(1, epochs + 1):
        model.train()
        sums = np.zeros(2)
        for batch, pos in zip(ratings, cycle(liked)):
            mse = F.mse_loss(model(batch, ["rating"])["rating"].squeeze(-1), batch["rating"].float())
            u, i = model.towers["user"](pos["user"]), model.towers["item"](pos["item"])
            nce = in_batch_softmax_loss(u, i, model.temperature, pos["item"])
            opt.zero_grad(set_to_none=True)
            (mse + interest_weight * nce).backward()
            opt.step()
            sums += [mse.item(), nce.item()]
        metrics = evaluate(model, tasks, val)
        losses = {"loss/rating": sums[0] / len(ratings), "loss/interest": sums[1] / len(ratings)}
        rows.append({"epoch": epoch, **losses} | {f"val/{k}": v for k, v in metrics.items()})
        if metrics["interest/ndcg@10"] > best:
            best, best_state = metrics["interest/ndcg@10"], copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    history = pd.DataFrame(rows)
    history.attrs["best_epoch"] = int(history.loc[history["val/interest/ndcg@10"].idxmax(), "epoch"])
    return history


def genre_purity(
    vectors: Tensor, genres: np.ndarray, k: int = 10, rows: Sequence[int] | None = None
) -> float:
    """Mean share of each item's ``k`` nearest neighbours (cosine, itself excluded) sharing a genre with it.

    Args:
        vectors: (N, H) item vectors.
        genres: (N, G) 0/1 genre flags.
        k: neighbours per item.
        rows: the query items (default: every item); neighbours are searched among all N.
    """
    g = torch.as_tensor(np.asarray(genres), dtype=torch.float32)
    if len(g) != len(vectors):
        raise ValueError(f"vectors and genres must have the same rows; got {len(vectors)} and {len(g)}")
    v = F.normalize(vectors.float(), dim=-1)
    q = torch.as_tensor(np.arange(len(v)) if rows is None else np.asarray(rows), dtype=torch.long)
    sims = v[q] @ v.T  # (Q, N)
    sims[torch.arange(len(q)), q] = float("-inf")
    top = sims.topk(k, dim=1).indices  # (Q, k)
    shared = (g[q][:, None, :] * g[top]).sum(-1) > 0  # (Q, k)
    return float(shared.float().mean())


def random_genre_purity(genres: np.ndarray) -> float:
    """Expected :func:`genre_purity` of neighbours drawn at random (the chance level)."""
    g = np.asarray(genres, dtype=np.float64)
    share = (g @ g.T) > 0  # (N, N)
    np.fill_diagonal(share, False)
    return float(share.sum(axis=1).mean() / (len(g) - 1))


def pca_2d(vectors: Tensor) -> np.ndarray:
    """(N, H) -> (N, 2): projection on the two principal components (centred, SVD)."""
    x = vectors.double() - vectors.double().mean(dim=0)
    _, _, vt = torch.linalg.svd(x, full_matrices=False)
    return (x @ vt[:2].T).numpy()


def neighbour_table(
    spaces: dict[str, Tensor], titles: Sequence[str], queries: Sequence[str], k: int = 5
) -> pd.DataFrame:
    """The ``k`` nearest neighbours of each query title in each space, as a table.

    Args:
        spaces: ``{space name: (N, H) vectors}`` aligned with ``titles``.
        titles: (N,) item titles.
        queries: titles to look up (each must be in ``titles``).

    Returns:
        DataFrame indexed by (query, space), columns ``1..k`` holding neighbour titles.
    """
    where = {t: j for j, t in enumerate(titles)}
    missing = [q for q in queries if q not in where]
    if missing:
        raise ValueError(f"queries {missing} are not titles of the items")
    rows = {}
    for q in queries:
        for name, vecs in spaces.items():
            idx, _ = cosine_top_k(vecs[where[q]], vecs, k=k, exclude=where[q])
            rows[(q, name)] = [titles[j] for j in idx.tolist()]
    index = pd.MultiIndex.from_tuples(list(rows), names=["movie", "space"])
    return pd.DataFrame(list(rows.values()), index=index, columns=list(range(1, k + 1)))
