"""The storage layer against a local folder and a real S3 server (moto on 127.0.0.1): shard
commits of RunStore and the URI-level API (read/write, JSON, listings, folders)."""

import pyarrow as pa
import pytest

from metamath_ray import storage
from metamath_ray.storage import RunStore, StorageError, join, resolve_filesystem, validate_run_name

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
    monkeypatch.setattr(storage.time, "sleep", lambda s: None)  # the retries' back-off

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


# ---------------------------------------------------------------------------------------------
# URI-level API, the same assertions on a local folder and on s3://


@pytest.fixture(params=["local", "s3"])
def base(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "base")
    return f"s3://{request.getfixturevalue('s3_env')}/prefix"


def test_uri_read_write_text_and_json(base):
    storage.write_bytes(join(base, "run", "a.bin"), b"\x00\x01")
    storage.write_text(join(base, "run", "log.txt"), "first\n")
    storage.write_text(join(base, "run", "log.txt"), "second\n")  # replaced whole
    storage.write_json(join(base, "run", "stats.json"), {"b": [1], "a": "é"})
    assert storage.read_bytes(join(base, "run", "a.bin")) == b"\x00\x01"
    assert storage.read_text(join(base, "run", "log.txt")) == "second\n"
    assert storage.read_json(join(base, "run", "stats.json")) == {"b": [1], "a": "é"}
    assert storage.exists(join(base, "run", "stats.json")) and storage.is_dir(join(base, "run"))
    assert not storage.is_dir(join(base, "run", "stats.json"))


def test_uri_missing_file(base):
    missing = join(base, "run", "absent.json")
    with pytest.raises(FileNotFoundError, match="absent.json"):
        storage.read_bytes(missing)
    assert storage.read_text_if_exists(missing) is None
    assert not storage.exists(missing) and not storage.is_dir(join(base, "nothing"))


def test_uri_listings(base):
    for name in ("step_2/w.bin", "step_1/w.bin", "b.parquet", "a.parquet", "notes.txt"):
        storage.write_text(join(base, "ckpt", name), name)
    assert storage.list_files(join(base, "ckpt")) == ["a.parquet", "b.parquet", "notes.txt"]
    assert storage.list_files(join(base, "ckpt"), ".parquet") == ["a.parquet", "b.parquet"]
    assert storage.list_dirs(join(base, "ckpt")) == ["step_1", "step_2"]
    assert storage.list_files(join(base, "none")) == [] and storage.list_dirs(join(base, "none")) == []


def test_uri_folders_upload_download_delete(base, tmp_path):
    src = tmp_path / "src"
    (src / "shards").mkdir(parents=True)
    (src / "config.json").write_text("{}")
    (src / "shards" / "w0.bin").write_bytes(b"w0")
    dest = join(base, "run", "model")
    storage.write_text(join(dest, "stale.bin"), "an earlier upload")
    storage.upload_dir(src, dest)  # replaces: the stale file goes
    assert storage.list_files(dest) == ["config.json"] and storage.list_dirs(dest) == ["shards"]
    storage.download_dir(dest, tmp_path / "back")
    assert (tmp_path / "back" / "config.json").read_text() == "{}"
    assert (tmp_path / "back" / "shards" / "w0.bin").read_bytes() == b"w0"
    storage.delete_dir(dest)
    assert not storage.exists(dest) and storage.list_dirs(join(base, "run")) == []
    storage.delete_dir(dest)  # missing: nothing to do
    with pytest.raises(FileNotFoundError):
        storage.download_dir(dest, tmp_path / "again")


def test_uri_and_run_store_share_one_path(base):
    store = RunStore(base, "run1")
    store.write_json("manifest.json", {"shards": 2})
    assert storage.read_json(join(base, "run1", "manifest.json")) == {"shards": 2}
    storage.write_bytes(join(store.uri, "data", "part-00000.parquet"), b"p")
    assert store.list("data") == ["data/part-00000.parquet"]
