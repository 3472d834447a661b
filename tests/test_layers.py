"""The package's layers are checked by import-linter (`make lint`); the contract does catch a break."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed")


def lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml")],
        cwd=root,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(root), "PATH": ""},
    )


def copy_package(tmp_path: Path) -> Path:
    shutil.copytree(
        REPO / "mtrec_utils", tmp_path / "mtrec_utils", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_package_keeps_its_layers():
    result = lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_lower_layer_importing_a_higher_one_breaks_the_contract(tmp_path):
    root = copy_package(tmp_path)
    io = root / "mtrec_utils" / "core" / "io.py"
    io.write_text(io.read_text() + "\nfrom mtrec_utils.workbook import run  # noqa: E402\n")
    result = lint(root)
    assert result.returncode != 0 and "mtrec_utils.core.io -> mtrec_utils.workbook.run" in result.stdout


def test_an_import_cycle_between_siblings_breaks_the_contract(tmp_path):
    root = copy_package(tmp_path)
    notebooks = root / "mtrec_utils" / "workbook" / "notebooks.py"
    notebooks.write_text(notebooks.read_text() + "\nfrom mtrec_utils.workbook import run  # noqa: E402\n")
    result = lint(root)
    assert result.returncode != 0 and "BROKEN" in result.stdout
