"""cpu: the joint model (hard sharing, history features, equal weights) early-stopped on interest's NDCG@10
instead of the first task's rating RMSE, seeds 0-2. Writes ``monitor_rows.csv`` into the folder given:

    python results/cpu/seesaw/monitor.py results/cpu/seesaw
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
settings = {"joint, stops on NDCG@10": {"task_names": tasks, "monitor": "interest/ndcg@10"}}
start = time.perf_counter()
rows = run_seeds(bundle, settings, [0, 1, 2], workers=2, **common)
rows.to_csv(out / "monitor_rows.csv", index=False)
print(f"{time.perf_counter() - start:.0f} s")
