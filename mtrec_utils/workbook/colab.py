"""Colab: the "Open in Colab" badge and the first cell of every notebook, from one repository URL.

The URL lives in one place, ``[project.urls] Repository`` of ``pyproject.toml``. After changing it (to
your fork), run ``python -m mtrec_utils.workbook.colab`` to rewrite the badge and the first cell of every notebook;
``python -m mtrec_utils.workbook.colab --check`` only reports notebooks that are out of date.

The first cell does nothing outside Colab. On Colab it clones the workbook, installs the package with
Colab's own torch (pip sees it satisfies the requirement and leaves it), fetches and verifies the data,
and turns on the widget manager so that ipywidgets render.
"""

from __future__ import annotations

import argparse
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path

from mtrec_utils.core.io import REPO_ROOT

REPO = REPO_ROOT
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
BADGE_LINE = re.compile(r"^\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)\n*", re.MULTILINE)


def repository_url(pyproject: Path = REPO / "pyproject.toml") -> str:
    """The workbook's git URL from ``[project.urls] Repository``."""
    urls = tomllib.loads(pyproject.read_text()).get("project", {}).get("urls", {})
    if "Repository" not in urls:
        raise ValueError(f"{pyproject} has no [project.urls] Repository = '<git URL of the workbook>'")
    return urls["Repository"].rstrip("/")


def github_path(url: str) -> str:
    """``owner/name`` of a GitHub URL (``https://github.com/owner/name[.git]``); ValueError otherwise."""
    match = re.fullmatch(r"https://github\.com/([\w.-]+)/([\w.-]+?)(?:\.git)?/?", url)
    if not match:
        raise ValueError(
            f"repository URL {url!r} is not https://github.com/OWNER/NAME: Colab opens GitHub notebooks"
        )
    return f"{match.group(1)}/{match.group(2)}"


def badge_markdown(notebook: str, url: str, branch: str = "main") -> str:
    """The badge line that opens ``notebooks/<notebook>`` of ``url`` in Colab."""
    target = f"https://colab.research.google.com/github/{github_path(url)}/blob/{branch}/notebooks/{notebook}"
    return f"[![Open In Colab]({BADGE_IMAGE})]({target})"


def first_cell(url: str) -> str:
    """The source of every notebook's first cell."""
    return f'''# Colab: fetch the workbook, install it with the data, enable widgets (does nothing outside Colab).
import sys

if "google.colab" in sys.modules:
    MTREC_REPO = "{url}"  # set in pyproject.toml; `python -m mtrec_utils.workbook.colab` rewrites it
    !git clone -q {{MTREC_REPO}} /content/mtrec || true
    %pip install -q -e /content/mtrec  # keeps Colab's own torch
    sys.path.insert(0, "/content/mtrec")  # the running kernel predates the install
    !cd /content/mtrec && python -m mtrec_utils.data
    from google.colab import output

    output.enable_custom_widget_manager()
    %cd /content/mtrec/notebooks'''


def sync(path: Path, url: str, write: bool = True) -> bool:
    """Give notebook ``path`` the current first cell and badge; True if it changed (or would)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    cell = first_cell(url)
    title = next(c for c in nb.cells if c.cell_type == "markdown")
    badged = badge_markdown(path.name, url) + "\n\n" + BADGE_LINE.sub("", title.source)
    changed = nb.cells[0].source != cell or title.source != badged
    if changed and write:
        from mtrec_utils.core.io import atomic_write_text

        if nb.cells[0].cell_type == "code" and "google.colab" in nb.cells[0].source:
            nb.cells[0].source = cell
        else:
            nb.cells.insert(0, nbformat.v4.new_code_cell(cell))
        title.source = badged
        atomic_write_text(path, nbformat.writes(nb) + "\n")
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mtrec_utils.workbook.colab", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--check", action="store_true", help="only list notebooks that are out of date")
    parser.add_argument("--notebooks-dir", default=str(REPO / "notebooks"))
    args = parser.parse_args(argv)
    url = repository_url()
    notebooks = sorted(Path(args.notebooks_dir).glob("[0-9][0-9]_*.ipynb"))
    stale = [p.name for p in notebooks if sync(p, url, write=not args.check)]
    verb = "out of date" if args.check else "updated"
    print(f"{len(stale)} notebook(s) {verb} for {url}: {', '.join(stale) or 'none'}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
