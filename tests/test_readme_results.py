"""The README's results tables are the ones the committed cpu metrics generate (the README stays true)."""

from __future__ import annotations

from mtrec_utils.workbook.notebooks import REPO
from mtrec_utils.workbook.report import END, README, START, load_run, readme_table


def test_readme_results_block_matches_the_recorded_cpu_metrics():
    text = README.read_text()
    block = text.split(START, 1)[1].split(END, 1)[0]
    expected = readme_table(load_run(REPO / "results" / "cpu"))
    assert expected in block, (
        "README results are stale: run python -m mtrec_utils.workbook.report readme --metrics results/cpu --write --stamp ..."
    )
