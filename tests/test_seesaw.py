"""The seesaw helpers of notebook 04: the affinity verdict, the architecture pick, the stored study
(key, reuse, atomic write, corrupted files), the study sizes and the targets, on hand-made inputs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import mtrec_utils.core.io as core_io
from mtrec_utils.data import GENRES
from mtrec_utils.data.datasets import TensorDictDataset, make_loader
from mtrec_utils.data.tasks import movielens_tasks
from mtrec_utils.training import seesaw
from mtrec_utils.training.bundles import TaskBundle
from mtrec_utils.training.experiments import RunResult, gain_table
from mtrec_utils.training.schedules import TrainingLog
from mtrec_utils.training.tuning import pareto_mask

TASKS = ["rating", "like", "interest"]
METRICS = {"rating": "rating/rmse", "like": "like/auc", "interest": "interest/ndcg@10"}
GOALS = {"val/rating/rmse": "minimize", "val/like/auc": "maximize", "val/interest/ndcg@10": "maximize"}


# --- hand-made inputs -------------------------------------------------------------------------------


def rows_of(values: dict[str, dict[str, list[float]]]) -> pd.DataFrame:
    """run_seeds-style rows: ``{setting: {metric: [value per seed]}}``."""
    rows = [
        {"setting": s, "seed": i, "metric": m, "value": v, "seconds": 1.0, "best_epoch": 1}
        for s, metrics in values.items()
        for m, vs in metrics.items()
        for i, v in enumerate(vs)
    ]
    return pd.DataFrame(rows)


def gains(rating: float, like: float, ndcg: float) -> pd.DataFrame:
    """A gain table of single-task (0.93, 0.78, 0.42, two seeds) against joint with the given means."""
    single = {"rating/rmse": [0.93, 0.93], "like/auc": [0.78, 0.78], "interest/ndcg@10": [0.42, 0.42]}
    values = {f"single {t}": {METRICS[t]: single[METRICS[t]]} for t in TASKS}
    values["joint"] = {"rating/rmse": [rating] * 2, "like/auc": [like] * 2, "interest/ndcg@10": [ndcg] * 2}
    return gain_table(rows_of(values), {t: f"single {t}" for t in TASKS}, "joint")


def affinity(received: list[float]) -> pd.DataFrame:
    """A (3, 3) affinity matrix whose off-diagonal column means are ``received`` (diagonal 9: ignored)."""
    z = np.array([received] * 3, dtype=float)
    np.fill_diagonal(z, 9.0)
    return pd.DataFrame(z, index=TASKS, columns=TASKS)


# --- the affinity verdict ------------------------------------------------------------------------------


def test_received_affinity_is_the_column_mean_without_the_diagonal():
    z = pd.DataFrame([[1.0, 0.2, -0.1], [0.4, 1.0, 0.3], [0.0, 0.6, 1.0]], index=TASKS, columns=TASKS)
    got = seesaw.received_affinity(z)
    assert got.to_dict() == pytest.approx({"rating": 0.2, "like": 0.4, "interest": 0.1})


def test_the_lowest_received_affinity_on_the_hurt_task_predicts_the_harm():
    table = gains(0.92, 0.80, 0.36)  # joint helps rating and like, hurts interest
    verdict = seesaw.affinity_verdict(affinity([0.03, 0.02, -0.01]), table, METRICS)
    assert verdict.predicted == "interest" and verdict.hurt == ["interest"] and verdict.predicts_harm
    assert "predicts the harm" in verdict.sentence and "'interest'" in verdict.sentence
    assert verdict.table.loc["interest", "gain"] == pytest.approx(-0.06)
    assert verdict.table.loc["rating", "gain"] == pytest.approx(0.01)  # lower RMSE: a positive gain
    assert verdict.table.loc["interest", "relative gain"] == pytest.approx(-0.06 / 0.42)
    assert verdict.table.loc["like", "received affinity"] == pytest.approx(0.02)


def test_an_affinity_that_points_at_another_task_does_not_predict_it():
    verdict = seesaw.affinity_verdict(affinity([-0.01, 0.02, 0.03]), gains(0.92, 0.80, 0.36), METRICS)
    assert verdict.predicted == "rating" and verdict.hurt == ["interest"] and not verdict.predicts_harm
    assert "does not predict" in verdict.sentence


def test_no_hurt_task_means_nothing_to_predict():
    verdict = seesaw.affinity_verdict(affinity([0.03, 0.02, -0.01]), gains(0.92, 0.80, 0.43), METRICS)
    assert verdict.hurt == [] and not verdict.predicts_harm
    assert "no harm to predict" in verdict.sentence


def test_bad_affinity_inputs_are_refused():
    table = gains(0.92, 0.80, 0.36)
    with pytest.raises(ValueError, match="square"):
        seesaw.affinity_verdict(affinity([0.1, 0.2, 0.3]).iloc[:2], table, METRICS)
    with pytest.raises(ValueError, match="different tasks"):
        seesaw.received_affinity(affinity([0.1, 0.2, 0.3]).set_axis(["a", "b", "c"], axis=1))
    with pytest.raises(ValueError, match="not in both"):
        seesaw.affinity_verdict(
            affinity([0.1, 0.2, 0.3]), table, {"rating": "rating/rmse", "like": "like/auc"}
        )
    with pytest.raises(ValueError, match="not in both"):
        seesaw.affinity_verdict(affinity([0.1, 0.2, 0.3]), table, METRICS | {"interest": "interest/mrr"})
    with pytest.raises(ValueError, match="no column 'best gain'"):
        seesaw.affinity_verdict(affinity([0.1, 0.2, 0.3]), table, METRICS, joint="best")


# --- architectures ------------------------------------------------------------------------------------


def fake_result(values: list[float], best_epoch: int = 2) -> RunResult:
    """A run whose history's best epoch has the validation ``values`` (in GOALS order)."""
    history = pd.DataFrame([dict(zip(GOALS, [9.0, 0.0, 0.0]), epoch=1), dict(zip(GOALS, values), epoch=2)])
    history.attrs["best_epoch"] = best_epoch
    return RunResult(history, TrainingLog(), {}, 1.0, torch.nn.Linear(1, 1))


def test_validation_means_and_the_architecture_with_the_most_wins():
    runs = {
        "hard": [fake_result([0.95, 0.79, 0.40]), fake_result([0.93, 0.79, 0.40])],
        "ple": [fake_result([0.95, 0.78, 0.43]), fake_result([0.95, 0.78, 0.43])],
    }
    means = seesaw.validation_means(runs, GOALS)
    assert means.loc["hard"].tolist() == pytest.approx([0.94, 0.79, 0.40])
    arch, why = seesaw.pick_architecture(means, GOALS)  # hard: rmse and auc; ple: ndcg
    assert arch == "hard" and "hard 2, ple 1" in why
    means.loc["hard", "val/like/auc"] = 0.78
    means.loc["ple", "val/like/auc"] = 0.80
    assert seesaw.pick_architecture(means, GOALS)[0] == "ple"
    even = means.drop(columns=["val/like/auc"])  # one win each: the tie goes to prefer
    two = {k: v for k, v in GOALS.items() if k != "val/like/auc"}
    assert seesaw.pick_architecture(even, two, prefer="ple")[0] == "ple"
    assert seesaw.pick_architecture(even, two, prefer="hard")[0] == "hard"
    with pytest.raises(ValueError, match="prefer='mmoe'"):
        seesaw.pick_architecture(means, GOALS, prefer="mmoe")
    with pytest.raises(ValueError, match="not in the validation table"):
        seesaw.pick_architecture(means, GOALS, candidates=("hard", "mmoe"), prefer="hard")


def toy_bundle(n: int = 40, batch: int = 8, scale: float = 1.0) -> TaskBundle:
    """A small MovieLens-shaped bundle: the three tasks, loaders of random-free data, ID towers."""
    tasks = {k: v for k, v in movielens_tasks(GENRES).items() if k != "genres"}
    users, items = torch.arange(n) % 5, torch.arange(n) % 7
    ratings = TensorDictDataset(
        user=users, item=items, rating=scale * (1.0 + torch.arange(n) % 5), like=torch.ones(n)
    )
    pairs = TensorDictDataset(user=users[: n // 2], item=items[: n // 2], interest=torch.ones(n // 2))
    return TaskBundle(
        name="toy",
        tasks=tasks,
        train={"ratings": make_loader(ratings, batch, True), "interactions": make_loader(pairs, batch, True)},
        val={"ratings": make_loader(ratings, 4 * batch)},
        test={"ratings": make_loader(ratings, 4 * batch)},
        texts={},
        tower_kwargs={"user": {"num_entities": 5}, "item": {"num_entities": 7}},
        generator=torch.Generator().manual_seed(0),
        dim=8,
    )


def test_parameter_counts_leave_the_random_state_alone_and_ple_matches_mmoe():
    archs = {"hard": {}, "mmoe": {"arch": "mmoe"}, "ple": {"arch": "ple", "arch_kwargs": {"num_levels": 1}}}
    before = torch.get_rng_state()
    counts = seesaw.parameter_counts(toy_bundle(), TASKS, archs)
    assert torch.equal(torch.get_rng_state(), before)
    assert list(counts.index) == list(archs) and (counts["shared"] <= counts["trainable"]).all()
    assert counts.loc["ple", "trainable"] == pytest.approx(counts.loc["mmoe", "trainable"], rel=0.25)


def test_affinity_every_gives_about_per_epoch_measurements():
    bundle = toy_bundle(n=96, batch=4)  # ratings: 24 batches, interactions: 12 -> 24 joint steps
    assert seesaw.affinity_every(bundle, TASKS, per_epoch=6) == 4
    assert seesaw.affinity_every(bundle, ["interest"], per_epoch=6) == 2
    assert seesaw.affinity_every(bundle, TASKS, per_epoch=100) == 1
    with pytest.raises(ValueError, match="per_epoch"):
        seesaw.affinity_every(bundle, TASKS, per_epoch=0)
    with pytest.raises(ValueError, match="unknown task"):
        seesaw.affinity_every(bundle, ["genres"])


# --- study sizes, keys and the stored study ---------------------------------------------------------


def test_study_size_per_profile():
    smoke, cpu, gpu = (seesaw.study_size(p) for p in ("smoke", "cpu", "gpu"))
    assert smoke.n_trials <= 6 and smoke.epochs == 1  # a handful of short trials: seconds
    assert cpu.n_trials >= 16 and 1 < cpu.epochs < 20 and cpu.population_size < cpu.n_trials
    assert gpu.n_trials >= smoke.n_trials
    assert seesaw.study_size("auto") in (cpu, gpu)
    with pytest.raises(ValueError, match="PROFILE='tiny'"):
        seesaw.study_size("tiny")


def test_bundle_fingerprint_follows_the_data_a_study_reads_only():
    a, b = toy_bundle(), toy_bundle()
    assert seesaw.bundle_fingerprint(a) == seesaw.bundle_fingerprint(b)
    next(iter(b.train["ratings"]))  # shuffling moves the generator: not data
    b.test = {}  # a study never reads the test split
    assert seesaw.bundle_fingerprint(a) == seesaw.bundle_fingerprint(b)
    assert seesaw.bundle_fingerprint(toy_bundle(scale=2.0)) != seesaw.bundle_fingerprint(a)
    assert seesaw.bundle_fingerprint(toy_bundle(batch=4)) != seesaw.bundle_fingerprint(a)


def test_study_key_changes_with_code_data_profile_seed_and_settings(monkeypatch):
    bundle = toy_bundle()
    size = seesaw.study_size("smoke")

    def key(**changes):
        args = dict(
            bundle=bundle, task_names=TASKS, profile="smoke", seed=0, size=size, common={"arch": "ple"}
        )
        return seesaw.study_key(**(args | changes))

    first = key()
    assert first == key() and len(first) == 64
    others = [
        key(seed=1),
        key(profile="cpu"),
        key(task_names=TASKS[::-1]),
        key(size=seesaw.study_size("cpu")),
        key(common={"arch": "hard"}),
        key(bundle=toy_bundle(scale=2.0)),
    ]
    monkeypatch.setattr(seesaw, "code_fingerprint", lambda roots=seesaw.CODE_ROOTS: "edited")
    others.append(key())
    assert len({first, *others}) == len(others) + 1


def test_the_code_key_covers_what_a_study_imports_and_nothing_else():
    package = Path(seesaw.__file__).resolve().parents[1]
    files = {p.relative_to(package).as_posix() for p in seesaw.code_files()}
    for needed in (
        "__init__.py",
        "core/config.py",
        "data/__init__.py",
        "data/datasets.py",
        "data/movielens.py",
        "models/sharing.py",
        "models/implicit.py",
        "weighting/pcgrad.py",
        "training/loop.py",
        "training/tuning.py",
        "training/seesaw.py",
    ):
        assert needed in files, needed
    assert not [f for f in files if f.split("/")[0] in ("viz", "workbook", "analyses")]
    assert "data/ads_sim.py" not in files  # another notebook's code: no reason to rerun a study
    assert seesaw.code_fingerprint() == seesaw.code_fingerprint()
    assert seesaw.code_fingerprint(("mtrec_utils.core.io",)) != seesaw.code_fingerprint()
    assert [p.name for p in seesaw.code_files(("mtrec_utils.core.io",))] == [
        "__init__.py",
        "__init__.py",
        "io.py",
    ]


def fake_study() -> pd.DataFrame:
    rows = [
        (0, 0.90, 0.70, 0.10, 3e-3, 0.5, 0.2, 0.3, 0.5),
        (1, 0.95, 0.78, 0.22, 1e-3, 1.0, 0.4, 0.3, 0.3),
        (2, 1.00, 0.80, 0.25, 2e-3, 0.1, 0.1, 0.1, 0.8),
        (3, 1.00, 0.70, 0.10, 5e-3, 2.0, 0.3, 0.3, 0.4),
    ]
    columns = ["number", *GOALS, "lr", "weight_decay", *(f"weight/{t}" for t in TASKS)]
    frame = pd.DataFrame(rows, columns=columns)
    frame.insert(1, "state", "COMPLETE")
    frame["pareto"] = pareto_mask(frame[list(GOALS)].to_numpy(), list(GOALS.values()))
    frame.attrs["objectives"] = dict(GOALS)
    return frame


class Counter:
    def __init__(self):
        self.calls = 0

    def __call__(self) -> pd.DataFrame:
        self.calls += 1
        return fake_study()


def test_a_stored_study_is_reused_for_the_same_key_and_rerun_for_another(tmp_path):
    run = Counter()
    frame, status = seesaw.cached_study(tmp_path, "ml", "a" * 64, run)
    assert status == "ran" and run.calls == 1
    files = list(tmp_path.iterdir())
    assert [f.name for f in files] == [f"ml-{'a' * 16}.csv"]
    again, status = seesaw.cached_study(tmp_path, "ml", "a" * 64, run)
    assert status == "reused" and run.calls == 1
    pd.testing.assert_frame_equal(again, fake_study(), check_dtype=False)
    assert again.attrs["objectives"] == GOALS and again["pareto"].dtype == bool
    assert seesaw.cached_study(tmp_path, "ml", "b" * 64, run)[1] == "ran" and run.calls == 2
    assert seesaw.cached_study(tmp_path, "ml", "a" * 64, run, mode="run")[1] == "ran" and run.calls == 3
    assert seesaw.cached_study(tmp_path, "ml", "a" * 64, run, mode="skip") == (None, "skipped")
    assert run.calls == 3
    with pytest.raises(ValueError, match="TUNE='always'.*'auto', 'run', 'skip'"):
        seesaw.cached_study(tmp_path, "ml", "a" * 64, run, mode="always")


def test_a_study_shipped_in_a_read_only_folder_is_reused_and_never_rewritten(tmp_path):
    shipped, out = tmp_path / "shipped", tmp_path / "out"
    run = Counter()
    seesaw.cached_study(shipped, "ml", "a" * 64, run)  # as committed with the code
    shipped.chmod(0o555)
    try:
        frame, status = seesaw.cached_study(out, "ml", "a" * 64, run, stored=[tmp_path / "none", shipped])
        assert status == f"reused from {shipped}" and run.calls == 1 and not out.exists()
        pd.testing.assert_frame_equal(frame, fake_study(), check_dtype=False)
        # another key: the shipped study is not used; the new one is written to `folder`, not there
        assert seesaw.cached_study(out, "ml", "b" * 64, run, stored=[shipped])[1] == "ran"
        assert run.calls == 2 and [f.name for f in out.iterdir()] == [f"ml-{'b' * 16}.csv"]
        # mode="run" ignores what is shipped
        assert seesaw.cached_study(out, "ml", "a" * 64, run, mode="run", stored=[shipped])[1] == "ran"
    finally:
        shipped.chmod(0o755)


def test_the_shipped_study_folder_is_per_profile():
    assert seesaw.stored_study_folder("cpu").parts[-4:] == ("results", "cpu", "seesaw", "tuning")
    assert seesaw.stored_study_folder("smoke").parts[-3] == "smoke"


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: text[: len(text) // 3],  # cut in the header
        lambda text: "number,state\n1,COMPLETE\n",  # no header
        lambda text: text.replace("pareto", "front"),  # a column missing
        lambda text: text.replace("True", "maybe"),  # pareto not boolean
        lambda text: text.split("\n", 1)[0] + "\n" + '"unclosed,\n',  # not CSV
        lambda text: "\x00\xff garbage",
    ],
)
def test_a_corrupted_study_is_ignored_with_a_warning_and_run_again(tmp_path, damage):
    run = Counter()
    seesaw.cached_study(tmp_path, "ml", "a" * 64, run)
    path = tmp_path / f"ml-{'a' * 16}.csv"
    path.write_text(damage(path.read_text()))
    with pytest.warns(UserWarning, match="unreadable stored study"):
        frame, status = seesaw.cached_study(tmp_path, "ml", "a" * 64, run)
    assert status == "ran" and run.calls == 2 and frame["pareto"].any()
    assert seesaw.cached_study(tmp_path, "ml", "a" * 64, run)[1] == "reused"  # rewritten whole


def test_a_file_for_another_key_at_the_same_name_is_not_trusted(tmp_path):
    seesaw.save_study(tmp_path / f"ml-{'a' * 16}.csv", fake_study(), "a" * 16 + "b" * 48)
    run = Counter()
    with pytest.warns(UserWarning, match="other code, data or settings"):
        assert seesaw.cached_study(tmp_path, "ml", "a" * 64, run)[1] == "ran"
    assert seesaw.load_study(tmp_path / "missing.csv", "a" * 64) is None


def test_the_study_is_written_atomically(tmp_path, monkeypatch):
    path = tmp_path / "ml.csv"
    seesaw.save_study(path, fake_study(), "a" * 64)
    before = path.read_bytes()

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(core_io.os, "replace", crash)
    changed = fake_study().assign(lr=1.0)
    with pytest.raises(OSError, match="disk full"):
        seesaw.save_study(path, changed, "b" * 64)
    monkeypatch.undo()
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["ml.csv"]  # no half file left
    assert seesaw.load_study(path, "a" * 64)["lr"].tolist() == fake_study()["lr"].tolist()


def test_run_study_sizes_tune_and_reuses_its_result(tmp_path, monkeypatch):
    calls = []

    def fake_tune(bundle, task_names, n_trials, **kwargs):
        calls.append((n_trials, kwargs))
        return fake_study()

    monkeypatch.setattr(seesaw, "tune", fake_tune)
    bundle, size = toy_bundle(), seesaw.study_size("smoke")
    frame, status = seesaw.run_study(bundle, TASKS, "smoke", folder=tmp_path, seed=3, workers=2, arch="ple")
    assert status == "ran" and frame["pareto"].any()
    n_trials, kwargs = calls[0]
    assert n_trials == size.n_trials and kwargs["population_size"] == size.population_size
    assert kwargs["epochs"] == size.epochs and kwargs["patience"] == size.patience
    assert kwargs["seed"] == kwargs["run_seed"] == 3 and kwargs["workers"] == 2 and kwargs["arch"] == "ple"
    assert (
        seesaw.run_study(bundle, TASKS, "smoke", folder=tmp_path, seed=3, workers=1, arch="ple")[1]
        == "reused"
    )
    assert seesaw.run_study(bundle, TASKS, "smoke", folder=tmp_path, seed=4, arch="ple")[1] == "ran"
    assert seesaw.run_study(bundle, TASKS, "smoke", folder=tmp_path, seed=3, arch="hard")[1] == "ran"
    assert len(calls) == 3 and len(list(Path(tmp_path).glob("toy_study-*.csv"))) == 3


def test_chosen_settings_from_the_picked_trial_or_untuned():
    settings, why = seesaw.chosen_settings(fake_study(), TASKS)
    assert settings == {
        "strategy": "static",
        "strategy_kwargs": {"weights": [0.4, 0.3, 0.3]},
        "lr": 1e-3,
        "weight_decay": 1.0,
    }
    assert why.startswith("trial 1 of 3 on the front") and "utopia" in why
    assert seesaw.chosen_settings(None, TASKS)[0] == {}
    assert "TUNE='skip'" in seesaw.chosen_settings(None, TASKS)[1]
    assert seesaw.chosen_settings(fake_study(), TASKS, rule="mean_rank")[0]["lr"] == 2e-3
    with pytest.raises(ValueError, match="rule='best'"):
        seesaw.chosen_settings(fake_study(), TASKS, rule="best")


def test_monitor_metrics_are_each_tasks_stopping_metric():
    assert seesaw.monitor_metrics(toy_bundle(), TASKS) == METRICS


# --- targets ------------------------------------------------------------------------------------------


def test_target_table_measures_the_signed_margin_to_each_target():
    values = {
        f"single {t}": {METRICS[t]: v} for t, v in zip(TASKS, ([0.93, 0.95], [0.78, 0.78], [0.42, 0.44]))
    }
    values["best joint"] = {
        "rating/rmse": [0.91, 0.91],
        "like/auc": [0.80, 0.79],
        "interest/ndcg@10": [0.45, 0.43],
    }
    table = seesaw.target_table(rows_of(values), "best joint", {t: f"single {t}" for t in TASKS})
    assert table["metric"].tolist() == [t.metric for t in seesaw.TARGETS]
    assert table["margin"].tolist() == pytest.approx(
        [0.905 - 0.91, 0.44 - 0.446, 0.94 - 0.91, 0.795 - 0.78, 0.44 - 0.43]
    )
    assert table["met"].tolist() == [False, False, True, True, True]
    lines = seesaw.target_sentences(table)
    assert lines[0] == "rating/rmse 0.9100, target <= 0.9050 (GC-MC): missed by 0.0050"
    assert lines[3] == "like/auc 0.7950, target >= single-task 0.7800: met by 0.0150"
    with pytest.raises(ValueError, match="no measured 'rating/rmse' for 'joint'"):
        seesaw.target_table(rows_of(values), "joint", {t: f"single {t}" for t in TASKS})
    with pytest.raises(ValueError, match="op='<'"):
        seesaw.target_table(rows_of(values), "best joint", {}, [seesaw.Target("rating/rmse", "<", 0.9)])
    with pytest.raises(ValueError, match="single-task run"):
        seesaw.target_table(rows_of(values), "best joint", {}, [seesaw.Target("like/auc", ">=", "single")])
