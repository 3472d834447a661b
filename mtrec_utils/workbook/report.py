"""The results report: every recorded metric with its band and published reference, the article's claims
checked against the numbers, and the README's results table.

``python -m mtrec_utils.workbook.report readme --metrics DIR [--write]`` prints (or writes into README.md, between
the ``results:start``/``results:end`` markers) the results table of the metrics recorded under ``DIR``.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from mtrec_utils.core.io import REPO_ROOT
from mtrec_utils.workbook.claims import ONE_SEED, check_claims, has_spread
from mtrec_utils.workbook.expected import compare, load_expected, notebook_provenance

README = REPO_ROOT / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"

# Published numbers on the same data and split, and the workbook's own targets (DESIGN.md section 7).
REFERENCES: dict[str, list[tuple[float, str]]] = {
    "ml_u1_rmse": [
        (0.9515, "Surprise SVD, u1"),
        (0.9247, "Surprise SVD++, u1"),
        (0.905, "GC-MC (Berg et al. 2017)"),
        (0.889, "GLocal-K (Han et al. 2021)"),
        (0.900, "target for the joint model, cpu profile"),
    ],
    "clothing_recommended_auc": [
        (0.92, "frozen-MiniLM logistic-regression probe"),
        (0.95, "target, cpu profile"),
    ],
}
TARGETS = {"ml_u1_rmse_joint": ("<=", 0.900), "clothing_recommended_auc_joint": (">=", 0.95)}


def load_run(output_dir: str | Path) -> dict[str, dict]:
    """``{notebook: metrics file}`` (with profile, seed, device, version) of ``OUTPUT_DIR/metrics``."""
    folder = Path(output_dir) / "metrics"
    if not folder.is_dir():
        raise FileNotFoundError(
            f"no metrics under {folder}: execute the notebooks first "
            "(python -m mtrec_utils.run --profile smoke)"
        )
    return {d["notebook"]: d for d in (json.loads(p.read_text()) for p in sorted(folder.glob("*.json")))}


def flat(run: Mapping[str, Mapping]) -> dict[str, object]:
    """All metrics of a run in one dict (names are unique across notebooks)."""
    return {k: v for doc in run.values() for k, v in doc["metrics"].items()}


def reference_text(metric: str) -> str:
    """Published references for a metric, e.g. ``"0.9247 (Surprise SVD++, u1); ..."``."""
    stem = next((s for s in REFERENCES if metric.startswith(s)), None)
    return "; ".join(f"{v:g} ({src})" for v, src in REFERENCES.get(stem, []))


def results_table(run: Mapping[str, Mapping], profile: str | None = None) -> pd.DataFrame:
    """Every recorded metric: value, expected band, status, published reference and its source."""
    profile = profile or next(iter(run.values()))["profile"]
    try:
        expected = load_expected(profile)["metrics"]
    except FileNotFoundError:
        expected = {}
    table = compare({nb: doc["metrics"] for nb, doc in run.items()}, expected)
    table = table[table.status != "missing"].copy()
    table.loc[table.status == "new", "status"] = "no band" if not expected else "new"
    table["reference"] = [reference_text(m) for m in table.metric]
    return table.reset_index(drop=True)


# Band kinds (mtrec_utils.workbook.expected): seed prediction intervals, exact values, identity bounds,
# machine-dependent timings, cpu spreads (ratio), choices seen over seeds, one-seed cpu metrics with the spread
# of the smoke seeds (borrowed), and assumed (no spread measured).
BAND_KINDS = ("seeds", "exact", "at_most", "timing", "ratio", "choice", "seen_once", "borrowed", "assumed")


def band_provenance(profile: str) -> pd.DataFrame:
    """How the bands of ``profile`` were made, one row per notebook: the seeds run, the date, how many
    bands of each kind (:data:`BAND_KINDS`; ``seeds``: a prediction interval from the measured
    seed-to-seed spread; ``borrowed``: a one-seed metric with the spread the ``smoke`` seeds measured for it;
    ``assumed``: ±3%, no spread measured), and the command. An empty table when
    the profile has no expected file."""
    try:
        doc = load_expected(profile)
    except FileNotFoundError:
        return pd.DataFrame()
    rows = []
    for notebook, how in notebook_provenance(doc).items():
        kinds = Counter(entry["kind"] for entry in doc["metrics"][notebook].values())
        rows.append(
            {
                "notebook": notebook,
                "seeds run": ", ".join(map(str, how.get("seeds", []))),
                "date": how.get("date"),
                **{k: kinds.get(k, 0) for k in BAND_KINDS},
                "how": how.get("how"),
            }
        )
    return pd.DataFrame(rows)


def paired(
    metrics: Mapping[str, object], stem: str, a: str, b: str
) -> tuple[float, float, float, float] | None:
    """(mean_a, std_a, mean_b, std_b) of ``{stem}_{a}`` and ``{stem}_{b}`` (std 0 when not recorded)."""
    if f"{stem}_{a}" not in metrics or f"{stem}_{b}" not in metrics:
        return None
    get = lambda k: float(metrics.get(k, 0.0))  # noqa: E731
    return get(f"{stem}_{a}"), get(f"{stem}_{a}_std"), get(f"{stem}_{b}"), get(f"{stem}_{b}_std")


GAIN_TASKS = [
    ("ml_u1_rmse", "u1 rating RMSE", False),
    ("ml_u1_like_auc", "u1 like AUC", True),
    ("ml_u1_ndcg10", "u1 NDCG@10", True),
    ("clothing_recommended_auc", "clothing recommended AUC", True),
    ("clothing_rating_rmse", "clothing rating RMSE", False),
    ("clothing_department_accuracy", "clothing department accuracy", True),
]


def gain_table(metrics: Mapping[str, object]) -> pd.DataFrame:
    """Single-task vs joint for every task of notebook 04: means, stds, gain (positive = joint better).

    A gain beyond twice the combined std is a verdict either way; a task measured with one seed (no
    recorded std) gets :data:`ONE_SEED`.
    """
    rows = []
    for stem, label, higher in GAIN_TASKS:
        pair = paired(metrics, stem, "single", "joint")
        if pair is None:
            continue
        s, s_std, j, j_std = pair
        gain = (j - s) if higher else (s - j)
        noise = math.hypot(s_std, j_std)
        margin = 2 * noise
        verdict = (
            ONE_SEED
            if not has_spread(metrics, f"{stem}_single", f"{stem}_joint")
            else "joint better"
            if gain > margin
            else "joint worse"
            if gain < -margin
            else "no clear difference"
        )
        rows.append(
            {
                "task": label,
                "single": s,
                "single_std": s_std,
                "joint": j,
                "joint_std": j_std,
                "gain": gain,
                "noise": noise,
                "verdict": verdict,
            }
        )
    return pd.DataFrame(rows)


def summary_markdown(metrics: Mapping[str, object]) -> str:
    """A short, honest summary written from the numbers."""
    lines = []
    gains = gain_table(metrics)
    for r in gains.itertuples():
        lines.append(
            f"- **{r.task}**: single {r.single:.4f} ± {r.single_std:.4f}, joint {r.joint:.4f} ± "
            f"{r.joint_std:.4f} → {r.verdict}."
        )
    for metric, (op, target) in TARGETS.items():
        if metric in metrics:
            value = float(metrics[metric])
            met = value <= target if op == "<=" else value >= target
            lines.append(
                f"- Target `{metric}` {op} {target}: measured {value:.4f}, **{'met' if met else 'not met'}**."
            )
    claims = check_claims(metrics)
    bad = claims[claims.verdict == "not supported"]
    if len(bad):
        checked = int((claims.verdict != "not measured in this run").sum())
        listed = "; ".join(f"§{r.section} {r.claim}" for r in bad.itertuples())
        lines.append(
            f"- {len(bad)} of {checked} checked claims of "
            f"the article are **not supported** by these numbers: {listed}."
        )
    return "\n".join(lines) if lines else "No metrics recorded yet."


EXTRA_ROWS = [
    ("u1 rating RMSE, matrix factorisation (notebook 03)", "ml_u1_rmse_mf"),
    ("u1 rating RMSE, Surprise SVD run here (notebook 03)", "ml_u1_rmse_surprise_svd"),
    ("ads: true NDCG@10 of re-ranked slates, PAL-debiased (notebook 06)", "ads_true_ndcg10_debiased"),
    ("ads: true NDCG@10, position-naive model", "ads_true_ndcg10_naive"),
    (
        "the seesaw (notebook 04, section 9): u1 rating RMSE, best joint configuration",
        "ml_u1_rmse_best_joint",
    ),
    ("... single-task, the same features (history)", "ml_u1_rmse_best_single"),
    ("... u1 like AUC, best joint configuration", "ml_u1_like_auc_best_joint"),
    ("... single-task", "ml_u1_like_auc_best_single"),
    ("... u1 NDCG@10, best joint configuration", "ml_u1_ndcg10_best_joint"),
    ("... single-task", "ml_u1_ndcg10_best_single"),
    ("u1 coverage@10 of the joint model (notebook 07)", "ml_u1_coverage_at10_joint"),
    ("clothing recommended AUC, LoRA fine-tuning, SEED's run (notebook 08)", "clothing_recommended_auc_lora"),
    ("clothing recommended AUC, full fine-tuning, SEED's run", "clothing_recommended_auc_full"),
    (
        "clothing recommended AUC on the full test split over seeds: LoRA (notebook 08)",
        "clothing_recommended_auc_full_test_lora",
    ),
    ("... full fine-tuning", "clothing_recommended_auc_full_test_full"),
    ("trainable encoder parameters, LoRA r=8 / full", "clothing_trainable_params_lora"),
    (
        "continual learning, forgetting in u1 RMSE: naive fine-tuning (notebook 10)",
        "ml_continual_forgetting_naive",
    ),
    ("continual learning, forgetting: experience replay", "ml_continual_forgetting_replay"),
    ("continual learning, forgetting: EWC", "ml_continual_forgetting_ewc"),
    ("few labels, clothing recommended AUC at 8 per class: prompt", "clothing_fewshot_recommended_prompt_k8"),
    ("few labels, the same: plain head on embeddings", "clothing_fewshot_recommended_head_k8"),
    ("robustness, area under AUC vs perturbation strength: frozen head", "clothing_perturb_area_frozen"),
    ("robustness, the same: LoRA fine-tuned encoder", "clothing_perturb_area_lora"),
    ("robustness, the same: trained with augmentation", "clothing_perturb_area_augmented"),
]


def readme_table(run: Mapping[str, Mapping]) -> str:
    """The README's results tables (markdown) from a run's metrics: single vs joint, more results, claims."""
    m = flat(run)

    def fmt(k: str) -> str:
        if k not in m:
            return ""
        std = f" ± {float(m[k + '_std']):.4f}" if k + "_std" in m else ""
        return f"{float(m[k]):.4f}{std}"

    lines = ["| task (test split) | single-task | joint | reference |", "|---|---|---|---|"]
    for stem, label, _ in GAIN_TASKS:
        if f"{stem}_single" in m or f"{stem}_joint" in m:
            lines.append(
                f"| {label} | {fmt(stem + '_single')} | {fmt(stem + '_joint')} | {reference_text(stem)} |"
            )
    lines += ["", "| more results | value |", "|---|---|"]
    for label, key in EXTRA_ROWS:
        if key == "clothing_trainable_params_lora" and key in m and "clothing_trainable_params_full" in m:
            lines.append(f"| {label} | {int(m[key]):,} / {int(m['clothing_trainable_params_full']):,} |")
        elif key in m:
            lines.append(f"| {label} | {fmt(key)} |")
    claims = check_claims(m)
    lines += ["", "| the article says (section) | ours | baseline | verdict |", "|---|---|---|---|"]
    for r in claims.itertuples():
        if r.ours is not None and not (isinstance(r.ours, float) and math.isnan(r.ours)):
            lines.append(f"| {r.claim} (§{r.section}) | {r.ours:.4f} | {r.baseline:.4f} | {r.verdict} |")
    return "\n".join(lines)


def write_readme(table: str, stamp: str, readme: Path = README) -> Path:
    """Replace the block between the results markers of ``readme`` with ``stamp`` and ``table``."""
    from mtrec_utils.core.io import atomic_write_text

    text = readme.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{readme} has no {START} ... {END} block to replace")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return atomic_write_text(readme, f"{head}{START}\n{stamp}\n\n{table}\n{END}{tail}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mtrec_utils.workbook.report", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("readme", help="the README results table from recorded metrics")
    r.add_argument("--metrics", nargs="+", required=True, help="output dirs (each with metrics/); later win")
    r.add_argument("--stamp", default="", help="the date and machine line printed above the table")
    r.add_argument("--write", action="store_true", help="write it into README.md between the markers")
    args = parser.parse_args(argv)
    run: dict[str, dict] = {}
    for folder in args.metrics:
        run.update(load_run(folder))
    table = readme_table(run)
    if args.write:
        print(write_readme(table, args.stamp))
    else:
        print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
