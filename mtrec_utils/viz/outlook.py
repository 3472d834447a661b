"""Notebook 10's sentences from the numbers and its perturbation explorer (the article's section 8).

- :func:`describe_continual`: what the continual-learning summary says about "keep old knowledge while
  absorbing new data" (持续学习), including where it does not hold;
- :func:`describe_fewshot`: what the learning curves say about "fewer labels through task
  descriptions" (标注样本需求降低, 提示学习);
- :func:`describe_perturbation_claim`: what the robustness areas say about robustness to small
  perturbations (鲁棒性) and about augmentation as a remedy;
- :class:`PerturbationExplorer`: a slider over perturbation strength showing one test review as each
  perturbation changes it (changed words marked) and every model's test AUC at that strength. The
  HTML is in an ``HTML`` widget (never an ``Output`` widget); headless, :meth:`PerturbationExplorer.render`
  gives the same HTML for ``IPython.display.HTML``.

Every sentence is computed from the tables passed in, so the text always matches the run.
"""

from __future__ import annotations

import difflib
import html
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

SMALL_FORGETTING = 0.005  # stars of RMSE: below this, forgetting is too small to matter on a 1-5 scale
CLEAR_GAIN = 0.01  # AUC / macro-F1 / stars: a difference under this is "about the same" for one seed
METHOD_NAMES = {
    "scratch": "retraining from scratch",
    "naive": "naive fine-tuning",
    "replay": "replay",
    "ewc": "EWC",
    "adapter": "per-period adapters",
}


def _check_columns(table: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing or table.empty:
        raise ValueError(f"{what} lacks columns {missing} or has no rows; got columns {list(table.columns)}")


def _versus(gain: float, better: str, worse: str, same: str = "about the same as") -> str:
    """``better`` / ``worse`` / ``same`` by the sign of ``gain`` (positive = better), :data:`CLEAR_GAIN` apart."""
    return better if gain > CLEAR_GAIN else worse if gain < -CLEAR_GAIN else same


def _signed(x: float, digits: int = 4) -> str:
    """``x`` with its sign, never ``-0.0000`` (a value that rounds to zero reads ``+0.0000``)."""
    return f"{round(float(x), digits) + 0.0:+.{digits}f}"


def describe_continual(summary: pd.DataFrame) -> str:
    """Sentences on the article's continual-learning claim from ``ContinualResult.summary``.

    Args:
        summary: one row per method (index), columns ``new_period_rmse``, ``final_rmse``,
            ``forgetting_rmse``, ``seconds``, ``stored_ratings``; ``naive`` among the rows.

    Returns:
        One sentence per line: how much naive fine-tuning forgets, which methods forget less, what
        each costs in new-period RMSE (plasticity), and how close the cheap methods come to retraining.
    """
    _check_columns(summary, ("new_period_rmse", "final_rmse", "forgetting_rmse", "seconds"), "summary")
    if "naive" not in summary.index:
        raise ValueError(f"summary needs the 'naive' row as the reference; it has {list(summary.index)}")
    s, naive = summary, summary.loc["naive"]
    f0, lines = float(naive["forgetting_rmse"]), []
    size = "small" if f0 < SMALL_FORGETTING else "clear"
    lines.append(
        f"Naive fine-tuning forgets {_signed(f0)} stars of RMSE on the earlier periods (mean over periods): "
        f"{size} forgetting ({'under' if f0 < SMALL_FORGETTING else 'over'} {SMALL_FORGETTING} stars)."
    )
    if f0 < SMALL_FORGETTING:
        lines.append(
            "So on these periods there is little old knowledge to lose: the article's worry (不遗忘原有知识) "
            "does not bite here, and the methods built against forgetting have little to win."
        )
    for m in (m for m in s.index if m not in ("naive", "scratch")):
        f = float(s.loc[m, "forgetting_rmse"])
        gain_f = f0 - f  # > 0: forgets less than naive
        than = (
            "about as much as naive"
            if abs(gain_f) < SMALL_FORGETTING / 10
            else f"{'less' if gain_f > 0 else 'more'} than naive by {abs(gain_f):.4f}"
        )
        cost_new = float(s.loc[m, "new_period_rmse"]) - float(naive["new_period_rmse"])  # > 0: worse
        lines.append(
            f"{METHOD_NAMES.get(m, m)}: forgetting {_signed(f)} ({than}); new-period RMSE "
            f"{float(s.loc[m, 'new_period_rmse']):.4f} ({_signed(cost_new)} vs naive"
            + (": it learns the new period worse" if cost_new > CLEAR_GAIN else "")
            + ")."
        )
    if "scratch" in s.index:
        ref = s.loc["scratch"]
        best = s.drop(index="scratch")["final_rmse"].idxmin()
        gap = float(s.loc[best, "final_rmse"]) - float(ref["final_rmse"])
        ratio = float(ref["seconds"]) / max(float(s.loc[best, "seconds"]), 1e-9)
        lines.append(
            f"After the last period the best cheap method, {METHOD_NAMES.get(best, best)}, ends at RMSE "
            f"{float(s.loc[best, 'final_rmse']):.4f} over all periods, {gap:+.4f} from retraining from "
            f"scratch ({float(ref['final_rmse']):.4f}), which took {ratio:.1f}x its training time"
            + (f" and stored all {int(ref['stored_ratings']):,} ratings" if "stored_ratings" in s else "")
            + "."
        )
    return "\n".join(lines)


def describe_fewshot(
    summary: pd.DataFrame, chance: Mapping[str, float], stops: Mapping[str, int | None]
) -> str:
    """Sentences on the article's claim that task descriptions need fewer labels, one task per line.

    Args:
        summary: ``FewShotResult.summary()`` (columns task, method, k, mean, std, metric_name).
        chance: ``{task: chance level}`` (``FewShotResult.chance``).
        stops: ``{task: k or None}`` from ``prompt_stops_helping``.

    Returns:
        Per task: zero-shot against chance, both methods at the smallest k > 0, and the k from which
        the plain head is level with or ahead of the prompt method (or that it never was).
    """
    _check_columns(summary, ("task", "method", "k", "mean", "metric_name"), "summary")
    lines = []
    for task, rows in summary.groupby("task", sort=False):
        mean = rows.pivot_table(index="k", columns="method", values="mean", dropna=False)
        metric = str(rows["metric_name"].iloc[0])
        zero = float(mean.loc[0, "prompt"]) if 0 in mean.index else math.nan
        c = float(chance.get(task, math.nan))
        verdict = _versus(zero - c, "above", "below", "no better than")
        text = f"{task}: zero-shot {metric} {zero:.3f}, {verdict} chance ({c:.3f})"
        labelled = [k for k in mean.index if k > 0]
        if labelled:
            k = labelled[0]
            p, h = float(mean.loc[k, "prompt"]), float(mean.loc[k, "head"])
            text += f"; with k={k} labels per class the prompt head scores {p:.3f} against the plain head's {h:.3f}"
            text += f" ({_versus(p - h, 'the description helps', 'the description hurts', 'no clear difference')})"
        stop, top = stops.get(task), max(labelled) if labelled else 0
        if stop is not None:
            text += f"; the plain head is level or ahead from k={stop}."
        elif labelled:
            text += f"; the prompt method stays ahead at every k tried (up to {top})."
        else:
            text += "."
        lines.append(text)
    return "\n".join(lines)


def describe_perturbation_claim(table: pd.DataFrame, area_table: pd.DataFrame) -> str:
    """Sentences on robustness (鲁棒性): the drop at the smallest non-zero strength, and augmentation's effect.

    Args:
        table: ``RobustnessResult.table`` (model, perturbation, strength, metric, drop).
        area_table: ``RobustnessResult.area_table`` (one row per model, a column per perturbation, ``mean``).
    """
    _check_columns(table, ("model", "perturbation", "strength", "metric", "drop"), "table")
    if "mean" not in area_table.columns:
        raise ValueError("area_table lacks the 'mean' column: pass RobustnessResult.area_table")
    s1 = float(np.sort(table["strength"].unique())[1]) if table["strength"].nunique() > 1 else 0.0
    at = table[table["strength"] == s1].groupby("model", sort=False)["drop"].mean()
    lines = [
        f"At the smallest perturbation tried (s={s1:g}) the test AUC falls by "
        + ", ".join(f"{m} {d:+.3f}" for m, d in at.items())
        + " (mean over the perturbations; > 0 is a loss)."
    ]
    if {"augmented", "frozen"} <= set(area_table.index):
        a, f = area_table.loc["augmented"], area_table.loc["frozen"]
        gain = float(a["mean"]) - float(f["mean"])
        clean = table[table["strength"] == 0].groupby("model")["metric"].first()
        perturbed = table[table["strength"] > 0]
        drop = perturbed.groupby("model")["drop"].mean()
        less_drop = float(drop["frozen"]) - float(drop["augmented"])  # > 0: augmented loses less
        lines.append(
            f"Training on augmented copies changes the mean area by {gain:+.3f} against the frozen head; "
            f"of that, its clean AUC is {float(clean['augmented']) - float(clean['frozen']):+.3f} and its "
            f"drop under perturbation is {less_drop:+.3f} smaller (mean over perturbations and strengths): "
            + _versus(less_drop, "augmentation makes the model more robust, not only more accurate.",
                      "the augmented model loses more under perturbation.",
                      "the difference is accuracy, not robustness: it loses about as much under perturbation.")
        )  # fmt: skip
        if "typo" in set(perturbed["perturbation"]):
            typo = perturbed[perturbed["perturbation"] == "typo"].groupby("model")["drop"].mean()
            t_gain = float(typo["frozen"]) - float(typo["augmented"])
            lines.append(
                f"Typos are the perturbation augmentation never showed it: its drop there is {t_gain:+.3f} "
                "smaller than the frozen head's, "
                + _versus(t_gain, "so the protection carries over to an unseen perturbation.",
                          "so it protects less against what it did not see.",
                          "so it gives no protection against a perturbation it did not see.")
            )  # fmt: skip
    return "\n".join(lines)


def mark_changes(clean: str, perturbed: str, max_words: int | None = None) -> str:
    """``perturbed`` as HTML with the words that differ from ``clean`` in ``<mark>`` (dropped words: a ``·``).

    Args:
        clean, perturbed: the review before and after the perturbation.
        max_words: stop after the part that stems from the first ``max_words`` clean words (``…`` then).
    """
    a, b = clean.split(), perturbed.split()
    limit = len(a) if max_words is None else max_words
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if i1 >= limit and limit < len(a):
            break
        if op == "equal":
            out += [html.escape(w) for w in b[j1 : j1 + min(i2, limit) - i1]]
        elif op == "delete":
            out.append(f"<span title='{html.escape(' '.join(a[i1:i2]), quote=True)}'>·</span>")
        else:
            out += [f"<mark>{html.escape(w)}</mark>" for w in b[j1:j2]]
    if limit < len(a):
        out.append("…")
    return " ".join(out)


class PerturbationExplorer:
    """A strength slider: the example review under each perturbation and every model's AUC at that strength.

    Args:
        table: ``RobustnessResult.table`` (model, perturbation, strength, metric, drop).
        examples: ``RobustnessResult.examples`` (one row per perturbation, one column per strength;
            the column at 0 is the clean review).
        max_chars: show the part of the review that stems from about this many clean characters (0: all).

    Attributes:
        slider: a ``SelectionSlider`` over the strengths measured; ``html``: the ``HTML`` widget;
        widget: the ``VBox`` to display.
    """

    def __init__(self, table: pd.DataFrame, examples: pd.DataFrame, max_chars: int = 400) -> None:
        import ipywidgets as widgets

        _check_columns(table, ("model", "perturbation", "strength", "metric", "drop"), "table")
        strengths = sorted(float(s) for s in examples.columns)
        if not strengths or strengths[0] != 0:
            raise ValueError(f"examples needs a column at strength 0 (the clean review); got {strengths}")
        self.table, self.examples, self.max_chars = table, examples, max_chars
        self.strengths = strengths
        self.slider = widgets.SelectionSlider(
            options=[(f"{s:g}", s) for s in strengths],
            value=strengths[-1],
            description="strength s",
            continuous_update=False,
            style={"description_width": "initial"},
        )
        self.html = widgets.HTML()
        self.widget = widgets.VBox([self.slider, self.html])
        self.slider.observe(lambda change: self.show(change["new"]), names="value")
        self.show(strengths[-1])

    def render(self, strength: float) -> str:
        """The HTML shown at ``strength`` (one of the measured strengths; ValueError otherwise)."""
        column = next((c for c in self.examples.columns if math.isclose(float(c), strength)), None)
        if column is None:
            raise ValueError(f"strength={strength!r} was not measured; choose one of {self.strengths}")
        clean_col = next(c for c in self.examples.columns if float(c) == 0)
        rows = []
        for pert in self.examples.index:
            clean, text = str(self.examples.loc[pert, clean_col]), str(self.examples.loc[pert, column])
            words = len(clean[: self.max_chars].split()) if self.max_chars else None
            shown = mark_changes(clean, text, words)
            near = np.isclose(self.table["strength"], float(column))
            sel = self.table[(self.table["perturbation"] == pert) & near]
            scores = ", ".join(f"{r.model} {r.metric:.3f} ({0.0 - r.drop:+.3f})" for r in sel.itertuples())
            rows.append(f"<tr><td><b>{html.escape(str(pert))}</b><br>{scores}</td><td>{shown}</td></tr>")
        head = (
            f"<p>Strength s={float(column):g}: the first test review under each perturbation (changed words "
            "<mark>marked</mark>, dropped words ·) and each model's test AUC on all perturbed reviews "
            "(change from s=0 in brackets).</p>"
        )
        return head + "<table>" + "".join(rows) + "</table>"

    def show(self, strength: float) -> None:
        """Move to ``strength`` and redraw."""
        self.html.value = self.render(strength)
