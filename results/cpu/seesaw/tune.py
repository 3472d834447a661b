"""cpu: notebook 04's section 9.3-9.4 on its own: the NSGA-II study, then the picked joint configuration
against single-task models over seeds 0-2 (hard sharing, history features, test split read once).

    python results/cpu/seesaw/tune.py results/cpu/seesaw

Writes the study (``tuning/``, keyed as notebook 04 keys it) and ``tuned_rows.csv`` into the folder given.
"""

import sys
import time
from pathlib import Path

from mtrec_utils.core.config import resolve_profile, set_seed
from mtrec_utils.models.encoders import load_encoder
from mtrec_utils.training.bundles import movielens_bundle
from mtrec_utils.training.experiments import run_seeds
from mtrec_utils.training.seesaw import chosen_settings, run_study

out = Path(sys.argv[1])
p = resolve_profile("cpu")
bundle = movielens_bundle(p, load_encoder("bundled-minilm", device="cpu"), set_seed(0), history=True)
tasks = list(bundle.tasks)
start = time.perf_counter()
study, status = run_study(
    bundle, tasks, p, folder=out / "tuning", seed=0, workers=2, mode="auto", device="cpu"
)
tuned, why = chosen_settings(study, tasks, rule="utopia")
print(f"study {status} in {time.perf_counter() - start:.0f} s; {why}")
common = dict(epochs=p.epochs, lr=p.lr, patience=p.patience, weight_decay=1.0, device="cpu")
settings = {"best joint": {"task_names": tasks, **tuned}}  # the single-task runs are those of rows.csv
rows = run_seeds(bundle, settings, [0, 1, 2], workers=2, **common)
rows.to_csv(out / "tuned_rows.csv", index=False)
print(f"{time.perf_counter() - start:.0f} s in all")
