"""The notebook runner: executes notebooks in order, records, and fails loudly."""

from __future__ import annotations

import json

import nbformat
import pytest

from mtrec_utils.workbook.notebooks import check_parameters, finished, list_notebooks, parse_value
from mtrec_utils.workbook.run import main, summary_table


def write_notebook(path, body: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('PROFILE = "auto"  # profile\nOUTPUT_DIR = "../outputs"  # outputs')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, path)


GOOD = """from mtrec_utils.core.record import record, start_run
start_run("00_good", profile=PROFILE, output_dir=OUTPUT_DIR)
record("ml100k_num_ratings", 42)"""
BROKEN = "x = 1\nraise RuntimeError('this cell is broken on purpose')"


@pytest.fixture
def workbook(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    write_notebook(folder / "00_good.ipynb", GOOD)
    write_notebook(folder / "01_broken.ipynb", BROKEN)
    return folder


def test_runner_executes_and_summarises(workbook, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(
        ["--profile", "smoke", "--only", "00", "--notebooks-dir", str(workbook), "--output-dir", str(out)]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "00_good  | ok" in text and "ml100k_num_ratings=42" in text
    metrics = json.loads((out / "metrics" / "00_good.json").read_text())
    assert metrics["profile"] == "smoke" and metrics["metrics"] == {"ml100k_num_ratings": 42}
    assert (out / "notebooks" / "00_good.ipynb").exists()
    assert finished(out, "00_good")  # what `expected derive --reuse` keeps


def test_runner_fails_loudly_on_a_broken_notebook(workbook, tmp_path, capsys):
    rc = main(["--profile", "smoke", "--notebooks-dir", str(workbook), "--output-dir", str(tmp_path / "out")])
    assert rc == 1
    captured = capsys.readouterr()
    assert "FAILED: 01_broken.ipynb" in captured.err
    assert "failing cell #1" in captured.err
    assert "raise RuntimeError('this cell is broken on purpose')" in captured.err
    assert "RuntimeError: this cell is broken on purpose" in captured.err
    assert "01_broken | failed" in captured.out
    out = tmp_path / "out"
    (out / "metrics" / "01_broken.json").write_text('{"notebook": "01_broken", "metrics": {"m": 1}}')
    assert finished(out, "00_good") and not finished(out, "01_broken")  # a partial metrics file is not a run
    killed = json.loads((out / "notebooks" / "00_good.ipynb").read_text())
    killed["metadata"]["papermill"]["end_time"] = None  # what a killed run leaves behind
    (out / "notebooks" / "00_good.ipynb").write_text(json.dumps(killed))
    assert not finished(out, "00_good")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--profile", "fast"], "PROFILE='fast' is not valid"),
        (["-p", "DEVICE", "gpu"], "DEVICE='gpu' is not valid"),
        (["-p", "SEED", "-3"], "SEED=-3 is not valid"),
        (["--only", "42"], "no notebook numbered ['42']"),
    ],
)
def test_runner_rejects_bad_arguments_before_running(workbook, argv, message, capsys):
    assert main([*argv, "--notebooks-dir", str(workbook)]) == 2
    assert message in capsys.readouterr().err


def test_helpers():
    assert parse_value("3") == 3 and parse_value("0.5") == 0.5 and parse_value("smoke") == "smoke"
    assert parse_value("True") is True
    check_parameters({"PROFILE": "cpu", "DEVICE": "auto", "SEED": 0})
    assert summary_table([]).startswith("notebook")


def test_list_notebooks_orders_by_number(tmp_path):
    for name in ["02_b.ipynb", "00_a.ipynb", "notes.ipynb"]:
        (tmp_path / name).write_text("{}")
    assert [p.name for p in list_notebooks(tmp_path)] == ["00_a.ipynb", "02_b.ipynb"]


def test_a_hung_cell_fails_the_run_after_the_cell_timeout(tmp_path, capsys):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    write_notebook(folder / "00_hangs.ipynb", "import time\ntime.sleep(60)")
    argv = ["--profile", "smoke", "--notebooks-dir", str(folder), "--output-dir", str(tmp_path / "out")]
    assert main([*argv, "--cell-timeout", "3"]) == 1
    assert "FAILED: 00_hangs.ipynb" in capsys.readouterr().err


def test_a_misspelled_parameter_is_refused_before_anything_runs(workbook, tmp_path, capsys):
    out = tmp_path / "out"
    argv = [
        "--only",
        "00",
        "-p",
        "PROFIL",
        "smoke",
        "--notebooks-dir",
        str(workbook),
        "--output-dir",
        str(out),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "no notebook declares the parameter 'PROFIL'" in err and "did you mean PROFILE?" in err
    assert not out.exists()  # nothing ran


def test_the_summary_reads_the_run_that_p_output_dir_made(workbook, tmp_path, capsys):
    stale, fresh = tmp_path / "stale", tmp_path / "fresh"
    (stale / "metrics").mkdir(parents=True)
    (stale / "metrics" / "00_good.json").write_text(
        '{"notebook": "00_good", "metrics": {"ml100k_num_ratings": 1}}'
    )
    argv = [
        "--profile",
        "smoke",
        "--only",
        "00",
        "--notebooks-dir",
        str(workbook),
        "--output-dir",
        str(stale),
    ]
    assert main([*argv, "-p", "OUTPUT_DIR", str(fresh)]) == 0
    assert "ml100k_num_ratings=42" in capsys.readouterr().out
    assert (fresh / "metrics" / "00_good.json").exists() and (fresh / "summary.json").exists()
    assert json.loads((stale / "metrics" / "00_good.json").read_text())["metrics"] == {
        "ml100k_num_ratings": 1
    }


def test_the_console_shows_the_runners_lines_only(workbook, tmp_path, capfd):
    """No kernel transport warning, no papermill progress bar: the prediction and progress lines only."""
    out = tmp_path / "out"
    argv = ["--profile", "smoke", "--only", "00", "--notebooks-dir", str(workbook), "--output-dir", str(out)]
    assert main(argv) == 0
    captured = capfd.readouterr()  # the kernel process writes to the inherited file descriptors
    console = captured.out + captured.err
    assert "without encryption" not in console and "IPKernelApp" not in console
    assert "Executing:" not in console and "cell/s" not in console
    assert "[1/1] 00_good.ipynb: no prediction ..." in captured.out  # no work plan for a made-up notebook
    assert "progress: 1/1 notebooks in " in captured.out
    summary = json.loads((out / "summary.json").read_text())
    assert summary[0]["profile"] == "smoke" and summary[0]["predicted_s"] is None


NOISY = """import os
from mtrec_utils.core.record import record, start_run
start_run("00_noisy", profile=PROFILE, output_dir=OUTPUT_DIR)
os.write(2, b"USDT:profiler_start from C code\\n")  # as PyTorch's profiler writes, below Python
record("ml100k_num_ratings", 7)"""
DYING = """import os
os.write(2, b"last words of a dying kernel\\n")
os._exit(3)"""


def test_kernel_stderr_goes_to_a_log_not_the_console_and_a_failure_quotes_it(tmp_path, capfd):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    write_notebook(folder / "00_noisy.ipynb", NOISY)
    write_notebook(folder / "01_dying.ipynb", DYING)
    out = tmp_path / "out"
    argv = ["--profile", "smoke", "--notebooks-dir", str(folder), "--output-dir", str(out), "--keep-going"]
    assert main(argv) == 1
    captured = capfd.readouterr()
    console = captured.out + captured.err
    assert "profiler_start" not in console  # the noisy kernel's C-level line is in its log only
    assert "USDT:profiler_start from C code" in (out / "logs" / "00_noisy.stderr.txt").read_text()
    assert "00_noisy | ok" in captured.out and "ml100k_num_ratings=7" in captured.out
    # the dead kernel's last words are quoted in the failure, with the log's path
    assert "FAILED: 01_dying.ipynb" in captured.err
    assert (
        "last lines of the kernel's stderr" in captured.err and "last words of a dying kernel" in captured.err
    )
    # the runner's own standard error works again afterwards
    import sys

    print("after the run", file=sys.stderr)
    assert "after the run" in capfd.readouterr().err


def test_executions_in_threads_leave_the_process_stderr_alone(tmp_path, capfd):
    """A sweep executes notebooks at once in threads: descriptor 2 is the process's, so only the main
    thread redirects it; afterwards the process's stderr still works."""
    import sys
    from concurrent.futures import ThreadPoolExecutor

    from mtrec_utils.workbook.notebooks import execute, redirect_stderr

    assert redirect_stderr(progress=False) and not redirect_stderr(progress=True)
    folder = tmp_path / "notebooks"
    folder.mkdir()
    write_notebook(folder / "00_noisy.ipynb", NOISY)
    with ThreadPoolExecutor(max_workers=2) as pool:
        assert not pool.submit(redirect_stderr, False).result()
        results = list(
            pool.map(
                lambda i: execute(
                    folder / "00_noisy.ipynb", tmp_path / f"out{i}", {"PROFILE": "smoke"}, progress=False
                ),
                range(2),
            )
        )
    assert [r.status for r in results] == ["ok", "ok"]
    assert not (tmp_path / "out0" / "logs").exists()  # no redirection from a thread
    print("stderr still works", file=sys.stderr)
    assert "stderr still works" in capfd.readouterr().err
