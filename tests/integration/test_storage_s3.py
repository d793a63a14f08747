"""The storage layer against a local folder and a real S3 server (moto on 127.0.0.1): shard
commits of RunStore and the URI-level API (read/write, JSON, listings, folders)."""

import os
import socket
import subprocess
import sys
import time

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


# ---------------------------------------------------------------------------------------------
# First contact: a wrong endpoint, bucket or credentials is one line, within the connect budget

BUDGET_S = 5.0  # the connect budget these tests run under (the default is 60 s)


@pytest.fixture()
def first_contact(monkeypatch):
    """No bucket contacted yet in this process, a short connect budget, some credentials."""
    monkeypatch.setattr(storage, "_contacted", set())
    monkeypatch.setattr(storage, "_failed", {})
    monkeypatch.setenv(storage.CONNECT_BUDGET_ENV, str(BUDGET_S))
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    return monkeypatch


def _closed_port_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens once the socket is closed


def _retries_logged(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "metamath_ray.storage"]


def _fails_in_one_line(fn) -> tuple[str, float]:
    started = time.monotonic()
    with pytest.raises(StorageError) as caught:
        fn()
    message = str(caught.value)
    assert "\n" not in message
    return message, time.monotonic() - started


@pytest.mark.parametrize("endpoint", ["http://no-such-host.invalid:9000", "closed port"])
def test_an_unreachable_endpoint_fails_within_the_budget(first_contact, endpoint, caplog):
    endpoint = _closed_port_endpoint() if endpoint == "closed port" else endpoint
    first_contact.setenv("AWS_ENDPOINT_URL", endpoint)
    with caplog.at_level("WARNING", logger="metamath_ray.storage"):
        message, elapsed = _fails_in_one_line(lambda: RunStore("s3://bucket/runs", "r1"))
    assert elapsed <= BUDGET_S
    assert message.startswith(f"S3 unreachable: looking up bucket 'bucket' for s3://bucket/runs at endpoint {endpoint} "
                              "(AWS_ENDPOINT_URL) failed 3 times")  # tries at 0, 1, 3 s; one at 7 s ends too late
    assert message.endswith("check AWS_ENDPOINT_URL and that the store is up")
    retries = _retries_logged(caplog)
    assert [r.split(" failed")[0] for r in retries] == ["attempt 1/3", "attempt 2/3"]
    assert all(f"looking up bucket 'bucket' for s3://bucket/runs at endpoint {endpoint}" in r for r in retries)
    # The cleanup after a failed command (e.g. copying its log there) is told at once, not after another budget.
    again, elapsed = _fails_in_one_line(lambda: storage.write_text("s3://bucket/runs/r1/logs/x.log", "x"))
    assert again == message and elapsed < 0.5


def test_no_endpoint_says_so_and_names_aws_endpoint_url(first_contact):
    first_contact.delenv("AWS_ENDPOINT_URL", raising=False)
    message, elapsed = _fails_in_one_line(lambda: storage.read_text("s3://bucket/seeds.jsonl"))
    # In the loopback-only namespace AWS's host does not resolve; with a network AWS would refuse the
    # request instead (not our bucket): either way, one line that says where it went.
    assert ("s3://bucket/seeds.jsonl (no endpoint: AWS's default; set AWS_ENDPOINT_URL for MinIO/SeaweedFS/moto)"
            in message)
    assert elapsed <= BUDGET_S


def test_a_missing_bucket_is_named_at_once(first_contact, s3_server, caplog):
    first_contact.setenv("AWS_ENDPOINT_URL", s3_server)
    with caplog.at_level("WARNING", logger="metamath_ray.storage"):
        message, elapsed = _fails_in_one_line(lambda: storage.write_text("s3://no-such-bucket/x/a.txt", "x"))
    assert message == (f"S3 bucket 'no-such-bucket' does not exist: s3://no-such-bucket/x/a.txt at endpoint "
                       f"{s3_server} (AWS_ENDPOINT_URL); create it, or check the bucket name and AWS_ENDPOINT_URL")
    assert elapsed < 1.0 and not _retries_logged(caplog)  # an answer, not weather: no retries


@pytest.fixture()
def moto_checks_credentials(monkeypatch):
    """moto answers 403 from now on: the access key 'testing' is unknown to its IAM."""
    import moto.settings

    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)


def test_wrong_credentials_fail_at_once(first_contact, s3_env, s3_server, moto_checks_credentials, caplog):
    with caplog.at_level("WARNING", logger="metamath_ray.storage"):
        message, elapsed = _fails_in_one_line(lambda: RunStore(f"s3://{s3_env}/runs", "r1"))
    assert message.startswith(f"S3 refused access: looking up bucket '{s3_env}' for s3://{s3_env}/runs at endpoint "
                              f"{s3_server} (AWS_ENDPOINT_URL): ACCESS_DENIED during Head")
    assert message.endswith("check the credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE) "
                            "and AWS_ENDPOINT_URL")
    assert "testing-secret" not in message
    assert elapsed < 1.0 and not _retries_logged(caplog)


def test_refused_credentials_after_first_contact_are_not_retried(first_contact, s3_env, s3_server, caplog):
    import moto.settings

    store = RunStore(f"s3://{s3_env}/runs", "r1")  # contact made while moto accepts anyone
    first_contact.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # e.g. the key was revoked mid-run
    with caplog.at_level("WARNING", logger="metamath_ray.storage"):
        message, elapsed = _fails_in_one_line(lambda: store.commit_bytes("data/part-00000.parquet", b"shard"))
    assert message.startswith(f"S3 refused access: looking up s3://{s3_env}/runs/r1/data/part-00000.parquet at "
                              f"endpoint {s3_server} (AWS_ENDPOINT_URL): ")
    assert elapsed < 1.0 and not _retries_logged(caplog)


@pytest.mark.parametrize("command", [
    ["augment", "--output", "s3://bucket/runs", "--model", "tiny", "--limit", "2"],
    ["train", "--data", "s3://bucket/runs/augment", "--model", "tiny", "--output", "s3://bucket/runs"],
    ["evaluate", "--model", "tiny", "--datasets", "gsm8k", "--output", "s3://bucket/runs", "--limit", "2"],
])
def test_each_command_fails_in_one_line_naming_the_endpoint(command, tmp_path):
    """The CLI as a new user runs it: retries on the console, then one line and status 2, in bounded time."""
    endpoint = _closed_port_endpoint()
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, storage.CONNECT_BUDGET_ENV: "3", "TMPDIR": str(tmp_path),
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "metamath_ray.cli", *command], env=env, capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    elapsed = time.monotonic() - started
    assert done.returncode == 2, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: S3 unreachable: looking up bucket 'bucket' for s3://bucket/runs")
    assert f"at endpoint {endpoint} (AWS_ENDPOINT_URL) failed 2 times" in last
    assert "attempt 1/2 failed, retrying in 1.0 s" in done.stderr and "Traceback" not in done.stderr
    print(f"{command[0]}: status 2 after {elapsed:.1f} s (interpreter start included)")
