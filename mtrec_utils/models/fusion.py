"""Feature fusion (特征融合): four ways to turn an entity's parts into one vector.

An entity (user, item, review) has *parts*, each projected to the tower width ``d``: its ID
embedding, its text embedding, numeric side features and categorical side features. A
:class:`FusionTower` stacks them into ``P`` tokens ``(B, P, d)`` and fuses them with one of:

- ``sum``:       ``sum_p part_p`` (what :class:`~mtrec_utils.models.towers.EntityTower` does);
- ``concat``:    ``W [part_1; ...; part_P]`` (a linear layer over the concatenation);
- ``gate``:      ``P * sum_p g_p(x) part_p`` with ``g(x) = softmax(W [part_1; ...; part_P])``, one
                 weight per part and entity (times P, so equal weights give the sum);
- ``attention``: a learned query attends over the part tokens (multi-head attention pooling).

``gate`` and ``attention`` expose their per-part weights (:meth:`FusionTower.part_weights`), so a
notebook can show which part the model leans on, e.g. for cold items (little ID signal).

:func:`mtrec_utils.training.bundles.fusion_bundle` wraps a ``TaskBundle`` so that
``run_experiment`` trains the same tasks, data and budget with fusion towers instead.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from mtrec_utils.core.config import check_choice
from mtrec_utils.models.towers import EntityTower

FUSIONS = ("sum", "concat", "gate", "attention")
PARTS = ("id", "text", "features", "categories")


class FusionTower(EntityTower):
    """Project an entity's parts to ``dim`` and fuse them; (B,) indices -> (B, dim).

    Args:
        num_entities: N; ``forward`` takes indices in ``0..N-1``.
        dim: output width d.
        fusion: one of :data:`FUSIONS`.
        text: a text module (``.dim`` attribute, (B,) -> (B, H)), or ``None``.
        features: (N, F) standardised numeric features, or ``None``.
        categories: ``{name: (N,) long codes}``; each is one part (its own embedding).
        use_id: learn one ID embedding per entity (one part).
        heads: attention heads (``attention`` only; must divide ``dim``).
        dropout: dropout on the fused vector.
    """

    def __init__(
        self,
        num_entities: int,
        dim: int = 64,
        fusion: str = "sum",
        text: nn.Module | None = None,
        features: Tensor | None = None,
        categories: dict[str, Tensor] | None = None,
        use_id: bool = True,
        heads: int = 4,
        dropout: float = 0.1,
    ):
        fusion = check_choice("fusion", fusion, FUSIONS)
        if not use_id and text is None and features is None and not categories:
            raise ValueError("FusionTower needs at least one part: use_id=True, text, features or categories")
        super().__init__(num_entities, dim, text, features, categories, use_id, dropout)  # the parts
        self.fusion = fusion
        num_parts = len(self.part_names)
        if fusion == "concat":
            self.mix = nn.Linear(num_parts * dim, dim)
        elif fusion == "gate":
            self.mix = nn.Linear(num_parts * dim, num_parts)
        elif fusion == "attention":
            if dim % heads:
                raise ValueError(f"heads={heads} is not valid; it must divide dim={dim}")
            self.query = nn.Parameter(torch.randn(1, 1, dim) * dim**-0.5)
            self.mix = nn.MultiheadAttention(dim, heads, batch_first=True)

    def parts(self, idx: Tensor) -> Tensor:
        """(B,) indices -> (B, P, dim): one token per part, in the order of ``part_names``."""
        return torch.stack(list(self.part_dict(idx).values()), dim=1)

    def _fuse(self, tokens: Tensor) -> tuple[Tensor, Tensor | None]:
        """(B, P, d) -> fused (B, d) and per-part weights (B, P) (``None`` for sum/concat)."""
        if self.fusion == "sum":
            return tokens.sum(dim=1), None
        if self.fusion == "concat":
            return self.mix(tokens.flatten(1)), None
        if self.fusion == "gate":
            w = torch.softmax(self.mix(tokens.flatten(1)), dim=-1)  # (B, P)
            return (w.unsqueeze(-1) * tokens).sum(dim=1) * len(self.part_names), w
        q = self.query.expand(len(tokens), -1, -1)  # (B, 1, d)
        fused, w = self.mix(q, tokens, tokens, need_weights=True)  # (B, 1, d), (B, 1, P)
        return fused.squeeze(1), w.squeeze(1)

    def forward(self, idx: Tensor) -> Tensor:
        """(B,) entity indices -> (B, dim)."""
        fused, _ = self._fuse(self.parts(idx))
        return self.dropout(fused)

    @torch.no_grad()
    def part_weights(self, idx: Tensor) -> Tensor:
        """(B, P) weight of each part (``gate``/``attention``; rows sum to 1). Raises for sum/concat."""
        if self.fusion not in ("gate", "attention"):
            raise ValueError(f"fusion={self.fusion!r} has no part weights; use 'gate' or 'attention'")
        return self._fuse(self.parts(idx))[1]


def movielens_side(users: pd.DataFrame, items: pd.DataFrame) -> dict[str, dict]:
    """Side features of MovieLens users and items, in the rows of ``users`` and ``items``.

    Users: standardised age (numeric) and categories ``gender`` and ``occupation``. Items:
    standardised release year (missing -> the median) and the 19 genre flags (numeric).
    Nothing here is a rating, so none of it can leak a label.

    Returns:
        ``{"user": {"features": (U, 1), "categories": {...}}, "item": {"features": (I, 20), "categories": {}}}``.
    """
    from mtrec_utils.data.movielens import genre_matrix

    def z(x: np.ndarray) -> np.ndarray:
        return (x - x.mean()) / (x.std() or 1.0)

    age = z(users["age"].to_numpy(np.float64))[:, None]
    year = pd.to_numeric(items["year"], errors="coerce")
    year = z(year.fillna(year.median()).to_numpy(np.float64))[:, None]
    codes = {
        c: torch.as_tensor(pd.factorize(users[c])[0], dtype=torch.long) for c in ("gender", "occupation")
    }
    item_feats = np.hstack([year, genre_matrix(items).astype(np.float64)])
    return {
        "user": {"features": torch.tensor(age, dtype=torch.float32), "categories": codes},
        "item": {"features": torch.tensor(item_feats, dtype=torch.float32), "categories": {}},
    }
