"""Training batches that share texts: ratings grouped by user, items shared across users, length-aware.

When the encoder is fine-tuned (:class:`~mtrec_utils.models.towers.EncoderText`), a batch costs
what its *distinct* texts cost, each padded to the longest text of its kind in the batch:

    cost(batch) = |users| * longest user text + |items| * longest item text   (tokens)

A batch of 32 random ratings holds ~31 users and ~31 items (62 texts). :class:`SharedTextBatches`
builds batches of at most ``batch_size`` ratings that cost far fewer tokens per rating:

- **grouped by user**: a batch starts from one user's ratings, so that user's text is encoded
  once for all of them;
- **items shared across users**: it then adds whichever user or item brings the most ratings
  per token, and takes every rating among the users and items already in the batch for free;
  an item rated by several users in the batch is encoded once;
- **length-bucketed**: a text's cost is its padded length, so a batch gathers texts of similar
  token length (a user's short item texts together, its long ones in a later batch), and pads
  only to its own longest text, never to a fixed 128.

Every rating is in exactly one batch per epoch; the order of the batches is shuffled with a
seeded generator (the same ``seed`` and epoch give the same batches). :func:`batch_stats`
counts the texts and padded tokens of each batch; :func:`pack_sequences` lays a batch's texts
out for one encoder call (several short texts per row).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from mtrec_utils.core.config import check_positive


def _compact(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct ids, positions of ``ids`` in them)."""
    uniq, inverse = np.unique(ids, return_inverse=True)
    return uniq, inverse.reshape(-1)


def _lengths(lengths: Sequence[int] | np.ndarray | None, uniq: np.ndarray, name: str) -> np.ndarray:
    """Token lengths of the distinct ids ``uniq`` (all 1, i.e. count texts, when ``lengths`` is None)."""
    if lengths is None:
        return np.ones(len(uniq), dtype=np.float64)
    lengths = np.asarray(lengths, dtype=np.float64)
    if len(uniq) and (uniq.min() < 0 or uniq.max() >= len(lengths)):
        raise ValueError(f"{name} has {len(lengths)} entries but the indices reach {int(uniq.max())}")
    if (lengths[uniq] <= 0).any():
        raise ValueError(f"{name} must be positive token lengths")
    return lengths[uniq]


class SharedTextBatches:
    """A batch sampler over ratings ``(users[r], items[r])``: yields lists of row indices.

    Use it as ``DataLoader(dataset, batch_sampler=SharedTextBatches(...))`` or iterate
    :meth:`batches` directly. See the module docstring for how batches are built.

    Args:
        users, items: (N,) user and item index of each rating (any non-negative ints; duplicates allowed).
        batch_size: the most ratings in one batch.
        user_lengths, item_lengths: token length of each user / item text, indexed by user / item
            index (e.g. ``EncoderText.lengths``); ``None`` counts every text as 1 token.
        seed: the random seed; an epoch's batches depend only on ``seed`` and the epoch.
        shuffle: shuffle the seed-user order and the batch order (else both follow the index order).

    Building an epoch keeps a dense (users x items) count of the ratings left (1.6 M cells for
    MovieLens-100K's u1.base; 80,000 ratings batch in a few seconds), so it suits catalogues of
    that order, not millions of users times items.
    """

    def __init__(
        self,
        users: Sequence[int] | np.ndarray,
        items: Sequence[int] | np.ndarray,
        batch_size: int,
        user_lengths: Sequence[int] | np.ndarray | None = None,
        item_lengths: Sequence[int] | np.ndarray | None = None,
        seed: int = 0,
        shuffle: bool = True,
    ):
        check_positive("batch_size", batch_size, integer=True)
        users, items = np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)
        if users.shape != items.shape or users.ndim != 1:
            raise ValueError(f"users and items must be 1-D and aligned, got {users.shape} and {items.shape}")
        self.users, self.items, self.batch_size = users, items, int(batch_size)
        self.seed, self.shuffle, self.epoch = seed, shuffle, 0
        self._user_ids, self._u = _compact(users)
        self._item_ids, self._i = _compact(items)
        self._lu = _lengths(user_lengths, self._user_ids, "user_lengths")
        self._li = _lengths(item_lengths, self._item_ids, "item_lengths")
        self._cache: tuple[int, list[np.ndarray]] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Use the batches of ``epoch`` (as ``DistributedSampler.set_epoch``)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.batches())

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches():
            yield batch.tolist()

    def batches(self, epoch: int | None = None) -> list[np.ndarray]:
        """The batches of ``epoch`` (default: the current one): arrays of row indices."""
        epoch = self.epoch if epoch is None else int(epoch)
        if self._cache is None or self._cache[0] != epoch:
            self._cache = (epoch, self._build(np.random.default_rng([self.seed, epoch])))
        return self._cache[1]

    def _build(self, rng: np.random.Generator) -> list[np.ndarray]:
        nu, ni = len(self._user_ids), len(self._item_ids)
        cells = self._u * ni + self._i  # (N,) one cell per (user, item) pair
        noise = rng.random(len(cells)) if self.shuffle else np.zeros(len(cells))
        order = np.lexsort((noise, cells))  # rows by cell; a repeated pair's rows in random order
        cell_ids, starts, counts = np.unique(cells[order], return_index=True, return_counts=True)
        left = np.zeros((nu, ni), dtype=np.int64)  # rows not yet batched, per cell
        left.flat[cell_ids] = counts
        builder = _Builder(
            left,
            dict(zip(cell_ids.tolist(), starts.tolist())),
            order,
            self._lu,
            self._li,
            self.batch_size,
            rng.permutation(nu) if self.shuffle else np.arange(nu),
        )
        batches = []
        while (batch := builder.batch()) is not None:
            batches.append(batch)
        if self.shuffle:
            batches = [batches[k] for k in rng.permutation(len(batches))]
        return batches


class _Builder:
    """The state of one epoch's batching: the rows left per (user, item) cell, and the user order."""

    WINDOW = 16  # a batch's further users are picked among this many next users in the order

    def __init__(self, left, first, order, lu, li, batch_size, seeds):
        self.left, self.first, self.order = left, first, order  # (U, I) rows left; cell -> next row
        self.lu, self.li, self.batch_size, self.seeds = lu, li, batch_size, seeds
        self.user_left = left.sum(axis=1)  # (U,) rows left per user
        self.pos = 0  # users before seeds[pos] have no rows left

    def _next_user(self, in_u: np.ndarray, n_u: int, t_u: float) -> int | None:
        """The batch's next user: the first one left in the order, or (once the batch has users)
        the one among the next :attr:`WINDOW` that adds the fewest padded tokens (length bucketing)."""
        while self.pos < len(self.seeds) and self.user_left[self.seeds[self.pos]] == 0:
            self.pos += 1
        candidates: list[int] = []
        for u in self.seeds[self.pos :]:
            if self.user_left[u] and not in_u[u]:
                candidates.append(int(u))
                if len(candidates) == self.WINDOW:
                    break
        if not candidates:
            return None
        if n_u == 0:
            return candidates[0]
        cost = (n_u + 1) * np.maximum(t_u, self.lu[candidates]) - n_u * t_u
        return candidates[int(np.argmin(cost))]

    def _take(self, u: int, i: int, room: int, rows: list[int]) -> None:
        k = min(int(self.left[u, i]), room)
        cell = u * self.left.shape[1] + i
        rows.extend(self.order[self.first[cell] : self.first[cell] + k].tolist())
        self.first[cell] += k
        self.left[u, i] -= k
        self.user_left[u] -= k

    def batch(self) -> np.ndarray | None:
        """Grow one batch greedily by ratings gained per padded token; ``None`` when no rows are left."""
        left, lu, li, cap = self.left, self.lu, self.li, self.batch_size
        nu, ni = left.shape
        in_u, in_i = np.zeros(nu, dtype=bool), np.zeros(ni, dtype=bool)
        n_u, n_i, t_u, t_i = 0, 0, 0.0, 0.0
        rows: list[int] = []
        while len(rows) < cap:
            # ratings each item / user would bring: by the batch's users / of the batch's items
            gain_i = np.where(in_i, 0, left[in_u].sum(axis=0))
            gain_u = np.where(in_u, 0, left[:, in_i].sum(axis=1))
            room = cap - len(rows)
            # padded tokens the batch grows by when one more item / user joins it
            score_i = np.minimum(gain_i, room) / ((n_i + 1) * np.maximum(t_i, li) - n_i * t_i)
            score_u = np.minimum(gain_u, room) / ((n_u + 1) * np.maximum(t_u, lu) - n_u * t_u)
            bi, bu = int(score_i.argmax()), int(score_u.argmax())
            if (
                score_i[bi] > 0 and score_i[bi] >= score_u[bu]
            ):  # item bi, with its ratings by the batch's users
                for u in np.flatnonzero(in_u & (left[:, bi] > 0)):
                    self._take(int(u), bi, cap - len(rows), rows)
                in_i[bi], n_i, t_i = True, n_i + 1, max(t_i, li[bi])
                continue
            if score_u[bu] <= 0:  # the batch's users have nothing left: bring in another user
                nxt = self._next_user(in_u, n_u, t_u)
                if nxt is None:
                    break
                bu = nxt
            for i in np.flatnonzero(in_i & (left[bu] > 0)):  # user bu, with its ratings of the batch's items
                self._take(bu, int(i), cap - len(rows), rows)
            in_u[bu], n_u, t_u = True, n_u + 1, max(t_u, lu[bu])
        return np.asarray(rows, dtype=np.int64) if rows else None


def batch_stats(
    batch: Sequence[int] | np.ndarray,
    users: Sequence[int] | np.ndarray,
    items: Sequence[int] | np.ndarray,
    user_lengths: Sequence[int] | np.ndarray | None = None,
    item_lengths: Sequence[int] | np.ndarray | None = None,
) -> dict[str, int]:
    """What one batch (row indices) costs the encoder when each distinct text is encoded once.

    Returns:
        ``ratings``; ``users`` and ``items`` (distinct texts of each kind) and ``texts`` (their sum);
        ``padded_tokens`` (each kind padded to its longest text in the batch) and ``text_tokens``
        (without padding); token figures are 0 when no lengths are given.
    """
    rows = np.asarray(batch, dtype=np.int64)
    u = np.unique(np.asarray(users)[rows])
    i = np.unique(np.asarray(items)[rows])
    out = {"ratings": len(rows), "users": len(u), "items": len(i), "texts": len(u) + len(i)}
    padded = real = 0
    for ids, lengths in ((u, user_lengths), (i, item_lengths)):
        if lengths is not None and len(ids):
            lens = np.asarray(lengths)[ids]
            padded += len(ids) * int(lens.max())
            real += int(lens.sum())
    out["padded_tokens"], out["text_tokens"] = padded, real
    return out


def pack_sequences(
    seqs: Sequence[Sequence[int]] | Sequence[torch.Tensor], pad_id: int = 0
) -> dict[str, torch.Tensor]:
    """Pack token sequences into as few rows as fit, each row as long as the longest sequence.

    First fit, longest first: a row holds one long text or several short ones back to back (e.g.
    one user text of 60 tokens, or three item texts of 18), so one encoder call takes a batch's
    user and item texts together with little padding. Attention must stay within a sequence
    (``segments`` gives the block-diagonal mask) and positions restart at 0 for each sequence.

    Returns:
        ``input_ids``, ``position_ids`` (R, T) long; ``segments`` (R, T) long: the sequence each
        token belongs to, -1 for padding; ``lengths`` (S,) long, S = ``len(seqs)``.
    """
    lengths = [len(s) for s in seqs]
    if not lengths or min(lengths) == 0:
        raise ValueError("pack_sequences needs at least one sequence, and no empty ones")
    t = max(lengths)
    rows: list[list[int]] = []
    room: list[int] = []
    for k in sorted(range(len(seqs)), key=lambda k: -lengths[k]):
        r = next((r for r, free in enumerate(room) if free >= lengths[k]), len(rows))
        if r == len(rows):
            rows.append([])
            room.append(t)
        rows[r].append(k)
        room[r] -= lengths[k]
    ids = torch.full((len(rows), t), pad_id, dtype=torch.long)
    positions = torch.zeros((len(rows), t), dtype=torch.long)
    segments = torch.full((len(rows), t), -1, dtype=torch.long)
    for r, row in enumerate(rows):
        start = 0
        for k in row:
            end = start + lengths[k]
            ids[r, start:end] = torch.as_tensor(seqs[k], dtype=torch.long)
            positions[r, start:end] = torch.arange(lengths[k])
            segments[r, start:end] = k
            start = end
    return {
        "input_ids": ids,
        "position_ids": positions,
        "segments": segments,
        "lengths": torch.as_tensor(lengths, dtype=torch.long),
    }
