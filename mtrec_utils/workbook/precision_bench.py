"""``python -m mtrec_utils.bench precision``: what bfloat16 autocast would buy on this CPU, and what it costs.

Every profile computes in float32 on a CPU. Recent x86 CPUs multiply bfloat16 matrices in hardware
(AVX512-BF16, AMX tiles), several times faster than float32; older ones emulate it and get slower.
Before a profile could switch, this measures, side by side in one run and on one thread:

- the matmul speed, float32 against bfloat16 (1024 x 1024);
- the text encoder's forward pass (a batch of texts, as when embeddings are cached) and its training
  step (forward + backward, as when it is fine-tuned), float32 against ``torch.autocast("cpu",
  dtype=torch.bfloat16)``;
- the price: how far the autocast embeddings are from the float32 ones (largest relative L2 error,
  and the smallest cosine between the two embeddings of a text).

Nothing in the workbook uses bfloat16 on a CPU; changing that would change every cached embedding
and every metric downstream of one, so each band would have to be measured again.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from mtrec_utils.core.config import check_positive
from mtrec_utils.models.encoders import load_encoder, mean_pool


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: one-off allocations and kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def precision_bench(
    encoder_name: str = "bundled-minilm",
    batch_size: int = 32,
    length: int = 64,
    repeats: int = 5,
    threads: int = 1,
    seed: int = 0,
) -> dict:
    """float32 against bfloat16 autocast on this CPU: speeds and the embeddings' error (see the module doc).

    Args:
        encoder_name: the encoder (:func:`~mtrec_utils.models.encoders.load_encoder`).
        batch_size, length: the texts per batch and their tokens (random token ids, no padding).
        repeats: timed repeats of each measurement (median kept, after one untimed warm-up).
        threads: PyTorch threads for everything (restored afterwards).
        seed: the token ids' seed.
    """
    for name, value in (
        ("batch_size", batch_size),
        ("length", length),
        ("repeats", repeats),
        ("threads", threads),
    ):
        check_positive(name, value, integer=True)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        encoder = load_encoder(encoder_name, device="cpu")
        model = encoder.model
        vocab = int(getattr(model.config, "vocab_size", 1000))
        g = torch.Generator().manual_seed(seed)
        ids = torch.randint(min(1000, vocab - 1), vocab, (batch_size, length), generator=g)
        mask = torch.ones_like(ids)

        def embed(bf16: bool) -> torch.Tensor:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                return mean_pool(model(input_ids=ids, attention_mask=mask).last_hidden_state, mask).float()

        def forward(bf16: bool) -> Callable[[], object]:
            def run():
                with torch.no_grad():
                    return embed(bf16)

            return run

        def train_step(bf16: bool) -> Callable[[], object]:
            def run():
                embed(bf16).pow(2).mean().backward()
                model.zero_grad(set_to_none=True)

            return run

        a, b = torch.randn(1024, 1024, generator=g), torch.randn(1024, 1024, generator=g)
        a16, b16 = a.bfloat16(), b.bfloat16()
        was_training = model.training
        result: dict = {
            "encoder": encoder.name,
            "batch_size": batch_size,
            "length": length,
            "threads": threads,
        }
        result["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        result["matmul_gflops"] = {
            "float32": 2 * 1024**3 / _median_seconds(lambda: a @ b, repeats) / 1e9,
            "bfloat16": 2 * 1024**3 / _median_seconds(lambda: a16 @ b16, repeats) / 1e9,
        }
        model.eval()  # forward: as when texts are encoded for the cache (no dropout)
        result["forward_ms"] = {
            "float32": 1e3 * _median_seconds(forward(False), repeats),
            "bfloat16": 1e3 * _median_seconds(forward(True), repeats),
        }
        with torch.no_grad():
            full, half = embed(False), embed(True)
        rel = (half - full).norm(dim=-1) / full.norm(dim=-1)
        result["embedding_max_relative_error"] = float(rel.max())
        result["embedding_min_cosine"] = float(
            torch.nn.functional.cosine_similarity(half, full, dim=-1).min()
        )
        model.train()  # the training step: as when the encoder is fine-tuned (dropout on)
        result["train_step_ms"] = {
            "float32": 1e3 * _median_seconds(train_step(False), repeats),
            "bfloat16": 1e3 * _median_seconds(train_step(True), repeats),
        }
        model.train(was_training)
        for key in ("matmul_gflops", "forward_ms", "train_step_ms"):
            v = result[key]
            result[key]["speedup"] = (
                v["bfloat16"] / v["float32"] if key == "matmul_gflops" else v["float32"] / v["bfloat16"]
            )
        return result
    finally:
        torch.set_num_threads(before)


def format_precision(result: dict) -> str:
    """The result as a few lines of text."""
    m, f, t = result["matmul_gflops"], result["forward_ms"], result["train_step_ms"]
    return "\n".join(
        [
            f"matmul 1024: float32 {m['float32']:.0f} GFLOP/s, bfloat16 {m['bfloat16']:.0f} GFLOP/s "
            f"({m['speedup']:.1f}x)",
            f"encoder forward, {result['batch_size']} texts x {result['length']} tokens: float32 "
            f"{f['float32']:.0f} ms, bfloat16 autocast {f['bfloat16']:.0f} ms ({f['speedup']:.1f}x)",
            f"encoder training step: float32 {t['float32']:.0f} ms, bfloat16 autocast {t['bfloat16']:.0f} ms "
            f"({t['speedup']:.1f}x)",
            f"the price: embeddings up to {100 * result['embedding_max_relative_error']:.2f} % off in L2, "
            f"cosine to float32 at least {result['embedding_min_cosine']:.5f}",
            f"({result['encoder']}, {result['threads']} thread(s), CPU capability {result['cpu_capability']})",
        ]
    )
