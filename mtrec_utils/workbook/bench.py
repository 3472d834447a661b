"""Benchmarks: ``python -m mtrec_utils.bench throughput`` (and ``eval``, :mod:`~mtrec_utils.workbook.eval_bench`;
``precision``, :mod:`~mtrec_utils.workbook.precision_bench`).

Side by side in one run, on the same MovieLens rows, texts and encoder weights:

- samples/s of one training step of the article's pipeline (per-sample tokenisation, padding to
  128 tokens, one encoder pass per rating) and of ours (tokenise once; batches that share texts,
  :class:`~mtrec_utils.data.batching.SharedTextBatches`: grouped by user, items shared across
  users, length-aware; each distinct text of a batch encoded once, the batch's user and item texts
  in one encoder call, several short texts packed per row; ``--no-pack``: one call per tower,
  padded to its longest text), and their ratio, with texts (sequences) and padded tokens per batch. The rows are those of
  ``rows // batch_size`` batches drawn from our batching of a whole epoch of u1.base, so our
  pipeline meets batches as training makes them; the article takes the same rows, shuffled;
- FLOP/s of our training step (forward + backward, FLOPs counted by PyTorch's ``FlopCounterMode``
  per batch, over the batches' measured times) as a fraction of the same machine's matmul FLOP/s,
  measured between the batches (so under the same load);
- peak memory of each pipeline, each in its own fresh process running only it (CPU: the child's
  own peak resident set, :func:`own_peak_rss_mb`; CUDA: ``torch.cuda.max_memory_allocated``).

Both pipelines, the matmul and the memory processes use ``--threads`` torch threads (default 1:
on a small shared machine, more threads mostly wait for each other on the many small operations).
Timings on shared machines are noisy: the two pipelines alternate batch by batch, and the ratio
is what to quote. Speed is never asserted in unit tests.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import queue as queue_module
import resource
import statistics
import sys
import time

import numpy as np
import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from mtrec_utils.core.config import check_positive, get_device, set_seed
from mtrec_utils.core.io import atomic_write_json
from mtrec_utils.models.encoders import load_encoder, mean_pool
from mtrec_utils.models.towers import EncoderText
from mtrec_utils.workbook.pipeline_bench import (
    ArticlePairDataset,
    article_loss,
    compare_pipelines,
    our_batches,
    our_loss,
)


def bench_data(rows: int, seed: int = 0, tokenizer=None, batch_size: int = 32, max_length: int = 128) -> dict:
    """Rows of u1.base with the user and item texts the encoder reads.

    Without ``tokenizer``: ``rows`` random ratings. With it (as the benchmark runs): the ratings of
    ``rows // batch_size`` full batches drawn at random from our batching of one whole epoch of
    u1.base (:class:`~mtrec_utils.data.batching.SharedTextBatches` over all its ratings, token
    lengths from ``tokenizer``), so that our pipeline meets batches as a training epoch makes them;
    the rows are shuffled (the article's pipeline takes them in that order), ``batches`` holds our
    batches as row indices into them, and ``epoch`` the whole epoch's batch figures.
    """
    from mtrec_utils.data import load_movielens, movielens_split
    from mtrec_utils.data.text import item_texts, user_texts

    ml = load_movielens()
    base, _ = movielens_split(ml.ratings, k=1)
    u_text, i_text = user_texts(ml.users, base, ml.items), item_texts(ml.items)
    u_index = {u: n for n, u in enumerate(u_text.index)}
    i_index = {i: n for n, i in enumerate(i_text.index)}
    data = {"user_texts": u_text.tolist(), "item_texts": i_text.tolist()}
    if tokenizer is None:
        sample = base.sample(n=min(rows, len(base)), random_state=seed)
        return {
            **data,
            "users": sample.user_id.map(u_index).to_numpy(),
            "items": sample.item_id.map(i_index).to_numpy(),
            "labels": sample.rating.to_numpy(np.float32),
        }
    from mtrec_utils.data.batching import SharedTextBatches, batch_stats
    from mtrec_utils.data.datasets import tokenize_once

    users, items = base.user_id.map(u_index).to_numpy(), base.item_id.map(i_index).to_numpy()
    lu = np.array([len(t) for t in tokenize_once(tokenizer, data["user_texts"], max_length)])
    li = np.array([len(t) for t in tokenize_once(tokenizer, data["item_texts"], max_length)])
    start = time.perf_counter()
    epoch = SharedTextBatches(users, items, batch_size, lu, li, seed=seed).batches()
    build_s = time.perf_counter() - start
    stats = pd.DataFrame([batch_stats(b, users, items, lu, li) for b in epoch])
    rng = np.random.default_rng(seed)
    full = [b for b in epoch if len(b) == batch_size]
    size = min(max(rows // batch_size, 1), len(full))
    chosen = [full[k] for k in rng.choice(len(full), size=size, replace=False)]
    picked = np.concatenate(chosen)
    order = rng.permutation(len(picked))  # the article's (shuffled) order of these rows
    position = np.empty(len(picked), dtype=np.int64)
    position[order] = np.arange(len(picked))  # row picked[j] is row position[j] of the sample
    bounds = np.cumsum([0] + [len(b) for b in chosen])
    return {
        **data,
        "users": users[picked[order]],
        "items": items[picked[order]],
        "labels": base.rating.to_numpy(np.float32)[picked[order]],
        "batches": [position[s:e] for s, e in zip(bounds[:-1], bounds[1:])],
        "epoch": {
            "ratings": int(len(users)),
            "batches": len(epoch),
            "build_s": build_s,
            "samples_per_batch": float(stats.ratings.mean()),
            "sequences_per_batch": float(stats.texts.mean()),
            "padded_tokens_per_batch": float(stats.padded_tokens.mean()),
            "padded_tokens_per_rating": float(stats.padded_tokens.sum() / stats.ratings.sum()),
        },
    }


def matmul_flops(n: int = 1024, repeats: int = 10, device: torch.device | None = None) -> float:
    """Median FLOP/s of an (n x n) @ (n x n) float32 matmul on ``device`` (2 n^3 FLOPs each)."""
    device = device or torch.device("cpu")
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    times = []
    for _ in range(repeats + 2):
        start = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times[2:])


def encoder_step_flops(encoder, texts: list[str], max_length: int = 128, repeats: int = 5) -> dict:
    """FLOPs and median seconds of one encoder training step (forward + backward) on ``texts``."""
    batch = encoder.tokenizer(
        texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt"
    )
    batch = {k: v.to(encoder.device) for k, v in batch.items()}
    model = encoder.model.train()

    def step() -> None:
        out = model(**batch).last_hidden_state  # (B, T, H)
        mean_pool(out, batch["attention_mask"]).pow(2).mean().backward()
        model.zero_grad(set_to_none=True)

    with FlopCounterMode(display=False) as counter:
        step()
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        step()
        if encoder.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    model.eval()
    seconds = statistics.median(times[1:])
    return {"flops": counter.get_total_flops(), "seconds": seconds, "tokens": int(batch["input_ids"].numel())}


def run_pipeline(
    pipeline: str,
    encoder,
    data: dict,
    batch_size: int,
    max_length: int,
    pack: bool = True,
    max_batches: int | None = None,
) -> int:
    """Run the training steps (forward + backward) of one pipeline on ``data``, at most ``max_batches``
    of them (default: all); returns the samples seen."""
    model, n, seen = encoder.model, len(data["users"]) // batch_size * batch_size, 0
    if pipeline == "article":
        pairs = (data["users"][:n], data["items"][:n], data["labels"][:n])
        ds = ArticlePairDataset(data["user_texts"], data["item_texts"], *pairs, encoder.tokenizer, max_length)
        for k, batch in enumerate(torch.utils.data.DataLoader(ds, batch_size=batch_size)):
            if max_batches is not None and k == max_batches:
                break
            article_loss(model, {key: v.to(encoder.device) for key, v in batch.items()})[0].backward()
            seen += len(batch["labels"])
    else:
        users = EncoderText(encoder, data["user_texts"], max_length).to(encoder.device)
        items = EncoderText(encoder, data["item_texts"], max_length).to(encoder.device)
        columns, dev = {"user": "users", "item": "items", "labels": "labels"}, encoder.device
        batches = data.get("batches") or our_batches(
            users, items, data["users"][:n], data["items"][:n], batch_size
        )
        for rows in batches[:max_batches]:
            batch = {k: torch.as_tensor(np.asarray(data[c])[rows]).to(dev) for k, c in columns.items()}
            our_loss(users, items, batch, pack)[0].backward()
            seen += len(rows)
    return seen


def own_peak_rss_mb() -> float:
    """This process's own peak resident memory (MB): ``VmHWM`` in ``/proc/self/status`` (Linux).

    Not ``getrusage(RUSAGE_SELF).ru_maxrss``: Linux carries a process's maxrss over ``fork`` and
    ``execve``, so a child started with ``spawn`` (a fork of the parent, then exec of a fresh
    interpreter) reports at least the parent's resident memory at the fork; both pipelines'
    children used to report the parent's figure. ``VmHWM`` belongs to the address space, which
    ``execve`` replaces. Without ``/proc``, ``ru_maxrss`` (kB on Linux, bytes on macOS).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB -> MB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 1024)


def _peak_memory_child(pipeline: str, args: dict, queue) -> None:
    try:
        torch.set_num_threads(args["threads"])
        device = torch.device(args["device"])
        encoder = load_encoder(args["encoder"], device=device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        # every article batch has one shape, (2B, max_length): its peak is reached by its second step
        few = 2 if pipeline == "article" else None
        sizes = (args["batch_size"], args["max_length"], args["pack"], few)
        run_pipeline(pipeline, encoder, args["data"], *sizes)
        if device.type == "cuda":
            peak, kind = torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
        else:
            peak, kind = own_peak_rss_mb(), "peak_rss"
        queue.put({"pipeline": pipeline, "pid": os.getpid(), "peak_mb": peak, "kind": kind})
    except BaseException as err:  # report it: the parent would otherwise wait for nothing
        queue.put({"pipeline": pipeline, "pid": os.getpid(), "error": f"{type(err).__name__}: {err}"})
        raise


def child_peak_memory(
    pipeline: str,
    encoder: str,
    data: dict,
    batch_size: int,
    max_length: int = 128,
    device: str = "cpu",
    threads: int | None = None,
    pack: bool = True,
) -> dict:
    """Run ``pipeline`` alone in a fresh process (``spawn``) on ``data``; its own peak memory.

    The article's child runs two of its batches (they all have one shape, so its peak is reached
    by then); ours runs all of its batches.

    Returns:
        ``{"pipeline", "pid" (the child's), "peak_mb", "kind"}``: on CPU the child's peak resident
        memory (:func:`own_peak_rss_mb`), on CUDA ``torch.cuda.max_memory_allocated``.
    """
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    args = {
        "encoder": encoder,
        "data": data,
        "batch_size": batch_size,
        "max_length": max_length,
        "device": str(device),
        "threads": threads or torch.get_num_threads(),
        "pack": pack,
    }
    proc = ctx.Process(target=_peak_memory_child, args=(pipeline, args, queue))
    proc.start()
    try:
        while True:
            try:
                result = queue.get(timeout=5)
                break
            except queue_module.Empty:
                if not proc.is_alive():
                    code = proc.exitcode
                    raise RuntimeError(f"the {pipeline} memory process exited with code {code}") from None
    finally:
        proc.join(timeout=60)
    if "error" in result:
        raise RuntimeError(f"the {pipeline} memory process failed: {result['error']}")
    return result


def peak_memory_mb(
    pipeline: str,
    encoder: str,
    data: dict,
    batch_size: int,
    max_length: int = 128,
    device: str = "cpu",
    threads: int | None = None,
) -> float:
    """Peak memory (MB) of a fresh process that loads the encoder and runs ``pipeline`` alone on ``data``.

    Both pipelines pay the same fixed cost (interpreter, libraries, model, data), so the difference
    between the two figures is what the pipeline itself needs. The article's child runs two of its
    batches (all have the same shape, so its peak is reached by then), ours all of its batches.
    See :func:`child_peak_memory`.
    """
    child = child_peak_memory(pipeline, encoder, data, batch_size, max_length, device, threads)
    return float(child["peak_mb"])


def throughput(
    encoder_name: str = "bundled-minilm",
    rows: int = 256,
    batch_size: int = 32,
    max_length: int = 128,
    device: str = "auto",
    memory: bool = True,
    seed: int = 0,
    threads: int | None = None,
    pack: bool = True,
) -> dict:
    """Run the throughput benchmark; returns a JSON-friendly dict (see the module docstring).

    ``threads``: torch threads for both pipelines, the matmul reference and the memory processes
    (default: torch's current setting). ``pack``: ours encodes a batch's texts in one packed call
    (:func:`~mtrec_utils.workbook.pipeline_bench.packed_encode`), else one padded call per tower.
    """
    check_positive("rows", rows, integer=True)
    check_positive("batch_size", batch_size, integer=True)
    if threads is not None:
        check_positive("threads", threads, integer=True)
    before_threads = torch.get_num_threads()
    torch.set_num_threads(threads or before_threads)
    try:
        set_seed(seed)
        dev = get_device(device)
        encoder = load_encoder(encoder_name, device=dev)
        data = bench_data(rows, seed, encoder.tokenizer, batch_size, max_length)
        probes: list[float] = []  # the reference matmul, timed between batches: the same load as the steps
        table = compare_pipelines(
            encoder,
            **{k: data[k] for k in ("user_texts", "item_texts", "users", "items", "labels")},
            batch_size=batch_size,
            max_length=max_length,
            train=True,
            seed=seed,
            batches=data["batches"],
            count_flops=True,
            between=lambda: probes.append(matmul_flops(repeats=3, device=dev)),
            pack=pack,
            per_tower=pack,  # our step also unpacked, on the same batches: packing's effect
        )
        peak = statistics.median(probes)
        ours, article = table.loc["ours"], table.loc["article"]
        result = {
            "device": str(dev),
            "torch_threads": torch.get_num_threads(),
            "encoder": encoder.name,
            "rows": int(len(data["users"])),
            "batch_size": batch_size,
            "max_length": max_length,
            "packed": pack,
            "pipelines": table.reset_index().to_dict(orient="records"),
            "speedup": table.attrs["speedup"],
            "epoch": data["epoch"],
            "encoder_step_flops_per_s": float(ours["flops_per_s"]),
            "article_step_flops_per_s": float(article["flops_per_s"]),
            "matmul_flops_per_s": peak,
            "matmul_probes": len(probes),
            "encoder_step_utilisation": float(ours["flops_per_s"]) / peak,
            "article_step_utilisation": float(article["flops_per_s"]) / peak,
            "encoder_step_tokens": float(ours["padded_tokens_per_batch"]),
        }
        if "ours_per_tower" in table.index:
            per_tower = table.loc["ours_per_tower"]
            result["encoder_step_utilisation_per_tower"] = float(per_tower["flops_per_s"]) / peak
            result["speedup_per_tower"] = float(per_tower["samples_per_s"] / article["samples_per_s"])
        if memory and dev.type in ("cpu", "cuda"):
            sample = {k: data[k] for k in ("user_texts", "item_texts", "users", "items", "labels", "batches")}
            sizes = (batch_size, max_length, str(dev), threads, pack)
            children = {
                name: child_peak_memory(name, encoder_name, sample, *sizes) for name in ("article", "ours")
            }
            result["peak_memory_mb"] = {name: c["peak_mb"] for name, c in children.items()}
            result["peak_memory"] = children
        return result
    finally:
        torch.set_num_threads(before_threads)


def format_table(result: dict) -> str:
    """The benchmark result as a small text table."""
    columns = ["samples_per_s", "samples_per_batch", "sequences_per_batch", "tokens_per_sequence"]
    table = pd.DataFrame(result["pipelines"]).set_index("pipeline")
    short = {"samples_per_batch": "ratings/batch", "sequences_per_batch": "texts/batch"}
    short["padded_tokens_per_batch"] = "tokens/batch"
    rows = table[[*columns, "padded_tokens_per_batch"]].rename(columns=short)
    if "peak_memory_mb" in result:
        rows["peak_memory_mb"] = pd.Series(result["peak_memory_mb"])
    step_gflops, matmul_gflops = result["encoder_step_flops_per_s"] / 1e9, result["matmul_flops_per_s"] / 1e9
    utilisation = 100 * result["encoder_step_utilisation"]
    article = 100 * result["article_step_utilisation"]
    epoch = result["epoch"]
    lines = [
        rows.round(2).to_string(),
        f"speedup (ours / article): {result['speedup']:.1f}x",
        f"our training step: {step_gflops:.1f} GFLOP/s = {utilisation:.0f}% of matmul {matmul_gflops:.1f} GFLOP/s "
        f"(article's: {article:.0f}%; median of {result['matmul_probes']} matmul probes between the batches)",
        f"our batches over a whole epoch: {epoch['padded_tokens_per_rating']:.1f} padded tokens per rating "
        f"(article: {2 * result['max_length']}), "
        f"{epoch['sequences_per_batch']:.1f} texts per batch of {epoch['samples_per_batch']:.1f} ratings, "
        f"{epoch['batches']} batches built in {epoch['build_s']:.1f} s",
        f"({result['device']}, {result['torch_threads']} threads, {result['encoder']})",
    ]
    if "speedup_per_tower" in result:
        per_tower = 100 * result["encoder_step_utilisation_per_tower"]
        speedup = result["speedup_per_tower"]
        line = f"ours unpacked (a padded call per tower): {speedup:.1f}x, {per_tower:.0f}% of matmul"
        lines.insert(3, line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtrec_utils.bench", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("throughput", help="article pipeline vs ours; encoder FLOP/s vs matmul FLOP/s")
    t.add_argument("--encoder", default="bundled-minilm", help="encoder name (default: bundled-minilm)")
    t.add_argument("--rows", type=int, default=256, help="ratings to time, first batch untimed (default 256)")
    t.add_argument("--batch-size", type=int, default=32, help="ratings per training step (default 32)")
    t.add_argument("--max-length", type=int, default=128, help="the article's padding length (default 128)")
    t.add_argument("--device", default="auto", help="auto | cpu | cuda")
    t.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    t.add_argument(
        "--threads", type=int, default=1, help="torch threads for both pipelines and the matmul (default 1)"
    )
    t.add_argument("--quick", action="store_true", help="time 4 batches of each pipeline (--rows 128)")
    t.add_argument("--no-pack", action="store_true", help="ours: one padded encoder call per tower")
    t.add_argument("--json", default=None, help="also write the result to this JSON file")
    e = sub.add_parser("eval", help="ranking scores: the former per-pair path vs the fast one, side by side")
    e.add_argument("--arch", default="hard", help="hard | mmoe | ple (default: hard)")
    e.add_argument("--users", type=int, default=943, help="users ranked (default 943, all of MovieLens-100K)")
    e.add_argument("--items", type=int, default=1682, help="items (default 1682)")
    e.add_argument("--repeats", type=int, default=3, help="timed runs of each path, median kept (default 3)")
    e.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    e.add_argument("--json", default=None, help="also write the result to this JSON file")
    b = sub.add_parser("budgets", help="each notebook's predicted time vs its budget vs last measured")
    from mtrec_utils.workbook.costmodel import add_budgets_arguments, budgets_command

    add_budgets_arguments(b)
    from mtrec_utils.workbook.step_profile import add_arguments as add_steps_arguments
    from mtrec_utils.workbook.step_profile import steps_command

    add_steps_arguments(sub.add_parser("steps", help="one joint epoch's steps, profiled by phase and module"))
    r = sub.add_parser(
        "precision", help="float32 vs bfloat16 autocast on this CPU: speed and embedding error"
    )
    r.add_argument("--encoder", default="bundled-minilm", help="encoder name (default: bundled-minilm)")
    r.add_argument("--batch-size", type=int, default=32, help="texts per batch (default 32)")
    r.add_argument("--length", type=int, default=64, help="tokens per text (default 64)")
    r.add_argument("--repeats", type=int, default=5, help="timed repeats, median kept (default 5)")
    r.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    r.add_argument("--json", default=None, help="also write the result to this JSON file")
    args = p.parse_args(argv)
    if args.command == "precision":
        from mtrec_utils.workbook.precision_bench import format_precision, precision_bench

        try:
            result = precision_bench(args.encoder, args.batch_size, args.length, args.repeats, args.threads)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        return _report(result, format_precision(result), args.json)
    if args.command == "steps":
        return steps_command(args)
    if args.command == "budgets":
        return budgets_command(args, measure=lambda device: matmul_flops(device=device))
    if args.command == "eval":
        from mtrec_utils.workbook.eval_bench import eval_bench, format_result

        try:
            result = eval_bench(args.arch, args.users, args.items, repeats=args.repeats, threads=args.threads)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        return _report(result, format_result(result), args.json)
    try:
        result = throughput(
            args.encoder,
            4 * args.batch_size if args.quick else args.rows,
            args.batch_size,
            args.max_length,
            args.device,
            memory=not args.no_memory,
            threads=args.threads,
            pack=not args.no_pack,
        )
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return _report(result, format_table(result), args.json)


def _report(result: dict, table: str, json_path: str | None) -> int:
    """Print a benchmark's result as JSON and as a table, and write it to ``json_path`` if given."""
    print(json.dumps(result, indent=2, default=float))
    print(table)
    if json_path:
        atomic_write_json(json_path, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
