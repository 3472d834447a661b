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
