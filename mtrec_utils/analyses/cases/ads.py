"""Article 6.1: click-through prediction (CTR) with ad position and keywords, jointly with user interest.

Two tasks share the user and ad towers (:class:`~mtrec_utils.models.MultiTaskModel`):

- ``ctr``: did the user click the ad at this position? (the simulated log, :mod:`mtrec_utils.data.ads_sim`);
- ``interest``: does the user like this movie (rating >= 4)? (the user's training ratings, u1.base).

The logged click mixes two things: whether the user *looked* at the slot (examination, which falls
with the position) and whether the ad *attracted* them. Three ways to treat the position
(``position_mode``):

- ``"pal"``: a position tower, as PAL (Guo et al., RecSys 2019): ``P(click) = sigmoid(b_k) * sigmoid(r(u, a))``,
  where ``b_k`` is learned per position k and ``r`` is the relevance logit. Trained together; at
  serving, the position tower is dropped and ads are ranked by ``r`` alone.
- ``"feature"``: the position is an ordinary input (an embedding added to the user vector); at serving
  every candidate is scored as if shown at position 1.
- ``"ignore"``: the position is not an input (position-naive): ``P(click) = sigmoid(r(u, a))``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from mtrec_utils.core.config import check_choice, set_seed
from mtrec_utils.core.pool import check_workers, map_in_workers
from mtrec_utils.data.ads_sim import true_ndcg_at_k
from mtrec_utils.data.datasets import TensorDictDataset, index_of, make_loader
from mtrec_utils.data.tasks import Task, like_labels
from mtrec_utils.models.multitask import MultiTaskModel
from mtrec_utils.models.towers import EntityTower, FrozenText
from mtrec_utils.training.loop import fit

POSITION_MODES = ("pal", "feature", "ignore")


def _binary_pair_task(
    name: str, label: str, data: str, columns: tuple[str, ...], leaky: tuple[str, ...]
) -> Task:
    """A binary user-item task monitored by AUC (the shape of both ads tasks)."""
    return Task(name, "binary", label, data, "pair", ("auc", "logloss"), "auc", columns, leaky_columns=leaky)


def ads_tasks() -> dict[str, Task]:
    """The two tasks of the ads case study, keyed by name: ``ctr`` (logged clicks) and ``interest`` (likes)."""
    leaks = ("relevance", "rating", "attraction", "click_prob", "examination")
    ctr_columns = ("user_id", "item_id", "position", "keywords", "search_history", "clicked_ads")
    interest_columns = ("user_id", "item_id", "search_history")
    return {
        "ctr": _binary_pair_task("ctr", "click", "impressions", ctr_columns, leaks),
        "interest": _binary_pair_task("interest", "like", "history", interest_columns, ("rating",)),
    }


def impression_dataset(log: pd.DataFrame, user_ids, item_ids) -> TensorDictDataset:
    """Batches ``{"user", "item", "position", "click"}`` from a simulated log (user/item as row indices)."""
    return TensorDictDataset(
        user=index_of(log["user_id"], user_ids, "user_id"),
        item=index_of(log["item_id"], item_ids, "item_id"),
        position=log["position"].to_numpy(dtype=np.int64),
        click=log["click"].to_numpy(dtype=np.float32),
    )


def interest_dataset(ratings: pd.DataFrame, user_ids, item_ids) -> TensorDictDataset:
    """Batches ``{"user", "item", "like"}`` (like = rating >= 4) from training ratings."""
    return TensorDictDataset(
        user=index_of(ratings["user_id"], user_ids, "user_id"),
        item=index_of(ratings["item_id"], item_ids, "item_id"),
        like=like_labels(ratings["rating"]),
    )


def clicked_ads_features(train_log: pd.DataFrame, item_embeddings: Tensor, user_ids, item_ids) -> Tensor:
    """The clicked ads A_u of each user as one vector: the mean text embedding of the ads they clicked.

    Args:
        train_log: the TRAINING part of the log (test clicks must never become inputs).
        item_embeddings: (num_items, H) ad text embeddings, rows aligned with ``item_ids``.
        user_ids, item_ids: the id vocabularies.

    Returns:
        (num_users, H + 1) float: the mean embedding (zeros without clicks), then log(1 + clicks).
    """
    clicks = train_log[np.asarray(train_log["click"]) == 1]
    u = torch.as_tensor(index_of(clicks["user_id"], user_ids, "user_id"))
    i = torch.as_tensor(index_of(clicks["item_id"], item_ids, "item_id"))
    sums = torch.zeros(len(user_ids), item_embeddings.shape[1]).index_add_(0, u, item_embeddings[i].float())
    counts = torch.bincount(u, minlength=len(user_ids)).float()  # (num_users,)
    mean = sums / counts.clamp_min(1.0)[:, None]
    return torch.cat([mean, torch.log1p(counts)[:, None]], dim=1)


def pal_logit(relevance_logit: Tensor, position_logit: Tensor) -> Tensor:
    """The logit of ``sigmoid(position_logit) * sigmoid(relevance_logit)``, computed stably (same shapes)."""
    log_p = (F.logsigmoid(relevance_logit) + F.logsigmoid(position_logit)).clamp(max=-1e-6)
    log_1mp = torch.where(log_p > -0.6931, torch.log(-torch.expm1(log_p)), torch.log1p(-torch.exp(log_p)))
    return log_p - log_1mp


def pair_outputs(
    model: MultiTaskModel, u: Tensor, i: Tensor, users: Tensor, items: Tensor, names: Sequence[str]
) -> dict[str, Tensor]:
    """``model.pair_outputs`` from user/item vectors (B, d) and indices (B,), whichever of its two call forms
    (with or without the indices used by per-entity biases) the installed model has."""
    params = inspect.signature(model.pair_outputs).parameters
    if "users" in params:
        return model.pair_outputs(u, i, users, items, names)
    return model.pair_outputs(u, i, names)


class AdsModel(nn.Module):
    """The joint CTR + interest model with one of three position treatments (see the module docstring).

    Args:
        towers: ``{"user": EntityTower, "item": EntityTower}`` of equal ``dim``.
        tasks: the tasks (from :func:`ads_tasks`).
        position_mode: ``"pal"`` | ``"feature"`` | ``"ignore"``.
        slate_size: number of positions.
        hidden: width of the shared pair trunk.
        dropout: dropout in trunk and heads.
    """

    def __init__(
        self,
        towers: dict[str, nn.Module],
        tasks: Sequence[Task],
        position_mode: str = "pal",
        slate_size: int = 10,
        hidden: int = 64,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.position_mode = check_choice("position_mode", position_mode, POSITION_MODES)
        self.base = MultiTaskModel(towers, tasks, hidden=hidden, dropout=dropout)
        self.tasks, self.slate_size = self.base.tasks, slate_size
        if position_mode == "pal":
            self.position_logit = nn.Parameter(torch.zeros(slate_size))  # b_k, k = 1..slate_size
        if position_mode == "feature":
            self.position_emb = nn.Embedding(slate_size, towers["user"].dim)
            nn.init.normal_(self.position_emb.weight, std=0.01)

    def shared_parameters(self) -> list[nn.Parameter]:
        """Parameters of the shared towers and trunk (for weighting strategies)."""
        return self.base.shared_parameters()

    def forward(self, batch: dict[str, Tensor], names: Sequence[str] | None = None) -> dict[str, Tensor]:
        """``{name: (B, 1)}`` logits. With ``batch["position"]`` (B,) 1-based, ``ctr`` is the click logit
        at that position; without it, ``ctr`` is the serving score (PAL: the relevance logit alone)."""
        names = list(names or self.tasks)
        u = self.base.towers["user"](batch["user"])  # (B, d)
        i = self.base.towers["item"](batch["item"])  # (B, d)
        pos = batch.get("position")
        if pos is not None and (pos.min() < 1 or pos.max() > self.slate_size):
            raise ValueError(
                f"position must be in 1..{self.slate_size}; got {int(pos.min())}..{int(pos.max())}"
            )
        if self.position_mode == "feature":
            pos = pos if pos is not None else torch.ones_like(batch["user"])  # serving: as if at the top
            u = u + self.position_emb(pos - 1)
        out = pair_outputs(self.base, u, i, batch["user"], batch["item"], names)
        if self.position_mode == "pal" and pos is not None and "ctr" in out:
            out["ctr"] = pal_logit(out["ctr"], self.position_logit[pos - 1].unsqueeze(-1))
        return out


def build_ads_model(
    user_text: Tensor,
    item_text: Tensor,
    tasks: Sequence[Task],
    position_mode: str,
    *,
    user_features: Tensor | None = None,
    dim: int = 32,
    hidden: int = 64,
    slate_size: int = 10,
    dropout: float = 0.1,
) -> AdsModel:
    """An :class:`AdsModel` over frozen text embeddings.

    Args:
        user_text: (num_users, H) embeddings of the users' texts (search history h_u).
        item_text: (num_items, H) embeddings of the ads' texts (title and keywords k_i).
        tasks: from :func:`ads_tasks`.
        position_mode: ``"pal"`` | ``"feature"`` | ``"ignore"``.
        user_features: (num_users, F) extra user features, e.g. :func:`clicked_ads_features` (A_u).
        dim, hidden, slate_size, dropout: sizes.
    """
    towers = {
        "user": EntityTower(
            len(user_text), dim, FrozenText(user_text), features=user_features, dropout=dropout
        ),
        "item": EntityTower(len(item_text), dim, FrozenText(item_text), dropout=dropout),
    }
    model = AdsModel(towers, tasks, position_mode, slate_size=slate_size, hidden=hidden, dropout=dropout)
    return model


def train_modes(
    modes: Sequence[str],
    build: Callable[[str], nn.Module],
    train_sets: Mapping[str, torch.utils.data.Dataset],
    val_data: Mapping[str, object],
    tasks: Sequence[Task],
    *,
    seed: int,
    batch_size: int,
    workers: int = 1,
    progress: bool = True,
    **fit_kw,
) -> tuple[dict[str, nn.Module], dict[str, pd.DataFrame]]:
    """Train one model per position mode, each from the same start: a paired comparison.

    Every mode starts from ``set_seed(seed)``: the same initial weights where the models share a
    part, the same dropout draws, and its own loaders over ``train_sets`` shuffled by a generator
    seeded alike, so all modes see the same batches in the same order and differ by the mode alone.
    Because nothing is shared between the runs, they can train at once (``workers``) with the same
    results as one after another.

    Args:
        modes: e.g. :data:`POSITION_MODES`.
        build: ``build(mode)`` -> a fresh model (e.g. a partial of :func:`build_ads_model`).
        train_sets: ``{data name: Dataset}`` for every ``task.data``.
        val_data: ``{data name: DataLoader}`` for early stopping (shared, never shuffled).
        tasks: from :func:`ads_tasks`.
        seed: seeds each run and its shuffling.
        batch_size: training batch size.
        workers: runs at once in forked processes of one thread each (CPU, Linux); 1: one after
            another here, with each run's epoch bar.
        progress: show progress (pooled: one bar over the modes).
        **fit_kw: passed to :func:`~mtrec_utils.training.loop.fit` (epochs, lr, monitor, ...).

    Returns:
        ``({mode: trained model}, {mode: history})`` in the order of ``modes``; each model holds
        its best epoch's weights.
    """
    check_workers(workers)
    modes = list(modes)
    if not modes:
        raise ValueError("modes must name at least one position mode, e.g. ('pal', 'ignore')")
    pooled = min(workers, len(modes)) > 1

    def fresh(mode: str) -> tuple[nn.Module, torch.Generator]:
        shuffle = set_seed(seed)  # before the model is built: its initial weights, then the batch order
        return build(mode), shuffle

    def job(mode: str):
        model, shuffle = fresh(mode)
        loaders = {name: make_loader(ds, batch_size, True, shuffle) for name, ds in train_sets.items()}
        history = fit(model, tasks, loaders, val_data, progress=progress and not pooled, **fit_kw)
        if not pooled:
            return model, history
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        return state, model.training, history

    bar = tqdm(total=len(modes), desc="ads models", disable=not (progress and pooled))
    found = map_in_workers(job, modes, workers if pooled else 1, on_result=lambda mode, r: bar.update(1))
    bar.close()
    models, histories = {}, {}
    for mode, result in zip(modes, found):
        if pooled:  # the same model, rebuilt here, with the weights the worker trained
            state, training, histories[mode] = result
            models[mode], _ = fresh(mode)
            models[mode].load_state_dict(state)
            models[mode].train(training)
        else:
            models[mode], histories[mode] = result
    return models, histories


@torch.no_grad()
def _logits(
    model: AdsModel,
    log: pd.DataFrame,
    user_ids,
    item_ids,
    position: np.ndarray | None,
    batch_size: int = 8192,
) -> np.ndarray:
    model.eval()
    device = next(model.parameters()).device
    u = torch.as_tensor(index_of(log["user_id"], user_ids, "user_id"), device=device)
    i = torch.as_tensor(index_of(log["item_id"], item_ids, "item_id"), device=device)
    p = None if position is None else torch.as_tensor(np.asarray(position, dtype=np.int64), device=device)
    out = []
    for s in range(0, len(u), batch_size):
        batch = {"user": u[s : s + batch_size], "item": i[s : s + batch_size]}
        if p is not None:
            batch["position"] = p[s : s + batch_size]
        out.append(model(batch, ["ctr"])["ctr"].reshape(-1).float().cpu())
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)


def click_probabilities(model: AdsModel, log: pd.DataFrame, user_ids, item_ids) -> np.ndarray:
    """(len(log),) predicted click probabilities at the LOGGED positions (what AUC/logloss judge)."""
    return 1.0 / (1.0 + np.exp(-_logits(model, log, user_ids, item_ids, log["position"].to_numpy())))


def serving_scores(model: AdsModel, log: pd.DataFrame, user_ids, item_ids) -> np.ndarray:
    """(len(log),) ranking scores at serving: PAL drops the position tower; ``feature`` uses position 1."""
    return _logits(model, log, user_ids, item_ids, None)


def position_curve(model: AdsModel, log: pd.DataFrame, user_ids, item_ids) -> np.ndarray:
    """The model's position curve: mean predicted click probability at position k over the rows of ``log``,
    divided by that at position 1. Shape (slate_size,); entry 0 is 1. A position-naive model gives all ones.
    """
    probs = []
    for k in range(1, model.slate_size + 1):
        logit = _logits(model, log, user_ids, item_ids, np.full(len(log), k))
        probs.append(np.mean(1.0 / (1.0 + np.exp(-logit))))
    probs = np.asarray(probs)
    return probs / probs[0]


def pal_position_curve(model: AdsModel) -> np.ndarray:
    """PAL's learned examination curve ``sigmoid(b_k) / sigmoid(b_1)``, shape (slate_size,)."""
    if model.position_mode != "pal":
        raise ValueError(f"position_mode={model.position_mode!r} has no position tower; use position_curve()")
    p = torch.sigmoid(model.position_logit.detach().float().cpu()).numpy()
    return p / p[0]


def evaluate_ads(
    model: AdsModel, test_log: pd.DataFrame, user_ids, item_ids, k: int = 10
) -> dict[str, float]:
    """Metrics on held-out slates: ``auc`` / ``logloss`` / ``ece`` of logged clicks, and ``true_ndcg`` of
    re-ranking each slate by the serving score, against the simulator's true relevance."""
    from mtrec_utils.core import metrics as M

    y, p = test_log["click"].to_numpy(), click_probabilities(model, test_log, user_ids, item_ids)
    return {
        "auc": M.auc(y, p),
        "logloss": M.logloss(y, p),
        "ece": M.expected_calibration_error(y, p),
        "true_ndcg": true_ndcg_at_k(serving_scores(model, test_log, user_ids, item_ids), test_log, k),
    }


def reference_rankings(
    train_log: pd.DataFrame, test_log: pd.DataFrame, seed: int = 0
) -> dict[str, np.ndarray]:
    """Scores of simple rankings of ``test_log``'s rows, for true NDCG@k: ``logged`` (the logging policy's
    order), ``random``, ``click_rate`` (the ad's training click rate) and ``oracle`` (true relevance)."""
    rate = train_log.groupby("item_id")["click"].mean()
    return {
        "logged": -test_log["position"].to_numpy(dtype=np.float64),
        "random": np.random.default_rng(seed).random(len(test_log)),
        "click_rate": rate.reindex(test_log["item_id"]).fillna(rate.mean()).to_numpy(),
        "oracle": test_log["relevance"].to_numpy(dtype=np.float64),
    }
