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
import sys
import time
from pathlib import Path
from typing import Any

from mtrec_utils.core.config import resolve_profile
from mtrec_utils.core.io import atomic_write_json
from mtrec_utils.workbook.expected import compare, load_expected, problems
from mtrec_utils.workbook.notebooks import (
    CELL_TIMEOUT_S,
    NOTEBOOKS_DIR,
    REPO,
    Result,
    check_parameter_names,
    check_parameters,
    declared_parameters,
    execute,
    list_notebooks,
    parse_value,
)

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
    "10": (
        "ml_continual_forgetting_naive",
        "ml_continual_forgetting_replay",
        "clothing_fewshot_recommended_prompt_k8",
        "clothing_perturb_area_augmented",
    ),
}


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


def _clock(seconds: float) -> str:
    """``"45 s"``, ``"6 min 5 s"``, ``"1 h 02 min"``."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def predictions(notebooks: list[Path], params: dict[str, Any]) -> tuple[str, dict[str, float | None]]:
    """The profile's name and each notebook's predicted seconds (``None``: no prediction); never raises.

    The cost model (:mod:`mtrec_utils.workbook.costmodel`) reads its FLOP counts from
    ``outputs/costmodel.json`` (counted once, the first time) and measures this machine's matmul speed
    (about a second, re-measured hourly).
    """
    try:
        profile = resolve_profile(params.get("PROFILE", "auto")).name
    except ValueError:
        return "?", {}
    try:
        from mtrec_utils.workbook.bench import matmul_flops
        from mtrec_utils.workbook.costmodel import DEFAULT_ENCODER, predict_many

        stems, encoder = [nb.stem for nb in notebooks], str(params.get("ENCODER", DEFAULT_ENCODER))
        return profile, predict_many(
            stems, profile, encoder=encoder, measure=lambda d: matmul_flops(device=d)
        )
    except Exception:  # a prediction must never stop the run
        return profile, {}


def _announce(predicted: float | None, notebook: str, profile: str) -> str:
    if predicted is None:
        return "no prediction"
    from mtrec_utils.core.budgets import BUDGETS_S

    budget = BUDGETS_S.get(profile, {}).get(notebook)
    return f"predicted ~{_clock(predicted)}" + (f" (budget {_clock(budget)})" if budget is not None else "")


def progress_line(done: int, total: int, elapsed: float, remaining: list[float | None]) -> str:
    """``progress: 3/10 notebooks in 1 min 5 s; predicted remaining ~5 min 12 s (ETA 07:24)``."""
    known = [r for r in remaining if r is not None]
    line = f"progress: {done}/{total} notebooks in {_clock(elapsed)}"
    if not remaining:
        return line
    if not known:
        return line + "; remaining: no prediction"
    left = sum(known)
    eta = time.strftime("%H:%M", time.localtime(time.time() + left))
    missing = len(remaining) - len(known)
    extra = f" + {missing} notebook(s) without prediction" if missing else ""
    return line + f"; predicted remaining ~{_clock(left)}{extra} (ETA {eta})"


def run_workbook(
    notebooks: list[Path],
    output_dir: Path,
    params: dict[str, Any],
    *,
    keep_going: bool = False,
    kernel: str = "python3",
    cell_timeout: int | None = CELL_TIMEOUT_S,
) -> list[Result]:
    """Execute ``notebooks`` in order; stop at the first failure unless ``keep_going``.

    Before each notebook it prints the cost model's prediction and the notebook's budget, after each a
    progress line with the elapsed time and the predicted rest. papermill's progress bar is off and
    the kernel's transport warning silenced (:func:`~mtrec_utils.workbook.notebooks.execute`), so the
    console shows these lines only.
    """
    results = []
    profile, predicted = predictions(notebooks, params)
    start = time.perf_counter()
    for i, nb in enumerate(notebooks, 1):
        guess = predicted.get(nb.stem)
        print(f"[{i}/{len(notebooks)}] {nb.name}: {_announce(guess, nb.stem, profile)} ...", flush=True)
        declared = set(declared_parameters(nb))  # a notebook gets the parameters it declares
        own = {k: v for k, v in params.items() if k in declared}
        result = execute(nb, output_dir, own, kernel=kernel, progress=False, cell_timeout=cell_timeout)
        results.append(result)
        vs = f" (predicted {_clock(guess)})" if guess is not None else ""
        print(f"[{i}/{len(notebooks)}] {nb.name}: {result.status} in {result.seconds:.1f} s{vs}", flush=True)
        rest = [predicted.get(n.stem) for n in notebooks[i:]]
        print(progress_line(i, len(notebooks), time.perf_counter() - start, rest), flush=True)
        if result.status != "ok":
            print(
                f"\nFAILED: {nb.name} (executed copy: {output_dir / 'notebooks' / nb.name})\n{result.error}\n",
                file=sys.stderr,
                flush=True,
            )
            if not keep_going:
                break
    summary = [{**r.__dict__, "profile": profile, "predicted_s": predicted.get(r.notebook)} for r in results]
    atomic_write_json(output_dir / "summary.json", summary)
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
        check_parameter_names(params, notebooks)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not notebooks:
        print(f"error: no NN_*.ipynb notebooks in {args.notebooks_dir}", file=sys.stderr)
        return 2
    output_dir = Path(params.pop("OUTPUT_DIR", args.output_dir))  # -p OUTPUT_DIR is --output-dir
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
        try:
            ok = check_against_expected(results, resolve_profile(params["PROFILE"]).name) == 0 and ok
        except FileNotFoundError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
