"""Robustness to perturbed input (notebook 10): perturbations, the curve area, a tiny run, the plot."""

from __future__ import annotations

import math
import string

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

from mtrec_utils.analyses.outlook.robustness import (
    KEY_NEIGHBOURS,
    MODELS,
    PERTURBATIONS,
    ROBUSTNESS_SIZES,
    RobustnessSizes,
    perturb_text,
    perturb_texts,
    perturbation_area,
    prefetch_synonyms,
    run_robustness,
    typo_chars,
)
from mtrec_utils.data.augment import NeighbourSynonyms
from mtrec_utils.models.encoders import load_encoder
from mtrec_utils.viz.robustness import describe_robustness, plot_robustness

WORDS = "the dress fits well and the fabric is soft but the zipper broke after one wash".split()
LONG = " ".join(WORDS[i % len(WORDS)] for i in range(3000))  # 3000 words, about 11,000 letters


def always(word: str) -> list[str]:
    return ["zzz"]


def g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def tiny():
    return load_encoder("tiny-random", device="cpu")


@pytest.mark.parametrize("perturbation", PERTURBATIONS)
def test_each_perturbation_is_seeded_and_the_identity_at_zero(perturbation):
    text = "Love  this dress!\nThe fabric is soft, true to size."
    kw = {"synonyms": always}
    assert perturb_text(text, perturbation, 0.0, g(), **kw) == text  # whitespace kept too
    a, b = (
        perturb_text(LONG, perturbation, 0.2, g(1), **kw),
        perturb_text(LONG, perturbation, 0.2, g(1), **kw),
    )
    assert a == b and a != LONG
    assert perturb_text(LONG, perturbation, 0.2, g(2), **kw) != a
    texts = [LONG[:200], LONG[200:500], ""]
    assert perturb_texts(texts, perturbation, 0.3, g(3), **kw) == perturb_texts(
        texts, perturbation, 0.3, g(3), **kw
    )
    assert perturb_texts(texts, perturbation, 0.0, g(3), **kw) == texts


@pytest.mark.parametrize("s", [0.05, 0.1, 0.3])
def test_typos_change_the_expected_share_of_letters(s):
    out = typo_chars(LONG, s, g())
    assert len(out) == len(LONG)
    letters = [(a, b) for a, b in zip(LONG, out) if a.isalpha()]
    changed = [(a, b) for a, b in letters if a != b]
    assert abs(len(changed) / len(letters) - s) < 0.02
    assert all(b in KEY_NEIGHBOURS[a] for a, b in changed)  # a neighbouring key, never the same one
    assert all(a == b for a, b in zip(LONG, out) if not a.isalpha())  # spaces untouched


def test_typos_keep_case_and_skip_other_characters():
    text = "ÄÖ Ü 123 !? ABC abc é"
    out = typo_chars(text, 1.0, g())
    upper, lower = text.index("ABC"), text.index("abc")
    assert out[:upper] == text[:upper] and out[-2:] == " é"  # non-ASCII letters and the rest stay
    assert out[upper : upper + 3].isupper() and out[lower : lower + 3].islower()
    assert out[upper : upper + 3] != "ABC" and out[lower : lower + 3] != "abc"
    assert KEY_NEIGHBOURS["s"] == ["a", "d", "e", "w", "x", "z"]
    assert set(KEY_NEIGHBOURS) == set(string.ascii_lowercase)


def test_typos_at_a_higher_strength_include_those_at_a_lower_one():
    low, high = typo_chars(LONG, 0.1, g(5)), typo_chars(LONG, 0.3, g(5))
    assert all(h == lo for o, lo, h in zip(LONG, low, high) if o != lo)


@pytest.mark.parametrize("s", [0.05, 0.1, 0.3])
def test_word_drop_and_synonyms_change_the_expected_share_of_words(s):
    n = len(LONG.split())
    dropped = perturb_text(LONG, "drop", s, g()).split()
    assert abs(1 - len(dropped) / n - s) < 0.03
    swapped = perturb_text(LONG, "synonym", s, g(), synonyms=always).split()
    assert len(swapped) == n and abs(swapped.count("zzz") / n - s) < 0.03


def test_perturb_texts_gives_each_text_its_own_nested_draws():
    texts = [LONG[i : i + 300] for i in range(0, 3000, 300)]
    low, high = perturb_texts(texts, "drop", 0.1, g(7)), perturb_texts(texts, "drop", 0.3, g(7))
    for lo, hi in zip(low, high):  # the words kept at 0.3 are among (and in the order of) those kept at 0.1
        kept = iter(lo.split())
        assert all(word in kept for word in hi.split())
    assert len(set(perturb_texts([texts[0]] * 5, "typo", 0.3, g(7)))) == 5  # copies differ


def test_prefetched_synonyms_are_the_encoders_neighbours(tiny):
    synonyms = NeighbourSynonyms.from_encoder(tiny, k=3)
    fast = prefetch_synonyms(synonyms, ["Love this dress, the fabric is soft!", "zzqx runs"], chunk=2)
    for word in ("love", "Dress", "fabric", "soft", "runs", "zzqx", "unseen", "is"):
        assert fast(word) == synonyms(word), word


def test_area_on_hand_made_curves():
    assert perturbation_area([0, 0.05, 0.1, 0.2, 0.3], [0.8] * 5) == pytest.approx(0.8)  # flat: its value
    assert perturbation_area([0, 0.3], [1.0, 0.0]) == pytest.approx(0.5)
    # trapezoids 0.1 * (1 + 0.8) / 2 + 0.2 * (0.8 + 0.4) / 2 = 0.21, over the range 0.3
    assert perturbation_area([0, 0.1, 0.3], [1.0, 0.8, 0.4]) == pytest.approx(0.7)
    assert perturbation_area([0.3, 0, 0.1], [0.4, 1.0, 0.8]) == pytest.approx(0.7)  # any order


@pytest.mark.parametrize(
    "strengths, values, match",
    [
        ([0.0], [1.0], ">= 2 strengths"),
        ([0.0, 0.1], [1.0], ">= 2 strengths"),
        ([0.0, 1.5], [1.0, 0.5], "between 0 and 1"),
        ([0.1, 0.1], [1.0, 0.5], "must differ"),
        ([0.0, 0.1], [1.0, math.nan], "finite"),
    ],
)
def test_area_rejects_bad_curves(strengths, values, match):
    with pytest.raises(ValueError, match=match):
        perturbation_area(strengths, values)


@pytest.mark.parametrize("strength", [-0.1, 1.5, True, "0.1"])
def test_strength_outside_0_1_is_a_clear_error(strength):
    with pytest.raises(ValueError, match="between 0 and 1"):
        perturb_text("a text", "drop", strength, g())


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="perturbation='shout'.*'typo', 'drop', 'synonym'"):
        perturb_text("a text", "shout", 0.1, g())
    with pytest.raises(ValueError, match="needs synonyms"):
        perturb_text("a text", "synonym", 0.1, g())
    with pytest.raises(ValueError, match="model='bert'.*'frozen', 'lora', 'augmented'"):
        run_robustness("smoke", models=("frozen", "bert"), progress=False)
    with pytest.raises(ValueError, match="PROFILE='huge'"):
        run_robustness("huge", progress=False)
    bad = RobustnessSizes(10, 10, 16, (0.1, 0.2), head_epochs=1, lora_steps=1)
    with pytest.raises(ValueError, match="strengths=.*give 0 and then increasing"):
        run_robustness("smoke", sizes=bad, progress=False)
    with pytest.raises(ValueError, match="max_train=0"):
        RobustnessSizes(0, 10, 16, (0.0, 0.2), head_epochs=1, lora_steps=1).check()


def test_profile_sizes_are_valid_and_grow():
    for sizes in ROBUSTNESS_SIZES.values():
        sizes.check()
    smoke, cpu, gpu = (ROBUSTNESS_SIZES[p] for p in ("smoke", "cpu", "gpu"))
    assert smoke.max_test < cpu.max_test < gpu.max_test and smoke.lora_steps < cpu.lora_steps


def test_tiny_end_to_end_run_gives_finite_numbers(tiny, tmp_path):
    sizes = RobustnessSizes(40, 30, 16, (0.0, 0.3), head_epochs=2, lora_steps=2, lora_batch_size=8)
    result = run_robustness(encoder=tiny, sizes=sizes, cache_dir=str(tmp_path), progress=False)
    table = result.table
    assert len(table) == len(MODELS) * len(PERTURBATIONS) * 2
    assert list(table.columns) == ["model", "perturbation", "strength", "metric", "drop"]
    assert table["metric"].between(0, 1).all() and np.isfinite(table["drop"]).all()
    assert (table.loc[table["strength"] == 0, "drop"] == 0).all()
    metrics = result.metrics()
    assert all(np.isfinite(v) for v in metrics.values())
    for model in MODELS:
        rows = table[table["model"] == model]
        mean = np.mean([rows.loc[rows["perturbation"] == p, "metric"].mean() for p in PERTURBATIONS])
        assert metrics[f"clothing_perturb_area_{model}"] == pytest.approx(mean)  # two points: their mean
    assert result.examples.shape == (len(PERTURBATIONS), 2)
    again = run_robustness(
        encoder=tiny, sizes=sizes, cache_dir=str(tmp_path), progress=False, models=("augmented",)
    )
    pd.testing.assert_frame_equal(again.table, table[table["model"] == "augmented"].reset_index(drop=True))


def _toy_table() -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = [
        {"model": m, "perturbation": p, "strength": s, "metric": base - k * s}
        for m, base, k in (("frozen", 0.9, 0.5), ("augmented", 0.9, 0.2))
        for p in ("typo", "drop")
        for s in (0.0, 0.1, 0.3)
    ]
    table = pd.DataFrame(rows)
    table["drop"] = table.groupby(["model", "perturbation"])["metric"].transform("first") - table["metric"]
    areas = pd.DataFrame({"typo": [0.825, 0.87], "drop": [0.825, 0.87]}, index=["frozen", "augmented"])
    return table, areas.assign(mean=areas.mean(axis=1))


def test_plot_has_a_panel_per_perturbation_and_a_line_per_model(tmp_path):
    table, _ = _toy_table()
    fig = plot_robustness(table, path=tmp_path / "robustness.png")
    assert (tmp_path / "robustness.png").stat().st_size > 0
    assert len(fig.axes) == 2 and all(len(ax.lines) == 2 for ax in fig.axes)
    assert fig.axes[0].get_ylabel() and all("strength" in ax.get_xlabel() for ax in fig.axes)
    assert [t.get_text() for t in fig.axes[-1].get_legend().get_texts()] == ["frozen", "augmented"]
    plt.close(fig)
    with pytest.raises(ValueError, match="lacks \\['metric'\\]"):
        plot_robustness(table.drop(columns="metric"))


def test_description_names_the_most_robust_model_and_the_worst_drop():
    table, areas = _toy_table()
    text = describe_robustness(table, areas)
    assert text.startswith("Most robust over the strength range: augmented (mean area 0.870")
    assert "frozen: largest drop +0.150 under typo at s=0.3 (0.900 -> 0.750)" in text
