"""Notebook 09 at smoke reads every other notebook's metrics, checks each against its band, and says so."""

from __future__ import annotations

import json

import pytest
from nbexec import OUTPUT_DIR, executed, metrics_of

from mtrec_utils.workbook.claims import CLAIMS
from mtrec_utils.workbook.notebooks import NOTEBOOKS_DIR, list_notebooks

OTHERS = [p.name[:2] for p in list_notebooks(NOTEBOOKS_DIR) if not p.name.startswith("09")]


@pytest.mark.notebooks
def test_the_report_covers_every_metric_and_finds_no_failure():
    for prefix in OTHERS:  # the report reads what these recorded, so they run first
        assert executed(prefix).status == "ok", prefix
    metrics = metrics_of("09")
    files = [p for p in (OUTPUT_DIR / "metrics").glob("[0-9][0-9]_*.json") if not p.name.startswith("09")]
    recorded = sum(len(json.loads(p.read_text())["metrics"]) for p in files)
    assert metrics["report_num_metrics"] == recorded
    assert metrics["report_num_fail"] == 0
    assert metrics["report_num_pass"] == recorded  # every smoke metric has a band and lies in it
    assert 5 <= metrics["report_num_claims_checked"] <= len(CLAIMS)
    assert (OUTPUT_DIR / "report" / "results.csv").exists()
