"""Continual learning on time-ordered MovieLens-100K (the article's 持续学习): learn as the data shift, without forgetting.

The protocol (a different one from GroupLens's u1..u5, which are *random* 80/20 splits of u.data):

- :func:`split_by_time` sorts u.data by timestamp (ties keep u.data's order) and cuts it into
  ``P`` consecutive periods of equal size (+-1 rating); each period's test part is a random
  ``test_fraction`` of its ratings (seeded), the rest is its training part. A random test part
  *inside* a period keeps the question "does the model still serve period p?" apart from cold
  start: MovieLens users rate in bursts, so the last 20 % of a period in time is mostly users the
  period's training part never saw.
- Users and items arrive over time, so the ID tables are sized for every id of u.user / u.item
  from the start (an id only gets trained once it appears). The text the frozen encoder reads is
  known in advance too: the item's title and genres, the user's profile (age, gender,
  occupation) without liked titles, so no period's text carries later ratings.
- The model is the package's joint model (:func:`~mtrec_utils.models.sharing.build_model`,
  ``"hard"``) on cached text embeddings, trained on ``rating`` + ``like`` with
  :func:`~mtrec_utils.training.loop.fit` (early stopping on 5 % of each period's training part).
  The ranking task ``interest`` is left out: each period would need its own negatives and a
  full user x item scoring per evaluation.

Methods (:data:`METHODS`), each a :class:`ContinualMethod` (``learn(t)``, ``model_for(p)``):

- ``scratch``: retrain a fresh model on all periods so far (the upper bound, and its cost);
- ``naive``: fine-tune on the new period only;
- ``replay``: fine-tune on the new period plus a reservoir sample (Vitter 1985, algorithm R) of
  ``buffer_size`` past training ratings (:class:`ReservoirBuffer`);
- ``ewc``: elastic weight consolidation (Kirkpatrick et al., PNAS 2017): a penalty
  ``(lambda / 2) sum_i F_i (theta_i - theta*_i)^2`` with the diagonal Fisher ``F`` summed over the
  previous periods and ``theta*`` the weights after the last one (the "online" form of Schwarz et
  al. 2018 with gamma = 1), added to the joint loss by :class:`EWCPenalty`, a weighting strategy;
- ``adapter``: the model trained on the first period is frozen; each later period trains its own
  LoRA update (Hu et al. 2021) of the shared trunk's Linear layers (:class:`PeriodAdapters`), and
  the ID rows of the users and items that period brings. At test time period p's data go through
  period p's adapter: this assumes the period is known then.

After each period every period's test part is evaluated: the accuracy matrix ``A[t, p]`` (row:
trained through period t, column: tested on period p) of rating RMSE and like AUC.
:func:`forgetting` and :func:`summarize` turn it into new-period quality, forgetting and cost.
One call runs the section at a profile's sizes (:data:`CONTINUAL_SIZES`)::

    result = run_continual(profile, encoder, seed=0)   # methods=METHODS by default
    result.summary                # one row per method: new-period / final RMSE and AUC, forgetting, cost
    result.matrix("naive")        # A[t, p] of rating RMSE as a labelled DataFrame
    result.metrics_to_record()    # {"ml_continual_forgetting_naive": ..., ...}
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from mtrec_utils.core.config import Profile, check_choice, check_positive, resolve_profile
from mtrec_utils.data.datasets import TensorDictDataset, index_of, make_loader
from mtrec_utils.data.movielens import MovieLens
from mtrec_utils.data.prepare import holdout, rating_dataset, sample_rows
from mtrec_utils.data.tasks import Task, movielens_tasks
from mtrec_utils.models.encoders import Encoder
from mtrec_utils.models.heads import task_loss
from mtrec_utils.training.bundles import TaskBundle
from mtrec_utils.training.experiments import run_experiment
from mtrec_utils.training.loop import evaluate, fit
from mtrec_utils.weighting import EqualWeighting, WeightingStrategy
from mtrec_utils.weighting.base import CombineResult

METHODS = ("scratch", "naive", "replay", "ewc", "adapter")
TASKS = ("rating", "like")
METRICS = {"rating/rmse": False, "like/auc": True}  # metric -> higher is better


@dataclass(frozen=True)
class ContinualSizes:
    """How big one continual-learning run is (one per profile in :data:`CONTINUAL_SIZES`).

    Attributes:
        periods: P consecutive periods (>= 2).
        max_ratings: ratings drawn at random from u.data before splitting (``None``: all 100,000).
        epochs, patience, lr, weight_decay, batch_size: ``fit`` settings of every training call
            (AdamW's decay shrinks every row of the ID tables, absent users' too: 0 by default).
        hidden, dim: trunk and tower widths.
        buffer_size: ratings kept by ``replay``.
        ewc_lambda: strength of the EWC penalty; 10 had the best mean final validation RMSE over the
            periods among 1, 10, 100 and 1000 (cpu sizes, seed 0; validation parts only, never test).
        adapter_rank: rank of each period's LoRA update.
        adapter_new_ids: ``adapter`` also trains the ID rows of the users and items new in a period.
        test_fraction: share of each period held out as its test part.
    """

    periods: int = 4
    max_ratings: int | None = None
    epochs: int = 6
    batch_size: int = 512
    buffer_size: int = 4_000
    ewc_lambda: float = 10.0
    adapter_rank: int = 4
    adapter_new_ids: bool = True
    patience: int | None = 2
    lr: float = 2e-3
    weight_decay: float = 0.0
    hidden: int = 64
    dim: int = 32
    test_fraction: float = 0.2


CONTINUAL_SIZES: dict[str, ContinualSizes] = {
    "smoke": ContinualSizes(max_ratings=8_000, epochs=2, batch_size=256, buffer_size=500),
    "cpu": ContinualSizes(),  # full data
}
CONTINUAL_SIZES["gpu"] = CONTINUAL_SIZES["cpu"]  # the encoder is frozen here: the GPU profile adds nothing


# --- the time-ordered split -------------------------------------------------------------------


@dataclass
class TimePeriod:
    """One period: its training and test ratings (u.data rows, time order kept) and its time span."""

    index: int
    train: pd.DataFrame
    test: pd.DataFrame
    start: pd.Timestamp
    end: pd.Timestamp


def split_by_time(
    ratings: pd.DataFrame, num_periods: int, test_fraction: float = 0.2, seed: int = 0
) -> list[TimePeriod]:
    """Cut ``ratings`` into ``num_periods`` consecutive periods in time, each split into train and test.

    Args:
        ratings: user_id, item_id, rating, timestamp (e.g. ``load_movielens().ratings``).
        num_periods: P >= 2; periods hold ``len(ratings) // P`` or one more ratings.
        test_fraction: share of each period drawn at random (seeded) as its test part.
        seed: seed of those draws.

    Returns:
        P :class:`TimePeriod` s in time order; every rating is in exactly one train or test part.
        Ratings sharing a timestamp may fall on both sides of a period boundary.
    """
    check_positive("num_periods", num_periods, integer=True)
    if num_periods < 2 or num_periods > len(ratings):
        raise ValueError(f"num_periods={num_periods!r} is not valid; it must be 2 .. {len(ratings)} (e.g. 4)")
    if isinstance(test_fraction, bool) or not 0 < test_fraction < 1:
        raise ValueError(
            f"test_fraction={test_fraction!r} is not valid; it must be between 0 and 1 (e.g. 0.2)"
        )
    order = np.argsort(ratings["timestamp"].to_numpy(), kind="stable")
    rng = np.random.default_rng(seed)
    periods = []
    for k, rows in enumerate(np.array_split(order, num_periods)):
        is_test = np.zeros(len(rows), dtype=bool)
        is_test[rng.permutation(len(rows))[: max(1, round(test_fraction * len(rows)))]] = True
        part = ratings.iloc[rows]
        stamps = pd.to_datetime(part["timestamp"].agg(["min", "max"]), unit="s")
        periods.append(TimePeriod(k, part[~is_test], part[is_test], stamps["min"], stamps["max"]))
    return periods


def describe_periods(periods: Sequence[TimePeriod]) -> pd.DataFrame:
    """One row per period: dates, train/test sizes, users and the share of them not seen before."""
    rows, seen = [], set[int]()
    for p in periods:
        users = set(pd.concat([p.train, p.test])["user_id"])
        rows.append(
            {
                "period": p.index,
                "from": p.start.date(),
                "to": p.end.date(),
                "train": len(p.train),
                "test": len(p.test),
                "users": len(users),
                "new users (share)": len(users - seen) / max(1, len(users)),
                "mean rating": float(p.train["rating"].mean()),
            }
        )
        seen |= users
    return pd.DataFrame(rows).set_index("period")


# --- replay, EWC and adapters -----------------------------------------------------------------


class ReservoirBuffer:
    """A uniform sample of at most ``size`` of all the rows added so far (Vitter 1985, algorithm R).

    Args:
        size: the most rows kept.
        generator: random source of the draws.
    """

    def __init__(self, size: int, generator: torch.Generator | None = None):
        self.size = check_positive("buffer_size", size, integer=True)
        self.rows: list[int] = []
        self.seen = 0
        self.generator = generator

    def add(self, rows: Iterable[int]) -> None:
        """Offer ``rows`` (e.g. row ids of u.data) one by one; each of the ``seen`` ones is kept with chance size/seen."""
        offered = np.asarray(list(rows)).tolist()
        draws = torch.rand(len(offered), generator=self.generator, dtype=torch.float64).numpy()
        for row, u in zip(offered, draws):
            self.seen += 1
            if len(self.rows) < self.size:
                self.rows.append(row)
            else:
                j = int(u * self.seen)  # uniform in 0 .. seen-1
                if j < self.size:
                    self.rows[j] = row

    def __len__(self) -> int:
        return len(self.rows)


class EWCPenalty(WeightingStrategy):
    """Elastic weight consolidation (Kirkpatrick et al., "Overcoming catastrophic forgetting in neural
    networks", PNAS 2017) as a weighting strategy: the inner strategy's loss plus

        (lambda / 2) * sum_i F_i * (theta_i - anchor_i)^2

    Args:
        params: the model's trainable parameters (referenced, not owned: they are not this module's).
        anchor: their values after the previous period (same shapes), copied.
        fisher: the diagonal Fisher of each (same shapes, >= 0), copied; see :func:`diagonal_fisher`.
        lam: lambda >= 0.
        inner: a loss-based strategy for the task losses (default: their sum, :class:`EqualWeighting`).
    """

    name = "ewc"

    def __init__(
        self,
        params: Sequence[Tensor],
        anchor: Sequence[Tensor],
        fisher: Sequence[Tensor],
        lam: float,
        inner: WeightingStrategy | None = None,
        num_tasks: int = len(TASKS),
    ):
        super().__init__(inner.num_tasks if inner is not None else num_tasks)
        if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not lam >= 0:
            raise ValueError(f"ewc_lambda={lam!r} is not valid; it must be a number >= 0 (e.g. 100)")
        params = list(params)
        if not len(params) == len(anchor) == len(fisher):
            raise ValueError(
                f"EWCPenalty: {len(params)} params, {len(anchor)} anchors, {len(fisher)} Fishers"
            )
        for p, a, f in zip(params, anchor, fisher):
            if p.shape != a.shape or p.shape != f.shape:
                raise ValueError(
                    f"EWCPenalty: shapes differ: param {tuple(p.shape)}, anchor {tuple(a.shape)}"
                )
        self.inner = inner or EqualWeighting(self.num_tasks)
        self.lam = float(lam)
        self._params = params  # a plain list: the model's parameters stay the model's
        for k, (a, f) in enumerate(zip(anchor, fisher)):  # buffers: they move with .to(), never train
            self.register_buffer(f"anchor_{k}", a.detach().clone())
            self.register_buffer(f"fisher_{k}", f.detach().clone())

    def penalty(self) -> Tensor:
        """The scalar ``(lambda / 2) sum_i F_i (theta_i - anchor_i)^2`` (0 at the anchor)."""
        total = self._params[0].new_zeros(())
        for k, p in enumerate(self._params):
            total = total + ((p - getattr(self, f"anchor_{k}")).pow(2) * getattr(self, f"fisher_{k}")).sum()
        return 0.5 * self.lam * total

    def combine(self, losses: Tensor, shared_params=None, step: int = 0) -> CombineResult:
        """The inner strategy's result with the penalty added to its loss."""
        result = self.inner.combine(losses, shared_params, step)
        if result.grads is not None:
            raise ValueError("EWCPenalty needs a loss-based inner strategy (not a gradient-surgery one)")
        return replace(result, loss=result.loss + self.penalty())


def diagonal_fisher(
    model: nn.Module, tasks: Sequence[Task], dataset: TensorDictDataset, batch_size: int = 64
) -> list[Tensor]:
    """The empirical diagonal Fisher of the summed task losses, per trainable parameter of ``model``.

    Each batch's mean gradient ``g`` (B samples) adds ``B * g**2``: near a minimum ``Var(g) = F / B``,
    so this estimates the per-sample Fisher without one backward pass per rating. Evaluation mode
    (no dropout); the model's gradients are left cleared.

    Returns:
        One tensor >= 0 per ``p in model.parameters() if p.requires_grad``, on ``p``'s device.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    device = params[0].device
    fisher = [torch.zeros_like(p) for p in params]
    model.eval()
    loader = make_loader(dataset, batch_size)
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        out = model(batch, [t.name for t in tasks])
        loss = torch.stack([task_loss(t, out[t.name], batch[t.label]) for t in tasks]).sum()
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        for f, g in zip(fisher, grads):
            if g is not None:
                f.add_(g.detach().pow(2), alpha=len(batch["user"]))
    return [f / len(loader) for f in fisher]


class LoRALinears(nn.Module):
    """A frozen ``nn.Linear`` plus one low-rank update per period (LoRA, Hu et al. 2021):
    ``y = W x + b + (alpha / r) B_k A_k x`` for the active update ``k`` (none: the frozen layer).

    Shapes: x (..., in) -> y (..., out); ``A_k`` (r, in), ``B_k`` (out, r), ``B_k`` starts at 0.
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float | None = None):
        super().__init__()
        self.base = base.requires_grad_(False)
        self.rank = check_positive("adapter_rank", rank, integer=True)
        self.scale = (alpha or 2 * rank) / rank
        self.down, self.up = nn.ParameterList(), nn.ParameterList()
        self.active: int | None = None

    def add(self) -> int:
        """A new update (A random, B zero: the layer is unchanged until it trains); returns its index."""
        w = self.base.weight
        a = torch.empty(self.rank, w.shape[1], device=w.device)
        nn.init.kaiming_uniform_(a, a=5**0.5)
        self.down.append(nn.Parameter(a))
        self.up.append(nn.Parameter(torch.zeros(w.shape[0], self.rank, device=w.device)))
        return len(self.down) - 1

    def forward(self, x: Tensor) -> Tensor:
        y = self.base(x)
        if self.active is None:
            return y
        return y + self.scale * (x @ self.down[self.active].T) @ self.up[self.active].T


class PeriodAdapters:
    """One LoRA update per period on every Linear of ``model.trunks``; everything else frozen.

    ``add()`` makes a new update (the only trainable parameters from then on) and activates it;
    ``use(k)`` activates update ``k`` (``None``: the frozen model itself) for evaluation.
    """

    def __init__(self, model: Any, rank: int):
        self.model = model
        model.requires_grad_(False)
        self.layers: list[LoRALinears] = []
        for trunk in model.trunks.values():
            for name, child in list(trunk.named_modules()):
                if type(child) is nn.Linear:
                    parent = trunk.get_submodule(name.rpartition(".")[0]) if "." in name else trunk
                    wrapped = LoRALinears(child, rank)
                    setattr(parent, name.rpartition(".")[2], wrapped)
                    self.layers.append(wrapped)
        if not self.layers:
            raise ValueError("PeriodAdapters: the model's trunks have no nn.Linear to adapt")

    def add(self) -> int:
        """A new update on every layer, trainable and active (earlier ones frozen); returns its index."""
        for layer in self.layers:
            for p in [*layer.down, *layer.up]:
                p.requires_grad_(False)
            k = layer.add()
        self.use(k)
        return k

    def use(self, k: int | None) -> None:
        for layer in self.layers:
            layer.active = k

    def num_parameters(self, k: int = 0) -> int:
        """Parameters of update ``k`` over all layers."""
        return sum(layer.down[k].numel() + layer.up[k].numel() for layer in self.layers)


# --- the data every method shares -------------------------------------------------------------


@dataclass
class ContinualData:
    """Periods, datasets and text modules built once and shared by every method.

    Attributes:
        periods: the :class:`TimePeriod` s.
        train, val: per period, its training part minus 5 % held out for early stopping, and that 5 %.
        test: per period, a loader over its test part.
        tasks: the ``rating`` and ``like`` tasks.
        texts, tower_kwargs: the towers' text modules and sizes (every user and item id).
        users, items: the id vocabularies (u.user, u.item).
    """

    periods: list[TimePeriod]
    train: list[pd.DataFrame]
    val: list[pd.DataFrame]
    test: list[torch.utils.data.DataLoader]
    tasks: list[Task]
    texts: dict[str, nn.Module]
    tower_kwargs: dict[str, dict]
    users: np.ndarray
    items: np.ndarray
    sizes: ContinualSizes
    seed: int = 0
    device: str = "auto"

    def bundle(self, train: pd.DataFrame, val: pd.DataFrame, generator: torch.Generator) -> TaskBundle:
        """A :class:`TaskBundle` over these ratings, shuffled by ``generator`` (its ``test`` is ``val``:
        nothing reads it here)."""
        train_ds = rating_dataset(train, self.users, self.items)
        val_loader = make_loader(rating_dataset(val, self.users, self.items), 4 * self.sizes.batch_size)
        return TaskBundle(
            name="movielens",
            tasks={t.name: t for t in self.tasks},
            train={
                "ratings": make_loader(train_ds, self.sizes.batch_size, shuffle=True, generator=generator)
            },
            val={"ratings": val_loader},
            test={"ratings": val_loader},
            texts=self.texts,
            tower_kwargs=self.tower_kwargs,
            generator=generator,
            labels={n: train_ds.tensors[n].numpy() for n in TASKS},
            dim=self.sizes.dim,
        )

    def fit_settings(self) -> dict:
        s = self.sizes
        return dict(
            epochs=s.epochs, lr=s.lr, weight_decay=s.weight_decay, patience=s.patience, device=self.device
        )


def prepare_continual(
    movielens: MovieLens,
    encoder: Encoder | None,
    sizes: ContinualSizes,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
) -> ContinualData:
    """Split ``movielens`` (a :class:`~mtrec_utils.data.movielens.MovieLens`) by time and embed the texts once.

    Args:
        movielens: ``load_movielens()``.
        encoder: from :func:`~mtrec_utils.models.encoders.load_encoder` (embeddings cached on disk),
            or ``None`` for towers of IDs only.
        sizes: the run's sizes; ``max_ratings`` draws a random subset of u.data first (whole time span).
        seed: seeds that subset, the test parts, the validation hold-outs and shuffling.
    """
    from mtrec_utils.data import GENRES
    from mtrec_utils.data.text import item_texts, user_texts
    from mtrec_utils.models.towers import text_table

    generator = torch.Generator().manual_seed(seed)
    ratings = sample_rows(movielens.ratings, sizes.max_ratings, generator)
    periods = split_by_time(ratings, sizes.periods, sizes.test_fraction, seed)
    parts = [holdout(p.train, 0.05, generator) for p in periods]
    users, items = movielens.users["user_id"].to_numpy(), movielens.items["item_id"].to_numpy()
    texts: dict[str, nn.Module] = {}
    if encoder is not None:
        no_history = movielens.ratings.iloc[:0]  # profile only: no period's text holds later ratings
        user_text = user_texts(movielens.users, no_history, movielens.items, n_recent=0)
        texts = {
            "user": text_table(encoder, user_text.loc[users].tolist(), max_length=64, progress=progress),
            "item": text_table(
                encoder, item_texts(movielens.items).loc[items].tolist(), max_length=64, progress=progress
            ),
        }
    tasks = [movielens_tasks(GENRES)[n] for n in TASKS]
    test = [make_loader(rating_dataset(p.test, users, items), 4 * sizes.batch_size) for p in periods]
    return ContinualData(
        periods=periods,
        train=[tr for tr, _ in parts],
        val=[va for _, va in parts],
        test=test,
        tasks=tasks,
        texts=texts,
        tower_kwargs={"user": {"num_entities": len(users)}, "item": {"num_entities": len(items)}},
        users=users,
        items=items,
        sizes=sizes,
        seed=seed,
        device=device,
    )


def train_fresh(data: ContinualData, upto: int) -> tuple[nn.Module, float]:
    """A fresh model trained on periods ``0..upto`` together (:func:`run_experiment`, seeded with
    ``data.seed``, its shuffling too); (model, seconds)."""
    train, val = pd.concat(data.train[: upto + 1]), pd.concat(data.val[: upto + 1])
    bundle = data.bundle(train, val, torch.Generator())
    result = run_experiment(
        bundle, list(TASKS), seed=data.seed, hidden=data.sizes.hidden, **data.fit_settings()
    )
    return result.model, result.seconds


# --- the methods ------------------------------------------------------------------------------


class ContinualMethod:
    """Naive fine-tuning, and the interface of every method.

    ``start(model)`` takes the model trained on period 0 (shared by every method); ``learn(t)``
    trains on period ``t >= 1``; ``model_for(p)`` is the model that serves period p's test data.
    ``stored_ratings`` and ``extra_parameters`` say what the method keeps besides the model.
    """

    name = "naive"

    def __init__(self, data: ContinualData):
        self.data = data
        # each method shuffles with its own generator: its numbers do not depend on the methods run before it
        self.generator = torch.Generator().manual_seed(data.seed)
        self.model: Any = None  # a MultiTaskModel once start() ran
        self.stored_ratings = 0
        self.extra_parameters = 0

    def start(self, model: nn.Module) -> None:
        self.model = copy.deepcopy(model)

    def learn(self, t: int) -> None:
        self._fit(self.data.train[t], t)

    def model_for(self, p: int) -> nn.Module:
        assert self.model is not None, "call start() first"
        return self.model

    def _fit(self, train: pd.DataFrame, t: int, strategy=None, **changes) -> None:
        """``fit`` on ``train``, early-stopped on period t's validation part; ``changes``: fit settings."""
        bundle = self.data.bundle(train, self.data.val[t], self.generator)
        settings = self.data.fit_settings() | changes
        fit(
            self.model,
            self.data.tasks,
            bundle.train,
            bundle.val,
            strategy=strategy,
            progress=False,
            **settings,
        )


class Scratch(ContinualMethod):
    """Retrain a fresh model on every period so far: the upper bound, and what it costs."""

    name = "scratch"

    def learn(self, t: int) -> None:
        self.model, _ = train_fresh(self.data, t)
        self.stored_ratings = sum(len(self.data.train[k]) for k in range(t + 1))


class Replay(ContinualMethod):
    """Fine-tune on the new period plus a reservoir of ``buffer_size`` past training ratings."""

    name = "replay"

    def __init__(self, data: ContinualData, buffer_size: int):
        super().__init__(data)
        self.buffer = ReservoirBuffer(buffer_size, self.generator)
        self.rows = pd.concat(data.train)  # every training rating, by u.data row label

    def start(self, model: nn.Module) -> None:
        super().start(model)
        self.buffer.add(self.data.train[0].index)

    def learn(self, t: int) -> None:
        past = self.rows.loc[self.buffer.rows]
        self._fit(pd.concat([self.data.train[t], past]), t)
        self.buffer.add(self.data.train[t].index)
        self.stored_ratings = len(self.buffer)


class EWC(ContinualMethod):
    """Fine-tune with the EWC penalty (:class:`EWCPenalty`); the Fisher adds up over the periods."""

    name = "ewc"

    def __init__(self, data: ContinualData, lam: float):
        super().__init__(data)
        self.lam = lam
        self.fisher: list[Tensor] = []

    def _consolidate(self, t: int) -> None:
        """Add period t's Fisher; the anchor becomes the current weights."""
        ds = rating_dataset(self.data.train[t], self.data.users, self.data.items)
        new = diagonal_fisher(self.model, self.data.tasks, ds, batch_size=256)
        self.fisher = new if not self.fisher else [f + n for f, n in zip(self.fisher, new)]
        self.extra_parameters = 2 * sum(f.numel() for f in self.fisher)  # Fisher and anchor

    def start(self, model: nn.Module) -> None:
        super().start(model)
        self._consolidate(0)

    def learn(self, t: int) -> None:
        params = [p for p in self.model.parameters() if p.requires_grad]
        penalty = EWCPenalty(params, [p.detach() for p in params], self.fisher, self.lam)
        self._fit(self.data.train[t], t, strategy=penalty)
        self._consolidate(t)


class Adapter(ContinualMethod):
    """Freeze the period-0 model; train one LoRA update of the trunk per later period (:class:`PeriodAdapters`).

    Serving period p's data with period p's update assumes the period is known at test time;
    a period not trained yet is served by the latest update. With ``new_ids`` the ID embeddings and
    biases of the users and items first seen in period t train with period t's update (only
    those rows: a gradient mask), since a frozen table cannot learn who just arrived; the rows of
    earlier periods stay as they were, so nothing learnt before is overwritten.
    """

    name = "adapter"

    def __init__(self, data: ContinualData, rank: int, new_ids: bool = True):
        super().__init__(data)
        self.rank, self.new_ids = rank, new_ids
        self.of_period: dict[int, int | None] = {0: None}

    def start(self, model: nn.Module) -> None:
        super().start(model)
        self.adapters = PeriodAdapters(self.model, self.rank)

    def learn(self, t: int) -> None:
        k = self.of_period[t] = self.adapters.add()
        opened = self._open_new_rows(t) if self.new_ids else []
        try:
            self._fit(self.data.train[t], t, weight_decay=0.0)  # decay would move the closed rows
        finally:
            for weight, hook in opened:
                hook.remove()
                weight.requires_grad_(False)
        self.extra_parameters += self.adapters.num_parameters(k)

    def _open_new_rows(self, t: int) -> list:
        """Make the ID and bias rows of period t's new users and items trainable (the others get 0 gradient)."""
        earlier, now = pd.concat(self.data.train[:t]), self.data.train[t]
        opened = []
        for kind, vocab in (("user", self.data.users), ("item", self.data.items)):
            col = f"{kind}_id"
            new = index_of(np.setdiff1d(now[col].unique(), earlier[col].unique()), vocab, col)
            mask = torch.zeros(len(vocab), 1)
            mask[torch.as_tensor(new)] = 1.0
            for weight in (self.model.towers[kind].id_emb.weight, self.model.biases[kind].weight):
                weight.requires_grad_(True)
                opened.append((weight, weight.register_hook(lambda g, m=mask: g * m.to(g.device))))
                self.extra_parameters += len(new) * weight.shape[1]
        return opened

    def model_for(self, p: int) -> nn.Module:
        latest = max(self.of_period)
        self.adapters.use(self.of_period[min(p, latest)])
        return self.model


def make_method(name: str, data: ContinualData) -> ContinualMethod:
    """The method called ``name`` (one of :data:`METHODS`), sized by ``data.sizes``."""
    check_choice("method", name, METHODS)
    s = data.sizes
    if name == "replay":
        return Replay(data, s.buffer_size)
    if name == "ewc":
        return EWC(data, s.ewc_lambda)
    if name == "adapter":
        return Adapter(data, s.adapter_rank, s.adapter_new_ids)
    return Scratch(data) if name == "scratch" else ContinualMethod(data)


# --- evaluation and the summary ---------------------------------------------------------------


def evaluate_periods(method: ContinualMethod, data: ContinualData) -> dict[str, np.ndarray]:
    """``{metric: (P,)}``: each period's test part, served by ``method.model_for(p)``."""
    out = {m: np.zeros(len(data.periods)) for m in METRICS}
    for p, loader in enumerate(data.test):
        values = evaluate(method.model_for(p), data.tasks, {"ratings": loader})
        for m in METRICS:
            out[m][p] = values[m]
    return out


def forgetting(matrix: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Per earlier period p < P-1: the best value it had before the end minus its value at the end.

    ``matrix[t, p]`` is period p's test metric after training through period t. Positive means
    forgotten (Chaudhry et al., ECCV 2018), whatever the metric's direction; negative means the
    later periods helped it (backward transfer).

    Returns:
        (P-1,) forgetting of periods 0 .. P-2.
    """
    a = np.asarray(matrix, dtype=float)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] < 2:
        raise ValueError(f"matrix must be square (P, P) with P >= 2; got shape {a.shape}")
    last, out = a.shape[0] - 1, []
    for p in range(last):
        earlier = a[p:last, p]  # after training through periods p .. P-2
        best = earlier.max() if higher_is_better else earlier.min()
        out.append(best - a[last, p] if higher_is_better else a[last, p] - best)
    return np.array(out)


def summarize(matrices: dict[str, dict[str, np.ndarray]], costs: dict[str, dict]) -> pd.DataFrame:
    """One row per method: mean new-period value (the diagonal), mean final value (last row),
    mean forgetting, of each metric; then the costs: ``seconds`` (training wall clock, the shared
    period-0 model's included, evaluation not), ``stored_ratings`` (past ratings kept at the end),
    ``extra_parameters`` (numbers kept besides the model: EWC's Fisher and anchor, the adapters)."""
    rows = []
    for method, by_metric in matrices.items():
        row: dict = {"method": method}
        for metric, higher in METRICS.items():
            a, short = by_metric[metric], metric.split("/")[1]
            row[f"new_period_{short}"] = float(np.mean(np.diag(a)))
            row[f"final_{short}"] = float(np.mean(a[-1]))
            row[f"forgetting_{short}"] = float(np.mean(forgetting(a, higher)))
        rows.append(row | costs[method])
    return pd.DataFrame(rows).set_index("method")


@dataclass
class ContinualResult:
    """What :func:`run_continual` returns.

    Attributes:
        matrices: ``{method: {metric: (P, P) array A[t, p]}}`` (row t: after period t; column p: tested on p).
        summary: :func:`summarize`'s table.
        periods: :func:`describe_periods`'s table.
        sizes: the sizes used.
    """

    matrices: dict[str, dict[str, np.ndarray]]
    summary: pd.DataFrame
    periods: pd.DataFrame
    sizes: ContinualSizes
    accuracy: pd.DataFrame = field(init=False)

    def __post_init__(self) -> None:
        rows = [
            {"method": m, "metric": metric, "trained_through": t, "period": p, "value": float(a[t, p])}
            for m, by_metric in self.matrices.items()
            for metric, a in by_metric.items()
            for t in range(a.shape[0])
            for p in range(a.shape[1])
        ]
        self.accuracy = pd.DataFrame(rows)  # tidy: one row per (method, metric, t, p)

    def matrix(self, method: str, metric: str = "rating/rmse") -> pd.DataFrame:
        """``A[t, p]`` of one method as a labelled DataFrame."""
        a = self.matrices[method][metric]
        index = pd.Index(range(a.shape[0]), name="trained through period")
        return pd.DataFrame(a, index=index, columns=pd.Index(range(a.shape[1]), name="tested on period"))

    def metrics_to_record(self) -> dict[str, float]:
        """``ml_continual_forgetting_<method>`` (RMSE, mean over earlier periods) and
        ``ml_continual_new_period_rmse_<method>`` (mean over periods), plus AUC and cost companions."""
        out = {}
        for m, row in self.summary.iterrows():
            out[f"ml_continual_forgetting_{m}"] = row["forgetting_rmse"]
            out[f"ml_continual_new_period_rmse_{m}"] = row["new_period_rmse"]
            out[f"ml_continual_final_rmse_{m}"] = row["final_rmse"]
            out[f"ml_continual_forgetting_auc_{m}"] = row["forgetting_auc"]
            out[f"ml_continual_seconds_{m}"] = row["seconds"]
        return {k: float(v) for k, v in out.items()}


#: Relative training cost of each method at the cpu sizes (``ml_continual_seconds_*`` of the committed
#: cpu run, 2026-12-01: scratch 11.6 s, ewc 6.4, replay 5.4, naive 4.3, adapter 4.2): only the order matters.
METHOD_COST = {"scratch": 11.6, "ewc": 6.4, "replay": 5.4, "naive": 4.3, "adapter": 4.2}


def _run_method(
    m: str, data: ContinualData, first: nn.Module, first_seconds: float, bar: Any = None
) -> tuple[dict[str, np.ndarray], dict]:
    """One method through every period: ``({metric: A[t, p]}, costs)``; ``bar`` advances per period."""
    from mtrec_utils.core.config import set_seed

    set_seed(data.seed)  # dropout draws: the same whichever methods ran before, here or in a worker
    method = make_method(m, data)
    start = time.perf_counter()
    method.start(first)
    seconds = first_seconds + time.perf_counter() - start
    rows = [evaluate_periods(method, data)]
    for t in range(1, data.sizes.periods):
        if bar is not None:
            bar.set_postfix(method=m, period=t)
        start = time.perf_counter()
        method.learn(t)
        seconds += time.perf_counter() - start
        rows.append(evaluate_periods(method, data))
        if bar is not None:
            bar.update()
    matrix = {metric: np.stack([r[metric] for r in rows]) for metric in METRICS}
    costs = {
        "seconds": seconds,
        "stored_ratings": method.stored_ratings,
        "extra_parameters": method.extra_parameters,
    }
    return matrix, costs


def run_continual(
    profile: str | Profile = "smoke",
    encoder: Encoder | None = None,
    seed: int = 0,
    methods: Sequence[str] = METHODS,
    *,
    movielens: MovieLens | None = None,
    device: str = "auto",
    progress: bool = True,
    workers: int = 1,
    **changes,
) -> ContinualResult:
    """Run every method on the time-ordered periods; the accuracy matrices and the summary.

    Args:
        profile: a profile name or :class:`~mtrec_utils.core.config.Profile` (sizes: :data:`CONTINUAL_SIZES`).
        encoder: the text encoder (frozen, embeddings cached) or ``None`` for ID-only towers.
        seed: seeds the data draws and every model.
        methods: some of :data:`METHODS`, in the order of the table.
        movielens: ``load_movielens()`` if already loaded (default: loaded here).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``.
        progress: one progress bar over the training steps (over the methods when ``workers > 1``).
        workers: methods trained at once, each in a process forked from this one with one PyTorch
            thread (:func:`~mtrec_utils.core.pool.map_in_workers`; Linux and CPU only). Each method
            seeds itself and shuffles with its own generator, so the matrices are the same, bit for
            bit, as one method after another; its ``seconds`` are then measured beside the others.
        changes: :class:`ContinualSizes` fields to change (e.g. ``buffer_size=1000``).

    Raises:
        ValueError: an unknown method, profile or size field, an empty ``methods``, or ``workers``
            not a positive integer (or above 1 off Linux).
    """
    from tqdm.auto import tqdm

    from mtrec_utils.core.config import set_seed
    from mtrec_utils.core.pool import check_workers, map_in_workers

    name = resolve_profile(profile).name
    methods = [check_choice("method", m, METHODS) for m in methods]
    if not methods or len(set(methods)) != len(methods):
        raise ValueError(f"methods={methods!r} is not valid; give distinct names among {list(METHODS)}")
    unknown = sorted(set(changes) - set(ContinualSizes.__dataclass_fields__))
    if unknown:
        raise ValueError(
            f"unknown size(s) {unknown}; choose from {list(ContinualSizes.__dataclass_fields__)}"
        )
    check_workers(workers)
    sizes = replace(CONTINUAL_SIZES[name], **changes)
    if movielens is None:
        from mtrec_utils.data import load_movielens

        movielens = load_movielens()
    set_seed(seed)
    data = prepare_continual(movielens, encoder, sizes, seed, device, progress)
    num = sizes.periods
    bar = tqdm(total=1 + len(methods) * (num - 1), desc="continual", disable=not progress)
    first, first_seconds = train_fresh(data, 0)  # period 0 is the same for every method: trained once
    bar.update()
    here = workers == 1 or len(methods) == 1  # serial: the bar moves at every period, else per method
    job = partial(_run_method, data=data, first=first, first_seconds=first_seconds, bar=bar if here else None)
    # the costliest first (scratch retrains on every period so far), so a short one starts last
    todo = sorted(methods, key=lambda m: -METHOD_COST[m])
    done = map_in_workers(job, todo, workers, None if here else lambda m, _: bar.update(num - 1))
    runs = dict(zip(todo, done))
    matrices = {m: runs[m][0] for m in methods}
    costs = {m: runs[m][1] for m in methods}
    bar.close()
    return ContinualResult(matrices, summarize(matrices, costs), describe_periods(data.periods), sizes)
