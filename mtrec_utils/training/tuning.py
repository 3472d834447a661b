"""Multi-objective tuning of joint training: task weights, learning rate and weight decay.

Joint training trades the tasks against each other, so there is no single best setting: there is a
*Pareto front* of settings that no other setting beats on every task at once. :func:`tune` searches
it with Optuna's NSGA-II sampler (Deb et al., "A fast and elitist multiobjective genetic algorithm:
NSGA-II", IEEE TEC 2002), one objective per task, each read on the **validation** data::

    frame = tune(bundle, ["rating", "like", "interest"], n_trials=16, workers=2, seed=0, epochs=5)
    frame[frame.pareto]          # the front: val/rating/rmse (min), val/like/auc, val/interest/ndcg@10 (max)
    best = pick(frame)           # one point of the front, by a stated rule
    run_experiment(bundle, tasks, **trial_settings(best, tasks), epochs=5)   # now, and only now, test it

A trial is one :func:`~mtrec_utils.training.experiments.run_experiment` with static task weights
(``strategy="static"``), a learning rate and a weight decay drawn from a :class:`SearchSpace`. Its
objective values are the validation metrics (each task's early-stopping metric) of the epoch the run
kept (the best epoch of the monitored metric, by default the first task's). Test metrics are never
read. Trials are asked in batches of one NSGA-II generation (``population_size``), trained together
(``workers`` processes, :func:`~mtrec_utils.training.experiments.run_experiments`) and told in order,
so the study depends on ``seed`` only, not on ``workers``.

:func:`pick` chooses one point of the front; :func:`pareto_mask` finds the front of any table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mtrec_utils.core.config import check_choice
from mtrec_utils.training.bundles import TaskBundle
from mtrec_utils.training.experiments import RunResult, run_experiments

if TYPE_CHECKING:
    import optuna

DIRECTIONS = ("minimize", "maximize")
PICK_RULES = ("utopia", "mean_rank")
# run_experiment arguments that tune sets itself
_TUNED = ("bundle", "task_names", "seed", "strategy", "strategy_kwargs", "lr", "weight_decay")


@dataclass(frozen=True)
class SearchSpace:
    """Where the trials are drawn from: log-uniform ranges ``(low, high)``; ``low == high`` fixes a value.

    Attributes:
        weight: range of each task's raw weight; a trial's weights are then scaled to sum to 1 (with
            AdamW only the ratios matter: scaling the whole loss scales the gradients and their
            second moments alike).
        lr: learning rate.
        weight_decay: AdamW's decoupled weight decay.
    """

    weight: tuple[float, float] = (0.1, 10.0)
    lr: tuple[float, float] = (3e-4, 1e-2)
    weight_decay: tuple[float, float] = (1e-2, 3.0)

    def __post_init__(self) -> None:
        for name in ("weight", "lr", "weight_decay"):
            value = getattr(self, name)
            ok = isinstance(value, tuple) and len(value) == 2
            ok = ok and all(isinstance(v, int | float) and math.isfinite(v) and v > 0 for v in value)
            if not ok or value[0] > value[1]:
                raise ValueError(
                    f"SearchSpace {name}={value!r} is not valid; give (low, high) with 0 < low <= high"
                )


def objectives(bundle: TaskBundle, task_names: Sequence[str]) -> dict[str, str]:
    """``{"val/<task>/<metric>": "minimize" | "maximize"}``: each task's early-stopping metric, in order.

    For MovieLens: ``val/rating/rmse`` (minimize), ``val/like/auc``, ``val/interest/ndcg@10`` (maximize).
    """
    return {
        f"val/{t.name}/{t.monitor}": "maximize" if t.higher_is_better() else "minimize"
        for t in bundle.select(task_names)
    }


def suggest(trial: optuna.Trial, task_names: Sequence[str], space: SearchSpace) -> dict[str, Any]:
    """Draw one trial's settings: run_experiment keyword arguments (static weights, lr, weight decay).

    The raw weights are the trial's parameters ``w_<task>``; the normalised ones (summing to 1), the
    lr and the weight decay are also kept as the trial's user attributes (a fixed value is no parameter).
    """

    def draw(name: str, bounds: tuple[float, float]) -> float:
        low, high = bounds
        return float(low) if low == high else trial.suggest_float(name, low, high, log=True)

    raw = [draw(f"w_{t}", space.weight) for t in task_names]
    weights = [w / sum(raw) for w in raw]
    lr, weight_decay = draw("lr", space.lr), draw("weight_decay", space.weight_decay)
    for key, value in (("weights", weights), ("lr", lr), ("weight_decay", weight_decay)):
        trial.set_user_attr(key, value)
    return {
        "strategy": "static",
        "strategy_kwargs": {"weights": weights},
        "lr": lr,
        "weight_decay": weight_decay,
    }


def validation_values(result: RunResult, names: Sequence[str]) -> list[float]:
    """The validation metrics ``names`` of the epoch the run kept (its history's ``best_epoch``)."""
    history = result.history
    best = history.attrs.get("best_epoch", -1)
    row = history[history["epoch"] == best] if best in set(history["epoch"]) else history.tail(1)
    return [float(row[n].iloc[0]) for n in names]


def make_study(directions: Sequence[str], seed: int = 0, population_size: int = 8) -> optuna.Study:
    """An in-memory Optuna study with an NSGA-II sampler seeded by ``seed``.

    Also turns Optuna's log down to warnings (no line per finished trial).

    Args:
        directions: ``"minimize"`` or ``"maximize"`` per objective (e.g. ``objectives(...).values()``).
        seed: the sampler's seed.
        population_size: NSGA-II's generation size.
    """
    import optuna

    goals = [
        optuna.study.StudyDirection[check_choice("direction", d, DIRECTIONS).upper()] for d in directions
    ]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.NSGAIISampler(population_size=population_size, seed=seed)
    return optuna.create_study(directions=goals, sampler=sampler)


def _check_tune_args(task_names, n_trials, workers, population_size, common) -> None:
    if isinstance(task_names, str) or len(task_names) < 2:
        raise ValueError(
            f"task_names={task_names!r} is not valid; multi-objective tuning needs a list of two or "
            "more tasks (one objective each), e.g. ['rating', 'like', 'interest']"
        )
    for name, value, least in (
        ("n_trials", n_trials, 1),
        ("workers", workers, 1),
        ("population_size", population_size, 2),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name}={value!r} is not valid; it must be an integer >= {least}")
    clash = sorted(set(common) & set(_TUNED))
    if clash:
        raise ValueError(f"{clash} are set by tune itself (each trial draws them); leave them out")


def tune(
    bundle: TaskBundle,
    task_names: Sequence[str],
    n_trials: int,
    *,
    workers: int = 1,
    seed: int = 0,
    run_seed: int = 0,
    space: SearchSpace | None = None,
    population_size: int = 8,
    study: optuna.Study | None = None,
    progress: bool = False,
    **common,
) -> pd.DataFrame:
    """Search task weights, lr and weight decay with NSGA-II; the trials as a table with a ``pareto`` column.

    Args:
        bundle: the dataset's bundle (e.g. :func:`~mtrec_utils.training.bundles.movielens_bundle`).
        task_names: two or more tasks, trained jointly; one objective each (:func:`objectives`).
        n_trials: trials to run (added to those ``study`` already has).
        workers: runs trained at once, in worker processes of one thread
            (:func:`~mtrec_utils.training.experiments.run_experiments`); the trials do not depend on it.
        seed: seeds the sampler: the same seed gives the same trials.
        run_seed: the seed of every trial's run (model initialisation, shuffling), so that trials
            differ by their settings only.
        space: the ranges searched (default :class:`SearchSpace`).
        population_size: NSGA-II's generation size; also the batch of trials asked, trained and told
            together (the first generation is drawn at random).
        study: continue this study (from :func:`make_study` with the same objectives) instead of a new one.
        progress: a progress bar per batch.
        common: further :func:`~mtrec_utils.training.experiments.run_experiment` arguments shared by
            every trial (``epochs``, ``patience``, ``device`` ...), not those tune draws.

    Returns:
        One row per trial (:func:`trials_frame`): ``number``, ``state``, the objective columns, ``lr``,
        ``weight_decay``, ``weight/<task>`` (normalised weights), ``w_<task>`` (raw weights),
        ``best_epoch``, ``seconds`` (training time of the run) and ``pareto``;
        ``frame.attrs["objectives"]`` maps each objective column to its direction.

    Raises:
        ValueError: fewer than two tasks, an unknown task, ``n_trials``/``workers``/``population_size``
            not a positive integer, a ``common`` argument that tune draws itself, or a ``study`` whose
            directions differ from the objectives.
    """
    task_names = list(task_names) if not isinstance(task_names, str) else task_names
    _check_tune_args(task_names, n_trials, workers, population_size, common)
    goals = objectives(bundle, task_names)
    space = space or SearchSpace()
    if study is None:
        study = make_study(list(goals.values()), seed, population_size)
    elif [d.name.lower() for d in study.directions] != list(goals.values()):
        raise ValueError(
            f"the study's directions {[d.name.lower() for d in study.directions]} differ from the "
            f"objectives {goals}; make it with make_study({list(goals.values())})"
        )
    done = 0
    while done < n_trials:
        batch = [study.ask() for _ in range(min(population_size, n_trials - done))]
        settings = [suggest(trial, task_names, space) for trial in batch]
        runs = [
            {**common, **s, "bundle": bundle, "task_names": task_names, "seed": run_seed} for s in settings
        ]
        try:
            results = run_experiments(runs, workers=workers, progress=progress, desc=f"trials {done}+")
        except BaseException:
            for trial in batch:
                study.tell(trial, state=_fail_state())
            raise
        for trial, result in zip(batch, results):
            values = validation_values(result, list(goals))
            trial.set_user_attr("best_epoch", int(result.history.attrs.get("best_epoch", -1)))
            trial.set_user_attr("seconds", float(result.seconds))
            if all(math.isfinite(v) for v in values):
                study.tell(trial, values)
            else:
                study.tell(trial, state=_fail_state())
        done += len(batch)
    return trials_frame(study, goals)


def _fail_state():
    import optuna

    return optuna.trial.TrialState.FAIL


def trials_frame(study: optuna.Study, goals: Mapping[str, str]) -> pd.DataFrame:
    """The study's trials as a table (see :func:`tune`); ``pareto`` marks the non-dominated complete trials."""
    rows = []
    for t in study.trials:
        row: dict[str, Any] = {"number": t.number, "state": t.state.name}
        values = t.values if t.values is not None else [np.nan] * len(goals)
        row.update(dict(zip(goals, values)))
        row.update({k: t.user_attrs.get(k, np.nan) for k in ("lr", "weight_decay")})
        names = [c.split("/")[1] for c in goals]
        weights = t.user_attrs.get("weights", [np.nan] * len(names))
        row.update({f"weight/{n}": w for n, w in zip(names, weights)})
        row.update({k: v for k, v in t.params.items() if k.startswith("w_")})
        row.update({k: t.user_attrs.get(k, np.nan) for k in ("best_epoch", "seconds")})
        rows.append(row)
    frame = pd.DataFrame(rows)
    complete = frame["state"].eq("COMPLETE").to_numpy() if len(frame) else np.zeros(0, bool)
    front = np.zeros(len(frame), bool)
    if complete.any():
        front[complete] = pareto_mask(frame.loc[complete, list(goals)].to_numpy(float), list(goals.values()))
    frame["pareto"] = front
    frame.attrs["objectives"] = dict(goals)
    return frame


def _oriented(values, directions: Sequence[str]) -> np.ndarray:
    """(n, m) values with every column turned into 'lower is better'."""
    x = np.asarray(values, dtype=float)
    if x.ndim != 2 or x.shape[1] != len(directions):
        raise ValueError(
            f"values of shape {x.shape} do not match {len(directions)} directions {list(directions)}"
        )
    for d in directions:
        if d not in DIRECTIONS:
            raise ValueError(f"direction {d!r} is not valid; choose one of: {', '.join(DIRECTIONS)}")
    sign = np.array([1.0 if d == "minimize" else -1.0 for d in directions])
    return x * sign


def pareto_mask(values, directions: Sequence[str]) -> np.ndarray:
    """(n,) bool: row ``i`` is on the Pareto front (no other row is at least as good everywhere and better somewhere).

    Args:
        values: (n, m) objective values, one column per objective.
        directions: ``"minimize"`` or ``"maximize"`` per column.
    """
    x = _oriented(values, directions)  # (n, m), lower is better
    no_worse = (x[:, None, :] <= x[None, :, :]).all(-1)  # (n, n): [j, i] = j no worse than i everywhere
    better = (x[:, None, :] < x[None, :, :]).any(-1)  # (n, n): [j, i] = j better than i somewhere
    return np.asarray(~(no_worse & better).any(0))


def pick(frame: pd.DataFrame, rule: str = "utopia", objectives: Mapping[str, str] | None = None) -> pd.Series:
    """One trial of the Pareto front, by a stated rule; returns its row.

    Rules (on the front's rows, each objective min-max normalised over the front so that 0 is its
    best value there and 1 its worst; an objective that is the same everywhere counts 0):

    - ``"utopia"``: the point closest (Euclidean) to the utopia point, the best of every objective
      at once: a balanced compromise, independent of each metric's units.
    - ``"mean_rank"``: the point with the best mean rank over the objectives (rank 1 = best on that
      objective among the front; ties share their mean rank).

    Ties go to the lowest trial number.

    Args:
        frame: from :func:`tune` (or any table with the objective columns and ``pareto``).
        rule: one of :data:`PICK_RULES`.
        objectives: ``{column: direction}``; default ``frame.attrs["objectives"]``.

    Raises:
        ValueError: an unknown rule, no objectives, or no Pareto point.
    """
    if rule not in PICK_RULES:
        raise ValueError(f"rule={rule!r} is not valid; choose one of: {', '.join(PICK_RULES)}")
    goals = dict(objectives if objectives is not None else frame.attrs.get("objectives", {}))
    if not goals:
        raise ValueError("no objectives: pass objectives={column: direction} or a frame from tune")
    front = frame[frame["pareto"]] if "pareto" in frame else frame.iloc[0:0]
    if front.empty:
        raise ValueError("the frame has no Pareto point (no complete trial)")
    x = _oriented(front[list(goals)].to_numpy(float), list(goals.values()))  # lower is better
    if rule == "utopia":
        span = x.max(0) - x.min(0)
        norm = np.divide(x - x.min(0), span, out=np.zeros_like(x), where=span > 0)  # 0 = best on the front
        score = np.sqrt((norm**2).sum(1))
    else:
        score = pd.DataFrame(x).rank(axis=0, method="average").mean(axis=1).to_numpy()
    order = np.lexsort((front["number"].to_numpy() if "number" in front else np.arange(len(front)), score))
    return front.iloc[order[0]]


def trial_settings(row: Mapping | pd.Series, task_names: Sequence[str]) -> dict[str, Any]:
    """A trial's run_experiment arguments (static weights, lr, weight decay) from its row of the table."""
    return {
        "strategy": "static",
        "strategy_kwargs": {"weights": [float(row[f"weight/{t}"]) for t in task_names]},
        "lr": float(row["lr"]),
        "weight_decay": float(row["weight_decay"]),
    }
