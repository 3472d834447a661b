"""Offline text augmenters, back-translation loading, and interaction-sequence augmenters."""

from __future__ import annotations

import pytest
import torch

from mtrec_utils.data.augment import (
    BackTranslation,
    NeighbourSynonyms,
    TextAugmenter,
    augment_texts,
    crop_sequence,
    delete_words,
    load_back_translation,
    mask_sequence,
    mask_words,
    reorder_sequence,
    replace_synonyms,
    swap_words,
)

WORDS = "this dress fits well and the fabric feels soft".split()


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def synonyms() -> NeighbourSynonyms:
    """A 6-token vocabulary whose embeddings put 'soft' next to 'smooth' and 'dress' next to 'gown'."""
    vocab = {"[MASK]": 0, "soft": 1, "smooth": 2, "dress": 3, "gown": 4, "##ly": 5}
    emb = torch.tensor([[0, 0, 9.0], [1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0.1, 0.9, 0], [1, 0, 0.01]])
    return NeighbourSynonyms(emb, vocab, k=1)


def test_text_ops_are_deterministic_given_the_generator():
    for op in (
        lambda g: mask_words(WORDS, 0.5, g),
        lambda g: delete_words(WORDS, 0.5, g),
        lambda g: swap_words(WORDS, 2, g),
    ):
        assert op(gen(3)) == op(gen(3))
        assert any(op(gen(3)) != op(gen(s)) for s in range(4, 10))


def test_mask_delete_swap_do_what_they_say():
    masked = mask_words(WORDS, 0.5, gen(), mask_token="[M]")
    assert len(masked) == len(WORDS) and 0 < masked.count("[M]") < len(WORDS)
    assert all(m in ("[M]", w) for m, w in zip(masked, WORDS))
    kept = delete_words(WORDS, 0.5, gen())
    assert 0 < len(kept) < len(WORDS) and all(w in WORDS for w in kept)
    assert len(delete_words(WORDS, 1.0, gen())) == 1  # never deletes every word
    swapped = swap_words(WORDS, 3, gen())
    assert sorted(swapped) == sorted(WORDS)
    assert mask_words(WORDS, 0.0, gen()) == WORDS and swap_words(["one"], 5, gen()) == ["one"]
    with pytest.raises(ValueError, match="p=1.5"):
        mask_words(WORDS, 1.5)


def test_neighbour_synonyms_come_from_the_token_embedding_table():
    syn = synonyms()
    assert syn("soft") == ["smooth"] and syn("Dress") == ["gown"]
    assert syn("zebra") == [] and syn("[MASK]") == []  # unknown words and special tokens have none
    out = replace_synonyms(["Soft,", "dress", "fits"], 1.0, syn, gen())
    assert out == ["Soft,".replace("Soft", "smooth"), "gown", "fits"]


def test_text_augmenter_and_copies():
    aug = TextAugmenter(("mask", "delete", "swap", "synonym"), p=0.3, synonyms=synonyms())
    text = " ".join(WORDS)
    assert aug(text, gen(1)) == aug(text, gen(1))
    sources, texts = augment_texts(["a b c d", "e f g h"], aug, copies=3, generator=gen())
    assert sources == [0, 0, 0, 1, 1, 1] and len(texts) == 6
    with pytest.raises(ValueError, match="synonyms=None"):
        TextAugmenter(("synonym",))
    with pytest.raises(ValueError, match="ops='shout'"):
        TextAugmenter(("shout",))
    with pytest.raises(ValueError, match="copies=-1"):
        augment_texts(["a"], aug, copies=-1)


def test_back_translation_composes_and_is_skipped_when_missing():
    bt = BackTranslation(lambda xs: [x.upper() for x in xs], lambda xs: [x[::-1] for x in xs])
    assert bt("abc") == "CBA"
    augmenter, reason = load_back_translation("no-such-org/no-such-model", "no-such-org/other")
    assert augmenter is None
    assert "no-such-org/no-such-model" in reason and "offline" in reason


def test_sequence_ops():
    seq = list(range(10))
    crop = crop_sequence(seq, 0.5, gen())
    assert len(crop) == 5 and crop == list(range(crop[0], crop[0] + 5))
    masked = mask_sequence(seq, 0.5, mask_id=-1, generator=gen())
    assert len(masked) == 10 and all(m in (-1, s) for m, s in zip(masked, seq))
    re = reorder_sequence(seq, 0.5, gen(2))
    assert sorted(re) == seq and sum(a != b for a, b in zip(re, seq)) <= 5
    assert crop_sequence(seq, 0.5, gen(4)) == crop_sequence(seq, 0.5, gen(4))
    assert crop_sequence([], 0.5, gen()) == [] and reorder_sequence([1], 1.0, gen()) == [1]
    with pytest.raises(ValueError, match="ratio=2"):
        crop_sequence(seq, 2)
