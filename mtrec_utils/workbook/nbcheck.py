"""Checks that a workbook notebook is stored as the conventions say (a pre-commit hook and a test).

A stored notebook has no outputs, execution counts or widget state; the ``python3`` kernelspec;
a Colab set-up cell first; exactly one cell tagged ``parameters`` whose every line is
``NAME = <literal>  # help`` (so papermill reads each name, type and help); and no code cell
over :data:`MAX_CELL_LINES` lines (longer code belongs in ``mtrec_utils`` with a test).

Usage::

    python -m mtrec_utils.workbook.nbcheck notebooks/*.ipynb          # list problems, exit 1 if any
    python -m mtrec_utils.workbook.nbcheck --strip notebooks/*.ipynb  # first remove outputs in place
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from mtrec_utils.core.io import atomic_write_text

COLAB_MARKER = 'if "google.colab" in sys.modules:'
MAX_CELL_LINES = 25
REQUIRED_PARAMETERS = ("PROFILE", "OUTPUT_DIR")


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def parameter_problems(source: str) -> list[str]:
    """Problems of a ``parameters`` cell: each statement a flat ``NAME = literal  # help`` line."""
    try:
        body = ast.parse(source).body
    except SyntaxError as e:
        return [f"the parameters cell does not parse: {e.msg} (line {e.lineno})"]
    problems, lines, names = [], source.splitlines(), []
    for node in body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if len(targets) != 1 or not isinstance(targets[0], ast.Name):
            problems.append(f"parameters line {node.lineno}: want `NAME = value  # help`")
            continue
        names.append(targets[0].id)
        try:
            ast.literal_eval(node.value)
        except ValueError:
            problems.append(f"parameter {targets[0].id}: the value must be a literal (papermill sets it)")
        if node.lineno != node.end_lineno or "#" not in lines[node.lineno - 1]:
            problems.append(f"parameter {targets[0].id}: one line with a `# help` comment")
    problems += [f"the parameters cell lacks {n}" for n in REQUIRED_PARAMETERS if n not in names]
    return problems


def notebook_problems(nb: dict) -> list[str]:
    """Every way the notebook ``nb`` (its JSON as a dict) breaks the storage conventions."""
    cells = nb.get("cells", [])
    code = [c for c in cells if c.get("cell_type") == "code"]
    problems = []
    if any(c.get("outputs") or c.get("execution_count") is not None for c in code):
        problems.append("outputs or execution counts are stored: run with --strip")
    if "widgets" in nb.get("metadata", {}):
        problems.append("widget state is stored: run with --strip")
    if nb.get("metadata", {}).get("kernelspec", {}).get("name") != "python3":
        problems.append("the kernelspec must be python3 (else JupyterLab asks for a kernel)")
    if not code or COLAB_MARKER not in _source(code[0]):
        problems.append(
            "the first code cell must be the Colab set-up cell (python -m mtrec_utils.workbook.colab)"
        )
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        problems.append(f"want exactly one cell tagged 'parameters', found {len(tagged)}")
    else:
        problems += parameter_problems(_source(tagged[0]))
    long = [i for i, c in enumerate(code) if len(_source(c).splitlines()) > MAX_CELL_LINES]
    if long:
        problems.append(f"code cells {long} are over {MAX_CELL_LINES} lines: move the code into mtrec_utils")
    return problems


def strip(nb: dict) -> dict:
    """``nb`` without outputs, execution counts or widget state (a new dict)."""
    nb = json.loads(json.dumps(nb))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"], cell["execution_count"] = [], None
    nb.get("metadata", {}).pop("widgets", None)
    return nb


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mtrec_utils.workbook.nbcheck", description=__doc__.split("\n")[0]
    )
    parser.add_argument("paths", nargs="+", help="notebooks (.ipynb) to check")
    parser.add_argument("--strip", action="store_true", help="remove outputs and widget state in place first")
    args = parser.parse_args(argv)
    failed = 0
    for path in map(Path, args.paths):
        nb = json.loads(path.read_text())
        if args.strip and strip(nb) != nb:
            nb = strip(nb)
            atomic_write_text(path, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
            print(f"{path}: outputs stripped")
        for problem in notebook_problems(nb):
            print(f"{path}: {problem}")
            failed = 1
    return failed


if __name__ == "__main__":
    sys.exit(main())
