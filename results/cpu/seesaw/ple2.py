"""cpu: the joint model with PLE of two extraction levels (one task expert per task and one shared expert per
level, the package's defaults: 543,572 parameters against hard sharing's 310,340), history features, equal
weights, seeds 0-2. Writes ``ple2_rows.csv`` into the folder given:

    python results/cpu/seesaw/ple2.py results/cpu/seesaw
"""

import sys
import time
from pathlib import Path

from mtrec_utils.core.config import resolve_profile, set_seed
from mtrec_utils.models.encoders import load_encoder
from mtrec_utils.training.bundles import movielens_bundle
from mtrec_utils.training.experiments import run_seeds

out = Path(sys.argv[1])
p = resolve_profile("cpu")
bundle = movielens_bundle(p, load_encoder("bundled-minilm", device="cpu"), set_seed(0), history=True)
tasks = list(bundle.tasks)
common = dict(epochs=p.epochs, lr=p.lr, patience=p.patience, weight_decay=1.0, device="cpu")
settings = {"joint ple, 2 levels": {"task_names": tasks, "arch": "ple", "arch_kwargs": {"num_levels": 2}}}
start = time.perf_counter()
rows = run_seeds(bundle, settings, [0, 1, 2], workers=2, **common)
rows.to_csv(out / "ple2_rows.csv", index=False)
print(f"{time.perf_counter() - start:.0f} s")
