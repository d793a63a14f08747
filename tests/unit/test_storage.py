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


NETWORK_DOWN = ("When getting information for key 'r/a.json' in bucket 'b': AWS Error NETWORK_CONNECTION during "
                "HeadObject operation: curlCode: 7, Could not connect to server; Details: Failed to connect to "
                "127.0.0.1:9 after 0 ms: Could not connect to server")
ACCESS_DENIED = ("When getting information for bucket 'b': AWS Error ACCESS_DENIED during HeadBucket operation: "
                 "No response body.")
BAD_KEY = ("When initiating multiple part upload for key 'a/b' in bucket 'b': AWS Error INVALID_ACCESS_KEY_ID during "
           "CreateMultipartUpload operation: The AWS Access Key Id you provided does not exist in our records. "
           "(Request ID: abc)")
NO_BUCKET = ("When initiating multiple part upload for key 'a/b' in bucket 'gone': AWS Error NO_SUCH_BUCKET during "
             "CreateMultipartUpload operation: The specified bucket does not exist (Request ID: abc)")


@pytest.mark.parametrize("message, transient", [
    (NETWORK_DOWN, True),
    ("AWS Error SLOW_DOWN during PutObject operation: Please reduce your request rate.", True),
    ("AWS Error UNKNOWN (HTTP status 503) during HeadObject operation: No response body.", True),
    (ACCESS_DENIED, False),
    (BAD_KEY, False),
    (NO_BUCKET, False),
    ("AWS Error UNKNOWN (HTTP status 403) during HeadBucket operation: No response body.", False),
    ("AWS Error UNKNOWN (HTTP status 400) during HeadBucket operation: No response body.", False),
])
def test_s3_answers_that_retrying_cannot_change_are_not_transient(message, transient):
    assert storage.is_transient(OSError(message)) is transient


def test_every_retry_is_logged_with_what_where_and_attempt(no_sleep, caplog):
    errors = [OSError(NETWORK_DOWN), OSError(NETWORK_DOWN)]

    def op():
        if errors:
            raise errors.pop()
        return "ok"

    with caplog.at_level("WARNING", logger="metamath_ray.storage"):
        assert storage.with_retries(op, attempts=4, what="reading", where="s3://b/r/a.json at endpoint X") == "ok"
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        f"attempt {n}/4 failed, retrying in {d} s: reading s3://b/r/a.json at endpoint X: "
        "NETWORK_CONNECTION during HeadObject: Failed to connect to 127.0.0.1:9 after 0 ms: Could not connect to server"
        for n, d in ((1, "0.5"), (2, "1.0"))
    ]


def test_s3_retries_fill_the_outage_budget_then_fail_in_one_line(no_sleep, monkeypatch):
    monkeypatch.setenv(storage.OUTAGE_BUDGET_ENV, "5")
    calls = []

    def op():
        calls.append(1)
        raise OSError(NETWORK_DOWN)

    with pytest.raises(storage.StorageError) as caught:
        storage.with_retries(op, what="reading",
                             where="s3://b/r/a.json at endpoint http://127.0.0.1:9 (AWS_ENDPOINT_URL)")
    assert no_sleep == [0.5, 1.0, 2.0] and len(calls) == 4  # the next delay (4 s) would end after 5 s
    message = str(caught.value)
    assert "\n" not in message and message.startswith("S3 unreachable: reading s3://b/r/a.json at endpoint "
                                                      "http://127.0.0.1:9 (AWS_ENDPOINT_URL) failed 4 times")
    assert "Could not connect to server; check AWS_ENDPOINT_URL" in message


def test_no_retry_starts_after_the_budget(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(storage.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(storage.time, "sleep", lambda s: clock.__setitem__(0, clock[0] + s))

    def slow_failure():
        clock[0] += 10.0  # every try takes 10 s (a connect timeout)
        raise OSError(NETWORK_DOWN)

    with pytest.raises(storage.StorageError, match="failed 3 times in 32 s"):
        storage.with_retries(slow_failure, attempts=10, budget_s=25.0)
    assert clock[0] == 31.5  # tries start at 0, 10.5 and 21.5 s; a fourth would start at 31.5 + 2 s > 25 s


@pytest.mark.parametrize("message, expected", [
    (ACCESS_DENIED, "S3 refused access: writing s3://b/x at endpoint E: ACCESS_DENIED during HeadBucket: "
                    "No response body; check the credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or "
                    "AWS_PROFILE) and AWS_ENDPOINT_URL"),
    (BAD_KEY, "S3 refused access: writing s3://b/x at endpoint E: INVALID_ACCESS_KEY_ID during CreateMultipartUpload: "
              "The AWS Access Key Id you provided does not exist in our records; check the credentials "
              "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE) and AWS_ENDPOINT_URL"),
    (NO_BUCKET, "S3 bucket 'gone' does not exist: writing s3://b/x at endpoint E: create it, or check the bucket "
                "name and AWS_ENDPOINT_URL"),
])
def test_refused_s3_requests_fail_at_once_in_one_line(message, expected, no_sleep):
    def op():
        raise OSError(message)

    with pytest.raises(storage.StorageError) as caught:
        storage.with_retries(op, what="writing", where="s3://b/x at endpoint E")
    assert str(caught.value) == expected and no_sleep == []


def test_an_s3_error_without_a_where_names_the_endpoint_of_the_environment(no_sleep, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)

    def op():
        raise OSError(ACCESS_DENIED)

    with pytest.raises(storage.StorageError, match=r"\(no endpoint: AWS's default; set AWS_ENDPOINT_URL for "
                                                   r"MinIO/SeaweedFS/moto\)"):
        storage.with_retries(op)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "minio.lan:9000")
    with pytest.raises(storage.StorageError, match=r"at endpoint https://minio.lan:9000 \(AWS_ENDPOINT_URL\)"):
        storage.with_retries(op)


@pytest.mark.parametrize("value", ["soon", "0", "-5"])
def test_a_bad_budget_is_a_one_line_error(value, monkeypatch, no_sleep):
    monkeypatch.setenv(storage.OUTAGE_BUDGET_ENV, value)

    def op():
        raise OSError(NETWORK_DOWN)

    with pytest.raises(storage.StorageError, match=f"{storage.OUTAGE_BUDGET_ENV}=.*positive number of seconds"):
        storage.with_retries(op)


class _PolicyS3:
    """get_file_info as S3 answers it under a policy that refuses some paths (ACCESS_DENIED)."""

    def __init__(self, refused: set[str]):
        self.refused, self.asked = refused, []

    def get_file_info(self, path):
        self.asked.append(path)
        if path in self.refused:
            raise OSError(ACCESS_DENIED)
        return storage.pafs.FileInfo(path, storage.pafs.FileType.NotFound)


def test_a_refused_head_bucket_lets_the_uri_path_decide():
    prefix_only = _PolicyS3(refused={"b"})  # no s3:ListBucket on the bucket, the prefix allowed
    assert storage._bucket_exists(prefix_only, "b", "b/runs") and prefix_only.asked == ["b", "b/runs"]
    with pytest.raises(OSError, match="ACCESS_DENIED"):
        storage._bucket_exists(_PolicyS3(refused={"b", "b/runs"}), "b", "b/runs")
    with pytest.raises(OSError, match="ACCESS_DENIED"):
        storage._bucket_exists(_PolicyS3(refused={"b"}), "b", "b")  # the URI is the bucket: nothing else to ask
    assert not storage._bucket_exists(_PolicyS3(refused=set()), "b", "b/runs")  # HeadBucket 404: no such bucket


def test_the_endpoint_is_read_back_from_the_filesystem(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    endpoint = storage.S3Endpoint.resolve()
    fs = storage.pafs.S3FileSystem(**storage._s3_options(endpoint, "us-east-1", 1))
    assert storage.S3Endpoint.of(fs) == endpoint == storage.S3Endpoint("http://127.0.0.1:9000", "AWS_ENDPOINT_URL")
    assert storage.S3Endpoint.of(storage.pafs.S3FileSystem(region="us-east-1")).url is None
    assert storage.S3Endpoint.resolve("https://other:1") == storage.S3Endpoint("https://other:1", "endpoint_url")


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
