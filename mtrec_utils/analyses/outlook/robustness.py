"""Robustness to perturbed input (鲁棒性, article section 8.3 item 6): metric vs perturbation strength.

Test reviews of the clothing ``recommended`` task (binary, AUC) are perturbed at strengths ``s``
(e.g. 0, 0.05, 0.1, 0.2, 0.3) in three ways:

- ``typo``: :func:`typo_chars`, each ASCII letter replaced with probability ``s`` by a neighbouring
  key of a QWERTY keyboard (the share of letters changed is ``s``);
- ``drop``: :func:`~mtrec_utils.data.augment.delete_words`, each word dropped with probability ``s``;
- ``synonym``: :func:`~mtrec_utils.data.augment.replace_synonyms`, each word that has neighbours in
  the encoder's token-embedding table replaced with probability ``s`` by one of them.

Three models (:data:`MODELS`), all with the workbook's :class:`~mtrec_utils.models.heads.TaskHead`
on mean-pooled MiniLM output and trained on the same reviews, are scored on every perturbed copy:

- ``frozen``: frozen embeddings + the head;
- ``lora``: LoRA on ``query``/``value`` (:func:`~mtrec_utils.models.peft_modes.adapt_encoder`) trained
  with the head for a few steps, as notebook 08 does (only the ``recommended`` loss here);
- ``augmented``: the frozen model trained on the reviews plus augmented copies of them
  (:class:`~mtrec_utils.data.augment.TextAugmenter` with all of ``TEXT_OPS``, as in notebook 05).
  Its training sees word drops and synonym swaps but no typos: ``typo`` is the unseen perturbation.

:func:`perturb_texts` gives every text its own generator, seeded from one: the same seed gives the
same texts, and what changes at a lower strength also changes at a higher one (common random
numbers, so the curves are smooth in ``s``). :func:`perturbation_area` sums each curve up in one
number, the trapezoid area under metric vs strength divided by the strength range: the average
metric over the range (a flat curve's area is its value; higher is more robust).
:func:`run_robustness` runs it all, sized by :data:`ROBUSTNESS_SIZES`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from mtrec_utils.core.config import check_choice, check_positive, resolve_profile
from mtrec_utils.core.metrics import auc
from mtrec_utils.data.augment import (
    TEXT_OPS,
    NeighbourSynonyms,
    TextAugmenter,
    augment_texts,
    delete_words,
    replace_synonyms,
)
from mtrec_utils.data.finetune_data import batches, clothing_splits
from mtrec_utils.data.tasks import clothing_tasks
from mtrec_utils.models.encoders import BUNDLED, Encoder, encode_texts, load_encoder, mean_pool
from mtrec_utils.models.heads import TaskHead, task_loss
from mtrec_utils.models.peft_modes import adapt_encoder

PERTURBATIONS = ("typo", "drop", "synonym")
MODELS = ("frozen", "lora", "augmented")
_ROWS, _SHIFT = ("qwertyuiop", "asdfghjkl", "zxcvbnm"), (0.0, 0.25, 0.75)  # key rows, their stagger
_POS = {c: (r, i + _SHIFT[r]) for r, row in enumerate(_ROWS) for i, c in enumerate(row)}
KEY_NEIGHBOURS = {  # keys at most one row and one key width away, e.g. s -> a, d, e, w, x, z
    c: sorted(d for d, (r2, x2) in _POS.items() if d != c and abs(r2 - r) <= 1 and abs(x2 - x) <= 1)
    for c, (r, x) in _POS.items()
}


def check_strength(strength: float, name: str = "strength") -> float:
    """Return ``strength`` if it is a number in [0, 1], else raise a ValueError that says so."""
    ok = isinstance(strength, (int, float)) and not isinstance(strength, bool)
    if not ok or not 0.0 <= strength <= 1.0:
        raise ValueError(f"{name}={strength!r} is not valid; it must be between 0 and 1 (for example 0.1)")
    return float(strength)


def typo_chars(text: str, p: float, generator: torch.Generator | None = None) -> str:
    """Replace each ASCII letter, with probability ``p``, by a random neighbouring keyboard key (case kept).

    Two uniforms are drawn per character whatever ``p`` is, so the same generator state changes
    the same positions, to the same keys, at every ``p`` (the changes at a higher ``p`` include those
    at a lower one). Other characters never change; the length never changes.
    """
    check_strength(p, "p")
    hit = torch.rand(len(text), generator=generator).tolist()
    pick = torch.rand(len(text), generator=generator).tolist()
    out = []
    for c, r, u in zip(text, hit, pick):
        near = KEY_NEIGHBOURS.get(c.lower()) if c.isascii() else None
        if near and r < p:
            key = near[int(u * len(near))]
            c = key.upper() if c.isupper() else key
        out.append(c)
    return "".join(out)


def perturb_text(
    text: str,
    perturbation: str,
    strength: float,
    generator: torch.Generator | None = None,
    synonyms: Callable[[str], list[str]] | None = None,
) -> str:
    """``text`` perturbed by one of :data:`PERTURBATIONS` at ``strength``.

    Args:
        text: one review.
        perturbation: ``typo`` (letters), ``drop`` or ``synonym`` (whitespace words).
        strength: probability in [0, 1] that each letter or word is touched.
        generator: the random source; the same state gives the same text.
        synonyms: ``word -> neighbours`` (e.g. a :class:`~mtrec_utils.data.augment.NeighbourSynonyms`),
            needed for ``synonym``.

    Returns:
        The perturbed text; ``text`` itself, whitespace included, when nothing changed (always at 0).

    Raises:
        ValueError: an unknown perturbation, a strength outside [0, 1], ``synonym`` without synonyms.
    """
    check_choice("perturbation", perturbation, PERTURBATIONS)
    check_strength(strength)
    if perturbation == "synonym" and synonyms is None:
        raise ValueError(
            "perturbation='synonym' needs synonyms; pass NeighbourSynonyms.from_encoder(encoder)"
        )
    if perturbation == "typo":
        return typo_chars(text, strength, generator)
    words = text.split()
    if perturbation == "drop":
        new = delete_words(words, strength, generator)
    else:
        new = replace_synonyms(words, strength, synonyms, generator)  # type: ignore[arg-type]
    return text if new == words else " ".join(new)


def perturb_texts(
    texts: Sequence[str],
    perturbation: str,
    strength: float,
    generator: torch.Generator | None = None,
    synonyms: Callable[[str], list[str]] | None = None,
) -> list[str]:
    """:func:`perturb_text` of every text, each with its own generator seeded from ``generator``.

    One seed per text is drawn first, so generators in the same state give the same texts at the
    same strength, and the positions changed at a lower strength are changed at a higher one too.
    """
    seeds = torch.randint(0, 2**62, (len(texts),), generator=generator).tolist()
    return [
        perturb_text(t, perturbation, strength, torch.Generator().manual_seed(s), synonyms)
        for t, s in zip(texts, seeds)
    ]


def prefetch_synonyms(synonyms: NeighbourSynonyms, texts: Sequence[str], chunk: int = 512) -> Callable:
    """``synonyms`` with the neighbours of every word of ``texts`` found at once, in a few matrix products.

    One (W, C) product is much faster than W table scans, one per word; the lists are those
    ``synonyms(word)`` gives. Returns a callable ``word -> neighbours`` (other words: ``synonyms``).
    """
    pos = {i: j for j, i in enumerate(synonyms.candidates.tolist())}  # vocabulary id -> row of the table
    words = {w.strip(".,!?;:'\"()").lower() for t in texts for w in t.split()}
    found = sorted((w, pos[synonyms.vocab[w]]) for w in words if synonyms.vocab.get(w, -1) in pos)
    known: dict[str, list[str]] = {}
    for start in range(0, len(found), chunk):
        part = found[start : start + chunk]
        rows = torch.tensor([j for _, j in part])
        sims = synonyms.table[rows] @ synonyms.table.T  # (W, C) cosine similarities
        sims[torch.arange(len(part)), rows] = -2.0  # never the word itself
        for (w, _), top in zip(part, sims.topk(synonyms.k, dim=1).indices.tolist()):
            known[w] = [synonyms.tokens[int(synonyms.candidates[j])] for j in top]
    return lambda word: known.get(word.lower()) or ([] if word.lower() in words else synonyms(word))


def perturbation_area(strengths: Sequence[float], values: Sequence[float]) -> float:
    """Trapezoid area under ``values`` vs ``strengths``, divided by the strength range.

    That is the curve's average over ``[min(s), max(s)]``: a flat curve's area equals its value.

    Raises:
        ValueError: fewer than two points, lengths that differ, a strength outside [0, 1], a repeated
            strength or a value that is not finite.
    """
    s, v = np.asarray(strengths, dtype=float), np.asarray(values, dtype=float)
    if s.ndim != 1 or s.shape != v.shape or len(s) < 2:
        raise ValueError(f"need >= 2 strengths and as many values; got {len(s)} and {len(v)}")
    for x in s:
        check_strength(float(x))
    if len(np.unique(s)) != len(s) or not np.isfinite(v).all():
        raise ValueError(f"strengths must differ and values be finite; got {s.tolist()} and {v.tolist()}")
    order = np.argsort(s)
    s, v = s[order], v[order]
    return float(((v[1:] + v[:-1]) / 2 * np.diff(s)).sum() / (s[-1] - s[0]))


@dataclass(frozen=True)
class RobustnessSizes:
    """What one profile's robustness run trains and perturbs.

    Attributes:
        max_train, max_test: training and test reviews (stratified split, drawn at random).
        max_length: token limit of every encoder pass.
        strengths: perturbation strengths, 0 first, increasing.
        head_epochs: epochs of the frozen and augmented heads.
        lora_steps, lora_batch_size, lora_rank: the LoRA model's budget.
        aug_copies, aug_p: augmented copies per training review and the share of words each touches.
        batch_size: head-training and encoding batch.
    """

    max_train: int
    max_test: int
    max_length: int
    strengths: tuple[float, ...]
    head_epochs: int
    lora_steps: int
    lora_batch_size: int = 16
    lora_rank: int = 8
    aug_copies: int = 1
    aug_p: float = 0.15
    batch_size: int = 64

    def check(self) -> None:
        """Raise ValueError naming the first bad size."""
        for name in ("max_train", "max_test", "max_length", "head_epochs", "lora_steps", "lora_batch_size"):
            check_positive(name, getattr(self, name), integer=True)
        check_positive("lora_rank", self.lora_rank, integer=True)
        check_positive("batch_size", self.batch_size, integer=True)
        check_strength(self.aug_p, "aug_p")
        s = [check_strength(x) for x in self.strengths]
        if len(s) < 2 or s[0] != 0 or any(b <= a for a, b in zip(s, s[1:])):
            raise ValueError(f"strengths={self.strengths!r} is not valid; give 0 and then increasing values")


ROBUSTNESS_SIZES = {  # CPU seconds on one thread, encoder loaded: smoke about 10, cpu about 110
    "smoke": RobustnessSizes(120, 60, 32, (0.0, 0.2), head_epochs=20, lora_steps=4),
    "cpu": RobustnessSizes(600, 300, 48, (0.0, 0.05, 0.1, 0.2, 0.3), head_epochs=30, lora_steps=40),
    "gpu": RobustnessSizes(
        4000, 1000, 128, (0.0, 0.05, 0.1, 0.2, 0.3), 30, 250, lora_batch_size=32, aug_copies=2
    ),
}


@dataclass
class RobustnessResult:
    """What :func:`run_robustness` measured.

    Attributes:
        table: one row per model, perturbation and strength: ``metric`` (test AUC of ``recommended``)
            and ``drop`` (the metric at strength 0 minus the metric at this strength; > 0 means worse).
        areas: ``{model: {perturbation: perturbation_area}}``.
        examples: the first test review, one row per perturbation, one column per strength.
        seconds: wall time of each model (training and scoring) and of the perturbing.
        sizes: the sizes used.
    """

    table: pd.DataFrame
    areas: dict[str, dict[str, float]]
    examples: pd.DataFrame
    seconds: dict[str, float]
    sizes: RobustnessSizes
    metric_name: str = "auc"
    area_table: pd.DataFrame = field(init=False)

    def __post_init__(self) -> None:
        self.area_table = pd.DataFrame(self.areas).T.rename_axis("model")
        self.area_table["mean"] = self.area_table.mean(axis=1)

    def metrics(self) -> dict[str, float]:
        """Names to record: ``clothing_perturb_area_<model>`` (mean over perturbations), per perturbation
        ``clothing_perturb_area_<model>_<perturbation>``, and ``clothing_perturb_auc_clean_<model>``."""
        out = {}
        for model, row in self.area_table.iterrows():
            out[f"clothing_perturb_area_{model}"] = float(row["mean"])
            out.update({f"clothing_perturb_area_{model}_{p}": float(row[p]) for p in self.areas[model]})
            clean = self.table[(self.table["model"] == model) & (self.table["strength"] == 0)]
            out[f"clothing_perturb_auc_clean_{model}"] = float(clean["metric"].iloc[0])
        return out


def train_head(emb: torch.Tensor, y: torch.Tensor, task, epochs: int, batch_size: int, generator) -> TaskHead:
    """A :class:`TaskHead` trained on (N, H) embeddings and (N,) labels with AdamW (lr 3e-3)."""
    head = TaskHead(emb.shape[1], task)
    head.init_from_labels(y.numpy())
    opt = torch.optim.AdamW(head.parameters(), lr=3e-3, weight_decay=0.01)
    head.train()
    for _ in range(epochs):
        for rows in torch.randperm(len(y), generator=generator).split(batch_size):
            loss = task_loss(task, head(emb[rows]), y[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return head.eval()


def train_lora(encoder: Encoder, ids, y: torch.Tensor, task, sizes: RobustnessSizes, generator) -> tuple:
    """A LoRA copy of ``encoder``'s model and a :class:`TaskHead` trained together on ``task``'s loss.

    Returns:
        ``(Encoder wrapping the adapted model, head)``, both in eval mode (head on the CPU).
    """
    model = adapt_encoder(encoder.model, "lora", sizes.lora_rank, sizes.lora_steps)
    head = TaskHead(encoder.dim, task)
    head.init_from_labels(y.numpy())
    head.to(encoder.device)
    lora = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": list(head.parameters()), "lr": 3e-3}, {"params": lora, "lr": 1e-3}]
    opt = torch.optim.AdamW(groups, weight_decay=0.01)
    pad = encoder.tokenizer.pad_token_id
    loader = batches(ids, {"y": y}, sizes.lora_batch_size, pad, generator, True)
    model.train()
    head.train()
    step = 0
    while step < sizes.lora_steps:
        for batch in loader:
            mask = batch["attention_mask"].to(encoder.device)  # (B, T)
            hidden = model(input_ids=batch["input_ids"].to(encoder.device), attention_mask=mask)
            loss = task_loss(
                task, head(mean_pool(hidden.last_hidden_state, mask)), batch["y"].to(mask.device)
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step >= sizes.lora_steps:
                break
    adapted = Encoder(f"{encoder.name}+lora", model.eval(), encoder.tokenizer, encoder.dim, encoder.device)
    return adapted, head.eval().cpu()


def train_model(
    name: str, encoder: Encoder, data, sizes: RobustnessSizes, synonyms, seed: int, embed
) -> tuple[Encoder, TaskHead]:
    """Train model ``name`` on ``data``'s training reviews.

    Args:
        name: one of :data:`MODELS`.
        data: a :class:`~mtrec_utils.data.finetune_data.ClothingSplits`.
        synonyms: the augmenter's synonym source.
        embed: ``(encoder, texts, cached) -> (N, H)`` mean-pooled embeddings.

    Returns:
        ``(the encoder whose embeddings the head reads, the head)``: ``encoder`` itself for ``frozen``
        and ``augmented``, its LoRA copy for ``lora``.
    """
    task = clothing_tasks(data.departments)["recommended"]
    y_train = data.labels["train"]["recommended"]
    with torch.random.fork_rng(devices=[]):  # the heads and LoRA start alike for a seed
        torch.manual_seed(seed)
        g = torch.Generator().manual_seed(seed)
        if name == "lora":
            return train_lora(encoder, data.ids["train"], y_train, task, sizes, g)
        train, y = embed(encoder, data.texts["train"], True), y_train
        if name == "augmented":
            augmenter = TextAugmenter(
                TEXT_OPS, sizes.aug_p, synonyms, encoder.tokenizer.mask_token or "[MASK]"
            )
            src, extra = augment_texts(data.texts["train"], augmenter, sizes.aug_copies, g)
            train = torch.cat([train, embed(encoder, extra, False)])
            y = torch.cat([y, y_train[torch.as_tensor(src, dtype=torch.long)]])
        return encoder, train_head(train, y, task, sizes.head_epochs, sizes.batch_size, g)


def run_robustness(
    profile: str = "auto",
    seed: int = 0,
    encoder: Encoder | None = None,
    *,
    models: Sequence[str] = MODELS,
    perturbations: Sequence[str] = PERTURBATIONS,
    sizes: RobustnessSizes | None = None,
    device: str = "auto",
    cache_dir: str | None = None,
    progress: bool = True,
) -> RobustnessResult:
    """Train ``models`` on clothing reviews; score them on the test reviews perturbed at every strength.

    Args:
        profile: sizes from :data:`ROBUSTNESS_SIZES` (``auto``: ``gpu`` with CUDA, else ``cpu``).
        seed: seeds the review draws, the perturbations (the same texts for every model), the
            augmentation, shuffling and the heads' and LoRA's initialisation; the caller's global
            random state is left alone.
        encoder: a loaded encoder (default: the bundled MiniLM on ``device``).
        models, perturbations: subsets of :data:`MODELS` and :data:`PERTURBATIONS`.
        sizes: overrides the profile's sizes.
        cache_dir: embedding cache of the unperturbed reviews (perturbed texts are never cached).
        progress: show a progress bar.

    Returns:
        A :class:`RobustnessResult`; record ``result.metrics()``.

    Raises:
        ValueError: an unknown model, perturbation or profile, or bad ``sizes`` (before any work).
    """
    for name in models:
        check_choice("model", name, MODELS)
    for name in perturbations:
        check_choice("perturbation", name, PERTURBATIONS)
    sizes = sizes or ROBUSTNESS_SIZES[resolve_profile(profile).name]
    sizes.check()
    encoder = encoder or load_encoder(BUNDLED, device=device)
    bar = tqdm(total=1 + len(models), desc="robustness", disable=not progress)
    clock = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    data = clothing_splits(encoder.tokenizer, sizes.max_train, sizes.max_test, sizes.max_length, gen)
    test = data.texts["test"]
    synonyms = prefetch_synonyms(NeighbourSynonyms.from_encoder(encoder), test)
    keys = [(p, s) for p in perturbations for s in sizes.strengths[1:]]
    texts = {k: perturb_texts(test, *k, torch.Generator().manual_seed(seed), synonyms) for k in keys}
    flat = test + [t for k in keys for t in texts[k]]  # clean, then each (perturbation, strength)
    seconds, memo = {"perturb": time.perf_counter() - clock}, {}
    bar.update(1)

    def embed(enc: Encoder, items: list[str], cached: bool) -> torch.Tensor:
        kw = dict(batch_size=sizes.batch_size, max_length=sizes.max_length, progress=False)
        return encode_texts(enc, items, cache_dir=cache_dir, use_cache=cached, **kw)

    y_test, rows = data.labels["test"]["recommended"].numpy(), []
    for name in models:
        bar.set_postfix_str(name)
        clock = time.perf_counter()
        enc, head = train_model(name, encoder, data, sizes, synonyms, seed, embed)
        if enc.name not in memo:  # frozen and augmented read the same test embeddings
            memo[enc.name] = torch.cat(
                [embed(enc, test, enc is encoder), embed(enc, flat[len(test) :], False)]
            )
        with torch.no_grad():
            scores = torch.sigmoid(head(memo[enc.name]).reshape(-1, len(test))).numpy()  # (1 + K, N)
        metric = {k: auc(y_test, scores[1 + j]) for j, k in enumerate(keys)}
        metric |= {(p, 0.0): auc(y_test, scores[0]) for p in perturbations}
        rows += [
            {"model": name, "perturbation": p, "strength": s, "metric": metric[(p, s)]}
            for p in perturbations
            for s in sizes.strengths
        ]
        seconds[name] = time.perf_counter() - clock
        bar.update(1)
    bar.close()
    table = pd.DataFrame(rows)  # strengths increase within each (model, perturbation), 0 first
    table["drop"] = table.groupby(["model", "perturbation"])["metric"].transform("first") - table["metric"]
    areas = {
        m: {
            p: perturbation_area(c["strength"], c["metric"]) for p, c in t.groupby("perturbation", sort=False)
        }
        for m, t in table.groupby("model", sort=False)
    }
    examples = {s: {p: (texts[(p, s)] if s else test)[0] for p in perturbations} for s in sizes.strengths}
    frame = pd.DataFrame(examples).rename_axis("perturbation")
    return RobustnessResult(table, areas, frame, seconds, sizes)
