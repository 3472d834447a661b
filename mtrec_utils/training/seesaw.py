"""The seesaw of joint training (one task gains, another loses) and the tools that measure and fix it.

Notebook 04's last section uses these pieces, each small and tested:

- task affinity against the gain table: :func:`affinity_every` sizes an
  :class:`~mtrec_utils.training.affinity.AffinityRecorder`; :func:`affinity_verdict` says whether
  the affinity a task *receives* from the others predicts which task joint training hurts;
- architectures on one budget: :func:`parameter_counts`, :func:`validation_means` and
  :func:`pick_architecture` (chosen on validation metrics only);
- multi-objective tuning with a stored study: :func:`study_size` per profile, :func:`study_key`
  (a hash of the code, the data and the settings) and :func:`cached_study` / :func:`run_study`,
  which reuse a study kept as CSV only while that key is unchanged;
- the final comparison: :func:`chosen_settings` (the picked trial, or the untuned settings) and
  :func:`target_table` (each target, the measured value and the signed margin to it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mtrec_utils.core.config import Profile, check_choice, check_positive, resolve_profile
from mtrec_utils.core.io import REPO_ROOT, atomic_write_text
from mtrec_utils.models.sharing import build_model
from mtrec_utils.training.bundles import TaskBundle
from mtrec_utils.training.experiments import RunResult, summarize
from mtrec_utils.training.tuning import SearchSpace, objectives, pick, trial_settings, tune, validation_values

TUNE_MODES = ("auto", "run", "skip")
#: the modules a study runs: a change to them or to any package module they import reruns a stored study
CODE_ROOTS = ("mtrec_utils.training.tuning", "mtrec_utils.training.seesaw")
_HEADER = "# mtrec-study "


# --- task affinity against the gain table ---------------------------------------------------------


def affinity_every(bundle: TaskBundle, task_names: Sequence[str], per_epoch: int = 6) -> int:
    """Steps between affinity measurements so that a joint epoch gets about ``per_epoch`` of them.

    A joint epoch makes as many steps as the longest training loader of the tasks' data has batches.
    """
    check_positive("per_epoch", per_epoch, integer=True)
    steps = max(len(bundle.train[t.data]) for t in bundle.select(task_names))
    return max(1, steps // per_epoch)


def received_affinity(matrix: pd.DataFrame) -> pd.Series:
    """Mean affinity each task receives from the others: column mean of ``Z[i, j]`` over ``i != j``."""
    values = matrix.to_numpy(dtype=float)
    if values.ndim != 2 or values.shape[0] != values.shape[1] or values.shape[0] < 2:
        raise ValueError(f"an affinity matrix must be square with 2 or more tasks; got shape {values.shape}")
    if list(matrix.index) != list(matrix.columns):
        raise ValueError(f"rows {list(matrix.index)} and columns {list(matrix.columns)} name different tasks")
    off = ~np.eye(len(values), dtype=bool)
    means = [values[off[:, j], j].mean() for j in range(len(values))]
    return pd.Series(means, index=list(matrix.columns), name="received affinity")


@dataclass(frozen=True)
class AffinityVerdict:
    """Does the affinity onto each task predict the harm joint training did to it?

    Attributes:
        table: one row per task: ``metric``, ``received affinity``, ``gain`` (positive = joint better),
            ``relative gain`` (gain / single-task mean) and ``verdict`` from the gain table.
        predicted: the task with the lowest received affinity (the one predicted to be hurt).
        hurt: the tasks whose metric the gain table calls "hurts".
        predicts_harm: whether ``predicted`` is one of ``hurt`` (False when nothing was hurt).
        sentence: the verdict in words, built from the numbers.
    """

    table: pd.DataFrame
    predicted: str
    hurt: list[str]
    predicts_harm: bool
    sentence: str


def affinity_verdict(
    matrix: pd.DataFrame, gains: pd.DataFrame, metrics: Mapping[str, str], joint: str = "joint"
) -> AffinityVerdict:
    """Rule: the task with the lowest mean affinity received from the others is one joint training hurts.

    Args:
        matrix: mean lookahead affinity (``AffinityRecorder.matrix()``: rows stepped on, columns read).
        gains: :func:`~mtrec_utils.training.experiments.gain_table` with ``"<joint> gain"`` and
            ``"<joint> verdict"`` columns; its single-task column is ``"single"`` ("mean ± std").
        metrics: ``{task: "<task>/<metric>"}``, the metric of the gain table judged for each task.
        joint: the joint setting's label in the gain table.

    Raises:
        ValueError: a task missing from the matrix or the gain table, or gain columns missing.
    """
    received = received_affinity(matrix)
    for column in (f"{joint} gain", f"{joint} verdict", "single"):
        if column not in gains.columns:
            raise ValueError(f"the gain table has no column {column!r}; columns: {list(gains.columns)}")
    missing = [t for t in received.index if t not in metrics] + [
        m for m in metrics.values() if m not in gains.index
    ]
    extra = [t for t in metrics if t not in received.index]
    if missing or extra:
        raise ValueError(f"tasks/metrics not in both the matrix and the gain table: {missing + extra}")
    rows, gain_of = [], gains[f"{joint} gain"].astype(float).to_dict()
    for task in map(str, received.index):
        single = float(str(gains.loc[metrics[task], "single"]).split("±")[0])  # "mean ± std"
        gain, verdict = gain_of[metrics[task]], str(gains.loc[metrics[task], f"{joint} verdict"])
        rows.append((task, metrics[task], float(received[task]), gain, gain / abs(single), verdict))
    columns = ["task", "metric", "received affinity", "gain", "relative gain", "verdict"]
    table = pd.DataFrame(rows, columns=columns).set_index("task")
    predicted = str(received.idxmin())
    hurt = [str(t) for t in table.index[table["verdict"] == "hurts"]]
    ok = predicted in hurt
    low = f"{predicted!r} receives the least affinity from the others ({received[predicted]:+.3g})"
    if not hurt:
        sentence = f"{low}, but joint training hurt no task here: there is no harm to predict."
    else:
        worst = f"{metrics[predicted]} gain {gain_of[metrics[predicted]]:+.4f}"
        did = "and joint training hurts it" if ok else f"but joint training hurts {hurt}, not it"
        sentence = f"{low} {did} ({worst}): the affinity {'predicts' if ok else 'does not predict'} the harm."
    return AffinityVerdict(table, predicted, hurt, ok, sentence)


# --- architectures on the same budget, chosen on validation ---------------------------------------


def parameter_counts(
    bundle: TaskBundle, task_names: Sequence[str], archs: Mapping[str, Mapping]
) -> pd.DataFrame:
    """Trainable and shared parameters of each architecture: ``{label: {"arch": ..., "arch_kwargs": ...}}``."""
    tasks = bundle.select(task_names)
    rows = {}
    with torch.random.fork_rng(devices=[]):  # building draws initial weights: leave no trace
        for label, spec in archs.items():
            model = build_model(
                spec.get("arch", "hard"), bundle.make_towers(), tasks, **(spec.get("arch_kwargs") or {})
            )
            trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
            rows[label] = {
                "trainable": trainable,
                "shared": sum(p.numel() for p in model.shared_parameters()),
            }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("architecture")


def validation_means(results: Mapping[str, Sequence[RunResult]], goals: Mapping[str, str]) -> pd.DataFrame:
    """Mean over seeds of each objective (``val/<task>/<metric>`` at the kept epoch), one row per label."""
    return pd.DataFrame(
        {
            label: np.mean([validation_values(r, list(goals)) for r in runs], axis=0)
            for label, runs in results.items()
        },
        index=list(goals),
    ).T.rename_axis("setting")


def pick_architecture(
    means: pd.DataFrame,
    goals: Mapping[str, str],
    candidates: Sequence[str] = ("hard", "ple"),
    prefer: str = "ple",
) -> tuple[str, str]:
    """The candidate best on the most validation objectives (a tie goes to ``prefer``), and why.

    Args:
        means: :func:`validation_means` (rows: labels, columns: objectives).
        goals: ``{objective column: "minimize" | "maximize"}``.
        candidates: labels compared; ``prefer`` must be one of them.
    """
    check_choice("prefer", prefer, candidates)
    unknown = [c for c in candidates if c not in means.index] + [g for g in goals if g not in means.columns]
    if unknown:
        raise ValueError(f"not in the validation table: {unknown}")
    wins = dict.fromkeys(candidates, 0)
    for goal, direction in goals.items():
        col = means.loc[list(candidates), goal]
        wins[str(col.idxmin() if direction == "minimize" else col.idxmax())] += 1
    top = max(wins.values())
    best = prefer if wins[prefer] == top else next(c for c in candidates if wins[c] == top)
    score = ", ".join(f"{c} {n}" for c, n in wins.items())
    return best, f"{best!r} is best on the most validation objectives (wins of {len(goals)}: {score})"


# --- multi-objective tuning, stored while code, data and settings are unchanged -------------------


@dataclass(frozen=True)
class StudySize:
    """How big a tuning study is: trials, NSGA-II generation, and each trial's epochs and patience."""

    n_trials: int
    population_size: int
    epochs: int
    patience: int


#: per profile: smoke = a handful of one-epoch trials (seconds); cpu = a real front with capped epochs
STUDY_SIZES = {
    "smoke": StudySize(n_trials=4, population_size=4, epochs=1, patience=1),
    "cpu": StudySize(n_trials=16, population_size=8, epochs=6, patience=2),
    "gpu": StudySize(n_trials=8, population_size=4, epochs=2, patience=1),
}


def study_size(profile: str | Profile) -> StudySize:
    """The study's size for ``profile`` (a name or a Profile; ``auto`` resolves as everywhere)."""
    return STUDY_SIZES[resolve_profile(profile).name]


def code_files(roots: Sequence[str] = CODE_ROOTS) -> list[Path]:
    """The package's source files that ``roots`` import, directly or not (and their packages' ``__init__``).

    Read from the ``import`` statements (anywhere in a file, functions included), so a module that
    none of them reaches (e.g. another notebook's analysis) can change without rerunning a study.
    """
    import ast

    base = Path(__file__).resolve().parents[2]  # the folder holding mtrec_utils/

    def source(module: str) -> Path | None:
        path = base.joinpath(*module.split("."))
        return next((p for p in (path.with_suffix(".py"), path / "__init__.py") if p.exists()), None)

    todo, found = [r for r in roots], {}
    while todo:
        module = todo.pop()
        parts = module.split(".")
        for name in (
            ".".join(parts[:k]) for k in range(1, len(parts) + 1)
        ):  # a module runs its packages first
            path = source(name)
            if path is None or name in found:
                continue
            found[name] = path
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    todo += [a.name for a in node.names if a.name.startswith("mtrec_utils")]
                elif (
                    isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mtrec_utils")
                ):
                    todo += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return sorted(set(found.values()))


def code_fingerprint(roots: Sequence[str] = CODE_ROOTS) -> str:
    """sha256 of :func:`code_files` (paths relative to the package and contents)."""
    digest = hashlib.sha256()
    for path in code_files(roots):
        digest.update(path.relative_to(Path(__file__).resolve().parents[2]).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _feed(digest, obj: Any, seen: dict[int, Any]) -> None:
    """Add ``obj``'s content to ``digest``: tensors, arrays, containers, modules, dataclasses, objects.

    ``seen`` keeps every container met (by id, and alive, so that no id is reused while hashing).
    """
    digest.update(type(obj).__name__.encode())
    if obj is None or isinstance(obj, bool | int | float | str):
        digest.update(repr(obj).encode())
    elif isinstance(obj, torch.Tensor | np.ndarray):
        t = torch.as_tensor(obj).detach().cpu().contiguous().reshape(-1)
        digest.update(f"{t.dtype}{tuple(obj.shape)}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(obj, torch.Generator) or (callable(obj) and not isinstance(obj, torch.nn.Module)):
        digest.update(getattr(obj, "__qualname__", "").encode())  # random state and code: not data
    elif id(obj) in seen:
        digest.update(b"<seen>")
    else:
        seen[id(obj)] = obj
        if isinstance(obj, Mapping):
            for k in sorted(obj, key=str):
                _feed(digest, str(k), seen)
                _feed(digest, obj[k], seen)
        elif isinstance(obj, list | tuple):
            for item in obj:
                _feed(digest, item, seen)
        elif isinstance(obj, torch.nn.Module):
            _feed(digest, dict(obj.state_dict()), seen)
        elif isinstance(obj, torch.utils.data.DataLoader):
            _feed(digest, (obj.dataset, obj.batch_size, type(obj.sampler).__name__), seen)
        elif dataclasses.is_dataclass(obj):
            _feed(digest, {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}, seen)
        else:
            _feed(digest, getattr(obj, "__dict__", repr(obj)), seen)


def bundle_fingerprint(bundle: TaskBundle) -> str:
    """sha256 of what a study reads from a bundle: tasks, training and validation data, text tables,
    tower settings (e.g. the history lists), labels and width. The test split is left out: a study
    never reads it."""
    digest = hashlib.sha256()
    parts = ("name", "tasks", "train", "val", "texts", "tower_kwargs", "labels", "dim")
    _feed(digest, {p: getattr(bundle, p) for p in parts}, {})
    return digest.hexdigest()


def study_key(
    bundle: TaskBundle, task_names: Sequence[str], profile: str | Profile, seed: int, **settings
) -> str:
    """sha256 of everything a study's result depends on: code, data, profile, seed and its settings.

    ``settings`` are the study's other arguments (size, search space, run_experiment arguments);
    they must be JSON-writable (dataclasses are written as dicts).
    """
    import optuna

    def plain(value: Any) -> Any:
        return (
            dataclasses.asdict(value)
            if dataclasses.is_dataclass(value) and not isinstance(value, type)
            else str(value)
        )

    content = {
        "code": code_fingerprint(),
        "data": bundle_fingerprint(bundle),
        "profile": resolve_profile(profile).name,
        "seed": seed,
        "tasks": list(task_names),
        "versions": [torch.__version__, optuna.__version__],
        "settings": settings,
    }
    text = json.dumps(content, sort_keys=True, default=plain)
    return hashlib.sha256(text.encode()).hexdigest()


def save_study(path: str | Path, frame: pd.DataFrame, key: str) -> Path:
    """Write a trials table atomically as CSV, with a first line holding the key and the objectives."""
    meta = {"key": key, "objectives": dict(frame.attrs.get("objectives", {}))}
    return atomic_write_text(path, _HEADER + json.dumps(meta) + "\n" + frame.to_csv(index=False))


def load_study(path: str | Path, key: str) -> pd.DataFrame | None:
    """The stored trials table if ``path`` holds one for ``key``; None if missing, for another key or
    unreadable (the last two with a warning)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        first, _, rest = path.read_text().partition("\n")
        if not first.startswith(_HEADER):
            raise ValueError("no study header")
        meta = json.loads(first[len(_HEADER) :])
        if meta.get("key") != key:
            warnings.warn(
                f"{path} holds a study for other code, data or settings: running it again", stacklevel=2
            )
            return None
        frame = pd.read_csv(io.StringIO(rest))
        needed = ["number", "state", "pareto", *meta["objectives"]]
        if missing := [c for c in needed if c not in frame.columns]:
            raise ValueError(f"columns {missing} missing")
        if not frame["pareto"].isin([True, False]).all():
            raise ValueError("the pareto column is not boolean")
    except (OSError, ValueError, KeyError, TypeError, pd.errors.ParserError) as err:
        warnings.warn(f"ignoring the unreadable stored study {path} ({err}): running it again", stacklevel=2)
        return None
    frame["pareto"] = frame["pareto"].astype(bool)
    frame.attrs["objectives"] = dict(meta["objectives"])
    return frame


def stored_study_folder(profile: str | Profile) -> Path:
    """Where the repository keeps the studies it ships for ``profile``: ``results/<profile>/seesaw/tuning``.

    A study there was run by notebook 04 at that profile and committed with the code it came from; a
    fresh clone reuses it (read-only) while its key still matches, so the notebook fits its time budget.
    """
    return REPO_ROOT / "results" / resolve_profile(profile).name / "seesaw" / "tuning"


def cached_study(
    folder: str | Path,
    name: str,
    key: str,
    run: Callable[[], pd.DataFrame],
    mode: str = "auto",
    stored: Sequence[str | Path] = (),
) -> tuple[pd.DataFrame | None, str]:
    """A study's trials, reused from ``folder/<name>-<key[:16]>.csv`` or run and stored; and what happened.

    Args:
        folder: where studies are kept (e.g. ``OUTPUT_DIR/tuning``).
        name: the study's name (a file name stem).
        key: :func:`study_key` of the study.
        run: runs the study and returns its trials table (:func:`~mtrec_utils.training.tuning.tune`).
        mode: ``"auto"`` (reuse a stored study with this key, else run it), ``"run"`` (always run and
            store) or ``"skip"`` (no study: returns None).
        stored: further folders searched after ``folder`` in ``"auto"`` mode, read-only (e.g.
            :func:`stored_study_folder`): a study found there is reused, never rewritten.

    Returns:
        ``(frame or None, status)`` with status ``"reused"``, ``"reused from <folder>"``, ``"ran"`` or
        ``"skipped"``.
    """
    check_choice("TUNE", mode, TUNE_MODES)
    if mode == "skip":
        return None, "skipped"
    file = f"{name}-{key[:16]}.csv"
    path = Path(folder) / file
    if mode == "auto":
        if (frame := load_study(path, key)) is not None:
            return frame, "reused"
        for other in stored:
            if (Path(other) / file).exists() and (frame := load_study(Path(other) / file, key)) is not None:
                return frame, f"reused from {other}"
    frame = run()
    save_study(path, frame, key)
    return frame, "ran"


def run_study(
    bundle: TaskBundle,
    task_names: Sequence[str],
    profile: str | Profile,
    *,
    folder: str | Path,
    seed: int = 0,
    workers: int = 1,
    mode: str = "auto",
    space: SearchSpace | None = None,
    stored: Sequence[str | Path] = (),
    **common,
) -> tuple[pd.DataFrame | None, str]:
    """:func:`~mtrec_utils.training.tuning.tune` sized by :func:`study_size`, through :func:`cached_study`.

    The sampler and every trial's run use ``seed``; ``common`` are further run_experiment arguments
    (``arch``, ``device`` ...; the study's epochs and patience come from its size). ``workers`` is
    not in the key: the trials do not depend on it. ``stored``: read-only folders also searched (see
    :func:`cached_study`), e.g. ``[stored_study_folder(profile)]``.
    """
    size, space = study_size(profile), space or SearchSpace()
    common = {**common, "epochs": size.epochs, "patience": size.patience}
    key = study_key(bundle, task_names, profile, seed, size=size, space=space, common=common)

    def run() -> pd.DataFrame:
        return tune(bundle, task_names, size.n_trials, workers=workers, seed=seed, run_seed=seed, space=space,
                    population_size=size.population_size, **common)  # fmt: skip

    return cached_study(folder, f"{bundle.name}_study", key, run, mode, stored)


def chosen_settings(
    frame: pd.DataFrame | None, task_names: Sequence[str], rule: str = "utopia"
) -> tuple[dict[str, Any], str]:
    """run_experiment arguments of the trial :func:`~mtrec_utils.training.tuning.pick` chooses, and why;
    without a study (``None``), no arguments: the untuned settings (equal weights, the notebook's lr)."""
    if frame is None:
        return {}, "no study (TUNE='skip'): equal weights and the notebook's lr and weight decay"
    row = pick(frame, rule)
    settings = trial_settings(row, task_names)
    goals = frame.attrs["objectives"]
    values = ", ".join(f"{g} {row[g]:.4f}" for g in goals)
    front = int(frame["pareto"].sum())
    weights = ", ".join(f"{t} {w:.2f}" for t, w in zip(task_names, settings["strategy_kwargs"]["weights"]))
    why = (
        f"trial {int(row['number'])} of {front} on the front is closest to the utopia point (the best of every"
        f" validation objective at once, each scaled to the front's range): {values}; weights {weights},"
        f" lr {settings['lr']:.2g}, weight decay {settings['weight_decay']:.2g}"
    )
    return settings, why if rule == "utopia" else f"trial {int(row['number'])} by rule {rule!r}: {values}"


def monitor_metrics(bundle: TaskBundle, task_names: Sequence[str]) -> dict[str, str]:
    """``{task: "<task>/<monitor>"}``: the metric each task stops on (rating/rmse, like/auc, ...)."""
    return {goal.split("/")[1]: goal.split("/", 1)[1] for goal in objectives(bundle, task_names)}


# --- targets ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """``metric`` must be ``op`` (``"<="`` or ``">="``) ``reference``: a number, or ``"single"``."""

    metric: str
    op: str
    reference: float | str
    source: str = ""


#: DESIGN.md section 7 for u1: RMSE <= 0.905 (GC-MC), NDCG@10 >= 0.446 (matrix factorisation,
#: notebook 03), and the best joint configuration at least as good as single-task on every task
TARGETS = (
    Target("rating/rmse", "<=", 0.905, "GC-MC"),
    Target("interest/ndcg@10", ">=", 0.446, "matrix factorisation, notebook 03"),
    Target("rating/rmse", "<=", "single"),
    Target("like/auc", ">=", "single"),
    Target("interest/ndcg@10", ">=", "single"),
)


def target_table(
    rows: pd.DataFrame, joint: str, single: Mapping[str, str], targets: Sequence[Target] = TARGETS
) -> pd.DataFrame:
    """Each target against the mean over seeds: ``target``, ``measured``, ``margin`` (>= 0: met), ``met``.

    Args:
        rows: :func:`~mtrec_utils.training.experiments.run_seeds` rows with ``joint`` and the singles.
        joint: the joint setting's label.
        single: ``{task: its single-task setting label}``.
    """
    stats = summarize(rows)["mean"]
    out = []
    for t in targets:
        check_choice("op", t.op, ("<=", ">="))
        task = t.metric.split("/")[0]
        if (joint, t.metric) not in stats.index or (t.reference == "single" and task not in single):
            raise ValueError(f"no measured {t.metric!r} for {joint!r} (or its single-task run) in the rows")
        ref = float(stats[(single[task], t.metric)]) if t.reference == "single" else float(t.reference)
        measured = float(stats[(joint, t.metric)])
        margin = ref - measured if t.op == "<=" else measured - ref
        what = f"single-task {ref:.4f}" if t.reference == "single" else f"{ref:.4f} ({t.source})"
        out.append({"metric": t.metric, "target": f"{t.op} {what}", "measured": measured, "margin": margin})
    table = pd.DataFrame(out)
    table["met"] = table["margin"] >= 0
    return table


def target_sentences(table: pd.DataFrame) -> list[str]:
    """One line per target: ``rating/rmse 0.9301, target <= 0.9050 (GC-MC): missed by 0.0251``."""
    return [
        f"{m} {v:.4f}, target {t}: {'met by' if ok else 'missed by'} {abs(d):.4f}"
        for m, v, t, d, ok in zip(
            table["metric"], table["measured"], table["target"], table["margin"], table["met"]
        )
    ]
