"""Execute each notebook once per test session at the smoke profile; shared by the notebook tests.

Executed copies and metrics land in ``outputs/test-smoke/`` (git-ignored) so that a failure can be
inspected after the run. Under pytest-xdist (``make test`` runs ``-n auto``) the workers share one
execution per notebook: the first worker that needs it runs it under a file lock and leaves a marker
with its :class:`Result` for this test run; the others wait for the lock and read the marker.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from filelock import FileLock

from mtrec_utils.core.io import atomic_write_json
from mtrec_utils.workbook.expected import is_timing
from mtrec_utils.workbook.notebooks import NOTEBOOKS_DIR, REPO, Result, execute, list_notebooks

OUTPUT_DIR = REPO / "outputs" / "test-smoke"
LOCKS = OUTPUT_DIR / "locks"
# One id per test run: xdist gives its workers a shared one; a plain pytest process uses its pid.
RUN_ID = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid{os.getpid()}"
_results: dict[str, Result] = {}


def notebook_path(prefix: str) -> Path:
    """The notebook whose name starts with ``prefix`` (e.g. ``"01"``)."""
    return list_notebooks(NOTEBOOKS_DIR, only=prefix)[0]


def executed(prefix: str) -> Result:
    """Execute notebook ``prefix`` at smoke (once per test run, across xdist workers) and return its Result."""
    if prefix not in _results:
        LOCKS.mkdir(parents=True, exist_ok=True)
        marker = LOCKS / f"{prefix}.{RUN_ID}.json"
        with FileLock(str(LOCKS / f"{prefix}.lock")):
            if marker.exists():
                result = Result(**json.loads(marker.read_text()))
            else:
                for old in LOCKS.glob(f"{prefix}.*.json"):  # markers of earlier test runs
                    old.unlink()
                result = execute(notebook_path(prefix), OUTPUT_DIR, {"PROFILE": "smoke"}, progress=False)
                atomic_write_json(marker, result.__dict__)
        _results[prefix] = result
    return _results[prefix]


def metrics_of(prefix: str) -> dict:
    """The metrics recorded by notebook ``prefix`` at smoke; fails the test if the notebook failed."""
    result = executed(prefix)
    assert result.status == "ok", f"{result.notebook} failed at smoke:\n{result.error}"
    return result.metrics


def same_seed_differences(
    first: dict, again: dict, ignore: frozenset[str] = frozenset(), rel_tol: float = 0.0
) -> dict:
    """Metrics that differ between two executions of one notebook with the same seed, as {name: (first, again)}.

    Timing metrics (seconds, samples/s, memory) measure the machine and are left out, and so are the names in
    ``ignore`` (a run the second execution changes on purpose). A name recorded by one execution only
    differs (its value on the other side is ``"missing"``); ``NaN`` equals ``NaN`` (an empty bucket).

    ``rel_tol`` 0 asks for identical numbers: two executions that read the same embedding cache. An
    execution that found another cache (a fresh clone, or a notebook that ran alongside and encoded part of
    the texts in other batches) moves float32 round-off: the text encoder pads each batch to its longest
    text, so an embedding's last bits depend on its batch-mates. Such a comparison passes ``rel_tol`` (a
    missing seed or an unseeded draw moves a metric by orders of magnitude more).
    """
    differ = {}
    for name in (set(first) | set(again)) - ignore:
        if is_timing(name):
            continue
        a, b = first.get(name, "missing"), again.get(name, "missing")
        if all(isinstance(v, float) and math.isnan(v) for v in (a, b)):
            continue
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
        close = numbers and rel_tol > 0 and math.isclose(a, b, rel_tol=rel_tol, abs_tol=rel_tol * 1e-2)
        if a != b and not close:
            differ[name] = (a, b)
    return differ
