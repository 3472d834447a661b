"""Jobs in forked workers: the same results, in the same order, as one after another."""

from __future__ import annotations

import os
import sys

import pytest
import torch

from mtrec_utils.core.pool import check_workers, map_in_workers


def seeded_job(key: int) -> dict:
    """Draws from a generator seeded by its key, and says which process ran it."""
    g = torch.Generator().manual_seed(key)
    return {
        "key": key,
        "draw": torch.randn(1000, generator=g),
        "pid": os.getpid(),
        "threads": torch.get_num_threads(),
    }


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forked workers need Linux")
def test_workers_give_the_serial_results_in_the_order_of_the_keys():
    keys = [3, 1, 4, 1, 5]
    seen = []
    pooled = map_in_workers(seeded_job, keys, workers=2, on_result=lambda key, result: seen.append(key))
    serial = map_in_workers(seeded_job, keys, workers=1)
    assert [r["key"] for r in pooled] == keys and seen == keys
    for p, s in zip(pooled, serial):
        assert torch.equal(p["draw"], s["draw"])  # bit for bit
    assert all(r["pid"] != os.getpid() and r["threads"] == 1 for r in pooled)  # ran in one-thread workers
    assert all(r["pid"] == os.getpid() for r in serial)


def test_one_worker_runs_here_and_reports_each_result():
    seen = []
    out = map_in_workers(lambda k: k * k, [2, 3], workers=1, on_result=lambda k, r: seen.append((k, r)))
    assert out == [4, 9] and seen == [(2, 4), (3, 9)]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_workers_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match="positive integer"):
        check_workers(bad)
    with pytest.raises(ValueError, match="positive integer"):
        map_in_workers(seeded_job, [1, 2], workers=bad)
