"""papermill reads every notebook parameter (name, type, default and help), so `-p NAME VALUE` and
`papermill --help-notebook` work: a comment it cannot parse drops the parameter's description."""

from __future__ import annotations

import ast
import logging

import nbformat
import papermill as pm
import pytest

from mtrec_utils.workbook.notebooks import NOTEBOOKS_DIR, list_notebooks

NOTEBOOKS = list_notebooks(NOTEBOOKS_DIR)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name[:2] for p in NOTEBOOKS])
def test_papermill_parses_every_parameter_with_its_help(path, caplog):
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    names = [
        t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign) for t in node.targets
    ]
    with caplog.at_level(logging.WARNING, logger="papermill"):
        found = pm.inspect_notebook(str(path))
    assert list(found) == names
    assert all(p["help"] for p in found.values()), [n for n, p in found.items() if not p["help"]]
    assert not [r for r in caplog.records if "Unable to parse" in r.getMessage()]
