"""Budgets and the cost model: the table is complete and within DESIGN.md's limits, FLOPs are counted
right, predictions grow with the work, and ``bench budgets`` writes its schema. No timing is asserted."""

from __future__ import annotations

import json

import pytest
import torch

from mtrec_utils.core.budgets import BUDGETS_S, LIMITS_S, NOTEBOOKS, budget_s, notebook_stem
from mtrec_utils.core.config import PROFILES
from mtrec_utils.workbook import costmodel as cm
from mtrec_utils.workbook.notebooks import NOTEBOOKS_DIR, list_notebooks
from mtrec_utils.workbook.run import progress_line

FAST = cm.Device("test machine", small_flops_s=1e10, encoder_flops_s=2e10, step_s=0.01)


@pytest.fixture(scope="module")
def cache_file(tmp_path_factory):
    return tmp_path_factory.mktemp("costmodel") / "costmodel.json"


def test_the_budget_table_covers_every_notebook_and_profile():
    assert list(NOTEBOOKS) == [p.stem for p in list_notebooks(NOTEBOOKS_DIR)]
    assert set(BUDGETS_S) == set(PROFILES) == set(LIMITS_S)
    for profile, budgets in BUDGETS_S.items():
        assert set(budgets) == set(NOTEBOOKS), profile
        assert all(b > 0 for b in budgets.values())


def test_the_budgets_fit_the_design_limits():
    assert sum(BUDGETS_S["smoke"].values()) <= 300  # whole workbook <= 5 min on 2 cores
    assert max(BUDGETS_S["cpu"].values()) <= 480 and sum(BUDGETS_S["cpu"].values()) <= 1800
    assert max(BUDGETS_S["gpu"].values()) <= 900  # every notebook <= 15 min on a T4
    for profile, limit in LIMITS_S.items():
        if limit["workbook"] is not None:
            assert sum(BUDGETS_S[profile].values()) <= limit["workbook"]
        if limit["notebook"] is not None:
            assert max(BUDGETS_S[profile].values()) <= limit["notebook"]


def test_budget_lookup_by_stem_file_name_or_number():
    assert budget_s("04", "cpu") == budget_s("04_joint_training.ipynb", "cpu") == 347
    assert notebook_stem("notebooks/08_efficient_finetuning_and_scaling.ipynb").startswith("08_")
    with pytest.raises(ValueError, match="notebook='42'"):
        budget_s("42", "cpu")
    with pytest.raises(ValueError, match="profile='auto'"):
        budget_s("04", "auto")


def test_flops_of_a_linear_layer_match_the_hand_count():
    batch, n_in, n_out = 8, 16, 4
    layer, x = torch.nn.Linear(n_in, n_out), torch.randn(batch, n_in)
    assert cm.count_flops(lambda: layer(x)) == 2 * batch * n_in * n_out  # one multiply-add per weight and row
    # backward: the weight's gradient (2 B in out) and, for an input that needs it, the input's (as many)
    x.requires_grad_(True)
    assert cm.count_flops(lambda: layer(x).sum().backward()) == 3 * 2 * batch * n_in * n_out


def test_the_package_models_are_counted_at_the_profiles_sizes():
    dim, joint = 32, ("rating", "like", "interest")
    single = cm.model_flops("movielens", ("rating",), "hard", dim, 64, "train")
    forward = cm.model_flops("movielens", ("rating",), "hard", dim, 64, "forward")
    assert 0 < forward < single  # a training step is a forward and a backward
    assert cm.model_flops("movielens", ("rating",), "hard", dim, 128, "forward") == pytest.approx(2 * forward)
    assert cm.model_flops("movielens", joint, "hard", dim, 64, "train") > single  # three heads, not one
    assert cm.model_flops("movielens", joint, "mmoe", dim, 64, "train") > cm.model_flops(
        "movielens", joint, "hard", dim, 64, "train"
    )
    assert cm.model_flops("movielens", ("interest",), "hard", dim, 1, "rank_user") > 0
    assert cm.model_flops("mf", ("rating",), "hard", dim, 64, "train") == 0  # dot products: no matmul


def test_encoder_flops_grow_with_tokens_and_backward():
    fwd, peft, full = (cm.encoder_text_flops("tiny-random", 16, k) for k in ("forward", "peft", "full"))
    assert 0 < fwd < peft < full
    assert cm.encoder_text_flops("tiny-random", 32, "forward") > 2 * fwd * 0.99  # linear (and a bit of T^2)


def test_every_notebook_has_a_work_plan_of_known_entries():
    assert set(cm.WORK_PLAN) == set(NOTEBOOKS)
    kinds = (cm.Train, cm.EncoderSteps, cm.Kernels, cm.Loops, cm.Other)
    for name, plan in cm.WORK_PLAN.items():
        for entry in plan:
            assert isinstance(entry, kinds), (name, entry)
            if isinstance(entry, cm.Train):
                assert len(cm._tasks(entry.model, entry.tasks)) == len(entry.tasks)


def test_predictions_are_positive_and_grow_with_the_work(cache_file):
    cache = cm.FlopCache(cache_file)
    smoke = cm.notebook_work("04", "smoke", cache, encoder="tiny-random")
    cpu = cm.notebook_work("04", "cpu", cache, encoder="tiny-random")
    assert 0 < smoke.steps < cpu.steps and 0 < smoke.small_flops < cpu.small_flops  # full data, 3 seeds
    gpu = cm.notebook_work("04", "gpu", cache, encoder="tiny-random")
    assert smoke.encoder_flops == 0 < gpu.encoder_flops  # the gpu profile fine-tunes the encoder
    cache.save()

    def predict(notebook, profile, device=FAST):
        return cm.predict(notebook, profile, device=device, cache=cache, encoder="tiny-random")

    assert 0 < predict("04", "smoke") < predict("04", "cpu")
    slow = cm.Device("slower", FAST.small_flops_s / 4, FAST.encoder_flops_s / 4, FAST.step_s * 4)
    assert predict("04", "cpu") < predict("04", "cpu", slow)
    assert predict("00", "cpu") == pytest.approx(cm.CALIBRATION["overhead_s"]["00_setup_and_tour"])
    assert 0 < predict("08", "gpu-t4", cm.t4()) < predict("08", "gpu-t4", slow)


def test_every_notebook_is_predicted_within_its_gpu_budget_on_a_t4(tmp_path):
    """At gpu the notebooks choose per section what fine-tunes the encoder (notebook 04: section 2's
    clothing models; MovieLens and the comparisons on cached embeddings) so that each fits 15 minutes on
    a T4: counted with the real MiniLM, so a section that starts fine-tuning more fails here."""
    predicted = cm.predict_many(list(cm.WORK_PLAN), "gpu-t4", cache_path=tmp_path / "flops.json")
    over = {
        n: s if s is None else round(s) for n, s in predicted.items() if s is None or s > BUDGETS_S["gpu"][n]
    }
    assert not over, f"predicted over the gpu budget on a T4 (seconds): {over}"
    tuned = cm.notebook_work("04", "gpu", cm.FlopCache(tmp_path / "flops.json"))
    assert tuned.encoder_flops > 0  # the central comparison still fine-tunes the encoder


def test_calibration_recovers_the_constants_it_was_made_from():
    rng = torch.Generator().manual_seed(0)
    works = {
        p: {
            n: cm.Work(
                steps=float(torch.randint(100, 10_000, (1,), generator=rng)) * k,
                small_flops=float(torch.rand(1, generator=rng)) * 1e13 * k,
                encoder_flops=float(torch.rand(1, generator=rng)) * 1e13 * k,
            )
            for n in NOTEBOOKS
        }
        for p, k in (("smoke", 0.1), ("cpu", 1.0))
    }
    truth = cm.Device("truth", 0.1 * 1e11, 0.5 * 1e11, 0.01, parallel=1.0)
    measured = {p: {n: cm.seconds(w, truth, 6.0) for n, w in ws.items()} for p, ws in works.items()}
    fitted = cm.calibrate(works, measured, matmul=1e11, parallel=1.0)
    assert all(0.9 < r < 1.1 for ratios in fitted.ratios.values() for r in ratios.values())


def test_bench_budgets_writes_predicted_budget_and_measured(tmp_path, cache_file, monkeypatch, capsys):
    from mtrec_utils.workbook import bench

    monkeypatch.setattr(bench, "matmul_flops", lambda n=1024, repeats=10, device=None: 5e10)
    runs = tmp_path / "run"
    runs.mkdir()
    (runs / "summary.json").write_text(
        json.dumps([{"notebook": "00_setup_and_tour", "status": "ok", "seconds": 9.5, "profile": "smoke"}])
    )
    out = tmp_path / "budgets.json"
    argv = ["budgets", "--profiles", "smoke,gpu-t4", "--encoder", "tiny-random", "--cache", str(cache_file)]
    assert bench.main([*argv, "--measured", str(runs), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report) == {"smoke", "gpu-t4"}
    for profile, rows in report.items():
        assert set(rows) == set(NOTEBOOKS)
        for name, row in rows.items():
            assert set(row) == {"predicted_s", "budget_s", "measured_s"}
            assert row["predicted_s"] > 0
            assert row["budget_s"] == BUDGETS_S["gpu" if profile == "gpu-t4" else profile][name]
    assert report["smoke"]["00_setup_and_tour"]["measured_s"] == 9.5
    assert report["smoke"]["04_joint_training"]["measured_s"] is None
    assert report["gpu-t4"]["00_setup_and_tour"]["measured_s"] is None
    text = capsys.readouterr().out
    assert "smoke: seconds (predicted / budget / last measured" in text and "gpu-t4:" in text
    assert bench.main(["budgets", "--profiles", "fast"]) == 2


def test_bench_budgets_for_the_calibration_machine_measures_nothing_here(tmp_path, cache_file, monkeypatch):
    from mtrec_utils.workbook import bench

    def no_measuring(*args, **kwargs):
        raise AssertionError("--machine calibration must not measure this machine")

    monkeypatch.setattr(bench, "matmul_flops", no_measuring)
    out = tmp_path / "budgets.json"
    argv = ["budgets", "--profiles", "smoke,cpu", "--encoder", "tiny-random", "--cache", str(cache_file)]
    assert bench.main([*argv, "--machine", "calibration", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    device = cm.calibration_device()
    for profile in ("smoke", "cpu"):
        for name, row in report[profile].items():
            expected = cm.predict(
                name, profile, device=device, cache=cm.FlopCache(cache_file), encoder="tiny-random"
            )
            assert row["predicted_s"] == pytest.approx(expected, abs=0.06), (profile, name)


def test_measured_runs_read_the_profile_from_the_metrics_file_of_older_summaries(tmp_path):
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "03_single_task_baselines.json").write_text('{"profile": "cpu", "metrics": {}}')
    entries = [
        {"notebook": "03_single_task_baselines", "status": "ok", "seconds": 400.0},
        {"notebook": "04_joint_training", "status": "failed", "seconds": 3.0, "profile": "cpu"},
    ]
    (tmp_path / "summary.json").write_text(json.dumps(entries))
    assert cm.measured_runs([tmp_path]) == {"cpu": {"03_single_task_baselines": 400.0}}


def test_announce_says_minutes_profile_and_budget(tmp_path):
    text = cm.announce("00_setup_and_tour", "cpu", cache_path=tmp_path / "c.json")
    assert text.startswith("about ") and text.endswith(
        "at the cpu profile on this machine (predicted; budget 30 s)"
    )
    if not torch.cuda.is_available():
        assert "at the gpu profile on a T4 GPU (predicted; budget 15 min)" in cm.announce(
            "09_results_report", "gpu", cache_path=tmp_path / "c.json"
        )
    assert cm.announce("42_no_such_notebook", "cpu").startswith("no prediction")
    assert (
        cm.human(40) == "about 40 s"
        and cm.human(360) == "about 6 minutes"
        and cm.human(9000) == "about 2.5 hours"
    )


def test_the_runners_progress_line():
    assert progress_line(10, 10, 65, []) == "progress: 10/10 notebooks in 1 min 5 s"
    line = progress_line(3, 10, 65, [60.0, None])
    assert (
        "3/10 notebooks in 1 min 5 s; predicted remaining ~1 min 0 s + 1 notebook(s) without prediction"
        in line
    )
    assert progress_line(1, 2, 5, [None]).endswith("remaining: no prediction")


def test_the_readme_table_shows_predicted_budget_and_measured_minutes():
    from mtrec_utils.workbook.costmodel import markdown_budgets

    report = {
        "smoke": {
            "00_a": {"predicted_s": 60.0, "budget_s": 120.0, "measured_s": 90.0},
            "01_b": {"predicted_s": 30.0, "budget_s": 60.0, "measured_s": None},
        },
    }
    table = markdown_budgets(report).splitlines()
    assert table[2] == "| 00_a | 1.0 / 2.0 / 1.5 |" and table[3] == "| 01_b | 0.5 / 1.0 / - |"
    assert table[-1] == "| **all** | 1.5 / 3.0 / - |"  # a total only where every notebook has a value


def test_a_shipped_study_is_current_only_for_the_code_it_was_run_with(tmp_path, monkeypatch):
    from mtrec_utils.training import seesaw

    assert not cm.shipped_study_current("cpu", tmp_path)  # nothing shipped
    (tmp_path / cm.SHIPPED_FINGERPRINT).write_text(seesaw.code_fingerprint() + "\n")
    assert cm.shipped_study_current("cpu", tmp_path)
    monkeypatch.setattr(seesaw, "code_fingerprint", lambda: "f" * 64)  # the package changed since
    assert not cm.shipped_study_current("cpu", tmp_path)


def test_the_study_runs_are_counted_only_when_no_current_study_is_shipped(monkeypatch):
    study = next(e for e in cm.WORK_PLAN["04_joint_training"] if getattr(e, "unless_shipped", False))
    cpu = PROFILES["cpu"]
    monkeypatch.setattr(cm, "shipped_study_current", lambda profile, folder=None: False)
    assert cm.runs_of(study, cpu) == 16
    monkeypatch.setattr(cm, "shipped_study_current", lambda profile, folder=None: profile == "cpu")
    assert cm.runs_of(study, cpu) == 0 and cm.runs_of(study, PROFILES["smoke"]) == 4


def test_the_study_shipped_for_cpu_was_run_with_this_code():
    """Notebook 04 at cpu fits its time only by reusing results/cpu/seesaw/tuning: a change to a module the
    study runs makes it stale. Rerun notebook 04 at cpu, ship its OUTPUT_DIR/tuning study and write
    code_fingerprint.txt (results/cpu/seesaw/README.md says how)."""
    assert cm.shipped_study_current("cpu"), "the study shipped in results/cpu/seesaw/tuning is stale"
