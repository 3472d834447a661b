"""What notebook 08's subsection "LoRA vs full fine-tuning over seeds" runs at the cpu profile.

3 seeds x {lora, full}: the cpu budget (1,600 training reviews, 100 steps of 16, 64 tokens, 500
validation reviews), the whole clothing test split (2,349 reviews), one torch thread, the package's
`compare_over_seeds` and `paired_summary` as the notebook calls them. Seed 0 is trained here too (the
notebook reuses section 2's runs for it), so every run's time is measured.

    python results/cpu/finetune_seeds/run.py            # all 3 seeds, one process
    python results/cpu/finetune_seeds/run.py 1          # only seed 1 (side by side runs)
    python results/cpu/finetune_seeds/run.py --merge    # summary of the seeds_*.csv next to this file
"""

import glob
import json
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from mtrec_utils.analyses.finetuning.finetune import FinetuneConfig
from mtrec_utils.analyses.finetuning.seeds import compare_over_seeds, paired_summary
from mtrec_utils.core.config import resolve_profile

HERE = Path(__file__).resolve().parent


def summarise(table: pd.DataFrame) -> None:
    table = table.sort_values(["seed", "mode"], ascending=[True, False]).reset_index(drop=True)
    print(table.round(4).to_string())
    print(json.dumps(paired_summary(table, "lora", "full"), indent=1))
    for col in ("seconds", "cpu_seconds"):
        per_mode = table.groupby("mode")[col].mean().round(1).to_dict()
        added = table.loc[table["seed"] != 0, col].sum()
        print(
            f"{col}: all runs {table[col].sum():.0f}; mean per run {per_mode}; seeds 1-2 (added) {added:.0f}"
        )


if __name__ == "__main__":
    if sys.argv[1:] == ["--merge"]:
        summarise(pd.concat([pd.read_csv(p) for p in sorted(glob.glob(str(HERE / "seeds_*.csv")))]))
        sys.exit(0)
    from mtrec_utils.data.finetune_data import budget_for
    from mtrec_utils.models.encoders import load_encoder

    torch.set_num_threads(1)
    profile = resolve_profile("cpu")
    budget = budget_for(profile.name)
    seeds = [int(s) for s in sys.argv[1:]] or list(range(0, profile.num_seeds))
    encoder = load_encoder("bundled-minilm", device="cpu")
    weights = {"recommended": 1.0, "rating": 1.0, "department": 1.0}
    common = {"steps": budget["steps"], "batch_size": budget["batch_size"], "rank": 8, "weights": weights}
    configs = {m: FinetuneConfig(mode=m, lr=None, **common) for m in ("lora", "full")}
    start = time.perf_counter()
    table = compare_over_seeds(encoder.model, encoder.tokenizer, budget, configs, seeds, progress=False)
    print(f"wall seconds in all: {time.perf_counter() - start:.1f}")
    table.to_csv(HERE / f"seeds_{'_'.join(map(str, seeds))}.csv", index=False)
    if len(seeds) > 1:
        summarise(table)
