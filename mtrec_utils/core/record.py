"""Record a notebook's results, and read them back.

In a notebook::

    run = start_run("03_single_task_baselines", profile=PROFILE, seed=SEED,
                    device=DEVICE, output_dir=OUTPUT_DIR)
    record("ml_u1_rmse_mf", rmse)

Each call displays the value and rewrites ``OUTPUT_DIR/metrics/<notebook>.json`` atomically::

    {"notebook": ..., "profile": ..., "seed": ..., "device": ..., "version": ...,
     "metrics": {name: value}}
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtrec_utils import __version__
from mtrec_utils.core.config import get_device, resolve_profile
from mtrec_utils.core.io import atomic_write_json

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_current: Run | None = None


@dataclass
class Run:
    """One notebook execution whose metrics are being recorded."""

    notebook: str
    profile: str
    seed: int
    device: str
    output_dir: Path
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        """Where this run's metrics file lives."""
        return self.output_dir / "metrics" / f"{self.notebook}.json"

    def to_dict(self) -> dict[str, Any]:
        return {
            "notebook": self.notebook,
            "profile": self.profile,
            "seed": self.seed,
            "device": self.device,
            "version": __version__,
            "metrics": dict(self.metrics),
        }

    def save(self) -> Path:
        """Write the metrics file atomically."""
        return atomic_write_json(self.path, self.to_dict())


def start_run(
    notebook: str,
    *,
    profile: str = "auto",
    seed: int = 0,
    device: str = "auto",
    output_dir: str | Path = "../outputs",
) -> Run:
    """Begin recording for ``notebook``; later :func:`record` calls write to its metrics file.

    ``profile`` and ``device`` are resolved (``auto`` becomes what it picked), so the file says
    what actually ran. Starting a run replaces the notebook's previous metrics file.
    """
    global _current
    _current = Run(
        notebook=notebook,
        profile=resolve_profile(profile).name,
        seed=int(seed),
        device=str(get_device(device)),
        output_dir=Path(output_dir),
    )
    _current.save()
    return _current


def current_run() -> Run:
    """The active run; raises RuntimeError with the fix when :func:`start_run` was not called."""
    if _current is None:
        raise RuntimeError("no run started: call mtrec_utils.core.record.start_run(NOTEBOOK, ...) first")
    return _current


def _plain(value: Any) -> Any:
    """Convert numpy/torch scalars and containers to JSON-friendly Python values."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"refusing to record a non-finite value ({value}); check the computation")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot record a value of type {type(value).__name__}; use a number, str, list or dict")


def or_none(value: Any) -> float | None:
    """``value`` as a float, or ``None`` when it is NaN: the mean of an empty group (bucket) has no value.

    A notebook records every name at every seed and profile; an empty bucket records ``None`` (JSON
    ``null``), which the expected bands accept where some seeds had it, instead of leaving the name out.
    """
    number = float(value)
    return None if math.isnan(number) else number


def record(name: str, value: Any, *, show: bool = True) -> None:
    """Record metric ``name`` = ``value`` for the active run, write it atomically and display it.

    Args:
        name: snake_case, prefixed by dataset (e.g. ``ml_u1_rmse_mf``).
        value: a number, string, or a list/dict of them.
        show: print ``name = value`` (default True).

    Returns nothing, so that a notebook cell ending in ``record(...)`` shows the value once.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"metric name {name!r} must be snake_case (a-z, 0-9, _), starting with a letter")
    run = current_run()
    stored = _plain(value)
    run.metrics[name] = stored
    run.save()
    if show:
        shown = f"{stored:.6g}" if isinstance(stored, float) else stored
        print(f"recorded {name} = {shown}")


def load_metrics(path: str | Path) -> dict[str, Any]:
    """Read one metrics file; raises ValueError if it is not a valid metrics file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); re-run its notebook to rewrite it") from e
    missing = {"notebook", "profile", "seed", "device", "version", "metrics"} - set(data)
    if missing:
        raise ValueError(f"{path} lacks the keys {sorted(missing)}; re-run its notebook to rewrite it")
    return data


def read_metrics(output_dir: str | Path = "../outputs") -> dict[str, dict[str, Any]]:
    """All metrics files under ``output_dir/metrics``, keyed by notebook name."""
    folder = Path(output_dir) / "metrics"
    return {p.stem: load_metrics(p) for p in sorted(folder.glob("*.json"))}
