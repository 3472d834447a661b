"""Profiles, parameter checks, device and seed helpers.

A *profile* sizes every notebook at once. It is defined here and nowhere else:

- ``smoke``: tiny slices, so the whole workbook executes in CI on 2 CPU cores in minutes.
- ``cpu``:   full data, CPU-sized: the encoder is frozen and its embeddings cached.
- ``gpu``:   full fine-tuning of the encoder, sized for one Colab-class GPU (T4, 16 GB).
- ``auto``:  ``gpu`` when CUDA is present, else ``cpu``.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

PROFILE_NAMES = ("smoke", "cpu", "gpu", "auto")
DEVICE_NAMES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class Profile:
    """Sizes shared by every notebook (one instance per profile name).

    Attributes:
        name: ``smoke``, ``cpu`` or ``gpu``.
        description: one line for people.
        encoder_mode: ``frozen`` (cached embeddings) or ``full`` (fine-tuning).
        max_length: token limit for encoder inputs.
        batch_size: training batch size.
        epochs: maximum training epochs (early stopping may stop sooner).
        num_seeds: seeds for mean +- std comparisons.
        max_train_ratings: cap on MovieLens training rows (``None`` = all 80,000 of u1.base).
        max_test_ratings: cap on MovieLens test rows (``None`` = all 20,000 of u1.test).
        max_clothing_reviews: cap on clothing reviews (``None`` = all 23,486).
        max_eval_users: cap on users in ranking evaluation (``None`` = all).
        lr: learning rate of task heads.
        encoder_lr: learning rate of the encoder when it is fine-tuned.
        patience: early-stopping patience in epochs.
    """

    name: str
    description: str
    encoder_mode: str
    max_length: int
    batch_size: int
    epochs: int
    num_seeds: int
    max_train_ratings: int | None
    max_test_ratings: int | None
    max_clothing_reviews: int | None
    max_eval_users: int | None
    lr: float
    encoder_lr: float
    patience: int

    def to_dict(self) -> dict[str, Any]:
        """The profile as a plain dict (for display and metrics files)."""
        return asdict(self)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        description="tiny slices; the whole workbook runs on 2 CPU cores in minutes (CI)",
        encoder_mode="frozen",
        max_length=64,
        batch_size=256,
        epochs=2,
        num_seeds=1,
        max_train_ratings=8_000,
        max_test_ratings=2_000,
        max_clothing_reviews=2_000,
        max_eval_users=100,
        lr=3e-3,
        encoder_lr=5e-5,
        patience=1,
    ),
    "cpu": Profile(
        name="cpu",
        description="full data, frozen encoder with cached embeddings (no GPU needed)",
        encoder_mode="frozen",
        max_length=128,
        batch_size=512,
        epochs=20,
        num_seeds=3,
        max_train_ratings=None,
        max_test_ratings=None,
        max_clothing_reviews=None,
        max_eval_users=None,
        lr=2e-3,
        encoder_lr=5e-5,
        patience=3,
    ),
    "gpu": Profile(
        name="gpu",
        description=(
            "full data; the encoder fine-tuned (mixed precision) where a notebook compares fine-tuning, "
            "cached embeddings elsewhere (one T4-class GPU)"
        ),
        encoder_mode="full",
        max_length=128,
        batch_size=128,
        epochs=3,
        num_seeds=3,
        max_train_ratings=None,
        max_test_ratings=None,
        max_clothing_reviews=None,
        max_eval_users=None,
        lr=1e-3,
        encoder_lr=3e-5,
        patience=1,
    ),
}


def check_choice(param: str, value: Any, choices: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise a ValueError naming all three.

    Args:
        param: the parameter's name, as the user typed it (e.g. ``"PROFILE"``).
        value: the value given.
        choices: the valid values.
    """
    choices = tuple(choices)
    if value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{param}={value!r} is not valid; choose one of: {valid}")
    return value


def check_positive(param: str, value: Any, *, integer: bool = False) -> Any:
    """Return ``value`` if it is a finite number > 0 (an int when ``integer``), else raise ValueError."""
    kind = "a positive integer" if integer else "a positive number"
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{param}={value!r} is not valid; it must be {kind} (for example 1)")
    return value


def cuda_available() -> bool:
    """True when PyTorch sees a CUDA device."""
    return torch.cuda.is_available()


def resolve_profile(name: str | Profile = "auto") -> Profile:
    """Return the :class:`Profile` for ``name`` (``auto`` = ``gpu`` with CUDA, else ``cpu``).

    Raises:
        ValueError: for an unknown name, listing the valid ones.
    """
    if isinstance(name, Profile):
        return name
    check_choice("PROFILE", name, PROFILE_NAMES)
    if name == "auto":
        name = "gpu" if cuda_available() else "cpu"
    return PROFILES[name]


def get_device(name: str = "auto") -> torch.device:
    """Return the torch device for ``name``; ``auto`` picks CUDA, then Apple MPS, then CPU.

    Raises:
        ValueError: for an unknown name or a device that is not present here.
    """
    if isinstance(name, torch.device):
        return name
    check_choice("DEVICE", name, DEVICE_NAMES)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("DEVICE='cuda' but PyTorch sees no CUDA GPU here; use DEVICE='auto' or 'cpu'")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("DEVICE='mps' but Apple MPS is not available here; use DEVICE='auto' or 'cpu'")
    return torch.device(name)


def set_seed(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices); return a CPU ``torch.Generator`` seeded alike.

    Nothing in the package seeds at import time: call this once at the top of a notebook and
    pass the returned generator to anything random.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"SEED={seed!r} is not valid; it must be a non-negative integer (for example 0)")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    g = torch.Generator()
    g.manual_seed(seed)
    return g
