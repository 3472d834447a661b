"""Every notebook: stored without outputs, one parameters cell, a kernelspec, and it executes at smoke."""

from __future__ import annotations

import json

import pytest
from nbexec import executed, metrics_of

from mtrec_utils.workbook.notebooks import NOTEBOOKS_DIR, list_notebooks
from mtrec_utils.workbook.run import KEY_METRICS

NOTEBOOKS = list_notebooks(NOTEBOOKS_DIR)
IDS = [p.stem for p in NOTEBOOKS]
COLAB_MARKER = 'if "google.colab" in sys.modules:'


def test_workbook_has_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no NN_*.ipynb notebook"
    assert NOTEBOOKS[0].name == "00_setup_and_tour.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_is_stored_clean(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "strip the outputs"
    assert "widgets" not in nb["metadata"], "strip the widget state"
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"want exactly one cell tagged 'parameters', found {len(tagged)}"
    assert "PROFILE =" in "".join(tagged[0]["source"]) and "OUTPUT_DIR =" in "".join(tagged[0]["source"])
    assert COLAB_MARKER in "".join(code[0]["source"]), "the first cell must be the Colab set-up cell"
    long = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and len(c["source"]) > 25]
    assert not long, f"code cells {long} are over 25 lines: move the code into mtrec_utils with a test"


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
