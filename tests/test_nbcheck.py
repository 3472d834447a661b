"""The notebooks' storage check (the pre-commit hook): each convention it enforces, on small notebooks."""

from __future__ import annotations

import json

import pytest

from mtrec_utils.workbook.nbcheck import COLAB_MARKER, main, notebook_problems, parameter_problems, strip

PARAMS = 'PROFILE = "smoke"  # smoke | cpu | gpu | auto\nOUTPUT_DIR = "../outputs"  # where results go\n'


def cell(source, tags=(), outputs=()):
    return {
        "cell_type": "code",
        "source": source,
        "metadata": {"tags": list(tags)},
        "outputs": list(outputs),
        "execution_count": 1 if outputs else None,
    }


def notebook(*cells):
    colab = cell(f"import sys\n\n{COLAB_MARKER}\n    pass\n")
    return {
        "cells": [colab, cell(PARAMS, ["parameters"]), *cells],
        "metadata": {"kernelspec": {"name": "python3"}},
    }


def test_a_clean_notebook_passes():
    assert notebook_problems(notebook(cell("x = 1"))) == []


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda nb: nb["cells"].append(cell("1", outputs=[{"output_type": "stream"}])), "outputs"),
        (lambda nb: nb["metadata"].update(widgets={}), "widget state"),
        (lambda nb: nb["metadata"].update(kernelspec={"name": "other"}), "kernelspec"),
        (lambda nb: nb["cells"].pop(0), "Colab"),
        (lambda nb: nb["cells"].append(cell("Y = 2  # y", ["parameters"])), "exactly one"),
        (lambda nb: nb["cells"].append(cell("x = 1\n" * 26)), "over 25 lines"),
    ],
    ids=["outputs", "widgets", "kernelspec", "colab", "two-parameters-cells", "long-cell"],
)
def test_each_broken_convention_is_named(change, expected):
    nb = notebook()
    change(nb)
    problems = notebook_problems(nb)
    assert len(problems) == 1 and expected in problems[0], problems


@pytest.mark.parametrize(
    "source, expected",
    [
        ('PROFILE = "smoke"\nOUTPUT_DIR = "x"  # out\n', "PROFILE: one line with a `# help` comment"),
        ('PROFILE = "smoke"  # p\nOUTPUT_DIR = str(1)  # out\n', "OUTPUT_DIR: the value must be a literal"),
        ('PROFILE = "smoke"  # p\n', "lacks OUTPUT_DIR"),
        ("PROFILE = (  # p\n", "does not parse"),
    ],
)
def test_parameter_lines_must_be_literals_with_help(source, expected):
    assert any(expected in p for p in parameter_problems(source)), parameter_problems(source)


def test_strip_then_check_from_the_command_line(tmp_path, capsys):
    nb = notebook(cell("print(1)", outputs=[{"output_type": "stream", "text": "1"}]))
    nb["metadata"]["widgets"] = {"state": {}}
    path = tmp_path / "00_x.ipynb"
    path.write_text(json.dumps(nb))
    assert main([str(path)]) == 1 and "outputs" in capsys.readouterr().out
    assert main(["--strip", str(path)]) == 0
    stored = json.loads(path.read_text())
    assert stored == strip(nb) and notebook_problems(stored) == []
