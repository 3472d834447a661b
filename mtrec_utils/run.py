"""Execute the workbook's notebooks in order with papermill.

Usage::

    python -m mtrec_utils.run                       # every notebook, profile auto
    python -m mtrec_utils.run --profile smoke       # the CI-sized run
    python -m mtrec_utils.run --only 00,04 -p SEED 1

Executed notebooks go to ``OUTPUT/notebooks/``, metrics to ``OUTPUT/metrics/``. On a failure the
runner prints the notebook, the failing cell and its error, and exits with status 1.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import DEVICE_NAMES, PROFILE_NAMES, check_choice
from .io import atomic_write_json
from .record import load_metrics

REPO = Path(__file__).resolve().parent.parent
CELL_TIMEOUT_S = 3600  # a single cell running longer than this is taken as hung
NOTEBOOKS_DIR = REPO / "notebooks"

# The metrics each notebook must record (DESIGN.md section 3); shown in the summary table.
KEY_METRICS: dict[str, tuple[str, ...]] = {
    "00": ("ml100k_num_ratings", "clothing_num_reviews"),
    "01": ("gradcheck_max_rel_error", "sgd_l2_equivalence_error", "adam_vs_adamw_param_diff"),
    "02": ("ml_u1_test_sha256", "article_pipeline_speedup"),
    "03": (
        "ml_u1_rmse_mf",
        "ml_u1_rmse_single",
        "ml_u1_like_auc_single",
        "ml_u1_ndcg10_single",
        "clothing_recommended_auc_single",
    ),
    "04": (
        "ml_u1_rmse_joint",
        "ml_u1_like_auc_joint",
        "ml_u1_ndcg10_joint",
        "clothing_recommended_auc_joint",
        "clothing_rating_rmse_joint",
    ),
    "05": (
        "ml_genre_purity_raw",
        "ml_genre_purity_joint",
        "ml_u1_rmse_fusion_gate",
        "ml_crossdomain_gain_rating_rmse",
        "clothing_crossdomain_gain_recommended_auc",
        "clothing_lowdata_auc_gain_text_aug",
    ),
    "06": ("ads_ctr_auc_joint", "ads_true_ndcg10_debiased", "ads_true_ndcg10_naive"),
    "07": ("ml_u1_coverage_at10_joint", "ml_u1_ndcg10_cold_users_joint"),
    "08": (
        "clothing_recommended_auc_lora",
        "clothing_trainable_params_lora",
        "clothing_trainable_params_full",
    ),
}


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

    Raises:
        ValueError: if ``only`` names a prefix with no notebook.
    """
    notebooks = sorted(p for p in Path(folder).glob("[0-9][0-9]_*.ipynb"))
    if not only:
        return notebooks
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    found = {p.name[:2]: p for p in notebooks}
    unknown = [w for w in wanted if w not in found]
    if unknown:
        raise ValueError(f"--only {only!r}: no notebook numbered {unknown}; choose from {sorted(found)}")
    return [found[w] for w in wanted]


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
    blocking it forever; ``None`` waits without limit.
    """
    import papermill as pm

    executed = output_dir / "notebooks" / notebook.name
    executed.parent.mkdir(parents=True, exist_ok=True)
    params = {"OUTPUT_DIR": str(output_dir.resolve()), **params}
    start = time.perf_counter()
    try:
        pm.execute_notebook(
            str(notebook),
            str(executed),
            parameters=params,
            kernel_name=kernel,
            cwd=str(notebook.parent),
            progress_bar=progress,
            execution_timeout=cell_timeout,
        )
        status, error = "ok", ""
    except Exception as exc:  # papermill raises PapermillExecutionError, kernels may die otherwise
        status, error = "failed", describe_failure(exc, executed)
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


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value)
    return text if len(text) <= 16 else text[:13] + "..."


def summary_table(results: list[Result]) -> str:
    """A plain-text table: notebook, status, duration, key metrics."""
    rows = [("notebook", "status", "seconds", "key metrics")]
    for r in results:
        keys = KEY_METRICS.get(r.notebook[:2], ())
        shown = ", ".join(f"{k}={_fmt(r.metrics[k])}" for k in keys if k in r.metrics)
        missing = [k for k in keys if k not in r.metrics]
        if missing and r.status == "ok":
            shown += f" (missing: {', '.join(missing)})"
        rows.append((r.notebook, r.status, f"{r.seconds:.1f}", shown))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    out = [" | ".join(row[i].ljust(widths[i]) for i in range(3)) + " | " + row[3] for row in rows]
    out.insert(1, "-" * len(out[0]))
    return "\n".join(out)


def run_workbook(
    notebooks: list[Path],
    output_dir: Path,
    params: dict[str, Any],
    *,
    keep_going: bool = False,
    kernel: str = "python3",
    cell_timeout: int | None = CELL_TIMEOUT_S,
) -> list[Result]:
    """Execute ``notebooks`` in order; stop at the first failure unless ``keep_going``."""
    results = []
    for i, nb in enumerate(notebooks, 1):
        print(f"[{i}/{len(notebooks)}] {nb.name} ...", flush=True)
        result = execute(nb, output_dir, params, kernel=kernel, cell_timeout=cell_timeout)
        results.append(result)
        print(f"[{i}/{len(notebooks)}] {nb.name}: {result.status} in {result.seconds:.1f} s", flush=True)
        if result.status != "ok":
            print(
                f"\nFAILED: {nb.name} (executed copy: {output_dir / 'notebooks' / nb.name})\n{result.error}\n",
                file=sys.stderr,
                flush=True,
            )
            if not keep_going:
                break
    atomic_write_json(output_dir / "summary.json", [r.__dict__ for r in results])
    return results


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mtrec_utils.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="auto", help="smoke | cpu | gpu | auto (default: auto)")
    p.add_argument("--only", default=None, help="comma-separated notebook numbers, e.g. 00,04 (default: all)")
    p.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="a notebook parameter, e.g. -p SEED 1 (repeatable)",
    )
    p.add_argument(
        "--output-dir", default=str(REPO / "outputs"), help="where executed notebooks and metrics go"
    )
    p.add_argument("--notebooks-dir", default=str(NOTEBOOKS_DIR), help="folder of the NN_*.ipynb notebooks")
    p.add_argument(
        "--kernel", default="python3", help="Jupyter kernel name (default: python3 of this Python)"
    )
    p.add_argument(
        "--cell-timeout",
        type=int,
        default=CELL_TIMEOUT_S,
        help=f"seconds a single cell may run before the notebook fails (default {CELL_TIMEOUT_S})",
    )
    p.add_argument("--keep-going", action="store_true", help="run the remaining notebooks after a failure")
    p.add_argument(
        "--check",
        action="store_true",
        help="compare every recorded metric with tests/expected/<profile>.json and fail on any outside its band",
    )
    return p


def check_against_expected(results: list[Result], profile: str) -> int:
    """Print the comparison of the recorded metrics with the profile's bands; 0 if all pass, else 1."""
    from .expected import compare, load_expected, problems

    expected = load_expected(profile)
    table = compare({r.notebook: r.metrics for r in results if r.status == "ok"}, expected["metrics"])
    counts = table["status"].value_counts().to_dict()
    print(f"\ncheck against tests/expected/{profile}.json ({expected['how']}, {expected['date']}):")
    print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    for msg in problems(table, profile):
        print("  " + msg)
    return 0 if set(counts) <= {"pass"} else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        params = {name: parse_value(value) for name, value in args.parameter}
        params["PROFILE"] = params.get("PROFILE", args.profile)
        check_parameters(params)
        notebooks = list_notebooks(Path(args.notebooks_dir), args.only)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not notebooks:
        print(f"error: no NN_*.ipynb notebooks in {args.notebooks_dir}", file=sys.stderr)
        return 2
    output_dir = Path(args.output_dir)
    results = run_workbook(
        notebooks,
        output_dir,
        params,
        keep_going=args.keep_going,
        kernel=args.kernel,
        cell_timeout=args.cell_timeout,
    )
    print("\n" + summary_table(results))
    ok = all(r.status == "ok" for r in results) and len(results) == len(notebooks)
    if args.check:
        from .config import resolve_profile

        try:
            ok = check_against_expected(results, resolve_profile(params["PROFILE"]).name) == 0 and ok
        except FileNotFoundError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
