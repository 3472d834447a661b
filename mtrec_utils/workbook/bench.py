"""Benchmarks: ``python -m mtrec_utils.bench throughput`` (and ``eval``, :mod:`~mtrec_utils.workbook.eval_bench`).

Side by side in one run, on the same MovieLens rows, texts and encoder weights:

- samples/s of one training step of the article's pipeline (per-sample tokenisation, padding to
  128 tokens, one encoder pass per rating) and of ours (tokenise once, dynamic padding, each
  distinct text of a batch encoded once), and their ratio;
- FLOP/s of our encoder training step (forward + backward, FLOPs counted by PyTorch's
  ``FlopCounterMode``) as a fraction of the same machine's measured matmul FLOP/s;
- peak memory of each pipeline (CPU: peak resident set of a fresh process running only it).

Timings on shared machines are noisy: each figure is a median over repeats, and the ratio is
what to quote. Speed is never asserted in unit tests.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import statistics
import sys
import time

import numpy as np
import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from mtrec_utils.core.config import check_positive, get_device, set_seed
from mtrec_utils.models.encoders import load_encoder, mean_pool
from mtrec_utils.models.towers import EncoderText
from mtrec_utils.workbook.pipeline_bench import ArticlePairDataset, article_loss, compare_pipelines, our_loss


def bench_data(rows: int, seed: int = 0) -> dict:
    """``rows`` shuffled rows of u1.base with the user and item texts the encoder reads."""
    from mtrec_utils.data import load_movielens, movielens_split
    from mtrec_utils.data.text import item_texts, user_texts

    ml = load_movielens()
    base, _ = movielens_split(ml.ratings, k=1)
    sample = base.sample(n=min(rows, len(base)), random_state=seed)
    u_text, i_text = user_texts(ml.users, base, ml.items), item_texts(ml.items)
    u_index = {u: n for n, u in enumerate(u_text.index)}
    i_index = {i: n for n, i in enumerate(i_text.index)}
    return {
        "user_texts": u_text.tolist(),
        "item_texts": i_text.tolist(),
        "users": sample.user_id.map(u_index).to_numpy(),
        "items": sample.item_id.map(i_index).to_numpy(),
        "labels": sample.rating.to_numpy(np.float32),
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


def run_pipeline(pipeline: str, encoder, data: dict, batch_size: int, max_length: int) -> int:
    """Run every training step (forward + backward) of one pipeline on ``data``; returns samples seen."""
    model, n = encoder.model, len(data["users"]) // batch_size * batch_size
    if pipeline == "article":
        pairs = (data["users"][:n], data["items"][:n], data["labels"][:n])
        ds = ArticlePairDataset(data["user_texts"], data["item_texts"], *pairs, encoder.tokenizer, max_length)
        for batch in torch.utils.data.DataLoader(ds, batch_size=batch_size):
            article_loss(model, batch)[0].backward()
    else:
        users = EncoderText(encoder, data["user_texts"], max_length)
        items = EncoderText(encoder, data["item_texts"], max_length)
        columns = {"user": "users", "item": "items", "labels": "labels"}
        for s in range(0, n, batch_size):
            batch = {k: torch.as_tensor(data[column][s : s + batch_size]) for k, column in columns.items()}
            our_loss(users, items, batch)[0].backward()
    return n


def _peak_rss_child(pipeline: str, args: dict, queue) -> None:
    torch.set_num_threads(args["threads"])
    encoder = load_encoder(args["encoder"], device="cpu")
    data = bench_data(args["rows"])
    run_pipeline(pipeline, encoder, data, args["batch_size"], args["max_length"])
    queue.put(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # kB on Linux -> MB


def peak_memory_mb(pipeline: str, encoder: str, rows: int, batch_size: int, max_length: int) -> float:
    """Peak resident memory (MB) of a fresh process that loads the encoder and data and runs ``pipeline`` alone.

    Both pipelines pay the same fixed cost (interpreter, libraries, model, data), so the difference
    between the two figures is what the pipeline itself needs.
    """
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    args = {
        "encoder": encoder,
        "rows": rows,
        "batch_size": batch_size,
        "max_length": max_length,
        "threads": torch.get_num_threads(),
    }
    proc = ctx.Process(target=_peak_rss_child, args=(pipeline, args, queue))
    proc.start()
    value = queue.get(timeout=1200)
    proc.join()
    return float(value)


def throughput(
    encoder_name: str = "bundled-minilm",
    rows: int = 256,
    batch_size: int = 32,
    max_length: int = 128,
    device: str = "auto",
    memory: bool = True,
    seed: int = 0,
) -> dict:
    """Run the throughput benchmark; returns a JSON-friendly dict (see the module docstring)."""
    check_positive("rows", rows, integer=True)
    check_positive("batch_size", batch_size, integer=True)
    set_seed(seed)
    dev = get_device(device)
    encoder = load_encoder(encoder_name, device=dev)
    data = bench_data(rows, seed)
    table = compare_pipelines(encoder, **data, batch_size=batch_size, max_length=max_length, train=True)
    texts = [data["user_texts"][u] for u in data["users"][:batch_size]]
    step = encoder_step_flops(encoder, texts, max_length)
    peak = matmul_flops(device=dev)
    achieved = step["flops"] / step["seconds"]
    result = {
        "device": str(dev),
        "torch_threads": torch.get_num_threads(),
        "encoder": encoder.name,
        "rows": int(len(data["users"])),
        "batch_size": batch_size,
        "pipelines": table.reset_index().to_dict(orient="records"),
        "speedup": table.attrs["speedup"],
        "encoder_step_flops_per_s": achieved,
        "matmul_flops_per_s": peak,
        "encoder_step_utilisation": achieved / peak,
        "encoder_step_tokens": step["tokens"],
    }
    if memory and dev.type == "cpu":
        result["peak_memory_mb"] = {
            name: peak_memory_mb(name, encoder_name, rows, batch_size, max_length)
            for name in ("article", "ours")
        }
    return result


def format_table(result: dict) -> str:
    """The benchmark result as a small text table."""
    rows = pd.DataFrame(result["pipelines"]).set_index("pipeline")[["samples_per_s", "tokens_per_sequence"]]
    if "peak_memory_mb" in result:
        rows["peak_memory_mb"] = pd.Series(result["peak_memory_mb"])
    step_gflops, matmul_gflops = result["encoder_step_flops_per_s"] / 1e9, result["matmul_flops_per_s"] / 1e9
    utilisation = 100 * result["encoder_step_utilisation"]
    lines = [
        rows.round(2).to_string(),
        f"speedup (ours / article): {result['speedup']:.1f}x",
        f"encoder step: {step_gflops:.1f} GFLOP/s = {utilisation:.0f}% of matmul {matmul_gflops:.1f} GFLOP/s",
        f"({result['device']}, {result['torch_threads']} threads, {result['encoder']})",
    ]
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
    t.add_argument("--json", default=None, help="also write the result to this JSON file")
    e = sub.add_parser("eval", help="ranking scores: the former per-pair path vs the fast one, side by side")
    e.add_argument("--arch", default="hard", help="hard | mmoe (default: hard)")
    e.add_argument("--users", type=int, default=943, help="users ranked (default 943, all of MovieLens-100K)")
    e.add_argument("--items", type=int, default=1682, help="items (default 1682)")
    e.add_argument("--repeats", type=int, default=3, help="timed runs of each path, median kept (default 3)")
    e.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    e.add_argument("--json", default=None, help="also write the result to this JSON file")
    b = sub.add_parser("budgets", help="each notebook's predicted time vs its budget vs last measured")
    from mtrec_utils.workbook.costmodel import add_budgets_arguments, budgets_command

    add_budgets_arguments(b)
    args = p.parse_args(argv)
    if args.command == "budgets":
        return budgets_command(args, measure=lambda device: matmul_flops(device=device))
    if args.command == "eval":
        from mtrec_utils.workbook.eval_bench import eval_bench, format_result

        try:
            result = eval_bench(args.arch, args.users, args.items, repeats=args.repeats, threads=args.threads)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(json.dumps(result, indent=2, default=float))
        print(format_result(result))
        if args.json:
            from mtrec_utils.core.io import atomic_write_json

            atomic_write_json(args.json, result)
        return 0
    try:
        result = throughput(
            args.encoder, args.rows, args.batch_size, args.max_length, args.device, memory=not args.no_memory
        )
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, default=float))
    print(format_table(result))
    if args.json:
        from mtrec_utils.core.io import atomic_write_json

        atomic_write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
