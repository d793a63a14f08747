"""The storage layer on local paths: join, atomic writes, retries, listings, folders, run names.

The same API on a real S3 server is in tests/integration/test_storage_s3.py.
"""

from __future__ import annotations

import errno
import os

import pytest
from pydantic import BaseModel, ValidationError

from metamath_ray import storage
from metamath_ray.storage import RunName, RunStore, join


@pytest.fixture
def no_sleep(monkeypatch) -> list[float]:
    """Back-off delays are recorded instead of slept."""
    delays: list[float] = []
    monkeypatch.setattr(storage.time, "sleep", delays.append)
    return delays


def _visible_and_hidden(folder) -> tuple[list[str], list[str]]:
    names = sorted(os.listdir(folder))
    return [n for n in names if not n.startswith(".")], [n for n in names if n.startswith(".")]


# ---------------------------------------------------------------------------------------------
# join


@pytest.mark.parametrize(
    "base, parts, expected",
    [
        ("s3://bucket/prefix", ("run", "report.json"), "s3://bucket/prefix/run/report.json"),
        ("s3://bucket/prefix/", ("run/",), "s3://bucket/prefix/run"),
        ("s3://bucket", ("a/b", "c"), "s3://bucket/a/b/c"),
        ("s3://bucket/k", ("/abs",), "s3://bucket/k/abs"),  # a leading '/' never drops the base
        ("/data/out", ("/run", "/x.json"), "/data/out/run/x.json"),
        ("/data/out/", ("run",), "/data/out/run"),
        ("relative/dir", ("a",), "relative/dir/a"),
        ("out", ("", "a", "", "b"), "out/a/b"),  # empty parts skipped
        ("out", ("/",), "out"),
        ("out/", (), "out"),
        ("/", ("a", "b"), "/a/b"),
        ("", ("a",), "a"),
        ("file:///tmp/x", ("y",), "file:///tmp/x/y"),
    ],
)
def test_join(base, parts, expected):
    assert join(base, *parts) == expected


# ---------------------------------------------------------------------------------------------
# reading and writing


def test_bytes_text_and_json_round_trip(tmp_path):
    base = str(tmp_path / "new" / "folder")  # parents are created by the write
    storage.write_bytes(join(base, "a.bin"), b"\x00\xff")
    storage.write_text(join(base, "b.txt"), "héllo\n")
    storage.write_json(join(base, "c.json"), {"b": 1, "a": ["é"]})
    assert storage.read_bytes(join(base, "a.bin")) == b"\x00\xff"
    assert storage.read_text(join(base, "b.txt")) == "héllo\n"
    assert storage.read_json(join(base, "c.json")) == {"b": 1, "a": ["é"]}
    # the project's JSON format: sorted keys, indent 2, UTF-8 as is
    assert storage.read_text(join(base, "c.json")) == '{\n  "a": [\n    "é"\n  ],\n  "b": 1\n}'


def test_write_json_can_keep_the_dict_order(tmp_path):
    uri = str(tmp_path / "r.json")
    storage.write_json(uri, {"z": 1, "a": 2}, sort_keys=False)
    assert list(storage.read_json(uri)) == ["z", "a"]


def test_write_json_writes_unknown_types_as_text(tmp_path):
    uri = str(tmp_path / "p.json")
    storage.write_json(uri, {"path": tmp_path})
    assert storage.read_json(uri) == {"path": str(tmp_path)}


def test_missing_file_raises_file_not_found_at_once(tmp_path, no_sleep):
    missing = str(tmp_path / "nope.json")
    for read in (storage.read_bytes, storage.read_text, storage.read_json):
        with pytest.raises(FileNotFoundError, match="nope.json"):
            read(missing)
    assert no_sleep == []  # a missing file is not weather: no retries
    assert storage.read_text_if_exists(missing) is None


def test_a_folder_is_not_a_file(tmp_path, no_sleep):
    with pytest.raises(IsADirectoryError):
        storage.read_bytes(str(tmp_path))
    assert storage.read_text_if_exists(str(tmp_path)) is None
    assert no_sleep == []


def test_read_text_if_exists_reads_what_is_there(tmp_path):
    uri = str(tmp_path / "log.jsonl")
    storage.write_text(uri, "line\n")
    assert storage.read_text_if_exists(uri) == "line\n"


def test_exists_and_is_dir(tmp_path):
    storage.write_text(str(tmp_path / "d" / "f.txt"), "x")
    assert storage.exists(str(tmp_path / "d")) and storage.is_dir(str(tmp_path / "d"))
    assert storage.exists(str(tmp_path / "d" / "f.txt")) and not storage.is_dir(str(tmp_path / "d" / "f.txt"))
    assert not storage.exists(str(tmp_path / "e")) and not storage.is_dir(str(tmp_path / "e"))


# ---------------------------------------------------------------------------------------------
# atomic publish


def test_writes_leave_no_temporaries(tmp_path):
    for i in range(3):
        storage.write_text(str(tmp_path / "doc.txt"), f"version {i}")
    assert _visible_and_hidden(tmp_path) == (["doc.txt"], [])
    assert storage.read_text(str(tmp_path / "doc.txt")) == "version 2"


def test_failing_rename_keeps_the_old_content_and_no_temporary(tmp_path, monkeypatch, no_sleep):
    uri = str(tmp_path / "stats.json")
    storage.write_json(uri, {"v": 1})

    def disk_full(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(storage.os, "replace", disk_full)
    with pytest.raises(OSError, match="disk full"):
        storage.write_json(uri, {"v": 2})
    monkeypatch.undo()
    assert storage.read_json(uri) == {"v": 1}
    assert _visible_and_hidden(tmp_path) == (["stats.json"], [])  # every attempt's temporary removed
    assert len(no_sleep) == 5  # six attempts in all


def test_write_recovers_from_a_transient_error(tmp_path, monkeypatch, no_sleep):
    real_replace = os.replace
    failures = [OSError("stale handle")]

    def flaky_replace(src, dst):
        if failures:
            raise failures.pop()
        real_replace(src, dst)

    monkeypatch.setattr(storage.os, "replace", flaky_replace)
    storage.write_text(str(tmp_path / "a.txt"), "ok")
    assert storage.read_text(str(tmp_path / "a.txt")) == "ok"
    assert no_sleep == [0.5]
    assert _visible_and_hidden(tmp_path) == (["a.txt"], [])


# ---------------------------------------------------------------------------------------------
# retries


def test_with_retries_backs_off_then_succeeds(no_sleep):
    outcomes: list = [OSError("reset"), OSError("reset"), "done"]

    def op():
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert storage.with_retries(op) == "done"
    assert no_sleep == [0.5, 1.0]


def test_with_retries_gives_up_after_the_last_attempt(no_sleep):
    calls = []

    def op():
        calls.append(1)
        raise OSError("server down")

    with pytest.raises(OSError, match="server down"):
        storage.with_retries(op, attempts=3, base_delay=0.1)
    assert len(calls) == 3 and no_sleep == [0.1, 0.2]


@pytest.mark.parametrize(
    "error", [FileNotFoundError("x"), PermissionError("x"), OSError(errno.ENOSPC, "No space left"), ValueError("x")]
)
def test_with_retries_does_not_retry_permanent_errors(error, no_sleep):
    def op():
        raise error

    with pytest.raises(type(error)):
        storage.with_retries(op)
    assert no_sleep == []


# ---------------------------------------------------------------------------------------------
# listings and folders


def test_listings_are_sorted_base_names_without_temporaries(tmp_path):
    base = str(tmp_path)
    for name in ("b.parquet", "a.parquet", "notes.txt", ".tmp-123-c.parquet"):
        (tmp_path / name).write_bytes(b"x")
    for name in ("step_2", "step_1", ".tmp-9-step_3"):
        (tmp_path / name).mkdir()
    assert storage.list_files(base) == ["a.parquet", "b.parquet", "notes.txt"]
    assert storage.list_files(base, suffix=".parquet") == ["a.parquet", "b.parquet"]
    assert storage.list_dirs(base) == ["step_1", "step_2"]
    assert storage.list_files(join(base, "missing")) == [] and storage.list_dirs(join(base, "missing")) == []
    assert storage.list_dirs(join(base, "notes.txt")) == []


def test_delete_dir(tmp_path):
    storage.write_text(str(tmp_path / "ckpt" / "sub" / "w.bin"), "w")
    storage.delete_dir(str(tmp_path / "ckpt"))
    assert not storage.exists(str(tmp_path / "ckpt"))
    storage.delete_dir(str(tmp_path / "ckpt"))  # missing: nothing to do
    storage.write_text(str(tmp_path / "file"), "f")
    with pytest.raises(NotADirectoryError):
        storage.delete_dir(str(tmp_path / "file"))


def _make_folder(root, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def _read_folder(root) -> dict[str, str]:
    return {
        str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_upload_replaces_and_download_round_trips(tmp_path):
    src, dest, back = tmp_path / "src", str(tmp_path / "store" / "model"), tmp_path / "back"
    _make_folder(src, {"config.json": "{}", "shards/w0.bin": "w0"})
    storage.write_text(join(dest, "stale.bin"), "from an earlier upload")
    storage.upload_dir(src, dest)
    assert storage.list_files(dest) == ["config.json"] and storage.list_dirs(dest) == ["shards"]
    assert _visible_and_hidden(tmp_path / "store") == (["model"], [])  # staging folders gone
    storage.download_dir(dest, back)
    assert _read_folder(back) == {"config.json": "{}", "shards/w0.bin": "w0"}


def test_upload_onto_itself_keeps_the_folder(tmp_path):
    _make_folder(tmp_path / "m", {"a": "1"})
    storage.upload_dir(tmp_path / "m", str(tmp_path / "m"))
    assert _read_folder(tmp_path / "m") == {"a": "1"}


def test_missing_folders_raise_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        storage.upload_dir(tmp_path / "none", str(tmp_path / "dest"))
    with pytest.raises(FileNotFoundError):
        storage.download_dir(str(tmp_path / "none"), tmp_path / "dest")


# ---------------------------------------------------------------------------------------------
# RunStore shares the code path; RunName


def test_run_store_and_uri_api_see_the_same_files(tmp_path):
    store = RunStore(str(tmp_path), "run1")
    store.write_json("stats.json", {"n": 1})
    assert storage.read_json(join(store.uri, "stats.json")) == {"n": 1}
    storage.write_bytes(join(store.uri, "data", "part-00000.parquet"), b"p")
    assert store.list("data", ".parquet") == ["data/part-00000.parquet"]
    assert store.read_bytes("data/part-00000.parquet") == b"p"
    with pytest.raises(FileNotFoundError, match="run1/absent"):
        store.read_bytes("absent")


class _Config(BaseModel):
    run_name: RunName = "default"


@pytest.mark.parametrize("name", ["eval", "run-1", "a.b_c", "7B", "x" * 128])
def test_run_name_accepts(name):
    assert _Config(run_name=name).run_name == name


@pytest.mark.parametrize("name", ["", "..", "a..b", "../x", "a/b", "/abs", "a b", ".hidden", "-x", "x" * 129])
def test_run_name_refuses(name):
    with pytest.raises(ValidationError, match="invalid run name"):
        _Config(run_name=name)


def test_run_name_is_described_in_the_schema():
    assert "letters, digits" in _Config.model_json_schema()["properties"]["run_name"]["description"]
