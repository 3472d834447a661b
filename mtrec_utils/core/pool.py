"""Independent jobs (runs at other seeds or settings) trained at once in forked worker processes.

A two-core machine trains two small models at once in about the time of one: PyTorch's small
operations do not keep a second thread busy, a second process does. :func:`map_in_workers` runs
``[job(key) for key in keys]`` in ``workers`` processes forked from this one, each with one
PyTorch thread; the job, and whatever it reads (datasets, an encoder), is inherited by the fork,
and only the keys and the results cross between processes. A job that seeds everything it draws
from gives the same result in a worker as in this process, so pooled and serial runs agree exactly.

Linux only (``fork``) and CPU only (CUDA cannot be used in a forked process): elsewhere
``workers=1`` runs the jobs here, one after another (``training.experiments.default_workers``
picks the number).
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import sys
from collections.abc import Callable, Sequence
from typing import Any

import torch

_JOB: Callable[[Any], Any] | None = None  # the job of the running pool, inherited by its workers


def can_fork() -> bool:
    """Whether worker processes can be forked here (Linux)."""
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def check_workers(workers: int) -> int:
    """``workers`` if it is a positive integer, else a ValueError that says what is allowed."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(
            f"workers={workers!r} is not valid; it must be a positive integer "
            "(1: one run after another, 2 or more: runs trained at once in worker processes)"
        )
    return workers


def init_worker() -> None:
    """Set up a forked worker: one PyTorch thread, and output to the process's own streams.

    One thread also keeps the worker clear of the OpenMP thread pool it inherited from its parent
    (a forked process has no threads but the one that forked; one thread runs no parallel region).
    """
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    # a notebook kernel's sys.stdout sends to the front end over its sockets: not from a child
    sys.stdout = sys.__stdout__ or open(os.devnull, "w")  # noqa: SIM115
    sys.stderr = sys.__stderr__ or open(os.devnull, "w")  # noqa: SIM115


def map_in_workers(
    job: Callable[[Any], Any],
    keys: Sequence[Any],
    workers: int,
    on_result: Callable[[Any, Any], None] | None = None,
) -> list:
    """``[job(key) for key in keys]``, in ``workers`` forked processes (``workers=1``: here, in order).

    Args:
        job: called with one key; its result must pickle (tensors are sent as bytes, so a state
            dict of any size is fine). It must not use a GPU when ``workers > 1``.
        keys: one per job; they must pickle.
        workers: processes at once (at most ``len(keys)`` are started).
        on_result: called with ``(key, result)`` as each job finishes, in the order of ``keys``
            (e.g. to advance a progress bar).

    Returns:
        The results, in the order of ``keys``.

    Raises:
        ValueError: if ``workers`` is not a positive integer, or ``workers > 1`` off Linux.
    """
    check_workers(workers)
    keys = list(keys)
    if workers == 1 or len(keys) <= 1:
        out = []
        for key in keys:
            out.append(job(key))
            if on_result is not None:
                on_result(key, out[-1])
        return out
    if not can_fork():
        raise ValueError(f"workers > 1 needs Linux (fork); on {sys.platform} pass workers=1")
    global _JOB
    _JOB = job
    out = []
    try:
        with multiprocessing.get_context("fork").Pool(min(workers, len(keys)), init_worker) as pool:
            for key, pickled in zip(keys, pool.imap(_run_job, keys)):
                out.append(pickle.loads(pickled))
                if on_result is not None:
                    on_result(key, out[-1])
    finally:
        _JOB = None
    return out


def _run_job(key: Any) -> bytes:
    """Run the pool's job on ``key`` in a worker; the result pickled here with the plain pickler, so
    tensors travel as bytes (the pool's own pickler would hand each over as a shared-memory file)."""
    assert _JOB is not None, "map_in_workers sets the job before it forks"
    return pickle.dumps(_JOB(key), protocol=pickle.HIGHEST_PROTOCOL)
