"""How tasks share the layers above the towers: hard parameter sharing, MMoE and PLE.

- **Hard sharing** (硬参数共享, Caruana 1997): every task reads the same trunk; only the heads are
  task-specific. This is :class:`~mtrec_utils.models.multitask.MultiTaskModel` itself.
- **MMoE** (Ma, Zhao, Yi, Chen, Hong and Chi, "Modeling Task Relationships in Multi-task Learning
  with Multi-gate Mixture-of-Experts", KDD 2018): the trunk is ``E`` experts; each task mixes their
  outputs with its own softmax gate, so tasks that conflict can lean on different experts::

      h_t(x) = sum_e softmax(W_t x)_e * expert_e(x)        (B, hidden) for task t

- **PLE** (Tang, Liu, Zhao and Gong, "Progressive Layered Extraction (PLE): A Novel Multi-Task
  Learning (MTL) Model for Personalized Recommendations", RecSys 2020): each task also owns experts
  that no other task's gate can read, next to the shared experts; levels of such experts are stacked.
  It answers the *seesaw phenomenon*: with shared experts only, joint training often helps one task
  and hurts another; task experts keep what a task must not share out of the others' way::

      h_t(x) = softmax(W_t x) . [experts of t (x), shared experts (x)]    (B, hidden) for task t

:func:`build_model` picks one by name; all have the same call, ``model(batch, names)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mtrec_utils.core.config import check_choice, check_positive
from mtrec_utils.data.tasks import Task
from mtrec_utils.models.multitask import MultiTaskModel, mlp

ARCHITECTURES = ("hard", "mmoe", "ple")
#: Key of the shared experts (and the shared gate) next to the task names in :class:`CGC`'s dicts.
SHARED = "shared"


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


def _mix(experts: Tensor, gate: Tensor) -> Tensor:
    """Experts' outputs (B, m, hidden) weighted by a gate (B, m) -> (B, hidden)."""
    return torch.einsum("bmh,bm->bh", experts, gate)


class CGC(nn.Module):
    """One extraction level of PLE: Customized Gate Control (Tang et al., RecSys 2020).

    Each task ``t`` owns ``num_task_experts`` experts and a gate over its own experts and the
    ``num_shared_experts`` shared ones (never another task's); with ``shared_gate`` (the levels below
    the top), a shared gate over *all* experts forms the next level's shared input::

        h_t = softmax(W_t x_t) . [experts of t (x_t), shared (x_s)]     gate over m_t + m_s experts
        h_s = softmax(W_s x_s) . [experts of every task, shared (x_s)]   gate over T*m_t + m_s experts

    Inputs and outputs are dicts ``{task name: (B, .), SHARED: (B, .)}``: ``x_t`` feeds task ``t``'s
    experts and gate, ``x_s`` the shared experts and the shared gate (at the first level all are x).

    Args:
        in_dim: width of the inputs.
        hidden: width of each expert's output.
        task_names: the tasks (``SHARED`` is not a valid task name).
        num_task_experts: experts of each task, m_t.
        num_shared_experts: shared experts, m_s.
        dropout: dropout inside the experts.
        shared_gate: add the shared gate (every level of :class:`PLE` but the top one).
    """

    def __init__(
        self,
        in_dim: int,
        hidden: int,
        task_names: Sequence[str],
        num_task_experts: int = 1,
        num_shared_experts: int = 1,
        dropout: float = 0.1,
        shared_gate: bool = False,
    ):
        super().__init__()
        check_positive("num_task_experts", num_task_experts, integer=True)
        check_positive("num_shared_experts", num_shared_experts, integer=True)
        if SHARED in task_names:
            raise ValueError(
                f"task_names={list(task_names)} is not valid: {SHARED!r} names the shared experts"
            )
        self.task_names = list(task_names)
        m_t, m_s = num_task_experts, num_shared_experts

        def experts(m: int) -> nn.ModuleList:
            return nn.ModuleList([mlp(in_dim, hidden, dropout) for _ in range(m)])

        self.task_experts = nn.ModuleDict({n: experts(m_t) for n in self.task_names})
        self.shared_experts = experts(m_s)
        self.gates = nn.ModuleDict({n: nn.Linear(in_dim, m_t + m_s) for n in self.task_names})
        self.shared_gate = nn.Linear(in_dim, len(self.task_names) * m_t + m_s) if shared_gate else None

    def readers(self, names: Sequence[str]) -> tuple[dict[str, nn.Module], dict[str, nn.Module]]:
        """The experts and gates that serve ``names`` (every task's when this level has a shared gate),
        each as ``{task name or SHARED: ...}``: the layers that read this level's inputs."""
        groups = self.task_names if self.shared_gate is not None else list(names)
        experts = {n: self.task_experts[n] for n in groups} | {SHARED: self.shared_experts}
        gates = {n: self.gates[n] for n in groups}
        if self.shared_gate is not None:
            gates[SHARED] = self.shared_gate
        return experts, gates

    def mix(
        self, experts: dict[str, Tensor], logits: dict[str, Tensor]
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Experts' outputs ``{group: (B, m, hidden)}`` and gate logits ``{group: (B, m')}`` (as from
        :meth:`readers`) -> each gate's mixture ``{group: (B, hidden)}`` and weights ``{group: (B, m')}``."""
        weights = {k: torch.softmax(z, dim=-1) for k, z in logits.items()}
        out = {
            n: _mix(torch.cat([experts[n], experts[SHARED]], dim=1), g)  # (B, m_t + m_s, hidden)
            for n, g in weights.items()
            if n != SHARED
        }
        if SHARED in weights:
            every = torch.cat([experts[n] for n in self.task_names] + [experts[SHARED]], dim=1)
            out[SHARED] = _mix(every, weights[SHARED])  # over T*m_t + m_s experts
        return out, weights

    def forward(
        self, xs: dict[str, Tensor], names: Sequence[str]
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Inputs ``{task: (B, in_dim), SHARED: (B, in_dim)}`` -> ``({name: (B, hidden)}, gate weights)``,
        plus ``SHARED`` in both when this level has a shared gate (then every task is computed)."""
        experts, gates = self.readers(names)
        outs = {k: torch.stack([e(xs[k]) for e in es], dim=1) for k, es in experts.items()}  # (B, m, hidden)
        return self.mix(outs, {k: g(xs[k]) for k, g in gates.items()})


class PLE(nn.Module):
    """Progressive Layered Extraction: ``num_levels`` stacked :class:`CGC` levels (Tang et al., RecSys 2020).

    A task's experts are read by its own gate only, so what one task learns there cannot pull the
    others (MMoE lets every gate read every expert; the paper finds that it still shows the seesaw
    phenomenon, one task gaining while another loses). The top level's task experts (every level's
    when ``num_levels=1``, the paper's CGC) get no gradient at all from the other tasks' losses;
    below the top, the shared gate mixes every expert into the next level's shared input, so there
    task experts learn from every task too, while each task's own path of gates stays its own.

    Args:
        in_dim: width of the input x.
        hidden: width of each expert's output (the output of each task).
        task_names: one gate (and ``num_task_experts`` experts) per name and level.
        num_task_experts: experts of each task per level, m_t.
        num_shared_experts: shared experts per level, m_s.
        num_levels: extraction levels (1: CGC).
        dropout: dropout inside the experts.
    """

    def __init__(
        self,
        in_dim: int,
        hidden: int,
        task_names: Sequence[str],
        num_task_experts: int = 1,
        num_shared_experts: int = 1,
        num_levels: int = 2,
        dropout: float = 0.1,
    ):
        super().__init__()
        check_positive("num_levels", num_levels, integer=True)
        self.task_names = list(task_names)
        self.levels = nn.ModuleList(
            [
                CGC(
                    in_dim if k == 0 else hidden,
                    hidden,
                    task_names,
                    num_task_experts,
                    num_shared_experts,
                    dropout,
                    shared_gate=k < num_levels - 1,
                )
                for k in range(num_levels)
            ]
        )

    def run(
        self, xs: dict[str, Tensor], names: Sequence[str], start: int = 0
    ) -> tuple[dict[str, Tensor], list[dict[str, Tensor]]]:
        """Levels ``start`` and up on their inputs ``xs`` (as for :meth:`CGC.forward`) ->
        ``({name: (B, hidden)}, [gate weights of each level])``."""
        weights = []
        for level in self.levels[start:]:
            xs, w = level(xs, names)
            weights.append(w)
        return {n: xs[n] for n in names}, weights

    def gate_weights(self, x: Tensor, names: Sequence[str]) -> list[dict[str, Tensor]]:
        """Per level, ``{name: (B, m_t + m_s)}`` (own experts first, then the shared ones) and, below the
        top, ``SHARED: (B, T*m_t + m_s)`` (the tasks' experts in ``task_names`` order, then the shared)."""
        return self.run(dict.fromkeys([*self.task_names, SHARED], x), names)[1]

    def forward(self, x: Tensor, names: Sequence[str]) -> dict[str, Tensor]:
        """(B, in_dim) -> ``{name: (B, hidden)}``, the top level's mixture for each task (the levels
        below compute every task: their shared gates read all the experts)."""
        return self.run(dict.fromkeys([*self.task_names, SHARED], x), names)[0]


class PLEModel(MMoEModel):
    """:class:`MultiTaskModel` whose trunks are :class:`PLE` stacks (same towers, same heads).

    Args:
        towers, tasks, hidden, dropout: as for :class:`MultiTaskModel`.
        num_task_experts, num_shared_experts, num_levels: as for :class:`PLE`, for each trunk.
    """

    def __init__(
        self,
        towers: dict[str, nn.Module],
        tasks: Sequence[Task],
        hidden: int = 128,
        dropout: float = 0.1,
        num_task_experts: int = 1,
        num_shared_experts: int = 1,
        num_levels: int = 2,
    ):
        MultiTaskModel.__init__(self, towers, tasks, hidden, dropout)
        for kind in list(self.trunks):
            names = [t.name for t in tasks if t.input == kind]
            in_dim = 2 * towers["user"].dim if kind == "pair" else towers[kind].dim
            self.trunks[kind] = PLE(
                in_dim, hidden, names, num_task_experts, num_shared_experts, num_levels, dropout
            )

    def shared_parameters(self) -> list[nn.Parameter]:
        """Towers, shared experts and shared gates (task experts and gates belong to their task, like
        the heads, although below the top level the shared gate passes every task's gradient to them)."""
        trunk = [
            p
            for ple in self.trunks.values()
            for level in ple.levels
            for m in (level.shared_experts, level.shared_gate)
            if m is not None
            for p in m.parameters()
        ]
        return [p for p in list(self.towers.parameters()) + trunk if p.requires_grad]

    def pair_outputs(
        self, u: Tensor, i: Tensor, users: Tensor, items: Tensor, names: Sequence[str]
    ) -> dict[str, Tensor]:
        """Heads of pair tasks from user/item vectors (B, d) and their indices (B,) (as for MMoE)."""
        return super().pair_outputs(u, i, users, items, names)

    def _pair_split(self, u: Tensor, i: Tensor, name: str) -> tuple[Tensor, Tensor] | None:
        """The first level's layers that read ``[u, i]`` (:meth:`CGC.readers`: experts' first Linears,
        then gates), stacked and split by side (see :meth:`MultiTaskModel._pair_split`); or ``None``."""
        trunk, d = self.trunks["pair"], u.shape[-1]
        if type(trunk) is not PLE or type(trunk.levels[0]) is not CGC:
            return None
        experts, gates = trunk.levels[0].readers([name])
        if not all(isinstance(e, nn.Sequential) for es in experts.values() for e in es):
            return None
        firsts = [e[0] for es in experts.values() for e in es] + list(gates.values())
        if not all(type(f) is nn.Linear and f.bias is not None and f.in_features == 2 * d for f in firsts):
            return None
        weight, bias = torch.cat([f.weight for f in firsts]), torch.cat([f.bias for f in firsts])
        return F.linear(u, weight[:, :d], bias), F.linear(i, weight[:, d:])

    def _pair_rest(self, pu: Tensor, pi: Tensor, name: str) -> Tensor:
        """Both sides' parts ``(n, w)``, ``(I, w)`` from :meth:`_pair_split` -> ``name``'s output of the
        trunk on every pair (n*I, hidden): the first level from the summed parts, then the others."""
        trunk = self.trunks["pair"]
        experts, gates = trunk.levels[0].readers([name])
        widths = [e[0].out_features for es in experts.values() for e in es] + [
            g.out_features for g in gates.values()
        ]
        parts = iter(  # (n*I, w) each: (n, 1, w) + (1, I, w)
            (a[:, None, :] + b[None]).flatten(0, 1) for a, b in zip(pu.split(widths, 1), pi.split(widths, 1))
        )
        outs = {k: torch.stack([e[1:](next(parts)) for e in es], dim=1) for k, es in experts.items()}
        xs, _ = trunk.levels[0].mix(outs, {k: next(parts) for k in gates})
        return trunk.run(xs, [name], start=1)[0][name]


def build_model(
    arch: str,
    towers: dict[str, nn.Module],
    tasks: Sequence[Task],
    hidden: int = 128,
    dropout: float = 0.1,
    num_experts: int = 4,
    num_task_experts: int = 1,
    num_shared_experts: int = 1,
    num_levels: int = 2,
) -> MultiTaskModel:
    """A multi-task model with ``arch`` = ``"hard"`` (shared trunk), ``"mmoe"`` (experts + gates) or
    ``"ple"`` (task and shared experts, stacked levels).

    Args:
        num_experts: experts of each MMoE trunk (``"mmoe"`` only).
        num_task_experts, num_shared_experts, num_levels: PLE's sizes (``"ple"`` only; see :class:`PLE`).

    Raises:
        ValueError: for an unknown ``arch``, listing the valid ones, or a size of its that is not a
            positive integer.
    """
    check_choice("arch", arch, ARCHITECTURES)
    if arch == "hard":
        return MultiTaskModel(towers, tasks, hidden, dropout)
    if arch == "ple":
        return PLEModel(towers, tasks, hidden, dropout, num_task_experts, num_shared_experts, num_levels)
    return MMoEModel(towers, tasks, hidden, dropout, num_experts)
