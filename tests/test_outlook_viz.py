"""Notebook 10's computed sentences and its perturbation explorer (no front end needed)."""

from __future__ import annotations

import ipywidgets as widgets
import pandas as pd
import pytest

from mtrec_utils.analyses.outlook.fewshot import learning_curves, prompt_stops_helping
from mtrec_utils.viz.outlook import (
    PerturbationExplorer,
    describe_continual,
    describe_fewshot,
    describe_perturbation_claim,
    mark_changes,
)


def continual_summary(naive_forgetting: float) -> pd.DataFrame:
    rows = {
        "scratch": (1.00, 0.98, 0.001, 10.0, 6000),
        "naive": (1.02, 1.03, naive_forgetting, 2.0, 0),
        "replay": (1.01, 1.00, 0.004, 2.5, 500),
        "ewc": (1.05, 1.04, 0.002, 3.0, 0),
    }
    cols = ["new_period_rmse", "final_rmse", "forgetting_rmse", "seconds", "stored_ratings"]
    return pd.DataFrame.from_dict(rows, orient="index", columns=cols)


def test_continual_sentences_follow_the_numbers():
    text = describe_continual(continual_summary(0.05))
    assert "Naive fine-tuning forgets +0.0500 stars" in text and "clear forgetting" in text
    assert "replay: forgetting +0.0040 (less than naive by 0.0460)" in text
    assert "EWC: forgetting +0.0020" in text and "it learns the new period worse" in text  # +0.03 stars
    assert "best cheap method, replay, ends at RMSE 1.0000" in text and "4.0x its training time" in text
    small = describe_continual(continual_summary(0.001))
    assert "small forgetting" in small and "does not bite here" in small
    assert "more than naive by 0.0030" in small  # replay forgets more than naive: said, not hidden
    tiny = continual_summary(-0.00001)
    assert "forgets +0.0000 stars" in describe_continual(tiny)  # never "-0.0000"
    same = continual_summary(0.004)
    assert "replay: forgetting +0.0040 (about as much as naive)" in describe_continual(same)


def test_continual_sentences_need_the_naive_reference():
    with pytest.raises(ValueError, match="'naive' row"):
        describe_continual(continual_summary(0.05).drop(index="naive"))
    with pytest.raises(ValueError, match="lacks columns"):
        describe_continual(pd.DataFrame({"x": [1.0]}))


def fewshot_table(head_at_8: float) -> pd.DataFrame:
    rows = []
    for seed in (0, 1):
        for k, prompt, head in ((0, 0.70, float("nan")), (8, 0.75, head_at_8), (32, 0.80, 0.85)):
            for method, value in (("prompt", prompt), ("head", head)):
                rows.append(
                    dict(dataset="clothing", task="recommended", method=method, k=k, seed=seed,
                         metric=value + 0.002 * seed, metric_name="auc")
                )  # fmt: skip
    return pd.DataFrame(rows)


def test_fewshot_sentences_follow_the_numbers():
    table = fewshot_table(0.60)
    summary = learning_curves(table)
    text = describe_fewshot(summary, {"recommended": 0.5}, prompt_stops_helping(table))
    assert text.startswith("recommended: zero-shot auc 0.701, above chance (0.500)")
    assert "k=8 labels per class the prompt head scores 0.751 against the plain head's 0.601" in text
    assert "(the description helps)" in text and "level or ahead from k=32" in text
    behind = describe_fewshot(summary, {"recommended": 0.7}, {"recommended": None})
    assert "no better than chance" in behind and "stays ahead at every k tried (up to 32)" in behind
    worse = describe_fewshot(learning_curves(fewshot_table(0.9)), {"recommended": 0.5}, {"recommended": 8})
    assert "(the description hurts)" in worse and "from k=8" in worse


def robustness_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = []
    curves = {"frozen": (0.80, 0.70), "augmented": (0.82, 0.78)}
    for model, (clean, typo) in curves.items():
        for pert, at_02 in (("typo", typo), ("drop", clean - 0.01)):
            rows += [
                dict(model=model, perturbation=pert, strength=0.0, metric=clean, drop=0.0),
                dict(model=model, perturbation=pert, strength=0.2, metric=at_02, drop=clean - at_02),
            ]
    table = pd.DataFrame(rows)
    areas = table.groupby(["model", "perturbation"], sort=False)["metric"].mean().unstack()
    areas["mean"] = areas.mean(axis=1)
    return table, areas


def test_robustness_sentences_follow_the_numbers():
    table, areas = robustness_tables()
    text = describe_perturbation_claim(table, areas)
    assert "(s=0.2) the test AUC falls by frozen +0.055, augmented +0.025" in text
    assert "changes the mean area by +0.035 against the frozen head" in text
    assert "its clean AUC is +0.020 and its drop under perturbation is +0.030 smaller" in text
    assert "more robust, not only more accurate" in text
    assert "its drop there is +0.060 smaller" in text and "carries over to an unseen perturbation" in text
    table.loc[table["model"] == "augmented", "drop"] = table.loc[table["model"] == "frozen", "drop"].values
    assert "the difference is accuracy, not robustness" in describe_perturbation_claim(table, areas)
    with pytest.raises(ValueError, match="'mean'"):
        describe_perturbation_claim(table, areas.drop(columns="mean"))


def test_changed_words_are_marked_and_dropped_words_dotted():
    assert mark_changes("a good dress", "a good dress") == "a good dress"
    assert mark_changes("a good dress", "a goid dress") == "a <mark>goid</mark> dress"
    assert mark_changes("a good dress", "a dress") == "a <span title='good'>·</span> dress"
    assert mark_changes("one two three four", "one two three four", max_words=2) == "one two …"
    assert mark_changes("<b> ok", "<b> ok") == "&lt;b&gt; ok"


def test_explorer_slider_moves_over_the_measured_strengths():
    table, _ = robustness_tables()
    examples = pd.DataFrame(
        {0.0: ["a good dress", "a good dress"], 0.2: ["a goid dress", "a dress"]},
        index=pd.Index(["typo", "drop"], name="perturbation"),
    )
    view = PerturbationExplorer(table, examples)
    assert isinstance(view.widget, widgets.VBox) and view.widget.children == (view.slider, view.html)
    assert [v for _, v in view.slider.options] == [0.0, 0.2] and view.slider.value == 0.2
    assert "<mark>goid</mark>" in view.html.value and "frozen 0.700 (-0.100)" in view.html.value
    view.slider.value = 0.0  # as if the learner dragged the handle
    assert "<mark>goid" not in view.html.value and "augmented 0.820 (+0.000)" in view.html.value
    assert view.html.value == view.render(0.0)
    with pytest.raises(ValueError, match="strength=0.5 was not measured"):
        view.render(0.5)
    with pytest.raises(ValueError, match="strength 0"):
        PerturbationExplorer(table, examples[[0.2]])
