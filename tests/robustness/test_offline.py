"""Offline: importing the package opens no connection, and the default smoke path (data, the bundled
encoder, a joint training run) runs with every socket blocked and ``HF_HUB_OFFLINE=1``.

Each check runs in a fresh interpreter whose socket module refuses and records every attempt, so a
library that swallows the error (and falls back quietly) is still caught.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

GUARD = textwrap.dedent(
    """
    import json, socket
    ATTEMPTS = []
    def refuse(kind):
        def blocked(*args, **kwargs):
            ATTEMPTS.append(f"{kind} {args[1:] if kind == 'connect' else args}"[:200])
            raise OSError("network access is blocked in this test")
        return blocked
    socket.socket.connect = refuse("connect")
    socket.socket.connect_ex = refuse("connect")
    socket.getaddrinfo = refuse("getaddrinfo")
    socket.create_connection = refuse("create_connection")
    """
)


def run_guarded(body: str) -> dict:
    code = GUARD + textwrap.dedent(body) + "\nprint('RESULT ' + json.dumps({'attempts': ATTEMPTS, **OUT}))\n"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


def test_importing_every_module_makes_no_network_call():
    result = run_guarded(
        """
        import importlib, pkgutil
        import mtrec_utils
        names = [m.name for m in pkgutil.walk_packages(mtrec_utils.__path__, "mtrec_utils.")
                 if not m.name.endswith("__main__")]
        for name in names:
            importlib.import_module(name)
        OUT = {"modules": len(names)}
        """
    )
    assert result["modules"] >= 30
    assert result["attempts"] == []


def test_the_smoke_path_runs_with_sockets_blocked():
    result = run_guarded(
        """
        import torch
        torch.set_num_threads(1)
        from mtrec_utils.core.config import resolve_profile, set_seed
        from mtrec_utils.data import load_clothing, load_movielens
        from mtrec_utils.models.encoders import load_encoder
        from mtrec_utils.training.experiments import run_experiment
        from mtrec_utils.training.bundles import movielens_bundle

        ml = load_movielens()
        clothing = load_clothing()
        encoder = load_encoder("bundled-minilm")
        bundle = movielens_bundle(resolve_profile("smoke"), encoder, set_seed(0), progress=False)
        result = run_experiment(bundle, ["rating", "like"], epochs=1)
        OUT = {"ratings": len(ml.ratings), "reviews": len(clothing), "rmse": result.test["rating/rmse"]}
        """
    )
    assert result["attempts"] == []
    assert (result["ratings"], result["reviews"]) == (100_000, 23_486)
    assert 0.7 < result["rmse"] < 1.5
