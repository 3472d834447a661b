"""Execute each notebook once per test session at the smoke profile; shared by the notebook tests.

Executed copies and metrics land in ``outputs/test-smoke/`` (git-ignored) so that a failure can be
inspected after the run.
"""

from __future__ import annotations

from pathlib import Path

from mtrec_utils.workbook.notebooks import NOTEBOOKS_DIR, REPO, Result, execute, list_notebooks

OUTPUT_DIR = REPO / "outputs" / "test-smoke"
_results: dict[str, Result] = {}


def notebook_path(prefix: str) -> Path:
    """The notebook whose name starts with ``prefix`` (e.g. ``"01"``)."""
    return list_notebooks(NOTEBOOKS_DIR, only=prefix)[0]


def executed(prefix: str) -> Result:
    """Execute notebook ``prefix`` at smoke (once per session) and return its Result."""
    if prefix not in _results:
        _results[prefix] = execute(notebook_path(prefix), OUTPUT_DIR, {"PROFILE": "smoke"}, progress=False)
    return _results[prefix]


def metrics_of(prefix: str) -> dict:
    """The metrics recorded by notebook ``prefix`` at smoke; fails the test if the notebook failed."""
    result = executed(prefix)
    assert result.status == "ok", f"{result.notebook} failed at smoke:\n{result.error}"
    return result.metrics
