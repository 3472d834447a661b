"""The workbook's notebooks: find them, check shared parameters, execute one with papermill.

The runner (:mod:`mtrec_utils.workbook.run`) and the band derivation
(:mod:`mtrec_utils.workbook.expected`) both build on this module; neither imports the other's
command line.
"""

from __future__ import annotations

import ast
import difflib
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtrec_utils.core.config import DEVICE_NAMES, PROFILE_NAMES, check_choice
from mtrec_utils.core.io import REPO_ROOT
from mtrec_utils.core.record import load_metrics

REPO = REPO_ROOT
NOTEBOOKS_DIR = REPO / "notebooks"
CELL_TIMEOUT_S = 3600  # a single cell running longer than this is taken as hung
REPORT_PREFIX = "09"  # the results report: executed after every other notebook


@dataclass
class Result:
    """Outcome of one notebook execution."""

    notebook: str
    status: str  # "ok" | "failed"
    seconds: float
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str = ""


def list_notebooks(folder: Path = NOTEBOOKS_DIR, only: str | None = None) -> list[Path]:
    """The notebooks ``NN_*.ipynb`` in ``folder``, in order; ``only="00,04"`` keeps those prefixes.

    The order is by number, except that the report (:data:`REPORT_PREFIX`) comes last: it reads the
    metrics every other notebook recorded, notebook 10's included.

    Raises:
        ValueError: if ``only`` names a prefix with no notebook.
    """
    found_all = Path(folder).glob("[0-9][0-9]_*.ipynb")
    notebooks = sorted(found_all, key=lambda p: (p.name.startswith(REPORT_PREFIX + "_"), p.name))
    if not only:
        return notebooks
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    found = {p.name[:2]: p for p in notebooks}
    unknown = [w for w in wanted if w not in found]
    if unknown:
        raise ValueError(f"--only {only!r}: no notebook numbered {unknown}; choose from {sorted(found)}")
    return [p for p in notebooks if p.name[:2] in wanted]  # the run order, whatever order `only` lists


def parse_value(text: str) -> Any:
    """Read a ``-p NAME VALUE`` value as a Python literal (int, float, bool, None), else keep the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def check_parameters(params: dict[str, Any]) -> None:
    """Validate the parameters every notebook shares before anything runs (ValueError on a bad one)."""
    if "PROFILE" in params:
        check_choice("PROFILE", params["PROFILE"], PROFILE_NAMES)
    if "DEVICE" in params:
        check_choice("DEVICE", params["DEVICE"], DEVICE_NAMES)
    if "SEED" in params:
        seed = params["SEED"]
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"SEED={seed!r} is not valid; it must be a non-negative integer (for example 0)")


def declared_parameters(notebook: Path) -> list[str]:
    """The names that ``notebook``'s cell tagged ``parameters`` assigns, in order (``[]`` if it has none)."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not tagged:
        return []
    source = "".join(tagged[0]["source"]) if isinstance(tagged[0]["source"], list) else tagged[0]["source"]
    body = ast.parse(source).body
    return [
        t.id for node in body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)
    ]


def check_parameter_names(params: dict[str, Any], notebooks: list[Path]) -> None:
    """Reject a parameter that none of ``notebooks`` declares, naming the closest declared one.

    papermill would only log "Passed unknown parameter" and run at the notebook's default, so
    ``-p PROFIL smoke`` would silently run at the default profile.

    Raises:
        ValueError: for the first unknown name.
    """
    declared = sorted({name for nb in notebooks for name in declared_parameters(nb)})
    for name in params:
        if name not in declared:
            close = difflib.get_close_matches(name, declared, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise ValueError(
                f"no notebook declares the parameter {name!r}; {hint}declared: {', '.join(declared)}"
            )


def describe_failure(exc: Exception, executed: Path) -> str:
    """A readable account of a papermill failure: the failing cell's number, source and error.

    The failing cell is the code cell of the executed copy whose outputs hold an error; cells are
    numbered as in the source notebook (papermill's own banner and parameter cells are not counted).
    """
    ename, evalue = getattr(exc, "ename", type(exc).__name__), getattr(exc, "evalue", str(exc))
    lines = [f"{ename}: {evalue}"]
    if executed.exists():
        cells = json.loads(executed.read_text())["cells"]
        tags = [set(c.get("metadata", {}).get("tags", [])) for c in cells]
        source_cells = [
            c for c, t in zip(cells, tags) if not t & {"injected-parameters", "papermill-error-cell-tag"}
        ]
        for number, cell in enumerate(source_cells):
            if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
                source = "".join(cell.get("source", "")).splitlines()[:15]
                lines.insert(0, f"failing cell #{number}:\n    " + "\n    ".join(source))
                break
    return "\n".join(lines)


def quiet_kernel_arguments(kernel: str) -> list[str]:
    """Kernel command-line arguments that keep an IPython kernel's own log (its "Kernel is running over
    TCP without encryption" warning, printed to the runner's console) to errors; ``[]`` for other kernels.

    Warnings of the notebook's code are not affected: they reach the executed notebook as cell output.
    """
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        argv = KernelSpecManager().get_kernel_spec(kernel).argv
    except Exception:  # an unknown kernel fails later, with papermill's own message
        return []
    return ["--IPKernelApp.log_level=ERROR"] if any("ipykernel" in a for a in argv) else []


@contextmanager
def stderr_to(path: Path) -> Iterator[Path]:
    """Send this process's standard error (file descriptor 2) to ``path`` while the block runs.

    A kernel started inside the block inherits it, and so do the worker processes it starts: their
    C-level lines (PyTorch's profiler prints ``USDT ... profiler_start`` for every profiled block, a
    crashing kernel its last words) land in ``path`` instead of between the runner's progress lines.
    The file is written anew for each execution; descriptor 2 is restored afterwards, also on errors.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "wb") as log:
            os.dup2(log.fileno(), 2)
            try:
                yield path
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def redirect_stderr(progress: bool) -> bool:
    """Whether :func:`execute` sends the kernel's stderr to a log: not with papermill's progress bar (it is
    drawn on stderr), and only from the main thread. Descriptor 2 belongs to the whole process, so
    executions running at once in threads (a sweep's points) leave it alone: their kernels inherit the
    caller's stderr, which the runner has already sent to the calling notebook's log."""
    return not progress and threading.current_thread() is threading.main_thread()


def stderr_tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a kernel's stderr log, or ``""`` if it is missing or empty."""
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def execute(
    notebook: Path,
    output_dir: Path,
    params: dict[str, Any],
    *,
    kernel: str = "python3",
    progress: bool = True,
    cell_timeout: int | None = CELL_TIMEOUT_S,
) -> Result:
    """Execute one notebook with papermill; never raises for a failing notebook, returns a Result.

    ``cell_timeout`` (seconds) ends a cell that hangs, so a stuck kernel fails the run instead of
    blocking it forever; ``None`` waits without limit. Without ``progress`` (as the runner executes) and
    from the main thread (:func:`redirect_stderr`), the kernel's own standard error (not its cells' output, which the executed notebook keeps) goes to
    ``OUTPUT_DIR/logs/<notebook>.stderr.txt`` and a failed run's error ends with its last lines; with
    ``progress``, papermill's progress bar and the kernel's stderr share the console.
    """
    import papermill as pm

    output_dir = Path(params.get("OUTPUT_DIR", output_dir))  # -p OUTPUT_DIR wins: read back what it wrote
    executed = output_dir / "notebooks" / notebook.name
    executed.parent.mkdir(parents=True, exist_ok=True)
    params = {**params, "OUTPUT_DIR": str(output_dir.resolve())}
    log = output_dir / "logs" / f"{notebook.stem}.stderr.txt"
    start = time.perf_counter()
    try:
        with stderr_to(log) if redirect_stderr(progress) else nullcontext():
            pm.execute_notebook(
                str(notebook),
                str(executed),
                parameters=params,
                kernel_name=kernel,
                cwd=str(notebook.parent),
                progress_bar=progress,
                execution_timeout=cell_timeout,
                extra_arguments=quiet_kernel_arguments(kernel),
            )
        status, error = "ok", ""
    except Exception as exc:  # papermill raises PapermillExecutionError, kernels may die otherwise
        status, error = "failed", describe_failure(exc, executed)
        if tail := stderr_tail(log):
            error += f"\nlast lines of the kernel's stderr ({log}):\n{tail}"
    seconds = time.perf_counter() - start
    metrics_file = output_dir / "metrics" / f"{notebook.stem}.json"
    metrics = load_metrics(metrics_file)["metrics"] if metrics_file.exists() else {}
    return Result(notebook.stem, status, seconds, metrics, error)


def finished(output_dir: str | Path, notebook: str) -> bool:
    """Whether ``output_dir`` holds a run of ``notebook`` (its stem) that ran to the end without an error.

    A metrics file alone does not say so: ``record`` writes it cell by cell, so a failed or killed run
    leaves one behind. papermill's own record in the executed notebook does.
    """
    executed = Path(output_dir) / "notebooks" / f"{notebook}.ipynb"
    if not executed.exists() or not (Path(output_dir) / "metrics" / f"{notebook}.json").exists():
        return False
    meta = json.loads(executed.read_text()).get("metadata", {}).get("papermill", {})
    return bool(meta.get("end_time")) and not meta.get("exception")
