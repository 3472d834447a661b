"""The `gpu` profile's code path, run on the CPU on a tiny slice so that it cannot rot without a GPU.

At `gpu` the text encoder is fine-tuned end to end (``encoder_mode="full"``) inside the joint model, with
mixed precision and the profile's batch shapes (128 ratings, texts of up to 128 tokens). Here the same
bundles, models and training loop run with those settings on a few hundred ratings and reviews, with
the tiny random encoder and bf16 autocast (the CPU's mixed precision; a T4 would use fp16 with loss
scaling, which Accelerate offers on CUDA only).
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from mtrec_utils.core.config import resolve_profile
from mtrec_utils.models.encoders import load_encoder
from mtrec_utils.models.towers import EncoderText
from mtrec_utils.training.bundles import clothing_bundle, movielens_bundle
from mtrec_utils.training.experiments import run_experiment

GPU = resolve_profile("gpu")
TINY_GPU = dataclasses.replace(
    GPU, max_train_ratings=256, max_test_ratings=40, max_clothing_reviews=300, max_eval_users=10, epochs=1
)


@pytest.fixture(scope="module")
def encoder(data_cache):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MTREC_DATA", str(data_cache))
        mp.setenv("MTREC_OFFLINE", "1")
        yield load_encoder("tiny-random", device="cpu")


def _bundle(make, encoder, data_cache):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MTREC_DATA", str(data_cache))
        mp.setenv("MTREC_OFFLINE", "1")
        kwargs = {"max_val_users": 10} if make is movielens_bundle else {}
        return make(TINY_GPU, encoder, torch.Generator().manual_seed(0), progress=False, **kwargs)


def _text_weights(modules) -> list[torch.Tensor]:
    return [p.detach() for m in modules if isinstance(m, EncoderText) for p in m.parameters()]


@pytest.mark.parametrize("dataset", ["movielens", "clothing"])
def test_the_gpu_profile_fine_tunes_the_encoder_jointly_with_mixed_precision(dataset, encoder, data_cache):
    assert GPU.encoder_mode == "full" and GPU.batch_size == 128 and GPU.max_length == 128
    bundle = _bundle(movielens_bundle if dataset == "movielens" else clothing_bundle, encoder, data_cache)
    batch = next(iter(next(iter(bundle.train.values()))))
    rows = next(v for v in batch.values() if isinstance(v, torch.Tensor) and v.dim() >= 1).shape[0]
    assert rows == min(128, len(next(iter(bundle.train.values())).dataset))  # the profile's batch size
    tasks = list(bundle.tasks)
    run = run_experiment(
        bundle,
        tasks,
        seed=0,
        epochs=1,
        lr=GPU.lr,
        encoder_lr=GPU.encoder_lr,
        patience=GPU.patience,
        device="cpu",
        mixed_precision="bf16",
    )
    start = _text_weights(bundle.texts.values())  # the bundle keeps the pretrained encoder; runs train copies
    tuned = _text_weights(run.model.modules())
    assert start and len(tuned) >= len(start), "at gpu the text encoder sits inside the trained model"
    assert any(
        p.requires_grad for m in run.model.modules() if isinstance(m, EncoderText) for p in m.parameters()
    )
    assert any(not torch.equal(a, b) for a, b in zip(start, tuned)), "the encoder's weights did not change"
    assert all(math.isfinite(v) for v in run.test.values()), run.test
    assert set(run.history.columns) >= {f"loss/{t}" for t in tasks}


def test_the_cached_copy_of_the_gpu_clothing_bundle_has_the_same_reviews_and_split(encoder, data_cache):
    """Notebook 04 at gpu fine-tunes the encoder on `cl` (section 2) and compares strategies and
    architectures on `cl_cached` (sections 4, 5 and 9), built in frozen mode from the generator state that
    `cl` started from: the same reviews in every split, read through cached embeddings."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MTREC_DATA", str(data_cache))
        mp.setenv("MTREC_OFFLINE", "1")
        generator = torch.Generator().manual_seed(0)
        state = generator.get_state()
        tuned = clothing_bundle(TINY_GPU, encoder, generator, progress=False)
        replay = torch.Generator().set_state(state)
        cached = clothing_bundle(TINY_GPU, encoder, replay, mode="frozen", progress=False)
    for part in ("train", "val", "test"):
        a = getattr(tuned, part)["reviews"].dataset.tensors
        b = getattr(cached, part)["reviews"].dataset.tensors
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), part
    assert any(isinstance(m, EncoderText) for m in tuned.texts.values())
    assert not any(isinstance(m, EncoderText) for m in cached.texts.values())
