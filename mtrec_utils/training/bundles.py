"""Everything one dataset's joint-training experiments need, built once: a :class:`TaskBundle`.

- :func:`movielens_bundle`: u1 split; tasks ``rating``, ``like`` (pairs of user and item) and
  ``interest`` (ranking); towers fuse each user's/item's ID with the text the encoder reads.
  Validation is 5% of u1.base, held out at random; u1.test is only used for test metrics.
  ``history=True`` adds to the user tower the items each user rated in the training part (SVD++'s
  implicit feedback, :mod:`mtrec_utils.models.implicit`): which items, never the ratings, and never
  a validation or test item.
- :func:`clothing_bundle`: the stratified 80/10/10 split; tasks ``recommended``, ``rating`` and
  ``department``, one review per row. The tasks share one review tower, so it reads only what
  every task may read: the text, the reviewer's age and the positive-feedback count. The product
  (``clothing_id``) is left out: a product sits in one department, so it gives ``department`` away.

Towers are rebuilt for every model (:meth:`TaskBundle.make_towers`) so each run starts fresh; the
text modules are built once (``frozen``: cached embeddings; ``full``: the encoder, deep-copied per
model so fine-tuning in one run never leaks into the next).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from functools import partial
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from mtrec_utils.core.config import Profile, check_choice
from mtrec_utils.data.datasets import TensorDictDataset, make_loader
from mtrec_utils.data.prepare import holdout, interest_data, rating_dataset, sample_rows, standardize
from mtrec_utils.data.tasks import Task, clothing_tasks, movielens_tasks
from mtrec_utils.models.fusion import FUSIONS, PARTS, FusionTower
from mtrec_utils.models.implicit import InteractionLists
from mtrec_utils.models.towers import EntityTower, text_table


@dataclass
class TaskBundle:
    """Tasks, loaders and tower factory of one dataset.

    Attributes:
        name: ``"movielens"`` or ``"clothing"``.
        tasks: ``{name: Task}``.
        train: ``{data name: DataLoader}`` (shuffled with ``generator``).
        val, test: ``{data name: DataLoader or RankingEval}``.
        texts: ``{tower name: text module}`` built once.
        tower_kwargs: ``{tower name: EntityTower keyword arguments}`` besides ``text``.
        generator: the random source of shuffling and negative sampling (reseed it per run).
        labels: ``{task name: training labels}`` to start each head at the label mean.
        dim: tower width.
    """

    name: str
    tasks: dict[str, Task]
    train: dict[str, torch.utils.data.DataLoader]
    val: dict[str, object]
    test: dict[str, object]
    texts: dict[str, nn.Module]
    tower_kwargs: dict[str, dict]
    generator: torch.Generator
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    dim: int = 64

    def select(self, names: Sequence[str]) -> list[Task]:
        """The tasks called ``names``; raises ValueError naming the valid ones."""
        unknown = [n for n in names if n not in self.tasks]
        if unknown:
            raise ValueError(f"unknown task(s) {unknown} for {self.name}; choose from {list(self.tasks)}")
        return [self.tasks[n] for n in names]

    def make_towers(self) -> dict[str, nn.Module]:
        """Fresh towers (new random ID embeddings and projections) around copies of the text modules."""
        texts = copy.deepcopy(self.texts) if any(p.requires_grad for p in _params(self.texts)) else self.texts
        return {k: EntityTower(text=texts.get(k), dim=self.dim, **kw) for k, kw in self.tower_kwargs.items()}


def _params(modules: dict[str, nn.Module]):
    return [p for m in modules.values() if m is not None for p in m.parameters()]


def init_heads(model: nn.Module, bundle: TaskBundle) -> nn.Module:
    """Start each regression/binary head at its training label mean or base rate; returns ``model``."""
    heads = cast(Any, model).heads  # {task name: TaskHead}, e.g. a MultiTaskModel's nn.ModuleDict
    for name, head in heads.items():
        if name in bundle.labels and bundle.tasks[name].kind in ("regression", "binary"):
            head.init_from_labels(bundle.labels[name])
    return model


def movielens_bundle(
    profile: Profile,
    encoder,
    generator: torch.Generator,
    mode: str | None = None,
    dim: int = 64,
    num_negatives: int = 4,
    max_val_users: int = 300,
    progress: bool = True,
    history: bool = False,
) -> TaskBundle:
    """MovieLens-100K u1 with tasks ``rating``, ``like``, ``interest`` sized by ``profile``.

    Args:
        profile: caps (``max_train_ratings`` ...), ``batch_size``, ``max_length``, ``encoder_mode``.
        encoder: from :func:`mtrec_utils.models.encoders.load_encoder`.
        generator: random source of the subsets, the validation hold-out, shuffling and negatives.
        mode: ``"frozen"`` or ``"full"`` (default: the profile's ``encoder_mode``).
        dim: tower width.
        num_negatives: sampled negatives per liked rating for ``interest``.
        max_val_users: users ranked in each validation pass (early stopping reads their NDCG;
            ranking every item for every user each epoch costs more than the epoch itself).
            The test ranking uses the profile's ``max_eval_users`` (all users at ``cpu``).
        progress: show the text encoding's progress.
        history: give the user tower the items each user rated in the training part, as SVD++'s
            ``|N(u)|^-1/2 sum_j y_j`` (tower part ``history``; ``tower_kwargs["user"]["history"]``
            holds the :class:`~mtrec_utils.models.implicit.InteractionLists`). Off: the towers of before.
    """
    from mtrec_utils.data import GENRES, load_movielens, movielens_split
    from mtrec_utils.data.text import item_texts, user_texts

    mode = mode or profile.encoder_mode
    ml = load_movielens()
    base, test = movielens_split(ml.ratings, k=1)
    base = sample_rows(base, profile.max_train_ratings, generator)
    test = sample_rows(test, profile.max_test_ratings, generator)
    train, val = holdout(base, 0.05, generator)
    users, items = ml.users["user_id"].to_numpy(), ml.items["item_id"].to_numpy()
    tasks = {k: v for k, v in movielens_tasks(GENRES).items() if k != "genres"}
    embed = partial(text_table, encoder, mode=mode, max_length=profile.max_length, progress=progress)
    texts: dict[str, nn.Module] = {
        "user": embed(user_texts(ml.users, train, ml.items).loc[users].tolist()),
        "item": embed(item_texts(ml.items).loc[items].tolist()),
    }
    b = profile.batch_size
    val_users = min(profile.max_eval_users or max_val_users, max_val_users)
    pairs, rank_val = interest_data(
        train, val, users, items, num_negatives, max_users=val_users, generator=generator
    )
    _, rank_test = interest_data(
        base, test, users, items, num_negatives, max_users=profile.max_eval_users, generator=generator
    )
    train_ds = rating_dataset(train, users, items)
    user_kwargs: dict[str, Any] = {"num_entities": len(users)}
    if history:  # the training part only: validation and test items stay unseen
        user_kwargs["history"] = InteractionLists.from_pairs(
            train_ds.tensors["user"], train_ds.tensors["item"], len(users), len(items)
        )
    return TaskBundle(
        name="movielens",
        tasks=tasks,
        train={
            "ratings": make_loader(train_ds, b, shuffle=True, generator=generator),
            "interactions": make_loader(pairs, b, shuffle=True, generator=generator),
        },
        val={"ratings": make_loader(rating_dataset(val, users, items), 4 * b), "interactions": rank_val},
        test={"ratings": make_loader(rating_dataset(test, users, items), 4 * b), "interactions": rank_test},
        texts=texts,
        tower_kwargs={"user": user_kwargs, "item": {"num_entities": len(items)}},
        generator=generator,
        labels={"rating": train_ds.tensors["rating"].numpy(), "like": train_ds.tensors["like"].numpy()},
        dim=dim,
    )


def clothing_bundle(
    profile: Profile,
    encoder,
    generator: torch.Generator,
    mode: str | None = None,
    dim: int = 64,
    progress: bool = True,
) -> TaskBundle:
    """Clothing reviews with tasks ``recommended``, ``rating``, ``department`` sized by ``profile``.

    Args: as :func:`movielens_bundle`. Reviews without a department form the class ``"(none)"``.
    """
    from mtrec_utils.data import clothing_split, clothing_texts, load_clothing

    mode = mode or profile.encoder_mode
    df = sample_rows(load_clothing(), profile.max_clothing_reviews, generator).reset_index(drop=True)
    df["department"] = df["department"].replace("", "(none)")
    parts = clothing_split(df, seed=0)
    departments = sorted(df["department"].unique())
    tasks = clothing_tasks(departments)
    train_rows = parts["train"].index.to_numpy()
    feats = standardize(np.log1p(df[["age", "positive_feedback_count"]].to_numpy(np.float64)), train_rows)
    embed = partial(text_table, encoder, mode=mode, max_length=profile.max_length, progress=progress)
    texts: dict[str, nn.Module] = {"item": embed(clothing_texts(df).tolist())}
    dept = df["department"].map({d: i for i, d in enumerate(departments)}).to_numpy()

    def dataset(part) -> TensorDictDataset:
        rows = part.index.to_numpy()
        return TensorDictDataset(
            item=rows,
            recommended=df["recommended"].to_numpy(np.float32)[rows],
            rating=df["rating"].to_numpy(np.float32)[rows],
            department=dept[rows],
        )

    b, train_ds = profile.batch_size, dataset(parts["train"])
    return TaskBundle(
        name="clothing",
        tasks=tasks,
        train={"reviews": make_loader(train_ds, b, shuffle=True, generator=generator)},
        val={"reviews": make_loader(dataset(parts["val"]), 4 * b)},
        test={"reviews": make_loader(dataset(parts["test"]), 4 * b)},
        texts=texts,
        tower_kwargs={"item": {"num_entities": len(df), "use_id": False, "features": feats}},
        generator=generator,
        labels={n: train_ds.tensors[n].numpy() for n in ("recommended", "rating")},
        dim=dim,
    )


@dataclass
class FusionBundle(TaskBundle):
    """A :class:`TaskBundle` whose towers are :class:`FusionTower` s (same tasks, data and budget).

    Attributes (besides TaskBundle's):
        fusion: one of :data:`~mtrec_utils.models.fusion.FUSIONS`.
        parts: which parts each tower fuses, a subset of :data:`~mtrec_utils.models.fusion.PARTS`.
        side: ``{tower: {"features": ..., "categories": ...}}`` side inputs (e.g. :func:`movielens_side`).
    """

    fusion: str = "sum"
    parts: tuple[str, ...] = ("id", "text")
    side: dict = field(default_factory=dict)

    def make_towers(self) -> dict[str, nn.Module]:
        """Fresh :class:`FusionTower` s over the bundle's (shared, frozen) text modules."""
        towers: dict[str, nn.Module] = {}
        for k, kw in self.tower_kwargs.items():
            side = self.side.get(k, {})
            feats = side.get("features", kw.get("features")) if "features" in self.parts else None
            cats = side.get("categories") if "categories" in self.parts else None
            towers[k] = FusionTower(
                kw["num_entities"],
                self.dim,
                self.fusion,
                text=self.texts.get(k) if "text" in self.parts else None,
                features=feats,
                categories=cats or None,
                use_id="id" in self.parts and kw.get("use_id", True),
            )
        return towers


def fusion_bundle(
    bundle: TaskBundle,
    fusion: str = "sum",
    parts: Sequence[str] = ("id", "text"),
    side: dict | None = None,
    **changes,
) -> FusionBundle:
    """``bundle`` with fusion towers: same tasks, loaders and text modules.

    Args:
        bundle: from :func:`~mtrec_utils.training.bundles.movielens_bundle` / ``clothing_bundle``.
        fusion: one of :data:`~mtrec_utils.models.fusion.FUSIONS`.
        parts: subset of :data:`~mtrec_utils.models.fusion.PARTS` (e.g. ``("id",)`` for an ID-only model).
        side: side inputs per tower (default: none besides the bundle's own features).
        changes: TaskBundle fields to replace (e.g. ``train={...}`` for a thinned training set).

    Raises:
        ValueError: for an unknown fusion or part, naming the valid ones, or a bundle built with
            ``history=True`` (fusion towers have no history part).
    """
    check_choice("fusion", fusion, FUSIONS)
    with_history = [k for k, kw in bundle.tower_kwargs.items() if kw.get("history") is not None]
    if with_history:
        raise ValueError(
            f"fusion towers take no history part, but the {with_history} tower(s) of this bundle have one; "
            "build the bundle with history=False"
        )
    for p in parts:
        check_choice("parts", p, PARTS)
    base = {f.name: getattr(bundle, f.name) for f in fields(TaskBundle)} | changes
    return FusionBundle(**base, fusion=fusion, parts=tuple(parts), side=side or {})
