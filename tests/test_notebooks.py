"""Every notebook: stored without outputs, one parameters cell, a kernelspec, and it executes at smoke."""

from __future__ import annotations

import json

import pytest
from nbexec import executed, metrics_of

from mtrec_utils.workbook.nbcheck import notebook_problems
from mtrec_utils.workbook.notebooks import NOTEBOOKS_DIR, list_notebooks
from mtrec_utils.workbook.run import KEY_METRICS

NOTEBOOKS = list_notebooks(NOTEBOOKS_DIR)
IDS = [p.stem for p in NOTEBOOKS]


def test_workbook_has_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no NN_*.ipynb notebook"
    assert NOTEBOOKS[0].name == "00_setup_and_tour.ipynb"
    assert NOTEBOOKS[-1].name == "09_results_report.ipynb"  # the report reads the others: it runs last
    assert [p.name[:2] for p in list_notebooks(NOTEBOOKS_DIR, "09,10")] == ["10", "09"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_is_stored_clean(path):
    """Outputs stripped, one parameters cell, the Colab cell first, short cells (the pre-commit hook)."""
    assert notebook_problems(json.loads(path.read_text())) == []


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_executes_at_smoke(path):
    prefix = path.name[:2]
    result = executed(prefix)
    assert result.status == "ok", f"{path.name} failed at smoke:\n{result.error}"
    missing = [k for k in KEY_METRICS.get(prefix, ()) if k not in result.metrics]
    assert not missing, f"{path.name} did not record {missing}"


@pytest.mark.notebooks
def test_nb00_records_the_real_counts():
    metrics = metrics_of("00")
    assert metrics["ml100k_num_ratings"] == 100_000
    assert metrics["ml100k_num_users"] == 943
    assert metrics["ml100k_num_items"] == 1_682
    assert metrics["clothing_num_reviews"] == 23_486
    assert 0.5 < metrics["ml100k_toy_story_top1_cosine"] <= 1.0
