"""Train a small joint MovieLens model at smoke, optionally killing itself mid-epoch (used by the tests).

    python resume_script.py STATE OUT.json [--kill-at-forward N] [--strategy dwa] [--epochs 3]

Writes the test metrics and the history to OUT.json. With ``--kill-at-forward N`` the process sends
itself SIGKILL at the N-th forward pass of the model: no handler, no clean-up, like a dead kernel.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

import torch

from mtrec_utils.core.config import resolve_profile, set_seed
from mtrec_utils.models.encoders import load_encoder
from mtrec_utils.models.multitask import MultiTaskModel
from mtrec_utils.training.bundles import movielens_bundle
from mtrec_utils.training.experiments import run_experiment
from mtrec_utils.training.resume import load_training_state


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("state")
    parser.add_argument("out")
    parser.add_argument("--kill-at-forward", type=int, default=0)
    parser.add_argument("--strategy", default="dwa")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if os.path.exists(args.state):
        state = load_training_state(args.state)
        print(f"resuming after epoch {state['epoch']} (done={state['done']})", flush=True)
    calls = 0

    def kill_at(module, inputs):
        nonlocal calls
        if isinstance(module, MultiTaskModel):
            calls += 1
            if calls == args.kill_at_forward:
                print(f"killing myself at forward pass {calls}", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)

    if args.kill_at_forward:
        torch.nn.modules.module.register_module_forward_pre_hook(kill_at)
    bundle = movielens_bundle(
        resolve_profile("smoke"), load_encoder("bundled-minilm"), set_seed(0), progress=False
    )
    result = run_experiment(
        bundle,
        ["rating", "like", "interest"],
        seed=0,
        strategy=args.strategy,
        epochs=args.epochs,
        patience=5,
        state_path=args.state,
    )
    history = result.history.drop(columns=["seconds"]).to_dict(orient="list")
    with open(args.out, "w") as f:
        json.dump({"test": result.test, "history": history, "forward_passes": calls}, f)
    print("finished", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
