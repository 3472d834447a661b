"""Cost model: predict each notebook's seconds at each profile before it runs.

A notebook's time is predicted from the work it does, counted, not guessed::

    seconds = overhead(notebook)                        kernel start, imports, data loading (calibrated)
            + steps x step_s                            per optimizer step: Python, data loader, optimizer
            + small FLOPs / (small_eff x matmul FLOP/s) towers, trunks and heads of the recommenders
            + encoder FLOPs / (encoder_eff x matmul FLOP/s)   the text encoder's own steps
            + other seconds                             the little work that is not PyTorch (stated)

- **Work plan** (:data:`WORK_PLAN`): per notebook, which training runs of which kind it makes at each
  profile (read off the notebooks' code; one entry per notebook, a comment each).
- **FLOPs per step** are counted with ``torch.utils.flop_counter.FlopCounterMode`` on the package's
  real models (``MultiTaskModel``/MMoE/PLE/fusion towers, ``MatrixFactorization``, the ads model, the
  MiniLM encoder) at the profile's sizes, then multiplied by the steps per run (epochs x rows /
  batch size) and the runs per notebook. They are cached in ``outputs/costmodel.json``.
- **Device speed**: this machine's measured matmul FLOP/s (:func:`mtrec_utils.workbook.bench.matmul_flops`)
  times an achieved-efficiency factor calibrated against measured runs (:data:`CALIBRATION`). The small
  recommender models reach only a small fraction of matmul peak on a CPU (their matrices are 64 to 384
  wide, and each step also pays Python, data-loader and optimizer overhead, the ``step_s`` term); the
  transformer encoder reaches a large one. For a T4 the speeds are the datasheet's (profile ``gpu-t4``,
  see :func:`t4`), at a stated achievable fraction, since no T4 has been measured here.

What is not modelled: first-run work that is cached afterwards (encoding the 23,486 clothing reviews
once at ``cpu``, about 8 minutes), other people's jobs on a shared machine, and the early-stopping
epoch, which is taken as :data:`STOP_EPOCH`. Predictions are estimates; timings are reported, never
asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from mtrec_utils.core.budgets import BUDGETS_S, NOTEBOOKS, notebook_stem
from mtrec_utils.core.config import PROFILES, Profile, check_choice
from mtrec_utils.core.io import REPO_ROOT, atomic_write_json

CACHE_FILE = REPO_ROOT / "outputs" / "costmodel.json"
CACHE_VERSION = 1
REPORT_PROFILES = ("smoke", "cpu", "gpu-t4")  # gpu-t4: the gpu profile on a T4, from its datasheet
DEFAULT_ENCODER = "bundled-minilm"

# Data sizes (MovieLens-100K u1, clothing reviews) that the profiles cap.
ML_RATINGS, ML_TEST, ML_USERS, ML_ITEMS = 80_000, 20_000, 943, 1_682
ML_TEST_USERS = 459  # users in u1.test
ML_LIKED = 0.552  # share of u1.base ratings >= 4 (the positives of ``interest``)
NEGATIVES = 4  # sampled negatives per positive (bundles.movielens_bundle)
VAL_USERS = 300  # users ranked per validation pass (bundles.movielens_bundle)
CLOTHING_REVIEWS, CLOTHING_DEPARTMENTS = 23_486, 7
ADS_SLATES = {"smoke": 6_000, "cpu": 30_000, "gpu": 60_000}  # notebook 06's NUM_SLATES by profile
ADS_TEST_PASSES = 12  # forward passes over the test log: metrics, calibration, 10 positions of the curve
EMBED_DIM, HIDDEN = 64, 128  # towers and trunks of notebooks 03-07
TEXT_DIMS = {"bundled-minilm": 384, "sentence-transformers/all-MiniLM-L6-v2": 384}

# Epochs a run lasts with early stopping, per profile (None: all of them). At cpu the joint MovieLens
# model's best epoch was 5 (results/cpu/metrics/04_joint_training.json), so with patience 3 it stops after 8.
STOP_EPOCH: dict[str, int | None] = {"smoke": None, "cpu": 8, "gpu": None}

# A value given per profile ({"smoke": 6, "cpu": 100, "gpu": 256}) or the same at every profile.
PerProfile = int | float | Mapping[str, int | float]


def at(value: PerProfile, profile: str) -> float:
    """``value`` at ``profile`` (a plain number is the same at every profile)."""
    return float(value[profile]) if isinstance(value, Mapping) else float(value)


@dataclass(frozen=True)
class Train:
    """Training runs of one recommender (``fit`` / ``run_experiment``) and their evaluation.

    Attributes:
        model: ``movielens`` (pair towers + trunk), ``clothing`` (review tower), ``genres`` (item
            tower), ``mf`` (matrix factorisation) or ``ads`` (the ads model of notebook 06).
        tasks: the tasks trained together.
        runs: runs per seed.
        per_seed: repeat for each of the profile's ``num_seeds`` seeds (at most ``max_seeds``).
        max_seeds: the notebook's cap on seeds.
        max_epochs, min_epochs: the notebook's own bounds on the profile's epochs.
        arch: ``hard``, ``mmoe``, ``ple`` (:data:`mtrec_utils.models.sharing.ARCHITECTURES`), or a
            fusion of :data:`mtrec_utils.models.fusion.FUSIONS` (a hard-sharing model).
        schedule: ``joint`` (every task each step) or ``alternating`` (one task per step).
        task_grads: the strategy backpropagates each task's loss on its own (gradnorm, pcgrad).
        data: share of the training rows used.
        text: ``frozen`` to force cached embeddings; ``None``: the profile's ``encoder_mode``.
        batch_size: the notebook's own batch size where it overrides the profile's (per profile).
        stops_early: early stopping ends the runs after :data:`STOP_EPOCH` epochs.
        pooled: the runs are trained several at once, one process per core (``run_experiments``
            with ``workers``): on a CPU their time divides by the cores.
        unless_shipped: the runs of notebook 04's tuning study, which a fresh clone reuses from
            ``results/<profile>/seesaw/tuning`` while the code is the one it was run with
            (:func:`shipped_study_current`): then they are not counted.
    """

    model: str
    tasks: tuple[str, ...]
    runs: PerProfile = 1
    per_seed: bool = False
    max_seeds: int | None = None
    max_epochs: PerProfile | None = None
    min_epochs: int | None = None
    arch: str = "hard"
    schedule: str = "joint"
    task_grads: bool = False
    data: float = 1.0
    text: str | None = None
    batch_size: PerProfile | None = None
    stops_early: bool = True
    pooled: bool = False
    unless_shipped: bool = False


@dataclass(frozen=True)
class EncoderSteps:
    """Training steps of the text encoder itself (fine-tuning, the pipeline benchmark).

    Attributes:
        steps: optimizer steps per run.
        batch: texts per step.
        length: tokens per text (the padded length; an upper bound with dynamic padding).
        kind: ``full`` (forward + backward of every weight), ``peft`` (forward + backward through the
            activations, few weights: LoRA, AdaLoRA, IA3, adapters) or ``forward`` (a frozen encoder).
        runs: runs (each also encodes ``eval_texts`` texts once, forward only).
        eval_texts: texts encoded for evaluation per run.
        pooled: the runs execute several at once, one kernel per core (notebook 08's sweep points).
    """

    steps: PerProfile
    batch: PerProfile
    length: PerProfile
    kind: str = "full"
    runs: PerProfile = 1
    eval_texts: PerProfile = 0
    pooled: bool = False


@dataclass(frozen=True)
class Kernels:
    """Extra executions of the notebook itself (a parameter sweep); each pays its fixed overhead.

    ``pooled``: the executions run several at once, one per core (``run_sweep(workers=...)``).
    """

    count: PerProfile
    pooled: bool = False


@dataclass(frozen=True)
class Loops:
    """Optimizer steps of tiny models whose time is the per-step overhead (notebook 01's problems)."""

    steps: PerProfile


@dataclass(frozen=True)
class Other:
    """Work outside PyTorch, in seconds on the calibration machine (an estimate, stated per entry)."""

    seconds: PerProfile


ML3 = ("rating", "like", "interest")
CL3 = ("recommended", "rating", "department")
_FT = {"smoke": 6, "cpu": 100, "gpu": 256}  # notebook 08's steps (data.finetune_data.BUDGETS)
_FT_BATCH = {"smoke": 16, "cpu": 16, "gpu": 32}
_FT_LENGTH = {"smoke": 32, "cpu": 64, "gpu": 128}
# val + test reviews evaluated after each run: at cpu and gpu the whole clothing test split (2,349)
_FT_EVAL = {"smoke": 200, "cpu": 500 + 2_349, "gpu": 2_000 + 2_349}
_FT_MORE_SEEDS = {"smoke": 0, "cpu": 2, "gpu": 2}  # LoRA and full again at the profile's other seeds
_SWEEP = {"smoke": 2, "cpu": 4, "gpu": 6}
_STUDY = {"smoke": 4, "cpu": 16, "gpu": 8}  # notebook 04's NSGA-II trials (training.seesaw.STUDY_SIZES)
_STUDY_EPOCHS = {"smoke": 1, "cpu": 6, "gpu": 2}  # len(workbook.sweep.SWEEP_POINTS[profile])
_FS_LENGTH = {"smoke": 32, "cpu": 64, "gpu": 128}  # notebook 10's few-shot max_length (FEWSHOT_SIZES)
# distinct texts encoded: smoke and cpu measured; gpu stated (5 seeds, test samples of 2,000, no pool)
_FS_TEXTS = {"smoke": 956, "cpu": 11_612, "gpu": 60_000}
_RB_STEPS, _RB_BATCH = {"smoke": 4, "cpu": 40, "gpu": 250}, {"smoke": 16, "cpu": 16, "gpu": 32}
_RB_LENGTH = {"smoke": 32, "cpu": 48, "gpu": 128}
# 2 encoders x test x (1 + 3 x non-zero strengths) + train + augmented copies
_RB_TEXTS = {"smoke": 2 * 60 * 4 + 2 * 120, "cpu": 2 * 300 * 13 + 2 * 600, "gpu": 2 * 1000 * 13 + 3 * 4000}

F = "frozen"  # Train(text=F): cached embeddings at every profile
# Notebook 05's models train on the CPU at every profile; at gpu it takes the cpu profile's batch size.
_CPU_BATCH = {
    "smoke": PROFILES["smoke"].batch_size,
    "cpu": PROFILES["cpu"].batch_size,
    "gpu": PROFILES["cpu"].batch_size,
}
# Notebook 05's runs: cached text, the CPU batch, at most MAX_EPOCHS=6 epochs (the low-data runs: the profile's).
_T05 = partial(Train, text=F, batch_size=_CPU_BATCH, max_epochs=6)

WORK_PLAN: dict[str, tuple[Any, ...]] = {
    # 00: loads the data and encodes the item texts (from the embedding cache): overhead only.
    "00_setup_and_tour": (),
    # 01: synthetic two-task problems of a few hundred parameters, full batch: 3 objectives x STEPS on
    # the 80,940 rows sized like u1 + the conflict run (STEPS; STEPS = 100 at smoke, else 400). The toy
    # problem's 6 strategies x 3 STEPS steps on 2 parameters are left in the overhead.
    "01_joint_loss_and_gradients": (Loops({"smoke": 400, "cpu": 1_600, "gpu": 1_600}),),
    # 02: the article's pipeline against ours, twice (random and user-grouped batches), n_batches of
    # BENCH_BATCH_SIZE=16 ratings (3 at smoke, else 10), forward + backward: the article encodes one
    # sequence per rating padded to 128 tokens; ours each distinct user text (median 54 tokens, padded
    # to the batch's longest: about 128) and item text (median 15: about 32) once.
    "02_building_datasets": (
        EncoderSteps(steps={"smoke": 6, "cpu": 20, "gpu": 20}, batch=16, length=128),
        EncoderSteps(steps={"smoke": 6, "cpu": 20, "gpu": 20}, batch=16, length=128),
        EncoderSteps(steps={"smoke": 6, "cpu": 20, "gpu": 20}, batch=16, length=32),
    ),
    # 03: each task alone: MF rating, LM rating, LM like, MF ranking, LM interest, LM genres (items),
    # the 3 clothing tasks; Surprise SVD and BaselineOnly, and SVD++ above smoke (Cython, one core:
    # an estimate of 40 s, not counted). The MovieLens models read cached embeddings at every profile;
    # the clothing models take the profile's mode (at gpu they fine-tune the encoder).
    "03_single_task_baselines": (
        Train("mf", ("rating",)),
        Train("movielens", ("rating",), text=F),
        Train("movielens", ("like",), text=F),
        Train("mf", ("interest",)),
        Train("movielens", ("interest",), text=F),
        Train("genres", ("genres",), text=F),
        Train("clothing", ("recommended",)),
        Train("clothing", ("rating",)),
        Train("clothing", ("department",)),
        Other({"smoke": 0, "cpu": 40, "gpu": 40}),
    ),
    # 04: per seed (the profile's num_seeds) 3 single-task + 1 joint model on each dataset; then at
    # SEED only: 3 schedules (the joint one is section 2's run, kept by the memo: 2 alternating
    # trained), 6 weighting strategies on each dataset (gradnorm and pcgrad backpropagate per task),
    # MMoE on each dataset; all of these in a pool of worker processes (WORKERS); then the live-view
    # joint run on its own (it also carries section 9.1's affinity recorder).
    # At every profile only section 2's clothing models take the profile's mode (at gpu: the encoder
    # fine-tuned, the article's central comparison); MovieLens and the clothing comparisons of sections
    # 4 and 5 read cached embeddings (F).
    "04_joint_training": (
        *(Train("movielens", (t,), per_seed=True, pooled=True, text=F) for t in ML3),
        Train("movielens", ML3, per_seed=True, pooled=True, text=F),
        *(Train("clothing", (t,), per_seed=True, pooled=True) for t in CL3),
        Train("clothing", CL3, per_seed=True, pooled=True),
        Train("movielens", ML3, runs=2, schedule="alternating", pooled=True, text=F),
        Train("movielens", ML3, runs=4, pooled=True, text=F),
        Train("movielens", ML3, runs=2, task_grads=True, pooled=True, text=F),
        Train("clothing", CL3, runs=4, pooled=True, text=F),
        Train("clothing", CL3, runs=2, task_grads=True, pooled=True, text=F),
        Train("movielens", ML3, arch="mmoe", pooled=True, text=F),
        Train("clothing", CL3, arch="mmoe", pooled=True, text=F),
        Train("movielens", ML3, text=F),
        # section 9 (the seesaw): its affinity measurements ride on the live-view run above; MMoE at the
        # other seeds and PLE at every seed (trained in section 5's pool; SEED's MMoE is kept by the memo:
        # counted here once more); the NSGA-II study (seesaw.STUDY_SIZES: trials of at most 1 / 6 / 2
        # epochs; not counted where a study shipped with the current code is reused); the best joint
        # configuration and the three single-task models at every seed, with history features (a few
        # percent more work per step, not counted).
        Train("movielens", ML3, arch="mmoe", per_seed=True, pooled=True, text=F),
        Train("movielens", ML3, arch="ple", per_seed=True, pooled=True, text=F),
        Train(
            "movielens", ML3, runs=_STUDY, max_epochs=_STUDY_EPOCHS, pooled=True, unless_shipped=True, text=F
        ),
        Train("movielens", ML3, per_seed=True, pooled=True, text=F),
        *(Train("movielens", (t,), per_seed=True, pooled=True, text=F) for t in ML3),
    ),
    # 05 (frozen text throughout, on the CPU, epochs <= MAX_EPOCHS=6, seeds <= MAX_SEEDS=2; the fusion,
    # cold-start, cross-domain and low-data runs in a pool of WORKERS processes): the joint embedding
    # space (rating + in-batch interest), 4 fusions + "sum, ID + text" per seed, 4 cold-start models
    # on the thinned ratings, cross-domain per seed (together: both datasets; alone: each), the
    # low-data runs per num_seeds at the profile's epochs (10%, 10% + 2 augmented copies, all data).
    # The sequence-augmentation runs (small history models) are left in the overhead.
    "05_joint_embedding_and_fusion": (
        _T05("movielens", ("rating", "interest")),
        *(
            _T05("movielens", ("rating", "like"), per_seed=True, max_seeds=2, arch=f, pooled=True)
            for f in ("sum", "concat", "gate", "attention", "hard")
        ),
        _T05("movielens", ("rating", "like"), runs=3, data=0.85, pooled=True),
        _T05("movielens", ("rating", "like"), data=0.85, arch="gate", pooled=True),
        _T05("movielens", ("rating", "like"), runs=2, per_seed=True, max_seeds=2, pooled=True),
        _T05("clothing", CL3, runs=2, per_seed=True, max_seeds=2, pooled=True),
        _T05("clothing", CL3, per_seed=True, data=0.1, max_epochs=None, pooled=True),
        _T05("clothing", CL3, per_seed=True, data=0.3, max_epochs=None, pooled=True),
        _T05("clothing", CL3, per_seed=True, max_epochs=None, pooled=True),
    ),
    # 06: 3 ads models (PAL, position as a feature, position-naive) on the simulated impressions and
    # the rating history, epochs max(profile's, 3), frozen text embeddings, trained at once (WORKERS).
    # Their validation logloss keeps improving (patience 2), so they run every epoch: taken from 06's
    # 14-minute cpu run of the models one after another.
    "06_case_study_ads": (
        Train(
            "ads", ("ctr", "interest"), runs=3, min_epochs=3, stops_early=False, pooled=True, text="frozen"
        ),
    ),
    # 07: joint, single rating and single interest on the MovieLens bundle (cached text embeddings at
    # every profile), trained at once (WORKERS);
    # MF ranking (epochs >= 5).
    "07_case_study_personalization": (
        Train("movielens", ML3, pooled=True, text=F),
        Train("movielens", ("rating",), pooled=True, text=F),
        Train("movielens", ("interest",), pooled=True, text=F),
        Train("mf", ("interest",), min_epochs=5),
    ),
    # 08: 6 encoder modes on one budget (frozen: forward only; full; 4 parameter-efficient) and one LoRA
    # per task (3 LoRA passes a step), trained side by side (a pool of WORKERS processes on a CPU); LoRA
    # and full at the other seeds (the full test split; the same pool), the profiler (3 modes x 3 steps),
    # the sweep (each point a fresh kernel running LoRA only, one per core at once), the single-process
    # launch (10 LoRA steps).
    "08_efficient_finetuning_and_scaling": (
        EncoderSteps(_FT, _FT_BATCH, _FT_LENGTH, kind="forward", eval_texts=_FT_EVAL, pooled=True),
        EncoderSteps(_FT, _FT_BATCH, _FT_LENGTH, kind="full", eval_texts=_FT_EVAL, pooled=True),
        EncoderSteps(_FT, _FT_BATCH, _FT_LENGTH, kind="peft", runs=4, eval_texts=_FT_EVAL, pooled=True),
        EncoderSteps(_FT, _FT_BATCH, _FT_LENGTH, kind="peft", runs=3, eval_texts=_FT_EVAL, pooled=True),
        EncoderSteps(_FT, _FT_BATCH, _FT_LENGTH, "peft", _FT_MORE_SEEDS, _FT_EVAL, pooled=True),
        EncoderSteps(_FT, _FT_BATCH, _FT_LENGTH, "full", _FT_MORE_SEEDS, _FT_EVAL, pooled=True),
        EncoderSteps(3, _FT_BATCH, _FT_LENGTH, kind="full"),
        EncoderSteps(3, _FT_BATCH, _FT_LENGTH, kind="peft"),
        EncoderSteps(3, _FT_BATCH, _FT_LENGTH, kind="forward"),
        Kernels(_SWEEP, pooled=True),
        EncoderSteps(_FT, _FT_BATCH, _FT_LENGTH, kind="peft", runs=_SWEEP, eval_texts=_FT_EVAL, pooled=True),
        EncoderSteps({"smoke": 6, "cpu": 10, "gpu": 10}, _FT_BATCH, _FT_LENGTH, kind="peft"),
    ),
    # 09: reads the other notebooks' metrics and draws: overhead only.
    "09_results_report": (),
    # 10, section 1 (continual learning): 1 + 5 methods x 3 periods of small-model training on frozen
    # cached embeddings (hidden 64, dim 32, early-stopped per period; scratch retrains on every period
    # so far), plus the EWC Fisher passes and P x P evaluations. The model is not one of Train's sizes:
    # a stated estimate for the calibration machine. Measured 2026-12-01 on a machine whose small-model
    # step is 1.3x slower (`bench steps`: 59.5 vs 45.7 ms): 44.9 s one method after another, 25.9 s with
    # the methods in 2 workers (run_continual(workers=2)); so about 34 s serial (gpu: one process, small
    # models gain little from a GPU) and 20 s at cpu, where the notebook pools them.
    "10_continual_fewshot_robustness": (
        Other({"smoke": 6, "cpu": 20, "gpu": 34}),
        # section 2 (few-shot): every distinct text (prompts, label descriptions, plain examples of the
        # test samples and of every k-shot set) encoded once, forward only; the softmax-head fits are
        # small (under 1 s at smoke, stated).
        EncoderSteps(0, 1, _FS_LENGTH, kind="forward", eval_texts=_FS_TEXTS),
        Other({"smoke": 1, "cpu": 10, "gpu": 10}),
        # section 3 (robustness): the LoRA model's steps; forward passes over the clean and perturbed
        # test reviews (3 perturbations x the non-zero strengths) for the frozen and the LoRA encoder,
        # the training reviews and the augmented copies (robustness.ROBUSTNESS_SIZES).
        EncoderSteps(_RB_STEPS, _RB_BATCH, _RB_LENGTH, kind="peft", eval_texts=_RB_TEXTS),
    ),
}


@dataclass
class Work:
    """Counted work of a notebook (or one entry) at one profile."""

    steps: float = 0.0  # training steps (optimizer updates)
    eval_batches: float = 0.0  # forward-only batches (each a third of a step's overhead)
    small_flops: float = 0.0  # FLOPs of towers, trunks and heads
    encoder_flops: float = 0.0  # FLOPs of the text encoder
    kernels: float = 0.0  # extra executions of the notebook
    other_s: float = 0.0  # seconds outside PyTorch (stated estimates)

    def __add__(self, other: Work) -> Work:
        return Work(*(a + b for a, b in zip(self.astuple(), other.astuple())))

    def scaled(self, k: float) -> Work:
        return Work(*(k * a for a in self.astuple()))

    def astuple(self) -> tuple[float, ...]:
        return (
            self.steps,
            self.eval_batches,
            self.small_flops,
            self.encoder_flops,
            self.kernels,
            self.other_s,
        )


# ----------------------------------------------------------------------------- FLOP counting


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of the matrix products (matmul, convolution, attention) that ``fn()`` runs."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def code_fingerprint() -> str:
    """A hash of the code whose FLOPs are counted (the models, the ads model, this module)."""
    import hashlib

    root = Path(__file__).resolve().parents[1]
    files = sorted((root / "models").glob("*.py")) + [root / "analyses" / "cases" / "ads.py", Path(__file__)]
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.read_bytes())
    return digest.hexdigest()[:16]


class FlopCache:
    """FLOP counts keyed by what was counted, kept in a small JSON file (``None``: in memory only).

    The counts are dropped when torch or the counted code (:func:`code_fingerprint`) changes; the
    measured matmul speeds are kept.
    """

    def __init__(self, path: str | os.PathLike | None = CACHE_FILE):
        self.path = Path(path) if path is not None else None
        self.data: dict[str, Any] = {
            "version": CACHE_VERSION,
            "torch": torch.__version__,
            "code": code_fingerprint(),
            "flops": {},
        }
        if self.path is not None and self.path.exists():
            try:
                loaded = json.loads(self.path.read_text())
                same = all(loaded.get(k) == self.data[k] for k in ("version", "torch", "code"))
                if same:
                    self.data = loaded
                elif "speed" in loaded:
                    self.data["speed"] = loaded["speed"]
            except (OSError, ValueError):
                pass  # a bad cache is rebuilt
        self.dirty = False

    def get(self, key: str, compute: Callable[[], float]) -> float:
        flops = self.data["flops"]
        if key not in flops:
            flops[key] = float(compute())
            self.dirty = True
        return float(flops[key])

    def save(self) -> None:
        if self.dirty and self.path is not None:
            try:
                atomic_write_json(self.path, self.data)
            except OSError:
                pass  # a read-only checkout still predicts
            self.dirty = False


_ENCODERS: dict[str, Any] = {}


def _encoder(name: str):
    """The encoder ``name`` on the CPU, loaded once, quietly (its progress bars would land in a notebook)."""
    if name not in _ENCODERS:
        import contextlib
        import io

        from mtrec_utils.models.encoders import load_encoder

        with contextlib.redirect_stderr(io.StringIO()):
            _ENCODERS[name] = load_encoder(name, device="cpu")
    return _ENCODERS[name]


def text_dim(encoder: str) -> int:
    """Width of ``encoder``'s embeddings (known ones without loading the model)."""
    return TEXT_DIMS.get(encoder) or int(_encoder(encoder).dim)


def encoder_text_flops(encoder: str, length: int, kind: str) -> float:
    """FLOPs per text of ``length`` tokens through ``encoder``: ``forward``, ``full`` or ``peft`` step.

    ``full`` is counted (forward, then backward of a pooled loss). ``peft`` is the forward plus half of
    the full backward: the gradient with respect to the activations is still computed through every
    layer, the one with respect to the (frozen) weights is not. Counted on a copy of the model on the
    ``meta`` device (shapes only, no arithmetic), or on the CPU where an operation has no meta kernel.
    """
    check_choice("kind", kind, ("forward", "full", "peft"))
    model = _encoder(encoder).model
    for device in ("meta", "cpu"):
        try:
            fwd, full = _encoder_counts(model, int(length), device)
            break
        except Exception:
            if device == "cpu":
                raise
    return {"forward": fwd, "full": full, "peft": fwd + (full - fwd) / 2}[kind]


def _encoder_counts(model: torch.nn.Module, length: int, device: str) -> tuple[float, float]:
    """(forward, forward + backward) FLOPs of one text of ``length`` tokens.

    No attention mask is passed (every token is real): the FLOPs are the same, and the model's mask
    preparation reads values, which the meta device does not have.
    """
    import copy

    net = copy.deepcopy(model).to(device).train()
    ids = torch.full((1, length), 1000, dtype=torch.long, device=device)

    def forward():
        return net(input_ids=ids).last_hidden_state

    def train():
        forward().mean(dim=1).pow(2).mean().backward()  # a pooled loss, as in training

    with torch.no_grad():
        fwd = count_flops(forward)
    return float(fwd), float(count_flops(train))


def _tasks(model: str, names: Sequence[str]) -> list:
    if model == "ads":
        from mtrec_utils.analyses.cases.ads import ads_tasks

        every = ads_tasks()
    elif model == "clothing":
        from mtrec_utils.data.tasks import clothing_tasks

        every = clothing_tasks([f"d{j}" for j in range(CLOTHING_DEPARTMENTS)])
    else:
        from mtrec_utils.data import GENRES
        from mtrec_utils.data.tasks import movielens_tasks

        every = movielens_tasks(GENRES)
    return [every[n] for n in names]


def build_counted_model(model: str, tasks: Sequence[str], arch: str, dim: int) -> torch.nn.Module:
    """The package's model of kind ``model`` with text embeddings of width ``dim`` (zeros: same FLOPs)."""
    from mtrec_utils.models.baselines import MatrixFactorization
    from mtrec_utils.models.fusion import FUSIONS, FusionTower
    from mtrec_utils.models.sharing import ARCHITECTURES, build_model
    from mtrec_utils.models.towers import EntityTower, FrozenText

    task_list = _tasks(model, tasks)
    torch.manual_seed(0)
    if model == "mf":
        return MatrixFactorization(ML_USERS, ML_ITEMS, task_list, dim=EMBED_DIM)
    if model == "ads":
        from mtrec_utils.analyses.cases.ads import build_ads_model

        users, items = torch.zeros(ML_USERS, dim), torch.zeros(ML_ITEMS, dim)
        return build_ads_model(users, items, task_list, "pal", user_features=torch.zeros(ML_USERS, dim + 1))
    if model in ("clothing", "genres"):
        n = 8_192 if model == "clothing" else ML_ITEMS
        feats = torch.zeros(n, 2) if model == "clothing" else None
        tower = EntityTower(n, EMBED_DIM, FrozenText(torch.zeros(n, dim)), features=feats, use_id=False)
        return build_model(arch if arch in ARCHITECTURES else "hard", {"item": tower}, task_list, HIDDEN)
    sizes = {"user": ML_USERS, "item": ML_ITEMS}
    towers: dict[str, torch.nn.Module] = {}
    if arch in FUSIONS:  # movielens_side: users' age and gender (+ occupation), items' year and 19 genres
        width = {"user": 1, "item": 20}
        cats = {"user": {"g": torch.arange(ML_USERS) % 2}, "item": None}
        for k, n in sizes.items():
            text = FrozenText(torch.zeros(n, dim))
            towers[k] = FusionTower(n, EMBED_DIM, arch, text, torch.zeros(n, width[k]), cats[k])
        return build_model("hard", towers, task_list, HIDDEN)
    for k, n in sizes.items():
        towers[k] = EntityTower(n, EMBED_DIM, FrozenText(torch.zeros(n, dim)))
    return build_model(arch, towers, task_list, HIDDEN)


def _batch(model: str, rows: int, device: str = "cpu") -> dict[str, torch.Tensor]:
    def ids(n: int, low: int = 0) -> torch.Tensor:
        if device == "meta":  # shapes only
            return torch.zeros(rows, dtype=torch.long, device=device)
        return torch.randint(low, n, (rows,), generator=torch.Generator().manual_seed(0))

    if model in ("clothing", "genres"):
        return {"item": ids(1_682)}
    batch = {"user": ids(ML_USERS), "item": ids(ML_ITEMS)}
    if model == "ads":
        batch["position"] = ids(11, low=1)
    return batch


def model_flops(model: str, tasks: Sequence[str], arch: str, dim: int, rows: int, what: str) -> float:
    """FLOPs of one ``train`` step (forward + backward) or one ``forward`` pass over ``rows`` rows,
    or, for ``rank_user``, of ranking every item for one user (``score_items``).

    Counted on the ``meta`` device (shapes only, no arithmetic), or on the CPU where a model needs
    values (the ads model checks its positions).
    """
    for device in ("meta", "cpu"):
        try:
            return _model_flops(model, tasks, arch, dim, rows, what, device)
        except Exception:
            if device == "cpu":
                raise
    raise AssertionError("unreachable")


def _model_flops(
    model: str, tasks: Sequence[str], arch: str, dim: int, rows: int, what: str, device: str
) -> float:
    with torch.device(device):
        net = build_counted_model(model, tasks, arch, dim)
    if what == "rank_user":
        if not hasattr(net, "score_items"):
            return 0.0
        net.eval()
        score = cast(Callable[..., torch.Tensor], net.score_items)
        users = {n: torch.arange(n, device=device) for n in (2, 4)}
        two, four = (count_flops(partial(score, tasks[0], users[n], ML_ITEMS)) for n in (2, 4))
        return (four - two) / 2
    batch = _batch(model, rows, device)
    if what == "forward":  # autograd on: FlopCounterMode's module tracker fails on some modules under no_grad
        net.eval()
        return float(count_flops(lambda: net(batch, list(tasks))))
    net.train()

    def step():
        out = net(batch, list(tasks))
        sum(o.float().sum() for o in out.values()).backward()

    return float(count_flops(step))


# ----------------------------------------------------------------------------- work of an entry


def _source(model: str, task: str) -> str:
    if model == "clothing":
        return "reviews"
    if model == "genres":
        return "items"
    if model == "ads":
        return "impressions" if task == "ctr" else "history"
    return "interactions" if task == "interest" else "ratings"


def _distinct(n: int, draws: float) -> float:
    """Expected distinct entities among ``draws`` uniform draws from ``n``."""
    return n * (1 - (1 - 1 / n) ** draws)


def _sizes(model: str, p: Profile, share: float) -> dict[str, Any]:
    """Examples per data source (train / val / test) and ranked users, at profile ``p``."""
    if model == "clothing":
        n = min(CLOTHING_REVIEWS, p.max_clothing_reviews or CLOTHING_REVIEWS)
        return {
            "train": {"reviews": 0.8 * n * share},
            "val": {"reviews": 0.1 * n},
            "test": {"reviews": 0.1 * n},
        }
    if model == "genres":
        return {
            "train": {"items": 0.8 * ML_ITEMS},
            "val": {"items": 0.1 * ML_ITEMS},
            "test": {"items": 0.1 * ML_ITEMS},
        }
    base = min(ML_RATINGS, p.max_train_ratings or ML_RATINGS)
    if model == "ads":
        shown = 10 * ADS_SLATES[p.name]
        return {
            "train": {"impressions": 0.72 * shown, "history": 0.95 * base * share},
            "val": {"impressions": 0.08 * shown, "history": 0.05 * base},
            "test": {"impressions": ADS_TEST_PASSES * 0.2 * shown},
        }
    test = min(ML_TEST, p.max_test_ratings or ML_TEST)
    train = 0.95 * base * share
    return {
        "train": {"ratings": train, "interactions": ML_LIKED * train},
        "val": {"ratings": 0.05 * base},
        "test": {"ratings": test},
        "val_users": min(p.max_eval_users or VAL_USERS, VAL_USERS),
        "test_users": min(p.max_eval_users or ML_TEST_USERS, ML_TEST_USERS),
    }


def epochs_run(entry: Train, p: Profile) -> int:
    """Epochs a run of ``entry`` lasts at ``p``: the notebook's bounds, then early stopping."""
    e = p.epochs
    e = min(e, int(at(entry.max_epochs, p.name))) if entry.max_epochs else e
    e = max(e, entry.min_epochs) if entry.min_epochs else e
    stop = STOP_EPOCH.get(p.name) if entry.stops_early else None
    return min(e, stop) if stop else e


SHIPPED_FINGERPRINT = "code_fingerprint.txt"  # beside a shipped study: the code it was run with


def shipped_study_current(profile: str, folder: str | os.PathLike | None = None) -> bool:
    """Whether the tuning study shipped for ``profile`` was run with the package code as it is now.

    ``folder`` (default ``results/<profile>/seesaw/tuning``) holds the study and ``code_fingerprint.txt``,
    :func:`mtrec_utils.training.seesaw.code_fingerprint` when it was run. Notebook 04 reuses the study
    only if its whole key (code, data, settings) matches; this checks the code, the part a change to the
    package breaks (the data and settings are the notebook's own at that profile).
    """
    from mtrec_utils.training.seesaw import code_fingerprint

    path = Path(folder or REPO_ROOT / "results" / profile / "seesaw" / "tuning") / SHIPPED_FINGERPRINT
    try:
        return path.read_text().strip() == code_fingerprint()
    except OSError:
        return False


def runs_of(entry: Train, p: Profile) -> int:
    if entry.unless_shipped and shipped_study_current(p.name):
        return 0
    seeds = min(p.num_seeds, entry.max_seeds or p.num_seeds) if entry.per_seed else 1
    return int(at(entry.runs, p.name)) * seeds


def train_work(entry: Train, p: Profile, cache: FlopCache, encoder: str = DEFAULT_ENCODER) -> Work:
    """Counted work of all runs of ``entry`` at profile ``p``."""
    b = int(at(entry.batch_size, p.name)) if entry.batch_size else p.batch_size
    b = b if entry.model != "genres" else 64
    dim = text_dim(encoder)
    full = (entry.text or p.encoder_mode) == "full" and entry.model in ("movielens", "clothing", "genres")
    sizes = _sizes(entry.model, p, entry.data)
    by_source: dict[str, list[str]] = {}
    for t in entry.tasks:
        by_source.setdefault(_source(entry.model, t), []).append(t)
    batches = {s: math.ceil(sizes["train"][s] / b) for s in by_source}
    rows = {s: b * (1 + NEGATIVES) if s == "interactions" else b for s in by_source}

    def flops(tasks: Sequence[str], source: str, what: str, n: int) -> float:
        key = f"{entry.model}|{','.join(tasks)}|{entry.arch}|{source}|{n}|{what}|{dim}"
        return cache.get(key, lambda: model_flops(entry.model, tasks, entry.arch, dim, n, what))

    enc_train = enc_fwd = 0.0
    if full:
        enc_train = cache.get(
            f"encoder|{encoder}|{p.max_length}|full",
            lambda: encoder_text_flops(encoder, p.max_length, "full"),
        )
        enc_fwd = cache.get(
            f"encoder|{encoder}|{p.max_length}|forward",
            lambda: encoder_text_flops(encoder, p.max_length, "forward"),
        )

    def texts_per_batch(source: str, n: float) -> float:
        if source in ("ratings", "interactions"):
            items = n * (1 + NEGATIVES) if source == "interactions" else n
            return _distinct(ML_USERS, n) + _distinct(ML_ITEMS, items)
        return n

    epoch = Work()
    if entry.schedule == "joint":
        steps = max(batches.values())
        small = sum(flops(ts, s, "train", rows[s]) for s, ts in by_source.items())
        enc = sum(texts_per_batch(s, b) for s in by_source) * enc_train
        if entry.task_grads:  # one backward per task: forward once, backward (2x forward) per task
            k = (1 + 2 * len(entry.tasks)) / 3
            small, enc = small * k, enc * k
        epoch += Work(steps=steps, small_flops=steps * small, encoder_flops=steps * enc)
    else:
        for t in entry.tasks:
            s = _source(entry.model, t)
            n = batches[s]
            enc = texts_per_batch(s, b) * enc_train
            epoch += Work(steps=n, small_flops=n * flops((t,), s, "train", rows[s]), encoder_flops=n * enc)

    def evaluation(part: str) -> Work:
        w = Work()
        eb = 4 * b
        for s, ts in by_source.items():
            n = sizes[part].get(s, 0.0)
            if s == "interactions" or not n:
                continue
            per_row = flops(ts, s, "forward", 256) / 256
            w += Work(
                eval_batches=n / eb,
                small_flops=n * per_row,
                encoder_flops=n / eb * texts_per_batch(s, eb) * enc_fwd,
            )
        if "interest" in entry.tasks and entry.model in ("movielens", "mf"):
            users = sizes[f"{part}_users"]
            w += Work(
                eval_batches=users / 64,
                small_flops=users * flops(("interest",), "interactions", "rank_user", 1),
                encoder_flops=(users + ML_ITEMS) * enc_fwd,
            )
        return w

    per_run = (epoch + evaluation("val")).scaled(epochs_run(entry, p)) + evaluation("test")
    return per_run.scaled(runs_of(entry, p))


def encoder_steps_work(
    entry: EncoderSteps, p: Profile, cache: FlopCache, encoder: str = DEFAULT_ENCODER
) -> Work:
    """Counted work of the encoder steps of ``entry`` at profile ``p``."""
    length = int(at(entry.length, p.name))
    per_text = cache.get(
        f"encoder|{encoder}|{length}|{entry.kind}", lambda: encoder_text_flops(encoder, length, entry.kind)
    )
    fwd = cache.get(
        f"encoder|{encoder}|{length}|forward", lambda: encoder_text_flops(encoder, length, "forward")
    )
    steps, runs = at(entry.steps, p.name), at(entry.runs, p.name)
    evals = at(entry.eval_texts, p.name)
    return Work(
        steps=steps * runs,
        eval_batches=runs * evals / 64,
        encoder_flops=runs * (steps * at(entry.batch, p.name) * per_text + evals * fwd),
    )


def entry_work(entry: Any, p: Profile, cache: FlopCache, encoder: str = DEFAULT_ENCODER) -> Work:
    """Counted work of one work-plan entry at profile ``p``."""
    if isinstance(entry, Train):
        return train_work(entry, p, cache, encoder)
    if isinstance(entry, EncoderSteps):
        return encoder_steps_work(entry, p, cache, encoder)
    if isinstance(entry, Kernels):
        return Work(kernels=at(entry.count, p.name))
    if isinstance(entry, Loops):
        return Work(steps=at(entry.steps, p.name))
    if isinstance(entry, Other):
        return Work(other_s=at(entry.seconds, p.name))
    raise TypeError(f"unknown work-plan entry {entry!r}")


def notebook_work(
    notebook: str,
    profile: str,
    cache: FlopCache | None = None,
    encoder: str = DEFAULT_ENCODER,
    workers: int = 1,
) -> Work:
    """Counted work of ``notebook`` (stem, file name or number) at ``profile`` (``smoke``/``cpu``/``gpu``).

    ``workers``: processes that train the ``pooled`` runs at once; their work counts ``1 / workers``
    (the wall time it takes), the rest in full.
    """
    stem = notebook_stem(notebook)
    p = PROFILES[check_choice("profile", profile, tuple(PROFILES))]
    cache = cache if cache is not None else FlopCache(None)
    total = Work()
    for entry in WORK_PLAN[stem]:
        work = entry_work(entry, p, cache, encoder)
        total += work.scaled(1 / workers) if getattr(entry, "pooled", False) else work
    return total


# ----------------------------------------------------------------------------- devices and calibration


@dataclass(frozen=True)
class Device:
    """How fast a machine does each kind of work.

    Attributes:
        name: for people.
        small_flops_s: FLOP/s the small recommender models achieve.
        encoder_flops_s: FLOP/s the transformer encoder achieves.
        step_s: overhead seconds per optimizer step (Python, data loader, optimizer).
        parallel: speed-up of the encoder's FLOPs in notebooks that use every core (all but
            :data:`ONE_THREAD`), over the one thread that ``encoder_flops_s`` is for.
        overhead_scale: factor on the notebooks' fixed overheads (1: the calibration machine).
        workers: processes that train pooled runs at once (notebook 04's WORKERS: one per core on a
            CPU, 1 on a GPU).
    """

    name: str
    small_flops_s: float
    encoder_flops_s: float
    step_s: float
    parallel: float = 1.0
    overhead_scale: float = 1.0
    workers: int = 1


# Notebooks whose models run on the CPU even on a GPU machine (their DEVICE is "cpu" or they are tiny):
# at gpu-t4 they are predicted at the calibration machine's CPU speed (a Colab T4 machine has 2 vCPUs).
CPU_ONLY = ("01_joint_loss_and_gradients", "05_joint_embedding_and_fusion")
COLAB_VCPUS = 2  # the CPU cores of a Colab GPU runtime (T4)

# Notebooks that train on one CPU thread (their parameter CPU_THREADS = 1); the others use every core.
ONE_THREAD = (
    "04_joint_training",
    "05_joint_embedding_and_fusion",
    "06_case_study_ads",
    "07_case_study_personalization",
    "08_efficient_finetuning_and_scaling",
    "10_continual_fewshot_robustness",
)
CALIBRATION_PARALLEL = 2.0  # the calibration machine's 2 cores, idle: the smoke run's encoder bench ran at 2x
CALIBRATION_WORKERS = 2  # and its pooled runs trained two at once (WORKERS: one per core)


# Fitted on 2026-12-01 by :func:`calibrate` (``python -m mtrec_utils.bench budgets --recalibrate``) to the
# runs in :data:`MEASURED`, with this machine's one-thread matmul measured then (196 GFLOP/s, idle; the fit of
# 2026-11-30 was made on a machine of 85 GFLOP/s, loaded, against cpu runs of 11-27/28 code, and counted
# pooled runs as if trained one after another). Predicted over measured, cpu: 0.59 (03, whose first
# encoding of the clothing reviews is not counted) to 2.08 (10, whose continual-learning runs are a stated
# estimate from a slower machine), 04 1.26, 08 0.68; smoke: 1.0 each (its runs set the notebooks'
# overheads; 10: 1.08). The small models run at about 20 % of matmul speed with 5 ms of fixed overhead per
# step; the encoder at about 80 %.
CALIBRATION: dict[str, Any] = {
    "date": "2026-12-01",
    "matmul_flops": 1.96e11,
    "small_eff": 0.20,
    "encoder_eff": 0.79,
    "step_s": 0.005,
    "overhead_s": {
        "00_setup_and_tour": 6.3,
        "01_joint_loss_and_gradients": 6.0,
        "02_building_datasets": 10.0,
        "03_single_task_baselines": 21.5,
        "04_joint_training": 19.5,
        "05_joint_embedding_and_fusion": 11.7,
        "06_case_study_ads": 9.1,
        "07_case_study_personalization": 7.6,
        "08_efficient_finetuning_and_scaling": 13.9,
        "09_results_report": 4.6,
        "10_continual_fewshot_robustness": 4.0,
    },
}

# Measured seconds the calibration fits: the runner's summaries of 2026-12-01 on one idle 2-core machine
# (results/smoke/timings/, results/cpu/timings/): the smoke workbook, and every cpu notebook in the workbook's
# order from an empty embedding cache.
MEASURED: dict[str, dict[str, float]] = {
    "smoke": {
        "00_setup_and_tour": 6.3,
        "01_joint_loss_and_gradients": 8.0,
        "02_building_datasets": 16.0,
        "03_single_task_baselines": 25.1,
        "04_joint_training": 52.3,
        "05_joint_embedding_and_fusion": 18.2,
        "06_case_study_ads": 16.5,
        "07_case_study_personalization": 10.2,
        "08_efficient_finetuning_and_scaling": 39.7,
        "09_results_report": 4.6,
        "10_continual_fewshot_robustness": 17.7,
    },
    "cpu": {
        "00_setup_and_tour": 8.2,
        "01_joint_loss_and_gradients": 11.9,
        "02_building_datasets": 32.5,
        "03_single_task_baselines": 250.2,  # encodes the 23,486 clothing reviews into an empty cache (about 170 s)
        "04_joint_training": 1119.8,  # study reused from results/cpu/seesaw/tuning/; 05:36 UTC, a slower hour
        "05_joint_embedding_and_fusion": 259.8,
        "06_case_study_ads": 139.7,
        "07_case_study_personalization": 63.5,
        "08_efficient_finetuning_and_scaling": 773.5,
        "09_results_report": 4.5,
        "10_continual_fewshot_robustness": 148.1,
    },
}

# NVIDIA T4 Tensor Core GPU datasheet (https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/
# tesla-t4/t4-tensor-core-datasheet-951643.pdf): 65 TFLOP/s mixed precision (FP16/FP32) on tensor cores,
# 8.1 TFLOP/s FP32, 70 W.
T4_FP16_PEAK, T4_FP32_PEAK = 65e12, 8.1e12
T4_ENCODER_FRACTION = 0.25  # achievable share of the fp16 peak for MiniLM training with AMP (stated)
T4_SMALL_FRACTION = 0.10  # share of the fp32 peak for 64-384-wide layers at batch 128-512 (stated)
T4_STEP_S = 0.004  # eager PyTorch: ~10 us per kernel launch x ~400 kernels a step with AdamW (stated)


def t4() -> Device:
    """One NVIDIA T4 (profile ``gpu-t4``): datasheet peaks at the stated achievable fractions."""
    return Device(
        "NVIDIA T4 (datasheet peaks x stated fractions)",
        small_flops_s=T4_SMALL_FRACTION * T4_FP32_PEAK,
        encoder_flops_s=T4_ENCODER_FRACTION * T4_FP16_PEAK,
        step_s=T4_STEP_S,
    )


Measure = Callable[[torch.device], float]  # device -> matmul FLOP/s: bench.matmul_flops


def measured_matmul(
    cache: FlopCache | None = None,
    max_age_s: float = 3600.0,
    device: str = "cpu",
    threads: int | None = 1,
    measure: Measure | None = None,
) -> float | None:
    """This machine's matmul FLOP/s, measured with ``measure`` (:func:`mtrec_utils.workbook.bench.matmul_flops`).

    The best of 3 measurements (each a median of 10) is kept in the cache for ``max_age_s``; without
    ``measure`` the last cached figure is used, whatever its age, or ``None`` when there is none. On a
    CPU it is measured on ``threads`` threads (``None``: PyTorch's default, every core). One thread is
    the reference: notebooks 04-08 train on one (``CPU_THREADS = 1``), and one thread's figure moves
    less with other jobs on a shared machine than two threads' does.
    """
    current = torch.get_num_threads()
    threads = threads or current
    key = f"{platform.node()}|{device}|{threads if device == 'cpu' else ''}"
    speeds = cache.data.setdefault("speed", {}) if cache is not None else {}
    hit = speeds.get(key)
    if hit and (measure is None or time.time() - hit["time"] < max_age_s):
        return float(hit["matmul_flops"])
    if measure is None:
        return None
    try:
        if device == "cpu":
            torch.set_num_threads(threads)
        flops = max(measure(torch.device(device)) for _ in range(3))
    finally:
        torch.set_num_threads(current)
    if cache is not None:
        speeds[key] = {"matmul_flops": flops, "time": time.time()}
        cache.dirty = True
    return flops


def this_machine(
    cache: FlopCache | None = None,
    calibration: Mapping[str, Any] = CALIBRATION,
    measure: Measure | None = None,
) -> Device:
    """This machine: its matmul FLOP/s (CUDA when present) x the calibrated efficiencies.

    Without a measurement (no ``measure`` and nothing cached) it is taken to be the calibration machine.
    """
    if torch.cuda.is_available():
        fp32 = measured_matmul(cache, device="cuda", measure=measure) or 0.75 * T4_FP32_PEAK
        k = fp32 / (0.75 * T4_FP32_PEAK)  # relative to a T4's achievable fp32 matmul
        base = t4()
        return Device(
            f"{torch.cuda.get_device_name()} (T4 figures x {k:.2g}, from its fp32 matmul)",
            small_flops_s=base.small_flops_s * k,
            encoder_flops_s=base.encoder_flops_s * k,
            step_s=base.step_s,
        )
    peak = measured_matmul(cache, measure=measure)
    every = measured_matmul(cache, threads=None, measure=measure)
    parallel = max(1.0, every / peak) if peak and every else CALIBRATION_PARALLEL
    peak = peak or float(calibration["matmul_flops"])
    return Device(
        f"this machine ({os.cpu_count()} cores, matmul {peak / 1e9:.0f} GFLOP/s on one thread)",
        small_flops_s=calibration["small_eff"] * peak,
        encoder_flops_s=calibration["encoder_eff"] * peak,
        step_s=calibration["step_s"],
        parallel=parallel,
        workers=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1,
    )


def seconds(work: Work, device: Device, overhead_s: float, parallel: bool = False) -> float:
    """Predicted seconds of ``work`` on ``device`` with the notebook's fixed ``overhead_s``.

    ``parallel``: the notebook uses every core, so the encoder runs ``device.parallel`` times faster.
    """
    overhead = overhead_s * device.overhead_scale
    encoder_speed = device.encoder_flops_s * (device.parallel if parallel else 1.0)
    return (
        overhead * (1 + work.kernels)
        + device.step_s * (work.steps + work.eval_batches / 3)
        + work.small_flops / device.small_flops_s
        + work.encoder_flops / encoder_speed
        + work.other_s
    )


@dataclass
class Calibration:
    """Result of :func:`calibrate`: the fitted constants and predicted/measured per notebook."""

    constants: dict[str, Any]
    ratios: dict[str, dict[str, float]] = field(default_factory=dict)


def calibrate(
    works: Mapping[str, Mapping[str, Work]],
    measured: Mapping[str, Mapping[str, float]] = MEASURED,
    matmul: float = CALIBRATION["matmul_flops"],
    overhead_floor_s: float = 4.0,
    parallel: float = CALIBRATION_PARALLEL,
) -> Calibration:
    """Fit ``small_eff``, ``encoder_eff``, ``step_s`` and each notebook's overhead to measured runs.

    For each candidate (a grid over the three), a notebook's overhead is what its smoke run leaves
    after the counted work (at least ``overhead_floor_s``); the candidate that minimises the squared
    log-ratios of predicted to measured seconds over every measured run is kept.

    Args:
        works: ``{profile: {notebook: Work}}`` (smoke and cpu).
        measured: ``{profile: {notebook: seconds}}``.
        matmul: this machine's one-thread matmul FLOP/s when ``measured`` was measured.
        parallel: the encoder's speed-up on every core (notebooks not in :data:`ONE_THREAD`).
    """
    names = [n for n in NOTEBOOKS if n in measured["smoke"]]
    small = np.logspace(-3.5, 0, 71)[:, None, None]
    enc = np.logspace(-2, 0.3, 47)[None, :, None]
    step = np.concatenate([[0.0], np.logspace(-4, -1, 61)])[None, None, :]

    def work_s(w: Work, n: str) -> np.ndarray:
        par = 1.0 if n in ONE_THREAD else parallel
        return (
            step * (w.steps + w.eval_batches / 3)
            + w.small_flops / (small * matmul)
            + w.encoder_flops / (enc * matmul * par)
            + w.other_s
        )

    loss = np.zeros((small.size, enc.size, step.size))
    overheads = {}
    for n in names:
        smoke_w = works["smoke"][n]
        ws = work_s(smoke_w, n)
        over = np.maximum(overhead_floor_s, (measured["smoke"][n] - ws) / (1 + smoke_w.kernels))
        overheads[n] = over
        loss += np.log((over * (1 + smoke_w.kernels) + ws) / measured["smoke"][n]) ** 2
        if n in measured.get("cpu", {}):
            cw = works["cpu"][n]
            loss += np.log((over * (1 + cw.kernels) + work_s(cw, n)) / measured["cpu"][n]) ** 2
    i, j, k = np.unravel_index(np.argmin(loss), loss.shape)
    constants: dict[str, Any] = {
        "matmul_flops": matmul,
        "small_eff": float(small.ravel()[i]),
        "encoder_eff": float(enc.ravel()[j]),
        "step_s": float(step.ravel()[k]),
        "overhead_s": {n: round(float(np.broadcast_to(overheads[n], loss.shape)[i, j, k]), 1) for n in names},
    }
    device = calibration_device(constants, parallel)
    ratios = {
        prof: {
            n: seconds(works[prof][n], device, constants["overhead_s"][n], n not in ONE_THREAD) / s
            for n, s in runs.items()
        }
        for prof, runs in measured.items()
    }
    return Calibration(constants, ratios)


def calibration_device(
    constants: Mapping[str, Any] = CALIBRATION, parallel: float = CALIBRATION_PARALLEL
) -> Device:
    """The calibration machine as it was when the calibration runs were measured."""
    m = constants["matmul_flops"]
    return Device(
        "calibration",
        constants["small_eff"] * m,
        constants["encoder_eff"] * m,
        constants["step_s"],
        parallel,
        workers=CALIBRATION_WORKERS,
    )


# ----------------------------------------------------------------------------- predictions


def _profile_of(report_profile: str) -> str:
    return "gpu" if report_profile == "gpu-t4" else report_profile


def predict(
    notebook: str,
    profile: str,
    *,
    device: Device | None = None,
    cache: FlopCache | None = None,
    encoder: str = DEFAULT_ENCODER,
    calibration: Mapping[str, Any] = CALIBRATION,
) -> float:
    """Predicted seconds of ``notebook`` at ``profile`` (``smoke``, ``cpu``, ``gpu`` or ``gpu-t4``).

    ``device`` defaults to a T4 for ``gpu-t4`` and to this machine otherwise.
    """
    check_choice("profile", profile, (*PROFILES, "gpu-t4"))
    stem = notebook_stem(notebook)
    if profile == "gpu-t4" and stem in CPU_ONLY:  # a Colab T4 machine's CPU: 2 vCPUs, pooled runs 2 at once
        device = replace(calibration_device(), workers=COLAB_VCPUS)
    if device is None:
        device = t4() if profile == "gpu-t4" else this_machine(cache, calibration)
    work = notebook_work(stem, _profile_of(profile), cache, encoder, device.workers)
    return seconds(work, device, calibration["overhead_s"].get(stem, 8.0), stem not in ONE_THREAD)


def predict_many(
    notebooks: Sequence[str],
    profile: str,
    *,
    device: Device | None = None,
    cache_path: str | os.PathLike | None = CACHE_FILE,
    encoder: str = DEFAULT_ENCODER,
    measure: Measure | None = None,
) -> dict[str, float | None]:
    """``{stem: predicted seconds}`` for each of ``notebooks`` (``None`` where there is no work plan).

    ``measure``: how to measure this machine's matmul FLOP/s (see :func:`measured_matmul`).
    """
    cache = FlopCache(cache_path)
    out: dict[str, float | None] = {}
    try:
        known = [n for n in notebooks if n in WORK_PLAN]
        if known and device is None:
            device = t4() if profile == "gpu-t4" else this_machine(cache, measure=measure)
        for n in notebooks:
            try:
                out[n] = (
                    predict(n, profile, device=device, cache=cache, encoder=encoder)
                    if n in WORK_PLAN
                    else None
                )
            except Exception:  # a failed prediction of one notebook leaves the others
                out[n] = None
    finally:
        cache.save()
    return out


def human(seconds_: float) -> str:
    """``"about 40 s"``, ``"about 6 minutes"``, ``"about 2.5 hours"``."""
    if seconds_ < 90:
        return f"about {max(1, round(seconds_))} s"
    if seconds_ < 90 * 60:
        return f"about {round(seconds_ / 60)} minutes"
    return f"about {seconds_ / 3600:.1f} hours"


def _budget_text(seconds_: float) -> str:
    return f"{seconds_:.0f} s" if seconds_ < 120 else f"{seconds_ / 60:.0f} min"


def announce(
    notebook_stem_: str, profile_name: str, cache_path: str | os.PathLike | None = CACHE_FILE
) -> str:
    """One line for a notebook's set-up cell: its predicted time here and its budget; never raises.

    ``"about 6 minutes at the cpu profile on this machine (predicted; budget 8 min)"``.
    """
    try:
        stem = notebook_stem(notebook_stem_)
        name = str(getattr(profile_name, "name", profile_name))
        where = "on this machine"
        report = name
        if name == "gpu" and not torch.cuda.is_available():
            report, where = "gpu-t4", "on a T4 GPU"
        predicted = predict_many([stem], report, cache_path=cache_path)[stem]
        if predicted is None:
            raise ValueError("no work plan")
        budget = BUDGETS_S.get(name, {}).get(stem)
        tail = f"predicted; budget {_budget_text(budget)}" if budget is not None else "predicted"
        return f"{human(predicted)} at the {name} profile {where} ({tail})"
    except Exception as err:  # a prediction must never stop a notebook
        return f"no prediction ({type(err).__name__}: {err})"


# ----------------------------------------------------------------------------- measured runs and the report


def measured_runs(folders: Sequence[str | os.PathLike] | None = None) -> dict[str, dict[str, float]]:
    """``{profile: {notebook: seconds}}`` of the last successful run of each, from runners' ``summary.json``.

    Reads ``FOLDER/summary.json`` for each folder (default: ``outputs/`` and every ``summary.json``
    under ``results/``), oldest file first so the last measured wins. A run's profile is its entry's
    ``profile`` or, for older summaries, the one its metrics file records.
    """
    if folders is None:
        files = [
            REPO_ROOT / "outputs" / "summary.json",
            *sorted((REPO_ROOT / "results").rglob("summary.json")),
        ]
    else:
        files = [Path(f) / "summary.json" if Path(f).is_dir() else Path(f) for f in folders]
    files = sorted((f for f in files if f.exists()), key=lambda f: f.stat().st_mtime)
    out: dict[str, dict[str, float]] = {}
    for f in files:
        try:
            entries = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        for e in entries if isinstance(entries, list) else []:
            if e.get("status") != "ok" or "seconds" not in e:
                continue
            profile = e.get("profile")
            if profile is None:
                metrics = f.parent / "metrics" / f"{e['notebook']}.json"
                try:
                    profile = json.loads(metrics.read_text()).get("profile")
                except (OSError, ValueError):
                    profile = None
            if profile:
                report = "gpu-t4" if profile == "gpu" else profile
                out.setdefault(report, {})[e["notebook"]] = float(e["seconds"])
    return out


def budgets_report(
    profiles: Sequence[str] = REPORT_PROFILES,
    measured_dirs: Sequence[str | os.PathLike] | None = None,
    cache_path: str | os.PathLike | None = CACHE_FILE,
    encoder: str = DEFAULT_ENCODER,
    device: Device | None = None,
    measure: Measure | None = None,
) -> dict[str, dict[str, dict[str, float | None]]]:
    """``{profile: {notebook: {"predicted_s", "budget_s", "measured_s"}}}`` (``None`` where unknown).

    ``device`` replaces this machine for the CPU profiles (``gpu-t4`` always uses :func:`t4`);
    ``measure`` measures this machine's matmul FLOP/s (see :func:`measured_matmul`).
    """
    measured = measured_runs(measured_dirs)
    report: dict[str, dict[str, dict[str, float | None]]] = {}
    for prof in profiles:
        dev = t4() if prof == "gpu-t4" else device
        predicted = predict_many(
            list(NOTEBOOKS), prof, device=dev, cache_path=cache_path, encoder=encoder, measure=measure
        )
        budgets = BUDGETS_S[_profile_of(prof)]
        report[prof] = {
            n: {
                "predicted_s": None if predicted[n] is None else round(float(predicted[n]), 1),  # type: ignore[arg-type]
                "budget_s": float(budgets[n]),
                "measured_s": measured.get(prof, {}).get(n),
            }
            for n in NOTEBOOKS
        }
    return report


def format_budgets(report: Mapping[str, Mapping[str, Mapping[str, float | None]]]) -> str:
    """The report as a text table, with each profile's totals and the notebooks over budget marked."""

    def cell(v: float | None) -> str:
        return "-" if v is None else f"{v:,.0f}"

    lines = []
    for prof, rows in report.items():
        lines.append(f"{prof}: seconds (predicted / budget / last measured; * = predicted over budget)")
        width = max(len(n) for n in rows)
        for n, r in rows.items():
            over = (
                r["predicted_s"] is not None
                and r["budget_s"] is not None
                and r["predicted_s"] > r["budget_s"]
            )
            lines.append(
                f"  {n.ljust(width)}  {cell(r['predicted_s']):>8} {cell(r['budget_s']):>7} {cell(r['measured_s']):>8}"
                + (" *" if over else "")
            )
        total = sum(r["predicted_s"] or 0.0 for r in rows.values())
        budget = sum(r["budget_s"] or 0.0 for r in rows.values())
        lines.append(f"  {'total'.ljust(width)}  {total:>8,.0f} {budget:>7,.0f}")
    return "\n".join(lines)


def calibration_table(
    cache_path: str | os.PathLike | None = CACHE_FILE, encoder: str = DEFAULT_ENCODER
) -> str:
    """Predicted / measured for the runs :data:`CALIBRATION` was fitted to, at the calibration matmul speed."""
    cache = FlopCache(cache_path)
    device = calibration_device()
    lines = ["profile  notebook                              predicted  measured  ratio"]
    for prof, runs in MEASURED.items():
        for n, s in runs.items():
            p = predict(n, prof, device=device, cache=cache, encoder=encoder)
            lines.append(f"{prof:<8} {n:<37} {p:>9,.0f} {s:>9,.0f}  {p / s:5.2f}")
    cache.save()
    return "\n".join(lines)


def markdown_budgets(report: Mapping[str, Mapping[str, Mapping[str, float | None]]]) -> str:
    """The report as a Markdown table for the README: one row per notebook, per profile
    "predicted / budget / measured" in minutes (``-``: not measured), and a totals row."""

    def minutes(v: float | None) -> str:
        return "-" if v is None else f"{v / 60:.1f}"

    profiles = list(report)
    notebooks = list(next(iter(report.values()))) if report else []
    head = "| notebook | " + " | ".join(f"`{p}` predicted / budget / measured (min)" for p in profiles) + " |"
    lines = [head, "|---|" + "---|" * len(profiles)]
    for n in notebooks:
        cells = [
            " / ".join(minutes(report[p][n][k]) for k in ("predicted_s", "budget_s", "measured_s"))
            for p in profiles
        ]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    totals = []
    for p in profiles:
        rows = report[p].values()
        sums = [
            sum(r[k] for r in rows) if all(r[k] is not None for r in rows) else None
            for k in ("predicted_s", "budget_s", "measured_s")
        ]
        totals.append(" / ".join(minutes(v) for v in sums))
    lines.append("| **all** | " + " | ".join(totals) + " |")
    return "\n".join(lines)


def add_budgets_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m mtrec_utils.bench budgets``."""
    parser.add_argument("--json", default=None, help="also write {profile: {notebook: {...}}} to this file")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown (the README's)")
    parser.add_argument(
        "--measured", action="append", default=None, metavar="DIR", help="a runner's output dir (repeatable)"
    )
    parser.add_argument(
        "--profiles", default=",".join(REPORT_PROFILES), help="comma-separated (default: all)"
    )
    parser.add_argument("--encoder", default=DEFAULT_ENCODER, help="encoder whose FLOPs to count")
    parser.add_argument("--cache", default=str(CACHE_FILE), help="FLOP-count cache file ('' = none)")
    parser.add_argument(
        "--calibration", action="store_true", help="also print predicted/measured of the calibration runs"
    )
    parser.add_argument(
        "--machine",
        choices=("this", "calibration"),
        default="this",
        help="predict smoke and cpu for this machine (its matmul speed, measured) or for the machine the "
        "constants were fitted on, as it was then (the README's table; the same numbers anywhere)",
    )
    parser.add_argument(
        "--recalibrate", action="store_true", help="fit the calibration constants again and print them"
    )


def budgets_command(args: argparse.Namespace, measure: Measure | None = None) -> int:
    """Run ``bench budgets`` with parsed ``args``; returns the exit status.

    ``measure``: the bench's :func:`~mtrec_utils.workbook.bench.matmul_flops` (this module does not
    import the bench, which imports it).
    """
    profiles = [p.strip() for p in args.profiles.split(",") if p.strip()]
    for p in profiles:
        try:
            check_choice("profile", p, ("smoke", "cpu", "gpu", "gpu-t4"))
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    cache = args.cache or None
    device = calibration_device() if args.machine == "calibration" else None
    report = budgets_report(profiles, args.measured, cache, args.encoder, device=device, measure=measure)
    print(markdown_budgets(report) if args.markdown else format_budgets(report))
    if args.calibration:
        print("\n" + calibration_table(cache, args.encoder))
    if args.recalibrate:
        fc = FlopCache(cache)
        works = {
            # pooled runs count 1 / CALIBRATION_WORKERS, as they ran and as predictions count them
            p: {n: notebook_work(n, p, fc, args.encoder, CALIBRATION_WORKERS) for n in MEASURED["smoke"]}
            for p in ("smoke", "cpu")
        }
        fc.save()
        matmul = measured_matmul(fc, measure=measure) or CALIBRATION["matmul_flops"]
        fc.save()
        result = calibrate(works, matmul=matmul)
        print("\n" + json.dumps(result.constants, indent=2))
        for prof, ratios in result.ratios.items():
            print(prof, {n[:2]: round(r, 2) for n, r in ratios.items()})
    if args.json:
        atomic_write_json(args.json, report)
    return 0
