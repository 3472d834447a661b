"""Same seed, same numbers: every notebook executed twice at smoke on CPU records identical metrics.

Timing metrics (seconds, samples/s, speedups, memory) measure the machine and are left out.
"""

from __future__ import annotations

import pytest
from nbexec import OUTPUT_DIR, metrics_of, notebook_path

from mtrec_utils.workbook.expected import is_timing
from mtrec_utils.workbook.notebooks import NOTEBOOKS_DIR, execute, list_notebooks

REPEATED = [p.name[:2] for p in list_notebooks(NOTEBOOKS_DIR) if not p.name.startswith("09")]


@pytest.mark.notebooks
@pytest.mark.parametrize("prefix", REPEATED)
def test_a_second_run_with_the_same_seed_records_identical_metrics(prefix):
    first = metrics_of(prefix)
    again = execute(
        notebook_path(prefix), OUTPUT_DIR.parent / "test-smoke-repeat", {"PROFILE": "smoke"}, progress=False
    )
    assert again.status == "ok", again.error
    assert set(again.metrics) == set(first)
    differ = {
        k: (first[k], again.metrics[k]) for k in first if not is_timing(k) and first[k] != again.metrics[k]
    }
    assert not differ, f"{len(differ)} metrics differ between two runs with seed 0: {differ}"
