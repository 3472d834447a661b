"""Colab: every notebook has the badge and the first cell built from the one configured URL, and that
cell does nothing outside Colab."""

from __future__ import annotations

import shutil
import subprocess
import sys

import nbformat
import pytest

from mtrec_utils.workbook.colab import badge_markdown, first_cell, github_path, main, repository_url, sync
from mtrec_utils.workbook.notebooks import NOTEBOOKS_DIR, list_notebooks

NOTEBOOKS = list_notebooks(NOTEBOOKS_DIR)


def test_the_url_comes_from_pyproject_and_must_be_github():
    url = repository_url()
    assert github_path(url).endswith("/mtrec")
    assert github_path("https://github.com/a/b.git") == "a/b"
    with pytest.raises(ValueError, match="not https://github.com/OWNER/NAME"):
        github_path("https://gitlab.com/a/b")
    assert badge_markdown("01_x.ipynb", "https://github.com/a/b") == (
        "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        "(https://colab.research.google.com/github/a/b/blob/main/notebooks/01_x.ipynb)"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name[:2] for p in NOTEBOOKS])
def test_every_notebook_has_the_badge_and_first_cell(path):
    nb = nbformat.read(path, as_version=4)
    url = repository_url()
    assert nb.cells[0].source == first_cell(url), "run `python -m mtrec_utils.workbook.colab` to update it"
    title = next(c for c in nb.cells if c.cell_type == "markdown")
    assert title.source.startswith(badge_markdown(path.name, url))


def test_the_first_cell_does_nothing_outside_colab(tmp_path):
    """Run the cell as IPython would (magics and all) in a fresh interpreter without google.colab."""
    code = f"""
import os, sys
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
before = (os.getcwd(), list(sys.path), sorted(os.listdir('.')))
result = shell.run_cell({first_cell(repository_url())!r})
result.raise_error()
assert (os.getcwd(), list(sys.path), sorted(os.listdir('.'))) == before, "the cell changed something"
assert "MTREC_REPO" not in shell.user_ns and "output" not in shell.user_ns
print("no-op")
"""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and "no-op" in done.stdout, done.stderr[-2000:]


def test_sync_adds_and_replaces_badge_and_cell(tmp_path):
    copy = tmp_path / NOTEBOOKS[1].name
    shutil.copy(NOTEBOOKS[1], copy)
    nb = nbformat.read(copy, as_version=4)
    nb.cells[0].source = "# Colab: an old version\nimport sys\nif 'google.colab' in sys.modules:\n    pass"
    nbformat.write(nb, copy)
    assert sync(copy, "https://github.com/someone/mtrec") is True
    nb = nbformat.read(copy, as_version=4)
    assert "https://github.com/someone/mtrec" in nb.cells[0].source
    title = next(c for c in nb.cells if c.cell_type == "markdown").source
    assert title.count("Open In Colab") == 1 and "github/someone/mtrec/blob/main" in title
    assert sync(copy, "https://github.com/someone/mtrec") is False  # idempotent
    assert main(["--check", "--notebooks-dir", str(tmp_path)]) == 1  # not the configured URL
