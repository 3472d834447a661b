"""cpu: single-task vs joint (hard sharing, PLE with one level) with implicit-history features, seeds 0-2.

Notebook 04's settings (epochs 20, lr 2e-3, patience 3, weight decay 1.0, equal task weights), the u1
split with ``movielens_bundle(history=True)``, runs two at a time. Writes ``rows.csv`` (one row per
setting, seed and test metric) into the folder given:

    python results/cpu/seesaw/run.py results/cpu/seesaw
"""

import sys
import time
from pathlib import Path

from mtrec_utils.core.config import resolve_profile, set_seed
from mtrec_utils.models.encoders import load_encoder
from mtrec_utils.training.bundles import movielens_bundle
from mtrec_utils.training.experiments import gain_table, run_seeds

out = Path(sys.argv[1])
p = resolve_profile("cpu")
bundle = movielens_bundle(p, load_encoder("bundled-minilm", device="cpu"), set_seed(0), history=True)
tasks = list(bundle.tasks)
common = dict(epochs=p.epochs, lr=p.lr, encoder_lr=p.encoder_lr, patience=p.patience, weight_decay=1.0)
settings = {f"single {t}": {"task_names": [t]} for t in tasks} | {
    "joint": {"task_names": tasks},
    "joint ple": {"task_names": tasks, "arch": "ple", "arch_kwargs": {"num_levels": 1}},
}
start = time.perf_counter()
rows = run_seeds(bundle, settings, [0, 1, 2], workers=2, device="cpu", **common)
rows.to_csv(out / "rows.csv", index=False)
for joint in ("joint", "joint ple"):
    print(gain_table(rows, {t: f"single {t}" for t in tasks}, joint).to_string())
print(f"{time.perf_counter() - start:.0f} s")
