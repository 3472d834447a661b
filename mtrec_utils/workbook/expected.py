"""Expected values and tolerance bands of every recorded metric: ``tests/expected/<profile>.json``.

A band is a prediction interval for ONE new run (another seed, another machine), derived from
measured runs, never guessed. The rule, at coverage ``COVERAGE`` (99.9 %):

- ``smoke``: the workbook is executed with n >= 5 seeds (``derive``). A metric's band is
  ``mean ± t(n-1) · s · sqrt(1 + 1/n)``: ``mean`` and ``s`` (sample standard deviation) over the n
  seeds, ``t(n-1)`` the two-sided Student-t quantile with n - 1 degrees of freedom. This is the
  textbook prediction interval for one more draw from a normal distribution whose mean and spread are
  both estimated; with few seeds t is large (n = 5: t = 8.61), because the spread itself is uncertain
  (a 3-seed standard deviation is uncertain by a factor of about 2 either way, so "4 × std" was too
  narrow: an unseen seed fell outside 23 of 368 bands). A floor (1e-9 + 1e-4 relative, :data:`FLOOR_REL`)
  covers float rounding where every seed agrees.
- ``cpu``: a notebook that averages r seeds records ``<metric>`` (the mean) and ``<metric>_std``; a new
  run's mean over r seeds lies in ``mean ± t(r-1) · s · sqrt(2 / r)`` (the difference of two means of r
  draws). A ``_std`` itself lies within a factor ``sqrt(F(r-1, r-1))`` of the recorded one (the ratio
  of two sample variances is F-distributed). A metric with neither comes from one seed (a one-seed
  section: schedules, gradient cosines, task affinities; no verdict is drawn from it) and one seed has
  no spread, so its band borrows the spread that the ``smoke`` seeds measured for the same metric: the
  ``smoke`` prediction-interval half-width around the ``cpu`` value, marked ``borrowed``. ``smoke`` trains
  on a tenth of the data for two epochs, so its seeds spread at least as widely as ``cpu``'s for most
  metrics; an integer that the ``smoke`` seeds change (the best epoch) is borrowed too, not exact. Only a
  metric that ``smoke`` does not band by seeds keeps ``ASSUMED_REL`` relative, marked ``assumed``.
  Notebook 04 at ``cpu`` with ``SEED = 5`` (``results/cpu/unseen/seed5``) fell outside 25 of its 34 one-seed
  bands under the former ±3 % rule, outside 1 under this one (this rule was chosen after seeing that run).
- Exact by construction: counts that no seed changes, hashes and strings must match (a string that
  differs between seeds, e.g. the best setting's name, must be one of the values seen); identities
  (``…identity_error``, ``…equivalence_error``, ``gradcheck…``) must stay below an absolute bound;
  a bucket that is empty at some seeds records ``None`` (JSON null), and its band accepts ``None``;
  a bucket with a value at one seed only has no spread to judge by (``seen_once``: any finite number).
- Notebook 09 records counts about the run it reports on; their bands follow from the other
  notebooks' bands (:func:`report_bands`): the number of metrics is the fixed set's size, at most
  ``UNSEEN_FAIL_SHARE`` (1 %) of them may fail (the unseen-seed target), and the claim counts are
  banded over the committed seed runs like any other metric.
- Timing metrics (seconds, samples/s, speedups, memory) depend on the machine: their band is a factor
  of ``TIMING_FACTOR`` either way.

Each file says how it was made (command, date, machine), as a whole and for each notebook.
``python -m mtrec_utils.workbook.expected --help``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mtrec_utils.core.config import PROFILE_NAMES, check_choice
from mtrec_utils.core.io import REPO_ROOT, atomic_write_json
from mtrec_utils.workbook.claims import check_claims
from mtrec_utils.workbook.notebooks import NOTEBOOKS_DIR, execute, finished, list_notebooks

EXPECTED_DIR = REPO_ROOT / "tests" / "expected"
RESULTS_DIR = REPO_ROOT / "results"  # committed runs: <profile>/seeds/seed<N>/metrics/ (cpu seed 0: cpu/)
COVERAGE = 0.999  # of the prediction interval for one new run
TIMING_FACTOR = 10.0  # timings measure the machine and its load (make test runs two notebooks at once)
ASSUMED_REL = 0.03
CPU_SEEDS = 3  # seeds behind a cpu notebook's recorded mean and _std (Profile.num_seeds at cpu)
UNSEEN_FAIL_SHARE = 0.01  # metrics of one new run allowed outside their 99.9 % bands (notebook 09's counts)
REPORT = "09_results_report"
REPORT_HOW = "report_bands: from the other notebooks' bands and the committed seed runs (rederive)"
IDENTITY_BOUND = 1e-6  # an identity's error must stay below this (float64 rounding is ~1e-16)
TIMING = re.compile(
    r"(seconds|per_second|_per_s$|_per_s_|speedup|step_time|_ms$|_ms_|peak_mem|memory|_mib|_mb_|throughput"
    r"|utili[sz]ation|_share_)"
)
IDENTITY = re.compile(r"(identity_error|equivalence_error|^gradcheck_.*error)$")
SHARE_SLACK = 0.05  # a timing share (fraction of a step) may also move this much in absolute terms
Metrics = Mapping[str, Mapping[str, object]]  # {notebook: {metric: value}}


def is_timing(name: str) -> bool:
    """True for metrics that measure the machine rather than the method (time, speed, memory)."""
    return bool(TIMING.search(name))


#: Relative part of every band's least width. float32 rounding differs between CPU instruction sets
#: (the encoder's matrix products on AVX2 against AVX-512), and a rank metric over a finite sample moves
#: by a whole swapped pair when two near-tied scores trade places. Measured: notebook 10 at ``cpu`` on a
#: 2-core AMD EPYC (AVX2, 2026-12-01), its embeddings encoded there, gave ``ml_u1_fewshot_like_prompt_k0``
#: 0.5182933 against 0.5182677 (4.9e-5 relative), the value on which the three committed seeds (run on
#: other machines) agreed; 1e-6, the former floor, failed it. Every other metric of that run fell inside.
FLOOR_REL = 1e-4


def _floor(value: float) -> float:
    """The least tolerance: float rounding that differs between CPUs stays inside it (:data:`FLOOR_REL`)."""
    return 1e-9 + FLOOR_REL * abs(value)


def t_quantile(dof: int, coverage: float = COVERAGE) -> float:
    """The two-sided Student-t quantile with ``dof`` degrees of freedom at ``coverage``."""
    from scipy.stats import t

    return float(t.ppf((1 + coverage) / 2, dof))


def prediction_halfwidth(std: float, n: int, coverage: float = COVERAGE) -> float:
    """Half-width of the prediction interval for one new draw, from n draws with sample std ``std``."""
    return t_quantile(n - 1, coverage) * std * math.sqrt(1 + 1 / n)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


def band(name: str, values: Sequence[object]) -> dict:
    """The band of one metric from its values over seeds (``None``: the metric had no value there)."""
    numbers = [v for v in values if _is_number(v)]
    allow_none = any(v is None for v in values)
    if not numbers:
        others = {json.dumps(v, sort_keys=True) for v in values if v is not None}
        if len(others) > 1:  # e.g. the name of the best setting: any value seen is a valid outcome
            return {
                "values": sorted(json.loads(v) for v in others),
                "kind": "choice",
                "allow_none": allow_none,
            }
        return {
            "value": json.loads(others.pop()) if others else None,
            "kind": "exact",
            "allow_none": allow_none,
        }
    extra = {"allow_none": True} if allow_none else {}
    first = numbers[0]
    if all(isinstance(v, int) for v in numbers) and all(v == first for v in numbers):  # a fixed count
        return {"value": first, "kind": "exact", **extra}
    if IDENTITY.search(name):
        return {"value": IDENTITY_BOUND, "kind": "at_most", **extra}
    if is_timing(name):
        slack = SHARE_SLACK if "_share_" in name else 0.0
        return {"value": float(first), "kind": "timing", "factor": TIMING_FACTOR, "abs": slack, **extra}
    if len(numbers) == 1 and len(values) > 1:  # a bucket with a value at one seed only: no spread known
        return {"value": float(first), "kind": "seen_once", **extra}
    n, mean = len(numbers), float(np.mean(numbers))
    spread = float(np.std(numbers, ddof=1)) if n > 1 else 0.0
    tol = max(prediction_halfwidth(spread, n) if n > 1 else 0.0, _floor(mean))
    return {"value": mean, "kind": "seeds", "tol": tol, "seed_std": spread, "num_seeds": n, **extra}


def derive(runs: Sequence[Metrics]) -> dict[str, dict[str, dict]]:
    """Bands for every metric recorded by the first run; ``runs`` = one ``{notebook: metrics}`` per seed.

    Raises:
        ValueError: when a later run lacks a notebook of the first (its seeds would be silently missing).
    """
    out: dict[str, dict[str, dict]] = {}
    for notebook in runs[0]:
        missing = [k for k, r in enumerate(runs) if notebook not in r]
        if missing:
            raise ValueError(
                f"{notebook} was not run in run(s) {missing} of {len(runs)}: run it with those "
                "seeds, or derive its bands from the seeds it was run with (--only, --seeds)"
            )
        names = sorted(set().union(*(r[notebook] for r in runs)))
        out[notebook] = {name: band(name, [r[notebook].get(name) for r in runs]) for name in names}
    return out


def report_bands(bands: Mapping[str, Mapping], runs: Sequence[Metrics]) -> dict[str, dict]:
    """Bands of notebook 09's counts, from the other notebooks' ``bands`` and one ``{notebook: metrics}`` per seed.

    09 compares every other notebook's metrics with their bands: a whole run records exactly the banded
    set (``report_num_metrics`` exact), at most ``ceil(UNSEEN_FAIL_SHARE * n)`` of them may fall outside
    (``report_num_fail`` at most that, ``report_num_pass`` at least the rest), and the claim counts are
    what :func:`mtrec_utils.workbook.claims.check_claims` gives on each seed's run, banded by :func:`band`.
    """
    n = sum(len(b) for nb, b in bands.items() if nb != REPORT)
    allowed = math.ceil(UNSEEN_FAIL_SHARE * n)
    claims = [
        check_claims({k: v for nb, m in run.items() if nb != REPORT for k, v in m.items()}) for run in runs
    ]
    checked = [int((c.verdict != "not measured in this run").sum()) for c in claims]
    supported = [int((c.verdict == "supported").sum()) for c in claims]
    return {
        "report_num_metrics": {"value": n, "kind": "exact"},
        "report_num_pass": {"value": n - allowed, "kind": "at_least"},
        "report_num_fail": {"value": allowed, "kind": "at_most"},
        "report_num_claims_checked": band("report_num_claims_checked", checked),
        "report_num_claims_supported": band("report_num_claims_supported", supported),
    }


def _report_after_derive(
    bands: Mapping[str, Mapping], runs: Sequence[Metrics], previous: Mapping[str, Mapping] | None
) -> dict[str, dict]:
    """Notebook 09's bands after a derive; a merging one (``--only``) keeps the claim counts it had
    (its runs hold only the notebooks derived again), the counts of metrics follow the merged bands."""
    fresh = report_bands(bands, runs)
    before = (previous or {}).get(REPORT, {})
    claims = ("report_num_claims_checked", "report_num_claims_supported")
    return {**fresh, **{k: before[k] for k in claims if k in before}} if previous else fresh


def _std_of(name: str, metrics: Mapping[str, object]) -> float | None:
    stems = [k[: -len("_std")] for k in metrics if k.endswith("_std") and name.startswith(k[: -len("_std")])]
    return float(metrics[max(stems, key=len) + "_std"]) if stems else None


def derive_from_recorded_std(
    run: Metrics, num_seeds: int = CPU_SEEDS, borrow: Mapping[str, Mapping[str, Mapping]] | None = None
) -> dict[str, dict[str, dict]]:
    """Bands for one run whose notebooks record ``<metric>_std`` over ``num_seeds`` seeds (``cpu``).

    ``borrow``: bands derived from seed runs (``smoke``'s), whose spread a one-seed metric takes
    (``borrowed``; see the module docstring); without one, or where it has no seed band, ``assumed``.
    """
    t = t_quantile(num_seeds - 1)
    from scipy.stats import f

    std_factor = math.sqrt(float(f.ppf((1 + COVERAGE) / 2, num_seeds - 1, num_seeds - 1)))
    out: dict[str, dict[str, dict]] = {}
    for notebook, metrics in run.items():
        out[notebook] = {}
        for name, value in sorted(metrics.items()):
            entry = band(name, [value])
            std = _std_of(name, metrics) if entry["kind"] == "seeds" and not name.endswith("_std") else None
            if entry["kind"] == "seeds" and name.endswith("_std"):
                entry = {
                    "value": entry["value"],
                    "kind": "ratio",
                    "factor": std_factor,
                    "num_seeds": num_seeds,
                }
            elif entry["kind"] == "seeds" and std is not None:
                tol = max(t * std * math.sqrt(2 / num_seeds), _floor(entry["value"]))
                entry.update(tol=tol, seed_std=std, num_seeds=num_seeds)
            elif entry["kind"] in ("seeds", "exact") and _is_number(entry.get("value")):
                other = (borrow or {}).get(notebook, {}).get(name, {})
                if other.get("kind") == "seeds" and other.get("seed_std", 0.0) > 0:
                    entry = {
                        "value": float(entry["value"]),
                        "kind": "borrowed",
                        "tol": max(float(other["tol"]), _floor(entry["value"])),
                        "from_seeds": other["num_seeds"],
                    }
                elif entry["kind"] == "seeds":
                    entry.update(kind="assumed", tol=max(ASSUMED_REL * abs(entry["value"]), 1e-6))
                    entry.pop("seed_std"), entry.pop("num_seeds")
            out[notebook][name] = entry
    return out


def check_one(entry: Mapping, value: object) -> tuple[bool, str]:
    """Whether ``value`` lies in the band ``entry``, and the band as text."""
    if value is None and entry.get("allow_none"):
        return True, "None (an empty bucket) or " + check_one({**entry, "allow_none": False}, 0)[1]
    if entry["kind"] == "exact":
        return value == entry["value"], f"== {entry['value']!r}"
    if entry["kind"] == "choice":
        return value in entry["values"], f"one of {entry['values']!r}"
    if not _is_number(value):
        return False, "a finite number" + ("" if entry["kind"] == "choice" else f" near {entry['value']:.6g}")
    expected, number = entry["value"], float(value)  # type: ignore[arg-type]
    if entry["kind"] == "seen_once":
        return True, f"a finite number (seen at one seed only: {expected:.4g}; no spread to judge by)"
    if entry["kind"] == "at_most":
        return abs(number) <= expected, f"|x| <= {expected:.3g}"
    if entry["kind"] == "at_least":
        return number >= expected, f">= {expected:.6g}"
    if entry["kind"] in ("timing", "ratio"):
        lo, hi = sorted((expected / entry["factor"], expected * entry["factor"]))
        lo, hi = lo - entry.get("abs", 0.0), hi + entry.get("abs", 0.0)
        return lo <= number <= hi, f"[{lo:.4g}, {hi:.4g}] (x{entry['factor']:.3g} of {expected:.4g})"
    tol = entry["tol"]
    where = f" (one seed; spread of {entry['from_seeds']} smoke seeds)" if entry["kind"] == "borrowed" else ""
    return abs(number - expected) <= tol, f"{expected:.6g} ± {tol:.3g}{where}"


def compare(recorded: Metrics, expected: Mapping[str, Mapping[str, Mapping]]) -> pd.DataFrame:
    """One row per metric of the notebooks in ``recorded``: value, band, status.

    Status is ``pass``, ``FAIL`` (outside its band), ``missing`` (expected but no longer recorded) or
    ``new`` (recorded but without an expected value). Notebooks absent from ``recorded`` are skipped.
    """
    rows = []
    for notebook in sorted(recorded):
        got, want = recorded[notebook], expected.get(notebook, {})
        for name in sorted(set(got) | set(want)):
            if name not in want:
                rows.append((notebook, name, got[name], "", "new"))
            elif name not in got:
                rows.append((notebook, name, None, check_one(want[name], None)[1], "missing"))
            else:
                ok, text = check_one(want[name], got[name])
                rows.append((notebook, name, got[name], text, "pass" if ok else "FAIL"))
    return pd.DataFrame(rows, columns=["notebook", "metric", "value", "expected", "status"])


def problems(table: pd.DataFrame, profile: str) -> list[str]:
    """One message per row of :func:`compare` that is not ``pass``, saying what to do about it."""
    how = f"python -m mtrec_utils.workbook.expected derive --profile {profile}"
    msgs = []
    for r in table.itertuples():
        if r.status == "FAIL":
            msgs.append(f"{r.notebook}: {r.metric} = {r.value!r} is outside its band {r.expected}")
        elif r.status == "missing":
            msgs.append(f"{r.notebook}: {r.metric} is expected but the notebook no longer records it")
        elif r.status == "new":
            msgs.append(
                f"{r.notebook}: {r.metric} = {r.value!r} has no expected value; add it with `{how}` "
                f"(or its --from-runs form) and commit tests/expected/{profile}.json"
            )
    return msgs


def expected_path(profile: str) -> Path:
    check_choice("profile", profile, [p for p in PROFILE_NAMES if p != "auto"])
    return EXPECTED_DIR / f"{profile}.json"


def load_expected(profile: str) -> dict:
    """The expected file of ``profile``; a clear error if it does not exist yet."""
    path = expected_path(profile)
    if not path.exists():
        raise FileNotFoundError(
            f"no expected values for profile {profile!r} at {path}; "
            f"make them with `python -m mtrec_utils.workbook.expected derive --profile {profile}`"
        )
    return json.loads(path.read_text())


def save_expected(
    profile: str, metrics: Mapping, how: str, seeds: Sequence[int], kept: Mapping[str, Mapping] | None = None
) -> Path:
    """Write ``tests/expected/<profile>.json`` with its provenance, for the file and for each notebook.

    ``kept``: ``{notebook: provenance}`` of notebooks whose bands were kept from an earlier file
    (see :func:`notebook_provenance`); every other notebook gets ``how``, today, this machine, ``seeds``.
    """
    machine = f"{platform.machine()} {platform.system()}, {_cpus()} CPU cores, no GPU"
    mine = {"how": how, "date": datetime.date.today().isoformat(), "machine": machine, "seeds": list(seeds)}
    made = {nb: {**mine, "how": REPORT_HOW} if nb == REPORT else mine for nb in metrics}
    notebooks = {nb: dict((kept or {}).get(nb, made[nb])) for nb in sorted(metrics)}
    doc = {"profile": profile, **mine, "coverage": COVERAGE, "notebooks": notebooks, "metrics": metrics}
    return atomic_write_json(expected_path(profile), doc)


def notebook_provenance(doc: Mapping) -> dict[str, dict]:
    """``{notebook: {how, date, machine, seeds}}`` of an expected file (older files have one for all)."""
    whole = {k: doc[k] for k in ("how", "date", "machine", "seeds") if k in doc}
    return {nb: dict(doc.get("notebooks", {}).get(nb, whole)) for nb in doc.get("metrics", {})}


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


def read_run(folder: str | Path) -> dict[str, dict]:
    """``{notebook: metrics}`` of every metrics file in ``folder`` (or its ``metrics/`` subfolder)."""
    folder = Path(folder)
    folder = folder / "metrics" if (folder / "metrics").is_dir() else folder
    files = (json.loads(p.read_text()) for p in sorted(folder.glob("*.json")))
    return {f["notebook"]: f["metrics"] for f in files}


def committed_run(profile: str, seed: int) -> dict[str, dict]:
    """The committed metrics of one seed's run (``results/<profile>/seeds/seed<N>``; cpu seed 0: ``results/cpu``)."""
    folder = RESULTS_DIR / profile / "seeds" / f"seed{seed}"
    return read_run(RESULTS_DIR / "cpu" if profile == "cpu" and seed == 0 else folder)


def _smoke_bands(profile: str) -> dict | None:
    """The ``smoke`` bands that ``profile``'s one-seed metrics borrow their spread from (``None`` at smoke)."""
    return (
        load_expected("smoke")["metrics"] if profile != "smoke" and expected_path("smoke").exists() else None
    )


def rederive(doc: Mapping) -> dict[str, dict[str, dict]]:
    """Every band of an expected file derived again, by the current rule, from the committed runs behind it.

    Each notebook keeps its provenance: seed runs (``derive``) or one run with recorded ``_std``
    (``from-runs``). A test checks that the committed bands equal this.
    """
    profile, bands = doc["profile"], {}
    borrow = _smoke_bands(profile)  # read once for every one-run notebook
    for notebook, how in notebook_provenance(doc).items():
        if notebook == REPORT:
            continue
        if "from-runs" in how["how"]:
            one = {notebook: committed_run(profile, 0)[notebook]}
            bands.update(derive_from_recorded_std(one, borrow=borrow))
        else:
            bands.update(derive([{notebook: committed_run(profile, s)[notebook]} for s in how["seeds"]]))
    base = committed_run(profile, 0)  # cpu: seed folders hold only the notebooks derived from seeds
    seeds = sorted({0}.union(*(how["seeds"] for how in notebook_provenance(doc).values())))
    bands[REPORT] = report_bands(bands, [{**base, **committed_run(profile, s)} for s in seeds])
    return bands


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mtrec_utils.workbook.expected", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("derive", help="execute the workbook with several seeds and write the bands")
    d.add_argument("--profile", default="smoke", help="smoke (default) | cpu | gpu")
    d.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0, 1, 2, 3, 4],
        help="seeds (at least 2; 5 or more for useful bands)",
    )
    d.add_argument("--only", default=None, help="comma-separated notebook prefixes (default: all)")
    d.add_argument("--output-dir", default="outputs/expected", help="where the executed runs go")
    d.add_argument(
        "--reuse", action="store_true", help="keep notebooks that ran to the end in --output-dir (resume)"
    )
    f = sub.add_parser("from-runs", help="bands from one recorded run with <metric>_std values (cpu profile)")
    f.add_argument("--profile", default="cpu")
    f.add_argument(
        "folders", nargs="+", help="metrics folders; later folders' notebooks replace earlier ones"
    )
    r = sub.add_parser("rederive", help="bands again from the committed runs (results/), same provenance")
    r.add_argument("--profile", default="smoke")
    args = parser.parse_args(argv)
    if args.command == "rederive":
        doc = load_expected(args.profile)
        provenance = {nb: how for nb, how in notebook_provenance(doc).items() if nb != REPORT}
        print(save_expected(args.profile, rederive(doc), doc["how"], doc["seeds"], provenance))
        return 0
    if args.command == "derive":
        runs, notebooks = [], list_notebooks(NOTEBOOKS_DIR, args.only)
        wanted = {nb.stem for nb in notebooks}
        for seed in args.seeds:
            out = Path(args.output_dir) / f"seed{seed}"
            for nb in notebooks:
                done = args.reuse and finished(out, nb.stem)  # a failed or killed run is run again
                if not nb.name.startswith("09") and not done:
                    result = execute(nb, out, {"PROFILE": args.profile, "SEED": seed}, progress=False)
                    if result.status != "ok":
                        print(f"{nb.name} failed at seed {seed}:\n{result.error}")
                        return 1
            run = read_run(out)
            runs.append({nb: run[nb] for nb in run if args.only is None or nb in wanted})
        bands, kept, previous = derive(runs), {}, None
        seeds = " ".join(map(str, args.seeds))
        how = f"python -m mtrec_utils.workbook.expected derive --profile {args.profile} --seeds {seeds} --output-dir {args.output_dir}"
        if args.only and expected_path(args.profile).exists():  # merge: the other notebooks keep theirs
            previous = load_expected(args.profile)
            kept = {nb: p for nb, p in notebook_provenance(previous).items() if nb not in bands}
            bands, how = {**previous["metrics"], **bands}, f"{how} --only {args.only}"
            kept.pop(REPORT, None)
        bands[REPORT] = _report_after_derive(bands, runs, previous["metrics"] if previous else None)
        print(save_expected(args.profile, bands, how, args.seeds, kept))
    else:
        run: dict[str, dict] = {}
        for folder in args.folders:
            run.update(read_run(folder))
        how = f"python -m mtrec_utils.workbook.expected from-runs --profile {args.profile} (one run; tolerances from recorded _std)"
        one = {nb: m for nb, m in run.items() if nb != REPORT}
        bands = derive_from_recorded_std(one, borrow=_smoke_bands(args.profile))
        bands[REPORT] = report_bands(bands, [run])
        print(save_expected(args.profile, bands, how, [0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
