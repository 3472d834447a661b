"""What the workbook runs on: versions, device, threads (notebook 00 shows it)."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

import pandas as pd
import torch

from mtrec_utils import __version__
from mtrec_utils.core.config import get_device

PACKAGES = (
    "torch",
    "transformers",
    "accelerate",
    "peft",
    "pandas",
    "scikit-learn",
    "papermill",
    "ipywidgets",
)


def package_version(name: str) -> str:
    """The installed version of distribution ``name``, or ``"not installed"``."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def on_colab() -> bool:
    """True inside Google Colab."""
    return "google.colab" in sys.modules


def environment_report(device: str = "auto") -> pd.DataFrame:
    """One row per fact (Python, packages, device, GPU, threads) as a two-column DataFrame.

    Args:
        device: the ``DEVICE`` parameter, resolved as the notebooks resolve it.

    Returns:
        DataFrame with columns ``item`` and ``value``.
    """
    dev = get_device(device)
    rows = [
        ("python", platform.python_version()),
        ("platform", platform.platform(terse=True)),
        ("mtrec-utils", __version__),
        *[(name, package_version(name)) for name in PACKAGES],
        ("device", str(dev)),
        ("cuda available", str(torch.cuda.is_available())),
        ("gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"),
        ("cpu cores", str(os.cpu_count())),
        ("torch threads", str(torch.get_num_threads())),
        ("colab", str(on_colab())),
        ("HF_HUB_OFFLINE", os.environ.get("HF_HUB_OFFLINE", "unset")),
    ]
    return pd.DataFrame(rows, columns=["item", "value"])
