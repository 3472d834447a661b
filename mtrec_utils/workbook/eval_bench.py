"""Ranking-evaluation benchmark: ``python -m mtrec_utils.bench eval``.

Ranking evaluation scores every (user, item) pair of a pair task. Side by side in one process, on
one model with MovieLens-100K sizes (943 users, 1,682 items; towers of width 64 fusing an ID
embedding and a 384-dim frozen text embedding, as at the ``cpu`` profile; trunk width 128; random
weights), it times:

- **per-pair** (the reference kept here, the code before): each tower once per block of 64 users,
  then the users and items repeated into (64 * 1682, d) pairs, concatenated, and the trunk's and
  head's whole MLP run on every pair (:func:`per_pair_score_items`);
- **fast** (:func:`~mtrec_utils.training.evaluation.ranking_scores`, through
  :meth:`~mtrec_utils.models.multitask.MultiTaskModel.score_items`): each tower once per entity,
  the first Linear of the trunk split into user and item parts computed once per entity, pairs
  formed by broadcasting in cache-sized blocks, the head's ``u * i`` part as a batched matmul.

Both give the same scores up to float rounding; the benchmark reports the largest difference and
the ranking metrics of both. Timings are medians over repeats on one thread (shared machines are
noisy: quote the ratio). Speed is never asserted in unit tests.
"""

from __future__ import annotations

import inspect
import statistics
import time

import numpy as np
import torch

from mtrec_utils.core import metrics as M
from mtrec_utils.core.config import check_choice, check_positive, set_seed
from mtrec_utils.data import GENRES
from mtrec_utils.data.datasets import RankingEval
from mtrec_utils.data.tasks import Task, movielens_tasks
from mtrec_utils.models.multitask import MultiTaskModel
from mtrec_utils.models.sharing import ARCHITECTURES, build_model
from mtrec_utils.models.towers import EntityTower, FrozenText
from mtrec_utils.training.bundles import movielens_bundle
from mtrec_utils.training.evaluation import ranking_scores
from mtrec_utils.training.experiments import run_experiment

#: MovieLens-100K: users, items, and the width of the bundled MiniLM encoder's text embeddings.
NUM_USERS, NUM_ITEMS, TEXT_DIM = 943, 1682, 384


def _default(fn, param: str) -> int:
    """The default of ``fn``'s ``param`` (the sizes every notebook's runs use)."""
    return int(inspect.signature(fn).parameters[param].default)


#: Tower width (``movielens_bundle``'s ``dim``) and trunk width (``run_experiment``'s ``hidden``).
DIM, HIDDEN = _default(movielens_bundle, "dim"), _default(run_experiment, "hidden")


@torch.no_grad()
def per_pair_score_items(
    model: MultiTaskModel, name: str, users: torch.Tensor, num_items: int, chunk: int = 64
):
    """The per-pair path (the former ``MultiTaskModel.score_items``): (U, num_items) scores of ``name``."""
    item_ids = torch.arange(num_items, device=users.device)
    items = model.towers["item"](item_ids)  # (I, d)
    rows = []
    for start in range(0, len(users), chunk):
        ids = users[start : start + chunk]  # (C,)
        u = model.towers["user"](ids)  # (C, d)
        uu, uid = u.repeat_interleave(num_items, dim=0), ids.repeat_interleave(num_items)  # (C*I, d), (C*I,)
        ii, iid = items.repeat(len(u), 1), item_ids.repeat(len(u))  # (C*I, d), (C*I,)
        rows.append(model.pair_outputs(uu, ii, uid, iid, [name])[name].reshape(len(u), num_items))
    return torch.cat(rows)


@torch.no_grad()
def per_pair_ranking_scores(
    model: torch.nn.Module, task: Task, data: RankingEval, num_items: int | None = None
) -> np.ndarray:
    """The former ``ranking_scores``: (U, I) scores by the per-pair path, training items set to -inf."""
    device = next(model.parameters(), torch.empty(0)).device
    users, num_items = data.users.to(device), num_items or data.exclude.shape[1]
    if isinstance(model, MultiTaskModel):
        scores = per_pair_score_items(model, task.name, users, num_items)
    else:
        rows = []
        for u in users.split(64):
            batch = {
                "user": u.repeat_interleave(num_items),
                "item": torch.arange(num_items, device=device).repeat(len(u)),
            }
            rows.append(model(batch, [task.name])[task.name].reshape(len(u), num_items))
        scores = torch.cat(rows)
    scores = scores.float().cpu().masked_fill(data.exclude, float("-inf"))
    return scores.numpy()


def bench_model(
    arch: str = "hard",
    num_users: int = NUM_USERS,
    num_items: int = NUM_ITEMS,
    dim: int = DIM,
    hidden: int = HIDDEN,
    text_dim: int = TEXT_DIM,
    seed: int = 0,
) -> MultiTaskModel:
    """A MovieLens-shaped model (all four tasks) with random weights and text embeddings, in eval mode.

    The user and item biases are drawn too (they start at zero in training), so that every part of
    the pair score is exercised.
    """
    set_seed(seed)
    towers = {
        kind: EntityTower(n, dim, text=FrozenText(torch.randn(n, text_dim)))
        for kind, n in (("user", num_users), ("item", num_items))
    }
    model = build_model(arch, towers, list(movielens_tasks(GENRES).values()), hidden=hidden)
    with torch.no_grad():
        for emb in model.biases.values():
            emb.weight.normal_(0.0, 0.1)
    return model.eval()


def bench_ranking_eval(
    num_users: int,
    num_items: int,
    scores: np.ndarray | None = None,
    seen: float = 0.05,
    positives: int = 12,
    sharpness: float = 2.0,
    seed: int = 0,
) -> RankingEval:
    """Every user ranked; a random ``seen`` fraction of items excluded (u1.base rates 5% of all pairs)
    and ``positives`` held-out items per user among the rest.

    With ``scores`` (U, I), positives are drawn without replacement with weights
    ``exp(sharpness * score / std)`` (Gumbel top-k): as for a trained model, a fair share of them land
    in the top 10 (recall@10 about 0.15 at the default sharpness), so that the metrics depend on the
    order of the top scores. Without ``scores``, uniformly.
    """
    rng = np.random.default_rng(seed)
    exclude = rng.random((num_users, num_items)) < seen
    keys = rng.gumbel(size=(num_users, num_items))
    if scores is not None:
        finite = np.isfinite(scores)
        keys += sharpness * np.where(finite, scores, 0.0) / max(float(scores[finite].std()), 1e-12)
    keys[exclude] = -np.inf
    top = np.argsort(-keys, axis=1, kind="stable")[:, :positives]  # (U, positives)
    pos = [np.sort(items[np.isfinite(row[items])]) for items, row in zip(top, keys)]
    return RankingEval(users=torch.arange(num_users), positives=pos, exclude=torch.from_numpy(exclude))


def _timed(fns: dict, repeats: int) -> dict[str, tuple[float, float, np.ndarray]]:
    """``{name: (median wall seconds, median CPU seconds, last output)}`` of each function, run in turn
    ``repeats`` times (interleaved, so that a change of load on a shared machine hits both alike)."""
    wall: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    outs = {}
    for _ in range(repeats):
        for name, fn in fns.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            outs[name] = fn()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name]), outs[name]) for name in fns}


def eval_bench(
    arch: str = "hard",
    num_users: int = NUM_USERS,
    num_items: int = NUM_ITEMS,
    dim: int = DIM,
    hidden: int = HIDDEN,
    repeats: int = 3,
    threads: int = 1,
    k: int = 10,
    seed: int = 0,
) -> dict:
    """Time the per-pair and the fast ranking scores of ``interest`` side by side (see the module docstring).

    Returns:
        A JSON-friendly dict: sizes, ``per_pair_s`` and ``fast_s`` (median seconds of one
        ``ranking_scores`` call), ``speedup``, ``max_abs_diff`` (over the finite scores), the
        ``recall@k`` / ``ndcg@k`` of both paths and ``metrics_identical``; the ``*_cpu_s`` and
        ``speedup_cpu`` figures count CPU time instead, less sensitive to other work on the machine.
    """
    check_choice("arch", arch, ARCHITECTURES)
    for name, value in (("num_users", num_users), ("num_items", num_items), ("repeats", repeats)):
        check_positive(name, value, integer=True)
    check_positive("threads", threads, integer=True)
    model = bench_model(arch, num_users, num_items, dim, hidden, seed=seed)
    task = model.tasks["interest"]
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        warm = ranking_scores(model, task, bench_ranking_eval(num_users, num_items, seed=seed))  # warm-up
        data = bench_ranking_eval(
            num_users, num_items, warm, seed=seed
        )  # same exclusions, positives by score
        timed = _timed(
            {
                "per_pair": lambda: per_pair_ranking_scores(model, task, data),
                "fast": lambda: ranking_scores(model, task, data),
            },
            repeats,
        )
    finally:
        torch.set_num_threads(previous)
    (old_s, old_cpu, old), (new_s, new_cpu, new) = timed["per_pair"], timed["fast"]
    finite = np.isfinite(old)
    if not np.array_equal(finite, np.isfinite(new)):
        raise AssertionError("the two paths disagree on which scores are finite")
    metrics = {
        path: {
            f"recall@{k}": M.recall_at_k(scores, data.positives, k),
            f"ndcg@{k}": M.ndcg_at_k(scores, data.positives, k),
        }
        for path, scores in (("per_pair", old), ("fast", new))
    }
    return {
        "arch": arch,
        "users": num_users,
        "items": num_items,
        "dim": dim,
        "hidden": hidden,
        "threads": threads,
        "repeats": repeats,
        "per_pair_s": old_s,
        "fast_s": new_s,
        "speedup": old_s / new_s,
        "per_pair_cpu_s": old_cpu,
        "fast_cpu_s": new_cpu,
        "speedup_cpu": old_cpu / new_cpu,
        "max_abs_diff": float(np.abs(old[finite] - new[finite]).max()),
        "max_abs_score": float(np.abs(old[finite]).max()),
        "metrics": metrics,
        "metrics_identical": metrics["per_pair"] == metrics["fast"],
    }


def format_result(result: dict) -> str:
    """The benchmark result in three lines."""
    m = result["metrics"]
    return "\n".join(
        [
            f"ranking scores, {result['arch']}, {result['users']} users x {result['items']} items, "
            f"{result['threads']} thread(s), median of {result['repeats']}:",
            f"  per-pair {result['per_pair_s']:.3f} s   fast {result['fast_s']:.3f} s   "
            f"speedup {result['speedup']:.1f}x (CPU time: {result['speedup_cpu']:.1f}x)   "
            f"max |score diff| {result['max_abs_diff']:.2e}",
            f"  metrics per-pair {m['per_pair']}  fast {m['fast']}  identical: {result['metrics_identical']}",
        ]
    )
