"""Same seed, same numbers: every notebook executed twice at smoke on CPU records identical metrics.

Timing metrics (seconds, samples/s, speedups, memory) measure the machine and are left out.

The first execution is the one the notebook tests share (``nbexec.executed``). Three notebooks get their
second execution from a test that makes one anyway, in another front end, so that ``make test`` does not
pay for it twice: notebook 00 in the Colab set-up test (a fresh clone, fresh environment and fresh data
cache: ``test_colab_setup.py``), notebooks 01 and 04 in JupyterLab (``test_browser.py``; there the interrupt
changes notebook 04's watched run, whose names those tests leave out). Notebook 09 reads the others'
metrics and trains nothing. Every other notebook is executed a second time here.
"""

from __future__ import annotations

import pytest
from nbexec import OUTPUT_DIR, metrics_of, notebook_path, same_seed_differences

from mtrec_utils.workbook.notebooks import NOTEBOOKS_DIR, execute, list_notebooks

REPEATED_ELSEWHERE = {
    "00": "tests/test_colab_setup.py",
    "01": "tests/test_browser.py",
    "04": "tests/test_browser.py",
    "09": "trains nothing",
}
REPEATED = [p.name[:2] for p in list_notebooks(NOTEBOOKS_DIR) if p.name[:2] not in REPEATED_ELSEWHERE]


def test_every_notebook_is_executed_a_second_time_somewhere():
    prefixes = {p.name[:2] for p in list_notebooks(NOTEBOOKS_DIR)}
    assert prefixes == set(REPEATED) | set(REPEATED_ELSEWHERE)
    assert not set(REPEATED) & set(REPEATED_ELSEWHERE)
    for prefix, where in REPEATED_ELSEWHERE.items():
        if where.endswith(".py"):
            source = (NOTEBOOKS_DIR.parent / where).read_text()
            assert "same_seed_differences" in source, f"{where} no longer repeats notebook {prefix}"


def test_same_seed_differences_sees_changed_missing_and_nan_values():
    nan = float("nan")
    first = {"a": 1.0, "b": nan, "c": 2.0, "train_seconds": 1.0, "d": 3}
    again = {"a": 1.0, "b": nan, "c": 2.5, "train_seconds": 9.0, "e": 4}
    assert same_seed_differences(first, again) == {"c": (2.0, 2.5), "d": (3, "missing"), "e": ("missing", 4)}
    assert same_seed_differences(first, again, ignore=frozenset({"c", "d", "e"})) == {}


@pytest.mark.notebooks
@pytest.mark.parametrize("prefix", REPEATED)
def test_a_second_run_with_the_same_seed_records_identical_metrics(prefix):
    first = metrics_of(prefix)
    again = execute(
        notebook_path(prefix), OUTPUT_DIR.parent / "test-smoke-repeat", {"PROFILE": "smoke"}, progress=False
    )
    assert again.status == "ok", again.error
    differ = same_seed_differences(first, again.metrics)
    assert not differ, f"{len(differ)} metrics differ between two runs with seed 0: {differ}"
