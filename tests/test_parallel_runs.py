"""Independent runs in worker processes give the serial numbers; the run memo trains a setting once."""

from __future__ import annotations

import os
import random

import numpy as np
import pandas as pd
import pytest
import torch
from test_joint import toy_bundle

from mtrec_utils.training import experiments
from mtrec_utils.training.experiments import RunMemo, default_workers, run_experiments, run_seeds

TASKS = ["rating", "like", "interest"]
SETTINGS = {
    "single rating": {"task_names": ["rating"]},
    "joint": {"task_names": TASKS},
    "joint uw": {"task_names": TASKS, "strategy": "uw"},
}


def rng_fingerprint(bundle) -> tuple:
    """Draws from every random generator a run uses (and moves them on)."""
    return (
        random.random(),
        float(np.random.rand()),
        torch.rand(3).tolist(),
        torch.rand(3, generator=bundle.generator).tolist(),
    )


def test_run_seeds_in_two_workers_gives_the_serial_rows_bit_for_bit(one_thread):
    bundle = toy_bundle()
    serial = run_seeds(bundle, SETTINGS, [0, 1], progress=False, epochs=2)
    after_serial = torch.get_rng_state(), bundle.generator.get_state(), np.random.get_state()[1].copy()
    parallel = run_seeds(bundle, SETTINGS, [0, 1], progress=False, workers=2, epochs=2)
    pd.testing.assert_frame_equal(
        serial.drop(columns="seconds"), parallel.drop(columns="seconds"), check_exact=True
    )
    # this process's random generators end where the serial loop left them
    assert torch.equal(torch.get_rng_state(), after_serial[0])
    assert torch.equal(bundle.generator.get_state(), after_serial[1])
    assert np.array_equal(np.random.get_state()[1], after_serial[2])


def test_run_experiments_in_workers_send_back_history_log_test_and_model(one_thread):
    bundle = toy_bundle()
    runs = [
        dict(bundle=bundle, task_names=TASKS, seed=0, epochs=2, cosine_every=2),
        dict(bundle=bundle, task_names=TASKS, seed=0, epochs=2, arch="mmoe", strategy="pcgrad"),
        dict(bundle=bundle, task_names=["like"], seed=1, epochs=2, schedule="round_robin"),
    ]
    serial = run_experiments(runs)
    parallel = run_experiments(runs, workers=2)
    for a, b in zip(serial, parallel, strict=True):
        assert a.test == b.test  # exact
        cols = [c for c in a.history.columns if c != "seconds"]
        pd.testing.assert_frame_equal(a.history[cols], b.history[cols], check_exact=True)
        assert a.history.attrs == b.history.attrs
        pd.testing.assert_frame_equal(a.log.frame(), b.log.frame(), check_exact=True)
        assert type(a.model) is type(b.model) and a.model.training == b.model.training
        sa, sb = a.model.state_dict(), b.model.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    # the rebuilt model predicts what the worker's model did
    tasks = bundle.select(TASKS)
    assert experiments.evaluate(parallel[0].model, tasks, bundle.test) == serial[0].test


def test_memo_trains_an_identical_setting_once(monkeypatch):
    calls = []
    real = experiments.run_experiment

    def counting(**run):
        calls.append((run["seed"], run.get("schedule", "joint")))
        return real(**run)

    monkeypatch.setattr(experiments, "run_experiment", counting)
    bundle = toy_bundle()
    memo = RunMemo()
    rows = run_seeds(bundle, SETTINGS, [0, 1], progress=False, memo=memo, epochs=1)
    assert len(calls) == 6 and memo.trained == 6 and memo.hits == 0
    # the same joint run asked for again, spelled differently (defaults explicit, a tuple of names)
    again = dict(bundle=bundle, task_names=tuple(TASKS), seed=0, epochs=1, schedule="joint", strategy="ew")
    other = dict(bundle=bundle, task_names=TASKS, seed=0, epochs=1, schedule="round_robin")
    results = run_experiments([again, other, again], memo=memo)
    after_list = rng_fingerprint(bundle)
    assert len(calls) == 7 and calls[-1] == (0, "round_robin")  # only the new setting trained
    assert memo.trained == 7 and memo.hits == 2 and len(memo) == 7
    assert results[0] is results[2]
    joint0 = rows[(rows.setting == "joint") & (rows.seed == 0)].set_index("metric")["value"].to_dict()
    assert results[0].test == joint0
    # a hit leaves the random generators where training the run again would have left them
    real(**again)
    retrained = rng_fingerprint(bundle)
    run_experiments([again], memo=memo)
    assert rng_fingerprint(bundle) == retrained == after_list


def test_memo_key_covers_every_setting_and_skips_live_runs():
    bundle, other_bundle = toy_bundle(), toy_bundle()
    base = dict(bundle=bundle, task_names=TASKS, seed=0)
    key = RunMemo.key(base)
    assert key == RunMemo.key({**base, "progress": True, "lr": 2e-3, "arch": "hard"})  # defaults
    for change in (
        {"seed": 1},
        {"task_names": TASKS[::-1]},
        {"bundle": other_bundle},
        {"arch": "mmoe"},
        {"strategy": "static", "strategy_kwargs": {"weights": [0.6, 0.2, 0.2]}},
        {"schedule": "proportional"},
        {"epochs": 6},
        {"lr": 1e-3},
        {"weight_decay": 1.0},
        {"cosine_every": 3},
        {"tb_dir": "tb/x"},
    ):
        assert RunMemo.key({**base, **change}) != key, change
    weights = {"strategy": "static", "strategy_kwargs": {"weights": [0.6, 0.2, 0.2]}}
    assert RunMemo.key({**base, **weights}) == RunMemo.key({**base, **weights})
    assert RunMemo.key({**base, "callbacks": [print]}) is None
    assert RunMemo.key({**base, "state_path": "state.pt"}) is None
    assert RunMemo.key({**base, "strategy_kwargs": {"generator": torch.Generator()}}) is None


@pytest.mark.parametrize("workers", [0, -1, 1.5, "2", True, None])
def test_bad_workers_values_are_refused(workers):
    bundle = toy_bundle()
    with pytest.raises(ValueError, match="workers="):
        run_seeds(bundle, SETTINGS, [0], progress=False, workers=workers, epochs=1)
    with pytest.raises(ValueError, match="workers="):
        run_experiments([dict(bundle=bundle, task_names=TASKS)], workers=workers)


def test_runs_that_report_to_this_process_need_one_worker():
    from mtrec_utils.training.schedules import TrainingLog

    bundle = toy_bundle()
    runs = [
        dict(bundle=bundle, task_names=TASKS, epochs=1, log=TrainingLog()),
        dict(bundle=bundle, task_names=TASKS),
    ]
    with pytest.raises(ValueError, match="workers=1"):
        run_experiments(runs, workers=2)


def test_default_workers():
    cores = len(os.sched_getaffinity(0))
    assert default_workers(device="cpu") == cores
    assert default_workers(jobs=1, device="cpu") == 1
    assert default_workers(jobs=1000, device="cpu") == cores
    assert default_workers(jobs=2, device="cpu") == min(2, cores)


def test_an_error_in_a_worker_reaches_the_caller():
    bundle = toy_bundle()
    runs = [
        dict(bundle=bundle, task_names=TASKS, epochs=1),
        dict(bundle=bundle, task_names=TASKS, strategy="nope"),
    ]
    with pytest.raises(ValueError, match="nope"):
        run_experiments(runs, workers=2)


def test_expected_cost_ranks_runs_by_their_work_per_epoch():
    bundle = toy_bundle()
    cost = experiments.expected_cost
    single = cost(dict(bundle=bundle, task_names=["rating"]))
    joint = cost(dict(bundle=bundle, task_names=TASKS))
    alternating = cost(dict(bundle=bundle, task_names=TASKS, schedule="round_robin"))
    mmoe = cost(dict(bundle=bundle, task_names=TASKS, arch="mmoe"))
    ple = cost(dict(bundle=bundle, task_names=TASKS, arch="ple"))
    sources = {t.data for t in bundle.select(TASKS)}
    assert len(sources) > 1  # the joint run reads more than one loader per step
    assert single < joint and alternating < joint
    assert joint < ple < mmoe
    assert mmoe == pytest.approx(joint * experiments.ARCH_COST["mmoe"])


def test_workers_start_the_longest_runs_first_and_return_results_in_the_given_order(monkeypatch):
    bundle = toy_bundle()
    runs = [
        dict(bundle=bundle, task_names=["rating"], seed=0, epochs=1),
        dict(bundle=bundle, task_names=TASKS, seed=0, epochs=1, arch="mmoe"),
        dict(bundle=bundle, task_names=TASKS, seed=0, epochs=1),
        dict(bundle=bundle, task_names=["like"], seed=1, epochs=1),
    ]
    started = []

    def in_order(job, keys, workers, on_result=None):  # the pool, run here, noting the start order
        out = []
        for key in keys:
            started.append(key)
            out.append(job(key))
            on_result(key, out[-1])
        return out

    monkeypatch.setattr(experiments, "map_in_workers", in_order)
    results = run_experiments(runs, workers=2)
    assert started == [1, 2, 0, 3]  # mmoe, joint, then the single-task runs in their given order
    serial = run_experiments(runs)
    assert [r.test for r in results] == [r.test for r in serial]
