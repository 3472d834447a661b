"""How tasks share the layers above the towers: hard parameter sharing and MMoE.

- **Hard sharing** (硬参数共享, Caruana 1997): every task reads the same trunk; only the heads are
  task-specific. This is :class:`~mtrec_utils.models.multitask.MultiTaskModel` itself.
- **MMoE** (Ma, Zhao, Yi, Chen, Hong and Chi, "Modeling Task Relationships in Multi-task Learning
  with Multi-gate Mixture-of-Experts", KDD 2018): the trunk is ``E`` experts; each task mixes their
  outputs with its own softmax gate, so tasks that conflict can lean on different experts::

      h_t(x) = sum_e softmax(W_t x)_e * expert_e(x)        (B, hidden) for task t

:func:`build_model` picks one by name; both have the same call, ``model(batch, names)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mtrec_utils.core.config import check_choice, check_positive
from mtrec_utils.data.tasks import Task
from mtrec_utils.models.multitask import MultiTaskModel, mlp

ARCHITECTURES = ("hard", "mmoe")


class MMoE(nn.Module):
    """Experts shared by the tasks, one softmax gate per task (Ma et al., KDD 2018).

    Args:
        in_dim: width of the input x.
        hidden: width of each expert's output.
        task_names: one gate per name.
        num_experts: E.
        dropout: dropout inside the experts.
    """

    def __init__(
        self, in_dim: int, hidden: int, task_names: Sequence[str], num_experts: int = 4, dropout: float = 0.1
    ):
        super().__init__()
        check_positive("num_experts", num_experts, integer=True)
        self.experts = nn.ModuleList([mlp(in_dim, hidden, dropout) for _ in range(num_experts)])
        self.gates = nn.ModuleDict({n: nn.Linear(in_dim, num_experts) for n in task_names})

    def gate_weights(self, x: Tensor, names: Sequence[str]) -> dict[str, Tensor]:
        """``{name: (B, E)}`` mixing weights of each task's gate (rows sum to 1)."""
        return {n: torch.softmax(self.gates[n](x), dim=-1) for n in names}

    def forward(self, x: Tensor, names: Sequence[str]) -> dict[str, Tensor]:
        """(B, in_dim) -> ``{name: (B, hidden)}``, one mixture of the experts per task."""
        e = torch.stack([expert(x) for expert in self.experts], dim=1)  # (B, E, hidden)
        return {n: (g.unsqueeze(-1) * e).sum(dim=1) for n, g in self.gate_weights(x, names).items()}


class MMoEModel(MultiTaskModel):
    """:class:`MultiTaskModel` whose trunks are :class:`MMoE` layers (same towers, same heads).

    Args:
        towers, tasks, hidden, dropout: as for :class:`MultiTaskModel`.
        num_experts: experts per trunk.
    """

    def __init__(
        self,
        towers: dict[str, nn.Module],
        tasks: Sequence[Task],
        hidden: int = 128,
        dropout: float = 0.1,
        num_experts: int = 4,
    ):
        super().__init__(towers, tasks, hidden, dropout)
        for kind in list(self.trunks):
            names = [t.name for t in tasks if t.input == kind]
            in_dim = 2 * towers["user"].dim if kind == "pair" else towers[kind].dim
            self.trunks[kind] = MMoE(in_dim, hidden, names, num_experts, dropout)

    def shared_parameters(self) -> list[nn.Parameter]:
        """Towers and experts (the gates belong to their task, like the heads)."""
        experts = [p for trunk in self.trunks.values() for p in trunk.experts.parameters()]
        return [p for p in list(self.towers.parameters()) + experts if p.requires_grad]

    def pair_outputs(
        self, u: Tensor, i: Tensor, users: Tensor, items: Tensor, names: Sequence[str]
    ) -> dict[str, Tensor]:
        """Heads of pair tasks from user/item vectors (B, d) and their indices (B,) (for the biases)."""
        hs = self.trunks["pair"](torch.cat([u, i], dim=-1), names)  # {name: (B, hidden)}
        offset = self.biases["user"](users) + self.biases["item"](items)  # (B, 1)
        return {n: self.heads[n](torch.cat([hs[n], u * i], dim=-1), offset) for n in names}

    def _pair_split(self, u: Tensor, i: Tensor, name: str) -> tuple[Tensor, Tensor] | None:
        """Every expert's first Linear and ``name``'s gate, stacked and split by side (see
        :meth:`MultiTaskModel._pair_split`): ``(U, E*hidden + E)``, ``(I, E*hidden + E)``; or ``None``."""
        trunk, d = self.trunks["pair"], u.shape[-1]
        if type(trunk) is not MMoE or not all(isinstance(e, nn.Sequential) for e in trunk.experts):
            return None
        firsts = [e[0] for e in trunk.experts] + [trunk.gates[name]]
        if not all(type(f) is nn.Linear and f.bias is not None and f.in_features == 2 * d for f in firsts):
            return None
        weight, bias = torch.cat([f.weight for f in firsts]), torch.cat([f.bias for f in firsts])
        return F.linear(u, weight[:, :d], bias), F.linear(i, weight[:, d:])

    def _pair_rest(self, pu: Tensor, pi: Tensor, name: str) -> Tensor:
        """Both sides' parts ``(n, w)``, ``(I, w)`` from :meth:`_pair_split` -> ``name``'s mixture of the
        experts on every pair (n*I, hidden); each expert's pre-activations are formed in turn."""
        experts = self.trunks["pair"].experts
        widths = [e[0].out_features for e in experts] + [len(experts)]
        sides = list(zip(pu.split(widths, dim=1), pi.split(widths, dim=1)))

        def pairs(k: int) -> Tensor:  # (n*I, widths[k]): (n, 1, w) + (1, I, w)
            return (sides[k][0][:, None, :] + sides[k][1][None]).flatten(0, 1)

        gates = torch.softmax(pairs(-1), dim=-1)  # (n*I, E)
        out = experts[0][1:](pairs(0)) * gates[:, :1]
        for e in range(1, len(experts)):
            out.addcmul_(experts[e][1:](pairs(e)), gates[:, e : e + 1])
        return out

    def forward(self, batch: dict[str, Tensor], names: Sequence[str] | None = None) -> dict[str, Tensor]:
        """Raw outputs ``{name: (B, num_outputs)}`` of the named tasks (default: all)."""
        names = list(names or self.tasks)
        unknown = [n for n in names if n not in self.tasks]
        if unknown:
            raise ValueError(f"unknown task(s) {unknown}; this model serves {list(self.tasks)}")
        kinds = {
            k
            for n in names
            for k in (("user", "item") if self.tasks[n].input == "pair" else (self.tasks[n].input,))
        }
        vecs = {k: self.towers[k](batch[k]) for k in sorted(kinds)}  # {kind: (B, d)}
        out = {}
        pair = [n for n in names if self.tasks[n].input == "pair"]
        if pair:
            out.update(self.pair_outputs(vecs["user"], vecs["item"], batch["user"], batch["item"], pair))
        for kind in sorted({self.tasks[n].input for n in names} - {"pair"}):
            group = [n for n in names if self.tasks[n].input == kind]
            hs = self.trunks[kind](vecs[kind], group)
            out.update({n: self.heads[n](hs[n]) for n in group})
        return {n: out[n] for n in names}


def build_model(
    arch: str,
    towers: dict[str, nn.Module],
    tasks: Sequence[Task],
    hidden: int = 128,
    dropout: float = 0.1,
    num_experts: int = 4,
) -> MultiTaskModel:
    """A multi-task model with ``arch`` = ``"hard"`` (shared trunk) or ``"mmoe"`` (experts + gates).

    Raises:
        ValueError: for an unknown ``arch``, listing the valid ones.
    """
    check_choice("arch", arch, ARCHITECTURES)
    if arch == "hard":
        return MultiTaskModel(towers, tasks, hidden, dropout)
    return MMoEModel(towers, tasks, hidden, dropout, num_experts)
