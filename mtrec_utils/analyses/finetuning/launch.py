"""Scale joint fine-tuning out: the same training function, data-parallel under ``accelerate launch``.

Usage (one line; ``--num_processes`` = number of GPUs)::

    accelerate launch --num_processes 2 -m mtrec_utils.analyses.finetuning.launch --mode lora --steps 100 --batch-size 32

Each process loads the encoder and the reviews, ``Accelerator.prepare`` wraps the model in
DistributedDataParallel and gives each process its own shard of every batch, and gradients are
averaged across processes after each backward pass. ``--batch-size`` is per process, so N
processes see N times as many reviews per step. Plain ``python -m mtrec_utils.analyses.finetuning.launch`` runs the
single-process path. The main process prints one JSON line with the measurements.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from mtrec_utils.data.finetune_data import budget_for
from mtrec_utils.models.peft_modes import MODES


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m mtrec_utils.analyses.finetuning.launch", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--encoder", default="bundled-minilm", help="text encoder (default: bundled-minilm)")
    p.add_argument("--mode", default="lora", choices=MODES, help="encoder adaptation (default: lora)")
    p.add_argument("--profile", default="smoke", choices=("smoke", "cpu", "gpu"), help="budget defaults")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the profile's)")
    p.add_argument("--batch-size", type=int, default=None, help="reviews per step and process")
    p.add_argument("--max-train", type=int, default=None, help="training reviews (default: the profile's)")
    p.add_argument("--max-eval", type=int, default=None, help="validation and test reviews each")
    p.add_argument("--max-length", type=int, default=None, help="token limit per review")
    p.add_argument("--lr", type=float, default=None, help="encoder learning rate (default: per mode)")
    p.add_argument("--rank", type=int, default=8, help="LoRA rank / adapter width (default 8)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--output", default=None, help="also write the JSON result to this file")
    return p


def launch_command(num_processes: int, **options) -> str:
    """The exact ``accelerate launch`` command line for ``num_processes`` processes and ``options``.

    ``options`` are this module's flags with underscores (``batch_size=32`` -> ``--batch-size 32``).
    """
    flags = " ".join(f"--{k.replace('_', '-')} {shlex.quote(str(v))}" for k, v in options.items())
    return f"accelerate launch --num_processes {int(num_processes)} -m mtrec_utils.analyses.finetuning.launch {flags}".strip()


def main(argv: list[str] | None = None) -> dict | None:
    """Run one fine-tuning job in this process (one of N under ``accelerate launch``).

    Returns:
        The result dict on the main process (also printed as JSON), ``None`` on the others.
    """
    import torch
    from accelerate import Accelerator

    from mtrec_utils.analyses.finetuning.finetune import FinetuneConfig, finetune
    from mtrec_utils.core.config import set_seed
    from mtrec_utils.data.finetune_data import clothing_splits
    from mtrec_utils.models.encoders import load_encoder

    args = build_parser().parse_args(argv)
    size = budget_for(args.profile)
    for key in size:
        if getattr(args, key, None) is not None:
            size[key] = getattr(args, key)
    # reads the settings of `accelerate launch`; without CUDA, cpu=True lets N processes join over gloo
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    generator = set_seed(args.seed)
    encoder = load_encoder(args.encoder, device=accelerator.device, seed=args.seed)
    splits = clothing_splits(
        encoder.tokenizer, size["max_train"], size["max_eval"], size["max_length"], generator
    )
    config = FinetuneConfig(
        mode=args.mode, steps=size["steps"], batch_size=size["batch_size"], lr=args.lr, rank=args.rank
    )
    result = finetune(
        encoder.model,
        splits,
        config,
        encoder.tokenizer.pad_token_id,
        generator,
        accelerator,
        parts=("test",),
        progress=False,
    )
    if not accelerator.is_main_process:
        return None
    out = {
        **result.row(),
        "num_processes": result.num_processes,
        "device": str(accelerator.device),
        "memory_kind": result.memory_kind,
        "batch_size_per_process": size["batch_size"],
    }
    print(json.dumps(out), flush=True)
    if args.output:
        Path(args.output).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
