"""Checkpoints never execute code and are never half-written."""

from __future__ import annotations

import os
import pickle

import pytest
import safetensors
import torch

from mtrec_utils.core import io as mtrec_io
from mtrec_utils.training.loop import load_checkpoint, save_checkpoint


class Payload:
    """A pickle that runs code when loaded: it would create the file named by ``marker``."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_checkpoint_round_trip(tmp_path):
    model = torch.nn.Linear(3, 2)
    path = save_checkpoint(model, tmp_path / "best.safetensors")
    other = torch.nn.Linear(3, 2)
    load_checkpoint(other, path)
    assert torch.equal(other.weight, model.weight) and torch.equal(other.bias, model.bias)


def test_a_pickle_carrying_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"weight": Payload(str(marker))}))
    with pytest.raises(
        safetensors.SafetensorError
    ):  # not a safetensors header: refused before any unpickling
        load_checkpoint(torch.nn.Linear(3, 2), evil)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(evil, weights_only=True)
    assert not marker.exists(), "loading must never run the code inside a checkpoint"


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "best.safetensors"
    save_checkpoint(torch.nn.Linear(3, 2), path)
    before = path.read_bytes()

    def killed(src, dst):
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(mtrec_io.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(torch.nn.Linear(3, 2), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["best.safetensors"], "no temporary file may be left behind"
