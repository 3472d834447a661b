"""Few-shot learning with prompt-style task descriptions (notebook 10, section 2) and its plot."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

from mtrec_utils.analyses.outlook import fewshot as fs
from mtrec_utils.data import clothing_split, load_clothing, load_movielens, movielens_split
from mtrec_utils.viz.fewshot import plot_learning_curves

matplotlib.use("Agg")

TOY = fs.PromptTask("toy", "toy", "Question: good or bad?", ("bad", "good"), ("negative", "positive"), "auc")
WORDS = {"good": 0, "positive": 0, "bad": 1, "negative": 1, "dress": 2, "tops": 3}


def fake_encode(texts: list[str]) -> torch.Tensor:
    """Obvious embeddings: one dimension per word family, counted, plus a small constant."""
    out = torch.full((len(texts), 5), 0.1)
    for row, text in enumerate(texts):
        for word in text.lower().replace("?", " ").replace(".", " ").split():
            if word in WORDS:
                out[row, WORDS[word]] += 1.0
    return out


def toy_split(words: list[str]) -> fs.FewShotSplit:
    examples = [f"This is {w}." for w in words]
    labels = np.array([int(w == "good") for w in words])
    return fs.FewShotSplit(
        fs.build_prompts(TOY, examples), [(e,) for e in examples], labels, np.arange(len(words))
    )


def toy_data() -> dict[str, fs.FewShotData]:
    train = toy_split(["good", "bad"] * 6)
    test = toy_split(["bad", "good", "good", "bad", "good", "bad"])
    return {"toy": fs.FewShotData(TOY, train, test)}


def test_prompts_put_the_task_description_first():
    task = fs.get_task("recommended")
    assert fs.build_prompts(task, ["Review: Love it."]) == [f"{task.question} Review: Love it."]
    assert fs.build_prompts("like", ["Movie: x"])[0].startswith("Question: will this user like this movie?")
    for task in fs.PROMPT_TASKS.values():
        assert len(task.class_names) == len(task.label_texts) >= 2
        assert task.metric in ("auc", "macro_f1")
    with pytest.raises(ValueError, match="list of strings"):
        fs.build_prompts(task, "one string")


def test_zero_shot_picks_the_label_whose_description_matches():
    labels = fake_encode(["positive", "negative", "dress", "tops"])
    prompts = fake_encode(["Question: good or bad? This is good.", "This is bad.", "A dress.", "Nice tops."])
    proba = fs.zero_shot_proba(prompts, labels)
    assert proba.shape == (4, 4)
    assert torch.allclose(proba.sum(dim=1), torch.ones(4))
    assert proba.argmax(dim=1).tolist() == [0, 1, 2, 3]


def test_run_tasks_zero_shot_and_k_shot_on_the_fake_encoder():
    threads = torch.get_num_threads()
    result = fs.run_tasks(toy_data(), fake_encode, ks=[0, 2], seeds=[0, 1], progress=False)
    t = result.table.set_index(["method", "k", "seed"])["metric"]
    assert t["prompt", 0, 0] == 1.0 and t["prompt", 2, 1] == 1.0 and t["head", 2, 0] == 1.0
    assert math.isnan(t["head", 0, 0])
    assert set(result.table["n_train"]) == {0, 4}
    assert result.chance == {"toy": 0.5}
    assert result.timings["num_texts"] > 0
    assert torch.get_num_threads() == threads  # the fits ran on one thread, then gave the others back
    capped = fs.run_tasks(toy_data(), fake_encode, ks=[0, 2, 4], seeds=[0], max_labels=4, progress=False)
    assert sorted(set(capped.table["k"])) == [0, 2]  # 4 per class is 8 labels > max_labels


def test_k_shot_sampler_exact_deterministic_nested():
    labels = np.array([0] * 30 + [1] * 20 + [2] * 10)
    a = fs.sample_k_shot(labels, 8, seed=3)
    assert np.bincount(labels[a]).tolist() == [8, 8, 8]
    assert len(set(a)) == len(a) == 24
    assert np.array_equal(a, fs.sample_k_shot(labels, 8, seed=3))
    assert not np.array_equal(a, fs.sample_k_shot(labels, 8, seed=4))
    assert set(a) <= set(fs.sample_k_shot(labels, 9, seed=3))  # nested in k for one seed
    assert fs.sample_k_shot(labels, 0, seed=0).size == 0
    fewer = fs.sample_k_shot(labels, 15, seed=0, allow_fewer=True)
    assert np.bincount(labels[fewer]).tolist() == [15, 15, 10]
    with pytest.raises(ValueError, match="fewer than k=15"):
        fs.sample_k_shot(labels, 15, seed=0)


def test_clothing_k_shot_sets_come_from_the_train_split_only(data_cache):
    reviews = load_clothing(data_cache)
    data = fs.clothing_fewshot_data(reviews, "department", test_size=60)
    split = clothing_split(reviews, seed=0)
    assert set(data.train.ids) <= set(split["train"].index)
    assert set(data.test.ids) <= set(split["test"].index) and len(data.test.ids) == 60
    for seed in (0, 1):
        idx = fs.sample_k_shot(data.train.labels, 8, seed, num_classes=6)
        assert np.bincount(data.train.labels[idx], minlength=6).tolist() == [8] * 6
        assert set(data.train.ids[idx]) <= set(split["train"].index)
        assert not set(data.train.ids[idx]) & set(data.test.ids)
    rec = fs.clothing_fewshot_data(reviews, "recommended", test_size=60, pool_per_class=50)
    assert np.array_equal(rec.test.ids, data.test.ids)  # both clothing tasks read one test sample
    assert np.bincount(rec.train.labels).tolist() == [50, 50]
    assert rec.train.prompts[0].startswith(fs.get_task("recommended").question + " Review: ")


def test_movielens_like_candidates_come_from_u1_base(data_cache):
    ml = load_movielens(data_cache)
    data = fs.movielens_fewshot_data(ml, test_size=40, pool_per_class=30)
    base, test = movielens_split(ml.ratings, k=1)
    key = lambda df: set(df["user_id"] * 10_000 + df["item_id"])  # noqa: E731
    assert set(data.train.ids) <= key(base) and set(data.test.ids) <= key(test)
    assert np.bincount(data.train.labels).tolist() == [30, 30]
    user, item = data.train.parts[0]
    assert user.startswith("A ") and "Genres:" in item
    titles = ml.items.set_index("item_id")["title"].str.strip()
    for (user, _), key in zip(data.train.parts, data.train.ids):
        assert titles[key % 10_000] not in user  # the answer is never in the input


def summary_table() -> pd.DataFrame:
    rows = []
    means = {  # (method, k): per-seed values
        ("prompt", 0): [0.70, 0.70],
        ("head", 0): [np.nan, np.nan],
        ("prompt", 8): [0.74, 0.76],
        ("head", 8): [0.50, 0.90],  # 0.70: within its own (large) std, not within the prompt's
        ("prompt", 32): [0.80, 0.82],
        ("head", 32): [0.79, 0.81],  # 0.80 >= 0.81 - 0.014: within one std of the prompt method
        ("prompt", 128): [0.85, 0.85],
        ("head", 128): [0.90, 0.90],
    }
    for (method, k), values in means.items():
        for seed, v in enumerate(values):
            rows.append(dict(dataset="clothing", task="recommended", method=method, k=k, seed=seed, metric=v))
    for k, (p, h) in {8: (0.6, 0.5), 32: (0.7, 0.6)}.items():
        rows.append(dict(dataset="ml_u1", task="like", method="prompt", k=k, seed=0, metric=p))
        rows.append(dict(dataset="ml_u1", task="like", method="head", k=k, seed=0, metric=h))
    table = pd.DataFrame(rows)
    table["metric_name"] = "auc"
    return table


def test_learning_curves_and_where_the_prompt_stops_helping():
    table = summary_table()
    summary = fs.learning_curves(table)
    row = summary.set_index(["task", "method", "k"]).loc["recommended", "prompt", 8]
    assert row["mean"] == pytest.approx(0.75) and row["std"] == pytest.approx(np.std([0.74, 0.76], ddof=1))
    head0 = summary.set_index(["task", "method", "k"]).loc["recommended", "head", 0]
    assert math.isnan(head0["mean"]) and head0["num_seeds"] == 0
    assert fs.prompt_stops_helping(table) == {"recommended": 32, "like": None}
    assert fs.prompt_stops_helping(summary) == {"recommended": 32, "like": None}
    names = fs.fewshot_metrics(summary)
    assert names["clothing_fewshot_recommended_prompt_k0"] == pytest.approx(0.70)
    assert names["ml_u1_fewshot_like_head_k32"] == pytest.approx(0.6)
    assert "clothing_fewshot_recommended_head_k0" not in names


def test_bad_arguments_raise_clear_value_errors():
    with pytest.raises(ValueError, match="k=-1 is not valid"):
        fs.sample_k_shot([0, 1], -1, seed=0)
    with pytest.raises(ValueError, match="k=-1 is not valid"):
        fs.run_tasks(toy_data(), fake_encode, ks=[0, -1], seeds=[0], progress=False)
    with pytest.raises(ValueError, match="seed=-2 is not valid"):
        fs.sample_k_shot([0, 1], 1, seed=-2)
    with pytest.raises(ValueError, match="task='rating' is not valid; choose one of: 'recommended'"):
        fs.get_task("rating")
    with pytest.raises(ValueError, match="task='nope'"):
        fs.run_fewshot("smoke", tasks=["nope"])
    with pytest.raises(ValueError, match="PROFILE='fast'"):
        fs.run_fewshot("fast")
    with pytest.raises(ValueError, match="test_size=0"):
        fs.clothing_fewshot_data(pd.DataFrame(), "recommended", test_size=0)


def test_sizes_per_profile():
    for name in ("smoke", "cpu", "gpu"):
        sizes = fs.fewshot_sizes(name)
        assert sizes["ks"][0] == 0 and list(sizes["ks"]) == sorted(sizes["ks"])
    assert fs.fewshot_sizes("cpu")["ks"] == (0, 8, 32, 128, 512) and fs.fewshot_sizes("cpu")["num_seeds"] >= 3
    assert fs.fewshot_sizes("smoke")["test_size"] < fs.fewshot_sizes("cpu")["test_size"]


def test_end_to_end_with_the_bundled_encoder():
    from mtrec_utils.models.encoders import encode_texts, load_encoder

    encoder = load_encoder("bundled-minilm", device="cpu")
    task = fs.get_task("recommended")
    good = ["Love this dress, perfect fit.", "Beautiful and comfortable, I wear it daily.", "Great quality."]
    bad = ["Terrible quality, returned it.", "Runs small and looks cheap.", "Disappointed, it fell apart."]

    def split(texts, labels):
        examples = [f"Review: {t}" for t in texts]
        return fs.FewShotSplit(
            fs.build_prompts(task, examples), [(t,) for t in texts], np.array(labels), np.arange(len(texts))
        )

    data = {
        "recommended": fs.FewShotData(
            task,
            split(good + bad, [1, 1, 1, 0, 0, 0]),
            split([good[0], bad[0], good[2], bad[2]], [1, 0, 1, 0]),
        )
    }

    def encode(texts):
        return encode_texts(encoder, texts, max_length=32, use_cache=False, progress=False)

    result = fs.run_tasks(data, encode, ks=[0, 2], seeds=[0, 1], progress=False)
    values = result.table.dropna(subset=["metric"])
    assert len(values) == 6 and np.isfinite(values["metric"]).all()
    assert ((values["metric"] >= 0) & (values["metric"] <= 1)).all()


def test_plot_learning_curves_one_panel_per_task(tmp_path):
    summary = fs.learning_curves(summary_table())
    fig = plot_learning_curves(
        summary, chance={"recommended": 0.5, "like": 0.5}, stops={"recommended": 32}, path=tmp_path / "c.png"
    )
    assert len(fig.axes) == 2 and (tmp_path / "c.png").exists()
    ax = fig.axes[0]
    assert ax.get_title() == "clothing recommended" and "AUC" in ax.get_ylabel() and "k" in ax.get_xlabel()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "8", "32", "128"]
    with pytest.raises(ValueError, match="lacks columns"):
        plot_learning_curves(summary_table())
