"""Expected values and tolerance bands of every recorded metric: ``tests/expected/<profile>.json``.

A band is derived from measured runs, never guessed:

- ``smoke``: the whole workbook is executed with several seeds (``derive``); a metric's expected value
  is its value at seed 0 (the seed the tests run) and its tolerance is ``K_STD`` times its standard
  deviation over the seeds, at least a tiny floor (1e-6 relative), so float noise between machines passes
  and a real change fails. A count that no seed changed, and a hash, must match exactly.
- ``cpu``: one run per notebook is too long to repeat three times per seed; the notebooks that average
  several seeds record ``<metric>_std``, and a metric's tolerance is ``K_STD`` times the std of its own
  name or of the longest recorded ``..._std`` stem it starts with (``ml_u1_rmse_joint_dwa`` uses
  ``ml_u1_rmse_joint_std``). A metric without one gets ``ASSUMED_REL`` relative, marked ``assumed``.
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
from mtrec_utils.workbook.notebooks import NOTEBOOKS_DIR, execute, finished, list_notebooks

EXPECTED_DIR = REPO_ROOT / "tests" / "expected"
K_STD = 4.0
TIMING_FACTOR = 5.0
ASSUMED_REL = 0.03
TIMING = re.compile(
    r"(seconds|_per_s|speedup|step_time|_ms$|_ms_|peak_mem|memory|_mib|_mb_|throughput|utili[sz]ation|_share_)"
)
SHARE_SLACK = 0.05  # a timing share (fraction of a step) may also move this much in absolute terms
Metrics = Mapping[str, Mapping[str, object]]  # {notebook: {metric: value}}


def is_timing(name: str) -> bool:
    """True for metrics that measure the machine rather than the method (time, speed, memory)."""
    return bool(TIMING.search(name))


def _floor(value: float) -> float:
    """The least tolerance: float32 rounding, which may differ between CPUs, stays inside it."""
    return 1e-9 + 1e-6 * abs(value)


def band(name: str, values: Sequence[object]) -> dict:
    """The band of one metric from its values over seeds (the first is the expected value)."""
    first = values[0]
    if not isinstance(first, (int, float)) or isinstance(first, bool):
        return {"value": first, "kind": "exact"}
    if isinstance(first, int) and all(v == first for v in values):  # a count that no seed changes
        return {"value": first, "kind": "exact"}
    if is_timing(name):
        slack = SHARE_SLACK if "_share_" in name else 0.0
        return {"value": float(first), "kind": "timing", "factor": TIMING_FACTOR, "abs": slack}
    finite = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(float(v))]
    spread = float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0
    tol = max(K_STD * spread, _floor(float(first)))
    return {"value": float(first), "kind": "seeds", "tol": tol, "seed_std": spread, "num_seeds": len(values)}


def derive(runs: Sequence[Metrics]) -> dict[str, dict[str, dict]]:
    """Bands for every metric recorded by the first run; ``runs`` = one ``{notebook: metrics}`` per seed.

    Raises:
        ValueError: when a later run lacks a notebook of the first (its seeds would be silently missing).
    """
    out: dict[str, dict[str, dict]] = {}
    for notebook, metrics in runs[0].items():
        missing = [k for k, r in enumerate(runs) if notebook not in r]
        if missing:
            raise ValueError(
                f"{notebook} was not run in run(s) {missing} of {len(runs)}: run it with those "
                "seeds, or derive its bands from the seeds it was run with (--only, --seeds)"
            )
        out[notebook] = {
            name: band(name, [value] + [r[notebook][name] for r in runs[1:] if name in r[notebook]])
            for name, value in sorted(metrics.items())
        }
    return out


def _std_of(name: str, metrics: Mapping[str, object]) -> float | None:
    stems = [k[: -len("_std")] for k in metrics if k.endswith("_std") and name.startswith(k[: -len("_std")])]
    return float(metrics[max(stems, key=len) + "_std"]) if stems else None


def derive_from_recorded_std(run: Metrics) -> dict[str, dict[str, dict]]:
    """Bands for one run whose notebooks record ``<metric>_std`` over their seeds (the ``cpu`` profile)."""
    out: dict[str, dict[str, dict]] = {}
    for notebook, metrics in run.items():
        out[notebook] = {}
        for name, value in sorted(metrics.items()):
            entry = band(name, [value])
            std = _std_of(name, metrics) if entry["kind"] == "seeds" and not name.endswith("_std") else None
            if entry["kind"] == "seeds" and std is not None:
                entry.update(tol=max(K_STD * std, _floor(entry["value"])), seed_std=std, num_seeds=None)
            elif entry["kind"] == "seeds":
                entry.update(kind="assumed", tol=max(ASSUMED_REL * abs(entry["value"]), 1e-6))
                entry.pop("seed_std"), entry.pop("num_seeds")
            out[notebook][name] = entry
    return out


def check_one(entry: Mapping, value: object) -> tuple[bool, str]:
    """Whether ``value`` lies in the band ``entry``, and the band as text."""
    expected = entry["value"]
    if entry["kind"] == "exact":
        return value == expected, f"== {expected!r}"
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(float(value)):
        return False, f"a finite number near {expected:.6g}"
    if entry["kind"] == "timing":
        lo, hi = sorted((expected / entry["factor"], expected * entry["factor"]))
        lo, hi = lo - entry.get("abs", 0.0), hi + entry.get("abs", 0.0)
        return lo <= float(value) <= hi, f"[{lo:.4g}, {hi:.4g}] (x{entry['factor']:g} of {expected:.4g})"
    tol = entry["tol"]
    return abs(float(value) - expected) <= tol, f"{expected:.6g} ± {tol:.3g}"


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
    notebooks = {nb: dict((kept or {}).get(nb, mine)) for nb in sorted(metrics)}
    doc = {"profile": profile, **mine, "k_std": K_STD, "notebooks": notebooks, "metrics": metrics}
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mtrec_utils.workbook.expected", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("derive", help="execute the workbook with several seeds and write the bands")
    d.add_argument("--profile", default="smoke", help="smoke (default) | cpu | gpu")
    d.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds; the first is the expected one"
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
    args = parser.parse_args(argv)
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
        bands, kept = derive(runs), {}
        how = f"python -m mtrec_utils.workbook.expected derive --profile {args.profile} --seeds {' '.join(map(str, args.seeds))}"
        if args.only and expected_path(args.profile).exists():  # merge: the other notebooks keep theirs
            previous = load_expected(args.profile)
            kept = {nb: p for nb, p in notebook_provenance(previous).items() if nb not in bands}
            bands, how = {**previous["metrics"], **bands}, f"{how} --only {args.only}"
        print(save_expected(args.profile, bands, how, args.seeds, kept))
    else:
        run: dict[str, dict] = {}
        for folder in args.folders:
            run.update(read_run(folder))
        how = f"python -m mtrec_utils.workbook.expected from-runs --profile {args.profile} (one run; tolerances from recorded _std)"
        print(save_expected(args.profile, derive_from_recorded_std(run), how, [0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
