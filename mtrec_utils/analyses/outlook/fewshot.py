"""Fewer labels through prompt-style task descriptions (the article's 8.3: 提示学习, 标注样本需求降低).

The encoder reads a task description together with the example (a *prompt*: ``"Question: would the
reviewer recommend this item? Review: ..."``, the question first so that truncation cuts only the
example) and one short description per label (``"The reviewer loves this item and recommends it."``).
Two methods are compared at k labelled examples per class:

- ``prompt``: at k = 0, zero-shot: the label whose description embedding is closest (cosine) to the
  prompt embedding; the class probabilities are ``softmax(TEMPERATURE * cosine)``. That is exactly a
  linear softmax head on the unit-norm prompt embedding with weights ``W0 = TEMPERATURE * label
  embeddings``. For k > 0 this head is trained on the k-shot set, starting from ``W0`` and pulled back
  to it by a Gaussian prior (L2 towards ``W0``): with few labels it stays near the zero-shot
  classifier, with many the labels take over. The encoder stays frozen: every text is encoded once.
- ``head``: the workbook's head on frozen embeddings of the plain text (no task description): the
  same softmax regression with the same prior strength, centred on zero. For MovieLens the plain
  input is the user and item embeddings ``[u, i, u*i]``. At k = 0 it has no prediction: NaN.

Why not fine-tune the encoder (LoRA) on the k-shot sets? It would cost one fine-tuning run per task,
k and seed, and a re-encoding of the test texts after each: far beyond the CPU budget. The frozen
encoder isolates what this section asks: what a task description is worth in labels.

The questions and label descriptions were chosen among a few candidates by zero-shot quality on 300
validation reviews (never the test sample). Metrics: AUC for the binary tasks (``recommended``,
``like``); macro-F1 for ``department`` (the k-shot sets are balanced but the test sample is not, so
accuracy would mostly reward the majority class). Every run is evaluated on one fixed test sample
per dataset (drawn with :data:`DATA_SEED`); the k-shot sets are drawn from the training split only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from mtrec_utils.core.config import check_choice, check_positive, resolve_profile
from mtrec_utils.core.metrics import auc

TEMPERATURE = 20.0  # logit scale of cosine similarities (the scale MiniLM was trained with)
PRIOR_PRECISION = 1.0  # L2 weight of the prior on the head weights, in units of the summed loss
DATA_SEED = 0  # fixes the test samples and candidate pools; the k-shot draws use the run's seeds
METHODS = ("prompt", "head")
# Per profile: ks = labelled examples per class (0 = zero-shot); num_seeds k-shot draws; test_size
# examples per dataset in the fixed test sample; max_length tokens per text; max_labels skips a k
# whose k * classes exceeds it (department's 6 classes stop at k = 128 at cpu); pool_per_class
# candidates per class drawn once from the training split (None = all of it), so the texts to encode
# stay bounded: at cpu the seeds' 512-shot sets share about half of their examples.
FEWSHOT_SIZES = {
    "smoke": dict(
        ks=(0, 8, 32), num_seeds=1, test_size=100, max_length=32, max_labels=64, pool_per_class=None
    ),
    "cpu": dict(
        ks=(0, 8, 32, 128, 512),
        num_seeds=3,
        test_size=400,
        max_length=64,
        max_labels=1024,
        pool_per_class=1024,
    ),
    "gpu": dict(
        ks=(0, 8, 32, 128, 512),
        num_seeds=5,
        test_size=2000,
        max_length=128,
        max_labels=4096,
        pool_per_class=None,
    ),
}


@dataclass(frozen=True)
class PromptTask:
    """One task as text: a question before each example and one description per label.

    Attributes:
        name: task name (``recommended``, ``department``, ``like``).
        dataset: metric-name prefix (``clothing``, ``ml_u1``).
        question: the task description put before every example.
        class_names: the classes, in label order (label ``c`` is ``class_names[c]``).
        label_texts: one description per class, same order.
        metric: ``auc`` (binary) or ``macro_f1``.
    """

    name: str
    dataset: str
    question: str
    class_names: tuple[str, ...]
    label_texts: tuple[str, ...]
    metric: str

    def prompt(self, example: str) -> str:
        """The text the encoder reads: the task description first, so truncation only cuts the example."""
        return f"{self.question} {example}"


DEPARTMENTS = ("Bottoms", "Dresses", "Intimate", "Jackets", "Tops", "Trend")
PROMPT_TASKS = {
    "recommended": PromptTask(
        "recommended",
        "clothing",
        "Question: would the reviewer recommend this item?",
        ("no", "yes"),
        (
            "The reviewer is disappointed and would not recommend this item.",
            "The reviewer loves this item and recommends it.",
        ),
        "auc",
    ),
    "department": PromptTask(
        "department",
        "clothing",
        "Question: which department is this item from?",
        DEPARTMENTS,
        (
            "It is about bottoms: pants, jeans, a skirt or shorts.",
            "It is about a dress.",
            "It is about intimates: lingerie, sleepwear, loungewear, swimwear or legwear.",
            "It is about a jacket, a coat or outerwear.",
            "It is about a top: a blouse, a shirt, a tee, a knit or a sweater.",
            "It is about a trendy statement piece.",
        ),
        "macro_f1",
    ),
    "like": PromptTask(
        "like",
        "ml_u1",
        "Question: will this user like this movie?",
        ("no", "yes"),
        ("No, the user will not like this movie.", "Yes, the user will like this movie."),
        "auc",
    ),
}


def get_task(name: str) -> PromptTask:
    """The :class:`PromptTask` called ``name``; a ValueError lists the valid names."""
    return PROMPT_TASKS[check_choice("task", name, tuple(PROMPT_TASKS))]


def fewshot_sizes(profile: str = "auto") -> dict:
    """The sizes of ``profile`` (``auto`` resolves like every notebook's PROFILE), as a new dict."""
    return dict(FEWSHOT_SIZES[resolve_profile(profile).name])


def build_prompts(task: PromptTask | str, examples: Sequence[str]) -> list[str]:
    """``task.prompt(example)`` for every example (a list of strings, not one string)."""
    task = get_task(task) if isinstance(task, str) else task
    if isinstance(examples, str) or not all(isinstance(e, str) for e in examples):
        raise ValueError("examples must be a list of strings; wrap one example in a list")
    return [task.prompt(e) for e in examples]


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"k={k!r} is not valid; it must be an integer >= 0 (labelled examples per class)")
    return int(k)


def sample_k_shot(
    labels, k: int, seed: int, num_classes: int | None = None, allow_fewer: bool = False
) -> np.ndarray:
    """Positions of ``k`` examples of every class, drawn without replacement; sorted.

    Each class's examples are shuffled once by ``numpy.random.default_rng(seed)`` and the first ``k``
    are kept, so for one seed the sets are nested (the 8-shot set is inside the 32-shot set).

    Args:
        labels: (N,) integer class labels of the candidates (the training split only).
        k: examples per class (0 gives an empty set).
        seed: non-negative integer; the same seed gives the same set.
        num_classes: C; default ``max(labels) + 1``.
        allow_fewer: take all examples of a class with fewer than ``k`` instead of raising.

    Returns:
        (<= k * C,) int64 positions into ``labels``.
    """
    k = _check_k(k)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r} is not valid; it must be a non-negative integer")
    labels = np.asarray(labels)
    num_classes = int(labels.max()) + 1 if num_classes is None else num_classes
    rng = np.random.default_rng(seed)
    picked = []
    for c in range(num_classes):
        members = rng.permutation(np.flatnonzero(labels == c))
        if len(members) < k and not allow_fewer:
            raise ValueError(f"class {c} has {len(members)} candidates, fewer than k={k}")
        picked.append(members[:k])
    return np.sort(np.concatenate(picked)).astype(np.int64)


def zero_shot_proba(prompt_emb: torch.Tensor, label_emb: torch.Tensor, temperature: float = TEMPERATURE):
    """(N, C) class probabilities ``softmax(temperature * cos(prompt, label))`` from (N, H) and (C, H)."""
    sims = F.normalize(prompt_emb.float(), dim=-1) @ F.normalize(label_emb.float(), dim=-1).T  # (N, C)
    return torch.softmax(temperature * sims, dim=-1)


def fit_softmax_head(
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    init: torch.Tensor | None = None,
    prior_precision: float = PRIOR_PRECISION,
    max_iter: int = 100,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax regression with a Gaussian prior: minimise ``sum CE + prior_precision/2 * |W - init|^2``.

    Args:
        x: (n, H) features; y: (n,) labels in 0..C-1.
        num_classes: C.
        init: (C, H) prior mean and starting point of W; ``None`` = zeros (plain L2 regularisation).
        prior_precision: weight of the prior; the same for every k, so its pull fades as labels grow.
        max_iter: L-BFGS iterations (the problem is convex; the bias is not penalised).

    Returns:
        ``(W (C, H), b (C,))``.
    """
    w0 = torch.zeros(num_classes, x.shape[1]) if init is None else init.detach().float()
    w = w0.clone().requires_grad_(True)
    b = torch.zeros(num_classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")
    n = len(y)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(x @ w.T + b, y) + prior_precision / (2 * n) * (w - w0).pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def task_score(task: PromptTask, y_true: np.ndarray, proba: torch.Tensor | np.ndarray) -> float:
    """AUC of the positive class's probability (binary) or macro-F1 of the argmax (``macro_f1``)."""
    proba = np.asarray(proba)
    if task.metric == "auc":
        return auc(y_true, proba[:, 1])
    from sklearn.metrics import f1_score

    return float(f1_score(y_true, proba.argmax(axis=1), average="macro"))


def chance_level(task: PromptTask, y_true: np.ndarray) -> float:
    """The metric of guessing: 0.5 AUC; macro-F1 of uniform random labels, ``mean 2p/C / (p + 1/C)``."""
    if task.metric == "auc":
        return 0.5
    p = np.bincount(np.asarray(y_true), minlength=len(task.class_names)) / len(y_true)
    p, q = p[p > 0], 1 / len(task.class_names)
    return float(np.mean(2 * p * q / (p + q)))


@dataclass
class FewShotSplit:
    """Examples of one split: ``prompts`` (N), plain-text ``parts`` (N tuples), ``labels`` and ``ids`` (N,)."""

    prompts: list[str]
    parts: list[tuple[str, ...]]
    labels: np.ndarray
    ids: np.ndarray


@dataclass
class FewShotData:
    """One task's candidates for k-shot training (``train``) and its fixed test sample (``test``)."""

    task: PromptTask
    train: FewShotSplit
    test: FewShotSplit


@dataclass
class FewShotResult:
    """What :func:`run_fewshot` returns.

    Attributes:
        table: tidy results, one row per task, method, k and seed: columns dataset, task, method, k,
            seed, metric (the value), metric_name, n_train (labelled examples used).
        chance: the chance level of each task's metric on its test sample.
        sizes: the sizes used (:data:`FEWSHOT_SIZES`).
        timings: seconds spent on ``setup`` (data, prompts, encoder), ``encode`` and ``fit``, and
            ``num_texts``, the distinct texts encoded.
    """

    table: pd.DataFrame
    chance: dict[str, float]
    sizes: dict
    timings: dict = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        """:func:`learning_curves` of the table."""
        return learning_curves(self.table)


def learning_curves(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds: columns dataset, task, method, k, metric_name, mean, std, num_seeds.

    ``std`` is the sample std (ddof=1), 0 with one seed; rows whose metric is NaN (the head at k = 0)
    keep mean NaN and ``num_seeds`` 0.
    """
    keys = ["dataset", "task", "method", "k", "metric_name"]
    g = table.groupby(keys, sort=True)["metric"]
    out = pd.concat({"mean": g.mean(), "std": g.std(ddof=1).fillna(0.0), "num_seeds": g.count()}, axis=1)
    return out.reset_index()


def prompt_stops_helping(table: pd.DataFrame) -> dict[str, int | None]:
    """Per task, the smallest k > 0 where the head's mean is within one std of the prompt method's, or above.

    The rule: ``mean_head >= mean_prompt - std_prompt`` (the prompt method's std over seeds, so a
    noisy head does not count as caught up). ``None`` when the prompt method stays ahead at every k
    tried. Takes a tidy table or its :func:`learning_curves`.
    """
    summary = table if "mean" in table.columns else learning_curves(table)
    out: dict[str, int | None] = {}
    for task, rows in summary.groupby("task", sort=False):
        wide = rows.pivot(index="k", columns="method", values=["mean", "std"]).sort_index()
        out[task] = None
        for k, r in wide.iterrows():
            head, prompt = r[("mean", "head")], r[("mean", "prompt")]
            if (
                k > 0
                and not np.isnan(head)
                and not np.isnan(prompt)
                and head >= prompt - r[("std", "prompt")]
            ):
                out[task] = int(k)
                break
    return out


def fewshot_metrics(table: pd.DataFrame) -> dict[str, float]:
    """``{<dataset>_fewshot_<task>_<method>_k<k>: mean over seeds}``, NaN means (head at k = 0) left out."""
    summary = table if "mean" in table.columns else learning_curves(table)
    return {
        f"{r.dataset}_fewshot_{r.task}_{r.method}_k{r.k}": float(r.mean)
        for r in summary.itertuples()
        if not np.isnan(r.mean)
    }


def _pool(labels: np.ndarray, pool_per_class: int | None) -> np.ndarray:
    """Positions of at most ``pool_per_class`` candidates per class, drawn with :data:`DATA_SEED`."""
    if pool_per_class is None:
        return np.arange(len(labels))
    return sample_k_shot(labels, pool_per_class, DATA_SEED, allow_fewer=True)


def _split(task, examples, parts, labels, ids, keep) -> FewShotSplit:
    keep = np.asarray(keep)
    return FewShotSplit(
        build_prompts(task, [examples[i] for i in keep]),
        [parts[i] for i in keep],
        np.asarray(labels)[keep].astype(np.int64),
        np.asarray(ids)[keep],
    )


def clothing_fewshot_data(
    reviews: pd.DataFrame, task: str, test_size: int, pool_per_class: int | None = None
) -> FewShotData:
    """``recommended`` or ``department`` on the workbook's clothing split (:func:`clothing_split`, seed 0).

    Reviews without a department (14 of 23,486) are left out of both tasks, so both read the same
    test sample. ``ids`` are the rows' index labels in ``reviews``.
    """
    from mtrec_utils.data import clothing_split, clothing_texts
    from mtrec_utils.data.prepare import sample_rows

    spec = get_task(task)
    check_choice("task", task, ("recommended", "department"))
    check_positive("test_size", test_size, integer=True)
    parts = {name: df[df["department"] != ""] for name, df in clothing_split(reviews, seed=0).items()}
    g = torch.Generator().manual_seed(DATA_SEED)
    out = {}
    for name, df in (("train", parts["train"]), ("test", sample_rows(parts["test"], test_size, g))):
        if task == "department":
            unknown = set(df["department"]) - set(DEPARTMENTS)
            if unknown:
                raise ValueError(f"unknown departments {sorted(unknown)}; expected {DEPARTMENTS}")
            labels = df["department"].map({d: i for i, d in enumerate(DEPARTMENTS)}).to_numpy()
        else:
            labels = df["recommended"].to_numpy()
        texts = clothing_texts(df).tolist()
        keep = _pool(labels, pool_per_class) if name == "train" else np.arange(len(df))
        out[name] = _split(
            spec, [f"Review: {t}" for t in texts], [(t,) for t in texts], labels, df.index, keep
        )
    return FewShotData(spec, out["train"], out["test"])


def movielens_fewshot_data(ml, test_size: int, pool_per_class: int | None = None) -> FewShotData:
    """``like`` (rating >= 4) on u1: k-shot candidates from u1.base, the test sample from u1.test.

    User texts come from u1.base only. A training pair whose movie title is already in the user's
    text (one of their recently liked titles) is left out of the candidates: its answer is in its
    input, which no test pair has. ``ids`` are ``user_id * 10_000 + item_id``.
    """
    from mtrec_utils.data import item_texts, movielens_split, user_texts
    from mtrec_utils.data.prepare import sample_rows
    from mtrec_utils.data.text import LIKE_THRESHOLD

    check_positive("test_size", test_size, integer=True)
    spec = get_task("like")
    base, test = movielens_split(ml.ratings, k=1)
    items, users = item_texts(ml.items), user_texts(ml.users, base, ml.items)
    titles = ml.items.set_index("item_id")["title"].str.strip()
    in_text = [t in users[u] for u, t in zip(base["user_id"], base["item_id"].map(titles))]
    base = base[~np.asarray(in_text)]
    test = sample_rows(test, test_size, torch.Generator().manual_seed(DATA_SEED))
    out = {}
    for name, df in (("train", base), ("test", test)):
        labels = (df["rating"].to_numpy() >= LIKE_THRESHOLD).astype(np.int64)
        u, i = users.loc[df["user_id"]].tolist(), items.loc[df["item_id"]].tolist()
        examples = [f"Movie: {it} User: {ut}" for ut, it in zip(u, i)]
        ids = df["user_id"].to_numpy() * 10_000 + df["item_id"].to_numpy()
        keep = _pool(labels, pool_per_class) if name == "train" else np.arange(len(df))
        out[name] = _split(spec, examples, list(zip(u, i)), labels, ids, keep)
    return FewShotData(spec, out["train"], out["test"])


def _plan(data: dict[str, FewShotData], ks, seeds, max_labels) -> dict[tuple[str, int, int], np.ndarray]:
    """The k-shot positions of every (task, seed, k) that fits ``max_labels`` (k * classes)."""
    plan = {}
    for name, d in data.items():
        num_classes = len(d.task.class_names)
        for seed in seeds:
            for k in ks:
                if max_labels is None or k * num_classes <= max_labels:
                    plan[name, seed, k] = sample_k_shot(
                        d.train.labels, k, seed, num_classes, allow_fewer=True
                    )
    return plan


class _Embeddings:
    """Every distinct text encoded once (unit norm); ``plain`` builds the head's input from parts."""

    def __init__(self, encode: Callable[[list[str]], torch.Tensor], texts: list[str]):
        unique = list(dict.fromkeys(texts))
        self.index = {t: i for i, t in enumerate(unique)}
        self.emb = F.normalize(encode(unique).float(), dim=-1) if unique else torch.empty(0)  # (M, H)

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        return self.emb[[self.index[t] for t in texts]]  # (N, H)

    def plain(self, parts: Sequence[tuple[str, ...]]) -> torch.Tensor:
        cols = [self([p[j] for p in parts]) for j in range(len(parts[0]))]
        return cols[0] if len(cols) == 1 else torch.cat([cols[0], cols[1], cols[0] * cols[1]], dim=-1)


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread inside the block: these small fits are several times faster so, and
    far faster than on two threads that other processes also use."""
    num_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(num_threads)


def _fit_and_score(d: FewShotData, emb: _Embeddings, method: str, idx: np.ndarray) -> float:
    """Test metric of ``method`` trained on the k-shot positions ``idx`` (empty: zero-shot prompt)."""
    label_emb = emb(d.task.label_texts)  # (C, H)
    if method == "prompt":
        x, x_test, init = emb([d.train.prompts[i] for i in idx]), emb(d.test.prompts), TEMPERATURE * label_emb
        if len(idx) == 0:
            return task_score(d.task, d.test.labels, zero_shot_proba(x_test, label_emb))
    else:
        x, x_test, init = emb.plain([d.train.parts[i] for i in idx]), emb.plain(d.test.parts), None
    y = torch.as_tensor(d.train.labels[idx])
    w, b = fit_softmax_head(x, y, len(d.task.class_names), init=init)
    return task_score(d.task, d.test.labels, torch.softmax(x_test @ w.T + b, dim=-1))


def run_tasks(
    data: dict[str, FewShotData],
    encode: Callable[[list[str]], torch.Tensor],
    ks: Sequence[int],
    seeds: Sequence[int],
    max_labels: int | None = None,
    progress: bool = True,
) -> FewShotResult:
    """Both methods on every task, k and seed; texts are encoded once, in one call of ``encode``.

    Args:
        data: ``{task: FewShotData}``.
        encode: texts (M) -> (M, H) embeddings (e.g. the frozen encoder through its cache).
        ks: labelled examples per class; 0 = zero-shot. A k with ``k * classes > max_labels`` is skipped.
        seeds: one k-shot draw per seed (the test sample is the same for all).
    """
    ks = sorted({_check_k(k) for k in ks})
    plan = _plan(data, ks, seeds, max_labels)
    texts = [t for d in data.values() for t in d.task.label_texts + tuple(d.test.prompts)]
    texts += [t for d in data.values() for p in d.test.parts for t in p]
    for (name, _, _), idx in plan.items():
        split = data[name].train
        texts += [split.prompts[i] for i in idx] + [t for i in idx for t in split.parts[i]]
    start = time.perf_counter()
    emb = _Embeddings(encode, texts)
    timings = {"encode": time.perf_counter() - start, "num_texts": len(emb.index)}
    rows, start = [], time.perf_counter()
    with one_thread():
        for (name, seed, k), idx in tqdm(plan.items(), desc="few-shot fits", disable=not progress):
            d = data[name]
            for method in METHODS:
                value = _fit_and_score(d, emb, method, idx) if k > 0 or method == "prompt" else float("nan")
                row = dict(dataset=d.task.dataset, task=name, method=method, k=k, seed=seed, metric=value)
                rows.append({**row, "metric_name": d.task.metric, "n_train": len(idx)})
    timings["fit"] = time.perf_counter() - start
    chance = {name: chance_level(d.task, d.test.labels) for name, d in data.items()}
    return FewShotResult(pd.DataFrame(rows), chance, {"ks": tuple(ks), "seeds": tuple(seeds)}, timings)


def run_fewshot(
    profile: str = "auto",
    seed: int = 0,
    encoder=None,
    tasks: Sequence[str] = tuple(PROMPT_TASKS),
    cache_dir=None,
    progress: bool = True,
) -> FewShotResult:
    """Notebook 10, section 2: learning curves of ``prompt`` vs ``head`` at the profile's sizes.

    Args:
        profile: ``smoke`` | ``cpu`` | ``gpu`` | ``auto`` (sizes: :data:`FEWSHOT_SIZES`).
        seed: first k-shot seed; the run uses ``seed .. seed + num_seeds - 1``.
        encoder: an :class:`~mtrec_utils.models.encoders.Encoder`; ``None`` loads the bundled MiniLM.
        tasks: task names (:data:`PROMPT_TASKS`).
        cache_dir: embedding cache folder (``None`` = the default one).
        progress: show progress bars.

    Returns:
        :class:`FewShotResult`.
    """
    from mtrec_utils.data import load_clothing, load_movielens
    from mtrec_utils.models.encoders import encode_texts, load_encoder

    sizes = fewshot_sizes(profile)
    tasks = [get_task(t).name for t in tasks]
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed={seed!r} is not valid; it must be a non-negative integer (for example 0)")
    start = time.perf_counter()
    reviews = load_clothing() if {"recommended", "department"} & set(tasks) else None
    n, pool = sizes["test_size"], sizes["pool_per_class"]
    data = {
        t: movielens_fewshot_data(load_movielens(), n, pool)
        if t == "like"
        else clothing_fewshot_data(reviews, t, n, pool)
        for t in tasks
    }
    encoder = encoder if encoder is not None else load_encoder()
    setup_s = time.perf_counter() - start  # data, prompts and the encoder

    def encode(texts: list[str]) -> torch.Tensor:
        return encode_texts(
            encoder, texts, max_length=sizes["max_length"], cache_dir=cache_dir, progress=progress
        )

    seeds = range(seed, seed + sizes["num_seeds"])
    result = run_tasks(data, encode, sizes["ks"], seeds, sizes["max_labels"], progress)
    result.sizes = {**sizes, "seeds": tuple(seeds)}
    result.timings = {"setup": setup_s, **result.timings}
    return result
