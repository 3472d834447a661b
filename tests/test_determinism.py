"""Same seed, same numbers: every notebook executed twice at smoke on CPU records identical metrics.

Timing metrics (seconds, samples/s, speedups, memory) measure the machine and are left out.

The first execution is the one the notebook tests share (``nbexec.executed``). Three notebooks get their
second execution from a test that makes one anyway, in another front end, so that ``make test`` does not
pay for it twice: notebook 00 in the Colab set-up test (a fresh clone, fresh environment and fresh data
cache: ``test_colab_setup.py``), notebooks 01 and 04 in JupyterLab (``test_browser.py``; there the interrupt
changes notebook 04's watched run, whose names those tests leave out). Those executions may find the
embedding cache in another state than the first did, so they are compared up to float32 round-off
(``nbexec.same_seed_differences``); the repeats here read the cache the first execution left and must
match exactly. Notebook 09 reads the others' metrics and trains nothing. Every other notebook is
executed a second time here.
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
    first = {"a": 1.0, "b": nan, "c": 2.0, "train_seconds": 1.0, "d": 3, "f": 0.1234567}
    again = {"a": 1.0, "b": nan, "c": 2.5, "train_seconds": 9.0, "e": 4, "f": 0.1234568}
    differ = {"c": (2.0, 2.5), "d": (3, "missing"), "e": ("missing", 4), "f": (0.1234567, 0.1234568)}
    assert same_seed_differences(first, again) == differ
    assert same_seed_differences(first, again, ignore=frozenset({"c", "d", "e", "f"})) == {}
    # float32 round-off passes a relative tolerance; a different result does not
    assert same_seed_differences(first, again, rel_tol=1e-4) == {k: differ[k] for k in "cde"}


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
