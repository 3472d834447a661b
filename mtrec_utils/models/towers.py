"""Towers: turn a user, an item or a review (an *entity*) into one vector.

An entity's vector fuses what is known about it (the article's 特征融合, feature fusion):

    tower(e) = id_embedding(e) + W_text · text(e) + W_feat · features(e) + sum_c category_c(e)
               [+ |N(e)|^-1/2 sum_{j in N(e)} y_j, a user's rated items: :mod:`mtrec_utils.models.implicit`]

``text(e)`` comes from a pretrained language model, in one of two modes:

- ``frozen`` (:class:`FrozenText`): every text is encoded once, cached on disk, and looked up.
- ``full`` (:class:`EncoderText`): the encoder is fine-tuned; texts are tokenised once, and each
  batch encodes each *distinct* text in it once, padded only to its longest text.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mtrec_utils.core.config import check_choice
from mtrec_utils.models.encoders import Encoder, encode_texts, mean_pool
from mtrec_utils.models.implicit import ImplicitHistory, InteractionLists

TEXT_MODES = ("frozen", "full")


class FrozenText(nn.Module):
    """Precomputed text embeddings (N, H), looked up by index; nothing here is trained."""

    def __init__(self, embeddings: Tensor):
        super().__init__()
        self.register_buffer("table", embeddings.float(), persistent=False)  # (N, H), not checkpointed
        self.dim = int(embeddings.shape[1])

    def forward(self, idx: Tensor) -> Tensor:
        """(B,) indices -> (B, H): ``table[idx]``, as a cheaper ``index_select``."""
        return self.table.index_select(0, idx.reshape(-1)).reshape(*idx.shape, self.dim)


class EncoderText(nn.Module):
    """A trainable encoder over texts tokenised once; encodes each distinct text of a batch once.

    Args:
        encoder: an :class:`~mtrec_utils.models.encoders.Encoder` (its model is trained).
        texts: N texts; ``forward`` takes indices into them.
        max_length: token limit per text.
    """

    def __init__(self, encoder: Encoder, texts: Sequence[str], max_length: int = 128):
        super().__init__()
        from mtrec_utils.data.datasets import pad_sequences, tokenize_once

        ids, mask = pad_sequences(
            tokenize_once(encoder.tokenizer, texts, max_length), encoder.tokenizer.pad_token_id or 0
        )
        self.model = encoder.model
        self.register_buffer("ids", ids, persistent=False)  # (N, T_max)
        self.register_buffer("lengths", mask.sum(dim=1), persistent=False)  # (N,)
        self.dim = encoder.dim

    def forward(self, idx: Tensor) -> Tensor:
        """(B,) indices -> (B, H); the encoder sees U <= B distinct texts padded to the longest of them."""
        uniq, inverse = torch.unique(idx, return_inverse=True)  # (U,), (B,)
        lengths = self.lengths[uniq]  # (U,)
        t = int(lengths.max())
        ids = self.ids[uniq, :t]  # (U, T)
        mask = (torch.arange(t, device=ids.device)[None, :] < lengths[:, None]).long()  # (U, T)
        hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state  # (U, T, H)
        return mean_pool(hidden, mask)[inverse]  # (B, H)


def text_table(
    encoder: Encoder,
    texts: Sequence[str],
    mode: str = "frozen",
    max_length: int = 128,
    batch_size: int = 64,
    progress: bool = True,
) -> FrozenText | EncoderText:
    """The text part of a tower: :class:`FrozenText` (cached embeddings) or :class:`EncoderText`."""
    check_choice("mode", mode, TEXT_MODES)
    if mode == "frozen":
        emb = encode_texts(
            encoder, list(texts), batch_size=batch_size, max_length=max_length, progress=progress
        )
        return FrozenText(emb)
    return EncoderText(encoder, list(texts), max_length)


class EntityTower(nn.Module):
    """Fuse an entity's ID, text, numeric features and categories into one (B, dim) vector.

    Args:
        num_entities: N; ``forward`` takes indices in ``0..N-1``.
        dim: output width.
        text: a :class:`FrozenText` / :class:`EncoderText` over the N entities, or ``None``.
        features: (N, F) float numeric features (standardise them first), or ``None``.
        categories: ``{name: (N,) long codes}`` of categorical features, each embedded.
        use_id: learn one embedding per entity (collaborative signal; useless for cold entities).
        dropout: dropout on the fused vector.
        history: the items each entity (a user) rated in the training split, or ``None``: adds the
            part ``history``, SVD++'s normalised sum of learned item vectors (:class:`ImplicitHistory`).
    """

    def __init__(
        self,
        num_entities: int,
        dim: int = 64,
        text: nn.Module | None = None,
        features: Tensor | None = None,
        categories: dict[str, Tensor] | None = None,
        use_id: bool = True,
        dropout: float = 0.1,
        history: InteractionLists | None = None,
    ):
        super().__init__()
        if text is None and features is None and not categories and not use_id and history is None:
            raise ValueError(
                "EntityTower needs at least one input: text, features, categories, history or use_id=True"
            )
        self.num_entities, self.dim = num_entities, dim
        self.id_emb = nn.Embedding(num_entities, dim) if use_id else None
        if self.id_emb is not None:
            nn.init.normal_(self.id_emb.weight, std=0.01)
        self.text = text
        self.text_proj = (
            nn.Sequential(nn.LayerNorm(text.dim), nn.Linear(text.dim, dim)) if text is not None else None
        )
        if features is not None:
            self.register_buffer("features", features.float(), persistent=False)  # (N, F)
            self.feat_proj = nn.Linear(features.shape[1], dim)
        else:
            self.features, self.feat_proj = None, None
        self.cat_names = list(categories or {})
        self.cat_emb = nn.ModuleDict()
        for name, codes in (categories or {}).items():
            self.register_buffer(f"codes_{name}", codes.long(), persistent=False)  # (N,)
            self.cat_emb[name] = nn.Embedding(int(codes.max()) + 1, dim)
        self.dropout = nn.Dropout(dropout)
        if history is not None and history.num_users != num_entities:
            raise ValueError(
                f"history has {history.num_users} users but the tower has {num_entities} entities"
            )
        self.history = ImplicitHistory(history, dim) if history is not None else None

    @property
    def part_names(self) -> list[str]:
        """The parts this tower fuses, in order: ``id``, ``text``, ``features``, each category, ``history``."""
        names = ["id"] if self.id_emb is not None else []
        names += ["text"] if self.text is not None else []
        names += ["features"] if self.features is not None else []
        return names + list(self.cat_names) + (["history"] if self.history is not None else [])

    def part_dict(self, idx: Tensor) -> dict[str, Tensor]:
        """(B,) entity indices -> ``{part name: (B, dim)}``, in the order of :attr:`part_names`."""
        parts = {}
        if self.id_emb is not None:
            parts["id"] = self.id_emb(idx)
        if self.text is not None:
            parts["text"] = self.text_part(idx)
        if self.features is not None:
            parts["features"] = self.feat_proj(self.features[idx])
        for name in self.cat_names:
            parts[name] = self.cat_emb[name](getattr(self, f"codes_{name}")[idx])
        if self.history is not None:
            parts["history"] = self.history(idx)
        return parts

    def text_part(self, idx: Tensor) -> Tensor:
        """(B,) entity indices -> (B, dim) projected text: ``text_proj(text(idx))``.

        On a CPU each distinct entity of the batch is projected once and the rows are gathered: a
        training batch repeats users and items (2,560 MovieLens pairs hold ~340 users and ~1,300 items),
        and the LayerNorm and Linear over 384-wide rows were the towers' largest cost. The same values
        up to float rounding (the gradient sums each entity's rows first). On a GPU, where rows are
        cheap and ``unique`` waits for the device, every row is projected.
        """
        if idx.device.type != "cpu" or idx.dim() != 1:
            return self.text_proj(self.text(idx))
        uniq, inverse = torch.unique(idx, return_inverse=True)  # (U,), (B,)
        return F.embedding(inverse, self.text_proj(self.text(uniq)))  # (U, dim) rows -> (B, dim)

    def forward(self, idx: Tensor) -> Tensor:
        """(B,) entity indices -> (B, dim): the sum of the parts."""
        return self.dropout(sum_parts(list(self.part_dict(idx).values())))  # (B, dim)


def sum_parts(parts: Sequence[Tensor]) -> Tensor:
    """``torch.stack(parts).sum(dim=0)`` bit for bit, without the stacked copy.

    On a CPU that sum adds the parts in order, starting from zero; the same adds, and a final
    ``+ 0.0`` (which turns ``-0.0`` into ``0.0``, as starting from zero does), give the same bits.
    """
    out = parts[0] + parts[1] if len(parts) > 1 else parts[0] + 0.0
    for part in parts[2:]:
        out = out + part
    return out.add_(0.0) if len(parts) > 1 else out
