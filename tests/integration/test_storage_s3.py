"""Shard commits against a local folder and a real S3 server (moto on 127.0.0.1)."""

import pyarrow as pa
import pytest

from metamath_ray.storage import RunStore, StorageError, resolve_filesystem, validate_run_name

pytestmark = pytest.mark.integration


def _table(n):
    return pa.table({"id": [f"r{i}" for i in range(n)], "x": list(range(n))})


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return RunStore(str(tmp_path / "out"), "run1")
    bucket = request.getfixturevalue("s3_env")
    return RunStore(f"s3://{bucket}/prefix", "run1")


def test_commit_once_never_overwrites(store):
    first = store.commit_table("data/part-00000.parquet", _table(3))
    assert first.created and first.rows == 3
    again = store.commit_table("data/part-00000.parquet", _table(5))  # a rerun with other content
    assert not again.created and again.rows == 3 and again.sha256 == first.sha256
    assert store.read_table("data/part-00000.parquet").num_rows == 3
    assert store.list("data", ".parquet") == ["data/part-00000.parquet"]


def test_json_and_listing(store):
    store.write_json("stats.json", {"a": 1})
    store.write_json("stats.json", {"a": 2})  # small documents are rewritten whole
    assert store.read_json("stats.json") == {"a": 2}
    for i in (2, 0, 1):
        store.commit_table(f"rejected/part-{i:05d}.parquet", _table(1))
    assert store.list("rejected") == [f"rejected/part-{i:05d}.parquet" for i in range(3)]
    assert store.list("missing") == []


def test_local_crash_leaves_nothing_visible(tmp_path, monkeypatch):
    store = RunStore(str(tmp_path), "r")
    import metamath_ray.storage as storage

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(storage.os, "replace", boom)
    with pytest.raises(OSError):
        store.commit_table("data/part-00000.parquet", _table(2))
    assert not store.exists("data/part-00000.parquet")
    assert store.list("data") == []  # the temporary file is hidden (dot-prefixed)


def test_s3_endpoint_from_env_and_no_credentials_in_repr(s3_env):
    fs, path = resolve_filesystem(f"s3://{s3_env}/a/b")
    assert path == f"{s3_env}/a/b"
    assert "testing-secret-do-not-log" not in repr(fs)


@pytest.mark.parametrize("name", ["", "..", "../x", "a/b", "/abs", "a b", ".hidden", "x" * 200])
def test_run_names_cannot_escape(name):
    with pytest.raises(StorageError):
        validate_run_name(name)


@pytest.mark.parametrize("uri", ["gs://bucket/x", "s3://"])
def test_unsupported_uris(uri):
    with pytest.raises(StorageError):
        resolve_filesystem(uri)
