"""Cross-domain learning (跨领域学习): one text adapter shared by MovieLens and clothing models.

Both datasets' texts go through the same frozen encoder (MiniLM). On top of it sits a small
trainable :class:`SharedAdapter` (an MLP over the text embedding) that *every* domain's towers
read through :class:`AdaptedText`; the towers' projections, trunks and heads stay domain-specific::

    MovieLens user/item text ─┐                       ┌─ MovieLens towers, trunk, heads (rating, like)
                              ├─ frozen MiniLM ─ adapter ┤
    clothing review text  ────┘      (shared)         └─ clothing tower, trunk, heads (recommended, ...)

:class:`CrossDomainSampler` decides which domain each training step reads (``alternate`` or
``proportional``, seeded); :func:`train_cross_domain` trains one domain alone or several together
on the same per-domain budget (every domain sees all of its batches once per epoch) and keeps,
per domain, the epoch with the best validation metric.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from functools import partial

import numpy as np
import torch
from torch import Tensor, nn

from mtrec_utils.core.config import check_choice, check_positive
from mtrec_utils.data.tasks import Task
from mtrec_utils.models.heads import task_loss
from mtrec_utils.training.evaluation import _to, evaluate

SAMPLING = ("alternate", "proportional")


class SharedAdapter(nn.Module):
    """``x + MLP(LayerNorm(x))``: a residual adapter over (B, H) text embeddings, (B, H) out."""

    def __init__(self, dim: int, hidden: int = 128, dropout: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim)
        )
        nn.init.zeros_(self.net[-1].weight)  # starts as the identity: the frozen encoder's embedding
        nn.init.zeros_(self.net[-1].bias)
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


class AdaptedText(nn.Module):
    """A text module read through an adapter: (B,) indices -> ``adapter(text(idx))`` (B, H)."""

    def __init__(self, text: nn.Module, adapter: SharedAdapter):
        super().__init__()
        self.text, self.adapter, self.dim = text, adapter, adapter.dim

    def forward(self, idx: Tensor) -> Tensor:
        return self.adapter(self.text(idx))


def domain_schedule(
    sizes: Mapping[str, int], mode: str = "alternate", generator: torch.Generator | None = None
) -> list[str]:
    """One epoch's order of domains: domain ``d`` appears ``sizes[d]`` times (its number of batches).

    ``alternate`` takes the domains in turn (a domain that runs out drops out); ``proportional``
    shuffles all steps with ``generator``, so each domain is drawn in proportion to its size.

    Raises:
        ValueError: for an unknown ``mode`` or a size that is not a positive integer.
    """
    check_choice("mode", mode, SAMPLING)
    for d, n in sizes.items():
        check_positive(f"sizes[{d!r}]", n, integer=True)
    if mode == "proportional":
        steps = [d for d, n in sizes.items() for _ in range(n)]
        return [steps[i] for i in torch.randperm(len(steps), generator=generator).tolist()]
    left, order = dict(sizes), []
    while any(left.values()):
        for d in sizes:
            if left[d]:
                order.append(d)
                left[d] -= 1
    return order


class CrossDomainSampler:
    """Iterate one epoch of ``(domain, batch)`` over several domains' loaders.

    Args:
        loaders: ``{domain: DataLoader}``; every batch of every loader is served once per epoch.
        mode: ``"alternate"`` or ``"proportional"`` (see :func:`domain_schedule`).
        generator: random source of the ``proportional`` order.
    """

    def __init__(
        self,
        loaders: Mapping[str, torch.utils.data.DataLoader],
        mode: str = "alternate",
        generator: torch.Generator | None = None,
    ):
        self.loaders, self.mode, self.generator = (
            dict(loaders),
            check_choice("mode", mode, SAMPLING),
            generator,
        )

    def __len__(self) -> int:
        return sum(len(v) for v in self.loaders.values())

    def __iter__(self) -> Iterator[tuple[str, dict]]:
        order = domain_schedule({d: len(v) for d, v in self.loaders.items()}, self.mode, self.generator)
        iters = {d: iter(v) for d, v in self.loaders.items()}
        for d in order:
            yield d, next(iters[d])


def train_cross_domain(
    models: Mapping[str, nn.Module],
    tasks: Mapping[str, Sequence[Task]],
    train: Mapping[str, torch.utils.data.DataLoader],
    val: Mapping[str, Mapping],
    test: Mapping[str, Mapping],
    *,
    epochs: int = 5,
    lr: float = 2e-3,
    weight_decay: float = 0.0,
    mode: str = "alternate",
    generator: torch.Generator | None = None,
) -> dict[str, dict[str, float]]:
    """Train the domains' models together (one optimizer; shared modules get every domain's gradient).

    Args:
        models: ``{domain: model}``; models of different domains may share modules (the adapter).
        tasks: ``{domain: tasks}``; each domain's tasks read its one training loader.
        train: ``{domain: DataLoader}``.
        val, test: ``{domain: {data name: DataLoader}}`` for :func:`~mtrec_utils.training.evaluation.evaluate`.
        epochs, lr, weight_decay: AdamW settings; each epoch serves every domain's batches once.
        mode: domain order within an epoch (:data:`SAMPLING`).
        generator: random source of the domain order.

    Returns:
        ``{domain: test metrics}`` of each domain's model at its best validation epoch (monitor:
        its first task's metric); ``{domain: {...}}["best_epoch"]`` is that epoch.
    """
    check_positive("epochs", epochs, integer=True)
    params = list({id(p): p for m in models.values() for p in m.parameters() if p.requires_grad}.values())
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sampler = CrossDomainSampler(train, mode, generator)
    best: dict[str, tuple[float, int, dict]] = {}
    for epoch in range(1, epochs + 1):
        for m in models.values():
            m.train()
        for d, batch in sampler:
            batch = _to(batch, torch.device("cpu"))
            out = models[d](batch, [t.name for t in tasks[d]])
            loss = torch.stack([task_loss(t, out[t.name], batch[t.label]) for t in tasks[d]]).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        for d, m in models.items():
            first = tasks[d][0]
            value = evaluate(m, tasks[d], val[d])[f"{first.name}/{first.monitor}"]
            score = value if first.higher_is_better() else -value
            if d not in best or score > best[d][0]:
                best[d] = (score, epoch, copy.deepcopy(m.state_dict()))
    results = {}
    for d, m in models.items():
        m.load_state_dict(best[d][2])
        results[d] = evaluate(m, tasks[d], test[d]) | {"best_epoch": float(best[d][1])}
    return results


def transfer_gain(alone: Mapping[str, float], together: Mapping[str, float]) -> dict[str, float]:
    """Gain of training together per metric, signed so that positive = better (lower rmse/mae/logloss)."""
    from mtrec_utils.data.tasks import LOWER_IS_BETTER

    out = {}
    for k in alone:
        if k in together and "/" in k:
            sign = -1.0 if k.split("/")[1] in LOWER_IS_BETTER else 1.0
            out[k] = float(sign * (np.float64(together[k]) - np.float64(alone[k])))
    return out


def domain_model(
    bundle, adapter: SharedAdapter, task_names: Sequence[str], use_id: bool | None = None, hidden: int = 128
) -> tuple[nn.Module, list[Task]]:
    """A hard-sharing model of ``bundle`` whose towers read their texts through ``adapter``.

    Args:
        bundle: a :class:`~mtrec_utils.training.bundles.TaskBundle` with frozen text modules.
        adapter: the :class:`SharedAdapter` (pass the same one to several domains to share it).
        task_names: the tasks of this domain (they must read one training loader).
        use_id: override the towers' ID embeddings (``False``: everything passes through the text).
        hidden: trunk width.

    Returns:
        ``(model, tasks)`` with heads started at the training label means.
    """
    from mtrec_utils.models.sharing import build_model
    from mtrec_utils.models.towers import EntityTower
    from mtrec_utils.training.bundles import init_heads

    tasks = bundle.select(task_names)
    towers = {}
    for k, kw in bundle.tower_kwargs.items():
        kw = dict(kw) | ({} if use_id is None else {"use_id": use_id})
        towers[k] = EntityTower(text=AdaptedText(bundle.texts[k], adapter), dim=bundle.dim, **kw)
    return init_heads(build_model("hard", towers, tasks, hidden), bundle), tasks


def _cross_domain_job(
    key: tuple[tuple[str, ...], int],
    bundles: Mapping,
    sources: Mapping[str, str],
    domain_tasks: Mapping[str, Sequence[str]],
    text_dim: int,
    epochs: int,
    lr: float,
) -> dict[str, dict[str, float]]:
    """One run of :func:`cross_domain_over_seeds`: ``domains`` trained together at ``seed``."""
    from mtrec_utils.core.config import set_seed
    from mtrec_utils.data.datasets import make_loader

    domains, seed = key
    set_seed(seed)
    adapter = SharedAdapter(text_dim)
    pairs = {d: domain_model(bundles[d], adapter, domain_tasks[d], use_id=False) for d in domains}
    train = {}
    for d in domains:  # each run shuffles from its seed, whatever ran before it
        loader = bundles[d].train[sources[d]]
        shuffle = torch.Generator().manual_seed(seed)
        train[d] = make_loader(loader.dataset, int(loader.batch_size), shuffle=True, generator=shuffle)
    return train_cross_domain(
        {d: m for d, (m, _) in pairs.items()},
        {d: ts for d, (_, ts) in pairs.items()},
        train,
        {d: bundles[d].val for d in domains},
        {d: bundles[d].test for d in domains},
        epochs=epochs,
        lr=lr,
        mode="alternate",
        generator=torch.Generator().manual_seed(seed),
    )


def cross_domain_over_seeds(
    bundles: Mapping,
    sources: Mapping[str, str],
    domain_tasks: Mapping[str, Sequence[str]],
    seeds: Sequence[int],
    *,
    text_dim: int,
    epochs: int,
    lr: float,
    workers: int = 1,
):
    """Every domain alone and all of them together, at each seed: the transfer table (notebook 05).

    Each run starts from ``set_seed(seed)`` and shuffles its domains' training data with a generator
    of its own seeded by ``seed``, so "alone" and "together" see the same shuffles at a seed (a paired
    comparison), and the runs can train at once without changing a number. The bundles' own loaders
    and generators are not used, and the global random states are the same afterwards as before.

    Args:
        bundles: ``{domain: TaskBundle}`` with frozen text modules.
        sources: ``{domain: name of its training loader}`` (e.g. ``"ratings"``, ``"reviews"``).
        domain_tasks: ``{domain: task names}``; each domain's tasks read its one training loader.
        seeds: one together run and one alone run per domain at each seed.
        text_dim: width of the text embeddings (the encoder's ``dim``): the shared adapter's.
        epochs, lr: as :func:`train_cross_domain`.
        workers: runs at once, each in a process forked from this one with one PyTorch thread
            (:func:`~mtrec_utils.core.pool.map_in_workers`; Linux and CPU only).

    Returns:
        A DataFrame, one row per (domain, seed, metric): ``alone``, ``together`` and ``gain``
        (:func:`transfer_gain`: positive = better together).

    Raises:
        ValueError: no seeds, fewer than two domains, or a domain missing from ``sources`` or
            ``domain_tasks``; ``workers`` not a positive integer.
    """
    import pandas as pd

    from mtrec_utils.core.pool import map_in_workers
    from mtrec_utils.training.resume import capture_random_state, restore_random_state

    domains = tuple(bundles)
    missing = sorted((set(domains) - set(sources)) | (set(domains) - set(domain_tasks)))
    if len(domains) < 2 or missing or not seeds:
        raise ValueError(
            f"cross_domain_over_seeds needs two or more domains, each in sources and domain_tasks, and a "
            f"seed; got domains {list(domains)}, missing {missing}, seeds {list(seeds)}"
        )
    keys = [(run, s) for s in seeds for run in (domains, *((d,) for d in domains))]
    # together (the most steps) first, so a short run starts last
    todo = sorted(keys, key=lambda k: -len(k[0]))
    job = partial(
        _cross_domain_job,
        bundles=bundles,
        sources=sources,
        domain_tasks=domain_tasks,
        text_dim=text_dim,
        epochs=epochs,
        lr=lr,
    )
    # a run seeds the global generators; put the caller's states back, so that what follows draws the
    # same whether the runs trained here (workers=1) or in workers
    state = capture_random_state([])
    try:
        results = dict(zip(todo, map_in_workers(job, todo, workers)))
    finally:
        restore_random_state(state, [])
    rows = []
    for s in seeds:
        together = results[(domains, s)]
        for d in domains:
            alone = results[((d,), s)][d]
            rows += [
                {
                    "domain": d,
                    "seed": s,
                    "metric": m,
                    "alone": alone[m],
                    "together": together[d][m],
                    "gain": g,
                }
                for m, g in transfer_gain(alone, together[d]).items()
            ]
    return pd.DataFrame(rows)
