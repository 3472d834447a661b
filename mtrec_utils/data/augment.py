"""Data augmentation (数据增强) that works offline: texts and interaction sequences.

Text (EDA-style, Wei and Zou 2019), on whitespace words:

- :func:`mask_words`: replace a share ``p`` of words by the encoder's mask token;
- :func:`delete_words`: drop each word with probability ``p`` (never all of them);
- :func:`swap_words`: swap ``n`` random pairs of positions;
- :class:`NeighbourSynonyms` + :func:`replace_synonyms`: replace words by one of their nearest
  neighbours in the encoder's own token-embedding table (no thesaurus, no download).

:class:`TextAugmenter` draws one of these per copy; :func:`augment_texts` makes copies of many texts.
:func:`load_back_translation` builds the article's back-translation from any two Hugging Face
translation models, or returns ``None`` with the reason when they are not available offline.

Sequences (CL4SRec, Xie et al. 2022), on a user's chronological item history:
:func:`crop_sequence`, :func:`mask_sequence`, :func:`reorder_sequence`.

Everything random takes a ``torch.Generator``: the same generator state gives the same output.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from mtrec_utils.core.config import check_choice

TEXT_OPS = ("mask", "delete", "swap", "synonym")
SEQUENCE_OPS = ("crop", "mask", "reorder")


def _check_p(p: float, name: str = "p") -> float:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}={p!r} is not valid; it must be between 0 and 1 (for example 0.1)")
    return p


def _rand(n: int, generator: torch.Generator | None) -> list[float]:
    return torch.rand(n, generator=generator).tolist()


def mask_words(
    words: Sequence[str], p: float, generator: torch.Generator | None = None, mask_token: str = "[MASK]"
) -> list[str]:
    """Replace each word by ``mask_token`` with probability ``p``."""
    _check_p(p)
    return [mask_token if r < p else w for w, r in zip(words, _rand(len(words), generator))]


def delete_words(words: Sequence[str], p: float, generator: torch.Generator | None = None) -> list[str]:
    """Drop each word with probability ``p``; if all would go, keep one at random."""
    _check_p(p)
    kept = [w for w, r in zip(words, _rand(len(words), generator)) if r >= p]
    if not kept and words:
        kept = [words[int(torch.randint(len(words), (1,), generator=generator))]]
    return kept


def swap_words(words: Sequence[str], n: int, generator: torch.Generator | None = None) -> list[str]:
    """Swap ``n`` random pairs of positions (a no-op for fewer than two words)."""
    out = list(words)
    if len(out) < 2:
        return out
    for _ in range(n):
        i, j = torch.randint(len(out), (2,), generator=generator).tolist()
        out[i], out[j] = out[j], out[i]
    return out


class NeighbourSynonyms:
    """Nearest neighbours of a word in an encoder's input token-embedding table.

    Only whole-word, alphabetic, lower-case vocabulary entries (no ``##`` pieces, no special
    tokens) are candidates; a word that is not one token of the vocabulary has no neighbours.

    Args:
        embeddings: (V, H) token-embedding table (``encoder.model.get_input_embeddings().weight``).
        vocab: ``{token: id}`` (``encoder.tokenizer.get_vocab()``).
        k: neighbours kept per word.
    """

    def __init__(self, embeddings: torch.Tensor, vocab: dict[str, int], k: int = 5):
        ids = sorted(
            i for t, i in vocab.items() if t.isalpha() and t.islower() and len(t) > 2 and i < len(embeddings)
        )
        self.tokens = {i: t for t, i in vocab.items()}
        self.vocab, self.k = vocab, k
        self.candidates = torch.tensor(ids, dtype=torch.long)  # (C,)
        self.table = torch.nn.functional.normalize(embeddings.detach().float()[self.candidates], dim=-1)
        self._cache: dict[str, list[str]] = {}

    @classmethod
    def from_encoder(cls, encoder, k: int = 5) -> NeighbourSynonyms:
        """From an :class:`~mtrec_utils.models.encoders.Encoder` (its model's input embeddings and vocabulary)."""
        return cls(encoder.model.get_input_embeddings().weight, encoder.tokenizer.get_vocab(), k)

    def __call__(self, word: str) -> list[str]:
        """Up to ``k`` neighbours of ``word`` (lower-cased), nearest first; ``[]`` if it has none."""
        w = word.lower()
        if w not in self._cache:
            out: list[str] = []
            pos = (self.candidates == self.vocab.get(w, -1)).nonzero()
            if len(pos):
                sims = self.table @ self.table[int(pos[0, 0])]  # (C,)
                sims[int(pos[0, 0])] = -2.0
                top = torch.topk(sims, self.k).indices
                out = [self.tokens[int(self.candidates[j])] for j in top]
            self._cache[w] = out
        return self._cache[w]


def replace_synonyms(
    words: Sequence[str],
    p: float,
    synonyms: Callable[[str], list[str]],
    generator: torch.Generator | None = None,
) -> list[str]:
    """Replace each word that has neighbours, with probability ``p``, by one of them drawn at random."""
    _check_p(p)
    out = []
    for w, r in zip(words, _rand(len(words), generator)):
        core = w.strip(".,!?;:'\"()")
        options = synonyms(core) if r < p and core else []
        if options:
            w = w.replace(core, options[int(torch.randint(len(options), (1,), generator=generator))])
        out.append(w)
    return out


class TextAugmenter:
    """Augment a text with one operation drawn from ``ops`` per call.

    Args:
        ops: subset of :data:`TEXT_OPS`.
        p: share of words touched by mask/delete/synonym; swap makes ``max(1, round(p * n))`` swaps.
        synonyms: a :class:`NeighbourSynonyms` (required for ``"synonym"``).
        mask_token: the encoder's mask token.
    """

    def __init__(
        self, ops: Sequence[str] = TEXT_OPS, p: float = 0.15, synonyms=None, mask_token: str = "[MASK]"
    ):
        if not ops:
            raise ValueError(f"ops=() is not valid; choose one or more of {TEXT_OPS}")
        self.ops = [check_choice("ops", op, TEXT_OPS) for op in ops]
        if "synonym" in self.ops and synonyms is None:
            raise ValueError(
                "ops includes 'synonym' but synonyms=None; pass NeighbourSynonyms.from_encoder(...)"
            )
        self.p, self.synonyms, self.mask_token = _check_p(p), synonyms, mask_token

    def __call__(self, text: str, generator: torch.Generator | None = None) -> str:
        words = text.split()
        op = self.ops[int(torch.randint(len(self.ops), (1,), generator=generator))]
        if op == "mask":
            words = mask_words(words, self.p, generator, self.mask_token)
        elif op == "delete":
            words = delete_words(words, self.p, generator)
        elif op == "swap":
            words = swap_words(words, max(1, round(self.p * len(words))), generator)
        else:
            words = replace_synonyms(words, self.p, self.synonyms, generator)
        return " ".join(words)


def augment_texts(
    texts: Sequence[str], augmenter: Callable, copies: int = 1, generator: torch.Generator | None = None
) -> tuple[list[int], list[str]]:
    """``copies`` augmented versions of each text: ``(source index of each copy, augmented texts)``."""
    if isinstance(copies, bool) or not isinstance(copies, int) or copies < 0:
        raise ValueError(f"copies={copies!r} is not valid; it must be an integer >= 0 (for example 2)")
    sources = [i for i in range(len(texts)) for _ in range(copies)]
    return sources, [augmenter(texts[i], generator) for i in sources]


class BackTranslation:
    """Back-translation: ``backward(forward(texts))`` (e.g. English -> German -> English).

    Args:
        forward, backward: callables ``list[str] -> list[str]``.
    """

    def __init__(self, forward: Callable[[list[str]], list[str]], backward: Callable[[list[str]], list[str]]):
        self.forward, self.backward = forward, backward

    def __call__(self, text: str, generator: torch.Generator | None = None) -> str:
        return self.backward(self.forward([text]))[0]


def load_back_translation(
    forward_model: str, backward_model: str, local_files_only: bool = True
) -> tuple[BackTranslation | None, str]:
    """Back-translation from two Hugging Face translation models, or ``(None, reason)`` if unavailable.

    Args:
        forward_model, backward_model: model names, e.g. ``"Helsinki-NLP/opus-mt-en-de"`` and
            ``"Helsinki-NLP/opus-mt-de-en"``.
        local_files_only: only use models already on disk (no download).

    Returns:
        ``(augmenter, "")`` or ``(None, a message saying which model is missing and how to get it)``.
    """
    try:
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        def load(name: str) -> Callable[[list[str]], list[str]]:
            tok = AutoTokenizer.from_pretrained(name, local_files_only=local_files_only)
            model = AutoModelForSeq2SeqLM.from_pretrained(name, local_files_only=local_files_only).eval()

            def translate(texts: list[str]) -> list[str]:
                with torch.no_grad():
                    batch = tok(texts, return_tensors="pt", padding=True, truncation=True, max_length=256)
                    return tok.batch_decode(
                        model.generate(**batch, max_new_tokens=256), skip_special_tokens=True
                    )

            return translate

        return BackTranslation(load(forward_model), load(backward_model)), ""
    except Exception as err:  # noqa: BLE001 - any failure to load means "not available here"
        return None, (
            f"back-translation skipped: {forward_model!r} / {backward_model!r} are not available "
            f"offline ({type(err).__name__}); download them once with network access, or set "
            "local_files_only=False"
        )


def crop_sequence(seq: Sequence[int], ratio: float, generator: torch.Generator | None = None) -> list[int]:
    """A random contiguous crop of ``max(1, round(ratio * n))`` items."""
    _check_p(ratio, "ratio")
    n = len(seq)
    length = max(1, round(ratio * n)) if n else 0
    start = int(torch.randint(n - length + 1, (1,), generator=generator)) if n else 0
    return list(seq[start : start + length])


def mask_sequence(
    seq: Sequence[int], p: float, mask_id: int, generator: torch.Generator | None = None
) -> list[int]:
    """Replace each item by ``mask_id`` with probability ``p``."""
    _check_p(p)
    return [mask_id if r < p else s for s, r in zip(seq, _rand(len(seq), generator))]


def reorder_sequence(seq: Sequence[int], ratio: float, generator: torch.Generator | None = None) -> list[int]:
    """Shuffle a random contiguous window of ``round(ratio * n)`` items; the rest stays in place."""
    _check_p(ratio, "ratio")
    out, n = list(seq), len(seq)
    length = round(ratio * n)
    if length < 2:
        return out
    start = int(torch.randint(n - length + 1, (1,), generator=generator))
    window = out[start : start + length]
    out[start : start + length] = [window[i] for i in torch.randperm(length, generator=generator).tolist()]
    return out
