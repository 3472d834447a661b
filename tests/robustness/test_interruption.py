"""A training process killed mid-epoch (SIGKILL, no clean-up) resumes from its state file and ends with
exactly the metrics of a run that was never interrupted (smoke data, CPU, same seed)."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mtrec_utils.training.resume import load_training_state, save_training_state

SCRIPT = Path(__file__).with_name("resume_script.py")
# The script's model makes about 62 forward passes per epoch (30 steps x 2 data sources + validation).
FIRST_KILL, SECOND_KILL = 100, 70  # mid epoch 2; then, counted from the resumed start, mid epoch 3


def train(state: Path, out: Path, kill_at: int = 0) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(SCRIPT), str(state), str(out), "--epochs", "3"]
    if kill_at:
        cmd += ["--kill-at-forward", str(kill_at)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}  # each run gets its own random string-hash seed
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture(scope="module")
def uninterrupted_folder(tmp_path_factory) -> Path:
    """A run never interrupted: its finished state file and OUT.json."""
    folder = tmp_path_factory.mktemp("whole")
    done = train(folder / "state.pt", folder / "out.json")
    assert done.returncode == 0, done.stderr[-3000:]
    return folder


@pytest.fixture(scope="module")
def uninterrupted(uninterrupted_folder) -> dict:
    return json.loads((uninterrupted_folder / "out.json").read_text())


def test_killed_twice_mid_epoch_resumes_to_the_same_metrics(tmp_path, uninterrupted):
    state, out = tmp_path / "state.pt", tmp_path / "out.json"
    killed = train(state, out, FIRST_KILL)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not out.exists()
    saved = load_training_state(state)
    assert (saved["epoch"], saved["done"]) == (1, False)  # the kill landed in epoch 2

    killed = train(state, out, SECOND_KILL)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert "resuming after epoch 1" in killed.stdout
    assert load_training_state(state)["epoch"] == 2

    resumed = train(state, out)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming after epoch 2" in resumed.stdout
    result = json.loads(out.read_text())
    assert result["test"] == uninterrupted["test"]  # bit-for-bit, not approximately
    assert result["history"] == uninterrupted["history"]
    assert result["forward_passes"] == 0  # the last run made no kill hook


def test_a_finished_run_called_again_does_not_train_again(tmp_path, uninterrupted_folder, uninterrupted):
    state, out = tmp_path / "state.pt", tmp_path / "out.json"
    shutil.copy(uninterrupted_folder / "state.pt", state)  # the state file a finished run leaves
    again = train(state, out)
    assert again.returncode == 0 and "resuming after epoch 3 (done=True)" in again.stdout
    assert json.loads(out.read_text())["test"] == uninterrupted["test"]


def test_a_damaged_state_file_is_reported_not_loaded(tmp_path):
    path = tmp_path / "state.pt"
    save_training_state(path, {"epoch": 1, "weights": torch.ones(3)})
    assert load_training_state(path)["epoch"] == 1
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(ValueError, match="not a readable training state.*delete it"):
        load_training_state(path)


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_a_state_file_carrying_code_is_refused(tmp_path):
    path = tmp_path / "state.pt"
    path.write_bytes(pickle.dumps({"version": 1, "model": _Payload()}))
    with pytest.raises(ValueError, match="not a readable training state"):
        load_training_state(path)
