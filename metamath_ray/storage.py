"""The one storage layer: local paths and `s3://` URIs through pyarrow, for every stage.

URI-level API (what stages use): `join`, `read_bytes` / `write_bytes`, `read_text` / `write_text`,
`read_json` / `write_json`, `read_text_if_exists`, `exists`, `is_dir`, `list_files`, `list_dirs`,
`delete_dir`, `upload_dir`, `download_dir`. `RunStore` is the folder of one augment run, with
exactly-once shard commits, built on the same private fs-level helpers, so there is one code path.

Guarantees, for every operation:
- Writes publish atomically: locally a temporary file in the same folder (dot-prefixed, so listings
  skip it) is written, fsynced and renamed over the target; on S3 a single PUT / completed multipart
  upload (S3 never shows a partial object). A reader sees the old bytes or the new, never a mix.
- Transient errors (an `OSError` that is not "missing", "not allowed", "wrong kind of entry", nor an
  S3 refusal) are retried with exponential back-off (`with_retries`), each retry logged, so a
  restarting object store is ridden out (`METAMATH_RAY_S3_OUTAGE_BUDGET_S`, default 600 s).
- The first use of an S3 bucket in a process contacts it (`_first_contact`): a wrong endpoint fails
  within `METAMATH_RAY_S3_CONNECT_BUDGET_S` (default 60 s), refused credentials or a missing bucket
  at once, each as a one-line `StorageError` naming the endpoint and `AWS_ENDPOINT_URL`.
- Reading a missing file raises `FileNotFoundError`.

Commit protocol of `RunStore`. A shard's name is derived from the work it holds (deterministic), so
a rerun of the same run computes the same names. `commit_*` writes a shard only if no object of that
name exists yet, atomically as above. So a crash leaves nothing visible, and a rerun duplicates and
overwrites nothing.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import logging
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, TypeVar
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pydantic import AfterValidator, Field

T = TypeVar("T")
log = logging.getLogger(__name__)


class StorageError(RuntimeError):
    pass


def is_s3(uri: str) -> bool:
    return str(uri).startswith("s3://")


# ---------------------------------------------------------------------------------------------
# S3 endpoints and time budgets

# Before the first successful contact with a store, a failure is most likely a wrong endpoint,
# bucket or credentials: give up soon, with a line that says which. After it, a failure is
# weather (a restarting server): ride it out for much longer. Both are seconds, from these variables.
CONNECT_BUDGET_ENV, CONNECT_BUDGET_DEFAULT_S = "METAMATH_RAY_S3_CONNECT_BUDGET_S", 60.0
OUTAGE_BUDGET_ENV, OUTAGE_BUDGET_DEFAULT_S = "METAMATH_RAY_S3_OUTAGE_BUDGET_S", 600.0
_ENDPOINT_VARS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")  # the AWS CLI's order


def _budget_s(env: str, default: float) -> float:
    raw = os.environ.get(env)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise StorageError(f"{env}={raw!r}: expected a positive number of seconds")
    return value


@dataclass(frozen=True)
class S3Endpoint:
    url: str | None  # scheme://host[:port]; None: AWS's own endpoint for the region
    source: str  # where it came from: an environment variable, or "endpoint_url"

    @classmethod
    def resolve(cls, endpoint_url: str | None = None) -> "S3Endpoint":
        if endpoint_url:
            return cls(_normalise_endpoint(endpoint_url), "endpoint_url")
        for var in _ENDPOINT_VARS:
            if os.environ.get(var):
                return cls(_normalise_endpoint(os.environ[var]), var)
        return cls(None, "")

    @classmethod
    def of(cls, fs: pafs.FileSystem) -> "S3Endpoint":
        """The endpoint an S3FileSystem talks to (it survives pickling, unlike anything kept beside it)."""
        try:
            options = fs.__reduce__()[1][0]  # the constructor's keyword arguments
            host, scheme = options.get("endpoint_override"), options.get("scheme") or "https"
        except Exception:  # noqa: BLE001 - a pyarrow without this layout: describe from the environment
            return cls.resolve()
        if not host:
            return cls(None, "")
        url = f"{scheme}://{host}"
        env = cls.resolve()
        return cls(url, env.source if env.url == url else "endpoint_url")

    def describe(self) -> str:
        """Where requests go, to follow a URI in a message: 'at endpoint http://… (AWS_ENDPOINT_URL)'."""
        if self.url is None:
            return "(no endpoint: AWS's default; set AWS_ENDPOINT_URL for MinIO/SeaweedFS/moto)"
        return f"at endpoint {self.url} ({self.source})"


def _normalise_endpoint(endpoint: str) -> str:
    parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
    return f"{parsed.scheme or 'https'}://{parsed.netloc}"


# SDK tries per call. Handed out by `resolve_filesystem`, the filesystem keeps the SDK's own retries
# (~80 s of them when nothing listens): Ray Train and Ray Data use it with no retry loop of ours.
# This module's helpers retry in `with_retries`, logged and within a budget, so there the SDK only
# gets a second try (a stale keep-alive connection).
_SDK_ATTEMPTS_BARE, _SDK_ATTEMPTS_IN_OUR_LOOP = 10, 2


def _s3_options(endpoint: S3Endpoint, region: str | None, sdk_attempts: int) -> dict[str, Any]:
    options: dict[str, Any] = {
        "region": region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=sdk_attempts),
        "connect_timeout": 5,
        "request_timeout": 60,
    }
    if endpoint.url:
        scheme, host = endpoint.url.split("://", 1)
        options.update(endpoint_override=host, scheme=scheme,
                       force_virtual_addressing=False)  # self-hosted stores (MinIO, SeaweedFS, moto): path style
    return options


def resolve_filesystem(uri: str, endpoint_url: str | None = None, region: str | None = None):
    """Return `(filesystem, path)` for a local path or an `s3://bucket/key` URI.

    S3: the endpoint comes from `endpoint_url`, else `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`
    (the AWS CLI convention, which pyarrow does not read by itself); credentials come from the
    standard AWS variables, profiles or instance roles via pyarrow's default chain. The first time a
    bucket is resolved in a process, it is contacted (`_first_contact`): an unreachable endpoint, a
    missing bucket or refused credentials is a one-line StorageError within the connect budget.
    """
    return _filesystem(uri, endpoint_url, region, sdk_attempts=_SDK_ATTEMPTS_BARE)


def _filesystem(uri: str, endpoint_url: str | None = None, region: str | None = None,
                sdk_attempts: int = _SDK_ATTEMPTS_IN_OUR_LOOP):
    uri = str(uri)
    if is_s3(uri):
        parsed = urlparse(uri)
        if not parsed.netloc:
            raise StorageError(f"bad S3 URI {uri!r}: no bucket")
        endpoint = S3Endpoint.resolve(endpoint_url)
        options = _s3_options(endpoint, region, sdk_attempts)
        path = f"{parsed.netloc}{parsed.path}".rstrip("/")
        _first_contact(options, endpoint, parsed.netloc, path, uri)
        return pafs.S3FileSystem(**options), path
    if "://" in uri and not uri.startswith("file://"):
        raise StorageError(f"unsupported URI scheme in {uri!r} (use a local path or s3://)")
    path = uri[len("file://"):] if uri.startswith("file://") else uri
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(path))


def ensure_reachable(uri: str) -> None:
    """Contact the store behind `uri` now, so a wrong endpoint fails before the work, not after it."""
    _filesystem(uri)


def join(base: str, *parts: str) -> str:
    """`base/part1/part2…` for a local path or an `s3://` URI.

    Parts are always relative: their leading and trailing '/' are stripped (so a part such as
    "/x" never drops the base, unlike `posixpath.join`), and empty parts are skipped. A trailing
    '/' of `base` is dropped; the root "/" stays the root.
    """
    tail = [p.strip("/") for p in parts if p and p.strip("/")]
    head = base.rstrip("/") or base[:1]  # "/" -> "/", "" -> ""
    if head in ("", "/"):
        return head + "/".join(tail)
    return "/".join([head, *tail])


# ---------------------------------------------------------------------------------------------
# First contact with a bucket

# Buckets reached once in this process, and recent failures (answered again at once, so that the
# cleanup after a failed command, e.g. copying its log, does not wait out the budget a second time).
_contacted: set[tuple] = set()
_failed: dict[tuple, tuple[float, StorageError]] = {}


def _first_contact(options: dict[str, Any], endpoint: S3Endpoint, bucket: str, path: str, uri: str) -> None:
    """Look the bucket up with short timeouts and logged retries, within the connect budget."""
    identity = hashlib.sha256(
        f"{os.environ.get('AWS_ACCESS_KEY_ID')}|{os.environ.get('AWS_PROFILE')}".encode()).hexdigest()
    key = (endpoint.url, options["region"], bucket, identity)
    if key in _contacted:
        return
    budget = _budget_s(CONNECT_BUDGET_ENV, CONNECT_BUDGET_DEFAULT_S)
    failed_at, error = _failed.get(key, (-budget, None))
    if error is not None and time.monotonic() - failed_at < budget:
        raise error
    # One SDK attempt per try, so that every try is ours and logged; each ends within `timeout` s.
    timeout = min(5.0, max(0.5, budget / 8))
    probe = pafs.S3FileSystem(**{**options, "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=1),
                                 "connect_timeout": timeout, "request_timeout": timeout})
    start_budget = budget - 2 * timeout  # no try starts unless it can end (connect + answer) in time
    try:
        found = with_retries(lambda: _bucket_exists(probe, bucket, path),
                             attempts=_attempts_within(start_budget, 1.0, 15.0), base_delay=1.0, max_delay=15.0,
                             budget_s=start_budget, what=f"looking up bucket {bucket!r} for",
                             where=_where(probe, bucket, uri))
        if not found:
            raise StorageError(_no_bucket_message(bucket, uri, endpoint))
    except StorageError as err:
        _failed[key] = (time.monotonic(), err)
        raise
    _contacted.add(key)
    _failed.pop(key, None)


def _bucket_exists(fs: pafs.FileSystem, bucket: str, path: str) -> bool:
    """HeadBucket; when that is refused, the URI's own path decides (HeadObject, then a listing).

    HeadBucket needs s3:ListBucket on the whole bucket, and a policy may grant less while allowing
    everything under the run's prefix, which is all this package does there.
    """
    try:
        return fs.get_file_info(bucket).type != pafs.FileType.NotFound
    except OSError as err:
        if path == bucket or not _S3_REFUSED.search(str(err)):
            raise
    fs.get_file_info(path)  # raises when this is refused too
    return True


def _attempts_within(budget_s: float, base_delay: float, max_delay: float, try_s: float = 0.1) -> int:
    """How many tries start within `budget_s` when each fails within `try_s` (the N of 'attempt n/N').

    `try_s` covers a refused connection or a failed DNS lookup (milliseconds) and a sleep's overshoot,
    so that a store that fails fast gets exactly N tries; slower tries are cut by the clock.
    """
    attempts, elapsed = 1, try_s
    while elapsed + min(base_delay * 2 ** (attempts - 1), max_delay) <= budget_s:
        elapsed += min(base_delay * 2 ** (attempts - 1), max_delay) + try_s
        attempts += 1
    return attempts


def _no_bucket_message(bucket: str, uri: str, endpoint: S3Endpoint) -> str:
    return (f"S3 bucket {bucket!r} does not exist: {uri} {endpoint.describe()}; "
            "create it, or check the bucket name and AWS_ENDPOINT_URL")


# ---------------------------------------------------------------------------------------------
# Retries

# Errors that say something about the request, not the weather: retrying cannot change them.
_PERMANENT_ERRORS = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError)
_PERMANENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.ENAMETOOLONG}  # a full or read-only disk
LOCAL_ATTEMPTS = 6  # a local disk still failing after ~15 s of back-off is not a passing hiccup
# pyarrow raises every S3 error as a plain OSError "… AWS Error <NAME> during <Op> operation: …".
# These answers are the same on every retry: refused credentials, a missing bucket, a bad request.
_S3_REFUSED = re.compile(r"AWS Error (ACCESS_DENIED|INVALID_ACCESS_KEY_ID|SIGNATURE_DOES_NOT_MATCH|INVALID_SIGNATURE|"
                         r"INCOMPLETE_SIGNATURE|INVALID_CLIENT_TOKEN_ID|MISSING_AUTHENTICATION_TOKEN|"
                         r"UNRECOGNIZED_CLIENT|EXPIRED_TOKEN)\b|HTTP status 403\b")
_S3_NO_BUCKET = re.compile(r"AWS Error NO_SUCH_BUCKET\b")
_S3_BAD_REQUEST = re.compile(r"HTTP status (400|401|404|405|301)\b")


def is_transient(err: BaseException) -> bool:
    """Whether `err` may go away on retry: an OSError (pyarrow's I/O error type) not known permanent."""
    return (
        isinstance(err, OSError)
        and not isinstance(err, _PERMANENT_ERRORS)
        and err.errno not in _PERMANENT_ERRNOS
        and not any(p.search(str(err)) for p in (_S3_REFUSED, _S3_NO_BUCKET, _S3_BAD_REQUEST))
    )


def with_retries(fn: Callable[[], T], *, attempts: int | None = None, base_delay: float = 0.5,
                 max_delay: float = 30.0, budget_s: float | None = None, what: str = "storage operation",
                 where: str = "") -> T:
    """Run `fn`, retrying transient storage errors with exponential back-off (0.5 s, 1 s, … 30 s).

    Every retry is a warning: attempt n/N, `what` was tried `where` (the URI and S3 endpoint), the
    error. How many tries: `attempts` when given; else 6 for a local error (~15 s of back-off) and,
    for an S3 error, as many as start within `budget_s` (default: the outage budget,
    `METAMATH_RAY_S3_OUTAGE_BUDGET_S`). No retry starts after `budget_s`. A local error is re-raised
    as it is; an S3 error (refused, or the last one) becomes a one-line StorageError.
    """
    started, attempt = time.monotonic(), 0
    while True:
        attempt += 1
        try:
            return fn()
        except OSError as err:
            budget = _budget_s(OUTAGE_BUDGET_ENV, OUTAGE_BUDGET_DEFAULT_S) if budget_s is None else budget_s
            limit = attempts or (_attempts_within(budget, base_delay, max_delay) if _is_s3_error(err)
                                 else LOCAL_ATTEMPTS)
            delay = min(base_delay * 2 ** (attempt - 1), max_delay)
            elapsed = time.monotonic() - started
            if attempt >= limit or elapsed + delay > budget or not is_transient(err):
                final = _final_error(err, what, where, attempt, elapsed)
                if final is err:
                    raise
                raise final from err
            log.warning("attempt %d/%d failed, retrying in %.1f s: %s %s: %s",
                        attempt, limit, delay, what, where or "(unnamed)", _reason(err))
            time.sleep(delay)


def _is_s3_error(err: BaseException) -> bool:
    return "AWS Error" in str(err)


def _final_error(err: OSError, what: str, where: str, attempts: int, elapsed: float) -> BaseException:
    """The error a caller sees when retrying is over: S3 errors as one line naming the endpoint."""
    text = str(err)
    if not _is_s3_error(err) or isinstance(err, _PERMANENT_ERRORS):
        return err  # local I/O, or a missing key: the caller knows what to do with these
    where = where or S3Endpoint.resolve().describe()
    if _S3_REFUSED.search(text):
        return StorageError(f"S3 refused access: {what} {where}: {_reason(err)}; check the credentials "
                            "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE) and AWS_ENDPOINT_URL")
    bucket = re.search(r"in bucket '([^']*)'|for bucket '([^']*)'", text)
    if _S3_NO_BUCKET.search(text) and bucket:
        return StorageError(f"S3 bucket {bucket.group(1) or bucket.group(2)!r} does not exist: {what} {where}: "
                            "create it, or check the bucket name and AWS_ENDPOINT_URL")
    if not is_transient(err):
        hint = "; set AWS_REGION to the bucket's region" if "HTTP status 301" in text else ""
        return StorageError(f"S3 refused the request: {what} {where}: {_reason(err)}{hint}")
    return StorageError(f"S3 unreachable: {what} {where} failed {attempts} time{'s' * (attempts > 1)} in "
                        f"{elapsed:.0f} s: {_reason(err)}; check AWS_ENDPOINT_URL and that the store is up")


def _reason(err: BaseException) -> str:
    """The informative part of a storage error, one line: 'NETWORK_CONNECTION during HeadBucket: …'."""
    line = (str(err).splitlines() or [type(err).__name__])[0]
    aws = re.search(r"AWS Error (.+?) during (\w+) operation: (.*)", line)
    if not aws:
        return line
    detail = aws.group(3).split("Details: ", 1)[-1]
    detail = re.sub(r"\s*\(Request ID: [^)]*\)", "", detail).strip().rstrip(".") or "no details"
    return f"{aws.group(1)} during {aws.group(2)}: {detail}"


def _where(fs: pafs.FileSystem, path: str, shown: str | None = None) -> str:
    """`path` as the user would name it and, on S3, the endpoint it is sent to."""
    if _is_local(fs):
        return shown or path
    return f"{shown or 's3://' + path} {S3Endpoint.of(fs).describe()}"


# ---------------------------------------------------------------------------------------------
# fs-level helpers: one implementation behind the URI functions and RunStore


def _is_local(fs: pafs.FileSystem) -> bool:
    return isinstance(fs, pafs.LocalFileSystem)


def _kind(fs: pafs.FileSystem, path: str) -> pafs.FileType:
    return with_retries(lambda: fs.get_file_info(path).type, what="looking up", where=_where(fs, path))


def _exists(fs: pafs.FileSystem, path: str) -> bool:
    return _kind(fs, path) != pafs.FileType.NotFound


def _read(fs: pafs.FileSystem, path: str, shown: str | None = None) -> bytes:
    """The bytes of one file; FileNotFoundError / IsADirectoryError (named `shown`) when it is not one."""
    kind = _kind(fs, path)
    if kind == pafs.FileType.NotFound:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), shown or path)
    if kind == pafs.FileType.Directory:
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), shown or path)

    def get() -> bytes:
        with fs.open_input_stream(path) as f:
            return f.read()

    return with_retries(get, what="reading", where=_where(fs, path, shown))


def _put_atomic(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """Publish `data` at `path` whole or not at all (see the module docstring)."""
    _stream_atomic(fs, path, lambda out: out.write(data))


def _stream_atomic(fs: pafs.FileSystem, path: str, write: Callable[[Any], Any]) -> None:
    """Publish what `write(stream)` writes at `path`, whole or not at all: locally through a
    temporary renamed over it; on S3 as one upload (an object appears only when its upload
    completes). `write` may run again on a retry."""
    if _is_local(fs):
        with_retries(lambda: _put_local(path, write), what="writing", where=path)
        return

    def put() -> None:
        with fs.open_output_stream(path) as out:
            write(out)

    with_retries(put, what="writing", where=_where(fs, path))


def _put_local(path: str, write: Callable[[Any], Any]) -> None:
    """Temporary file beside the target, fsync, rename over it; the temporary never outlives a failure."""
    parent, name = os.path.split(path)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".tmp-{uuid.uuid4().hex}-{name}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(parent)  # the rename itself survives a power cut only once the folder is synced


def _fsync_dir(path: str) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a folder be opened or synced
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _children(fs: pafs.FileSystem, path: str, kind: pafs.FileType, suffix: str = "") -> list[str]:
    """Sorted base names of the `kind` entries directly under `path` ([] when it is no folder).

    Names starting with '.' are temporaries of an unfinished write and are left out.
    """
    if _kind(fs, path) != pafs.FileType.Directory:
        return []
    infos = with_retries(lambda: fs.get_file_info(pafs.FileSelector(path, recursive=False)),
                         what="listing", where=_where(fs, path))
    return sorted(
        i.base_name for i in infos
        if i.type == kind and i.base_name.endswith(suffix) and not i.base_name.startswith(".")
    )


# ---------------------------------------------------------------------------------------------
# URI-level API


def read_bytes(uri: str) -> bytes:
    """The bytes stored at `uri`; FileNotFoundError when nothing is there."""
    fs, path = _filesystem(uri)
    return _read(fs, path, shown=uri)


def write_bytes(uri: str, data: bytes) -> None:
    """Store `data` at `uri`, atomically, creating local parent folders; replaces what was there."""
    fs, path = _filesystem(uri)
    _put_atomic(fs, path, data)


def read_text(uri: str) -> str:
    return read_bytes(uri).decode("utf-8")


def write_text(uri: str, text: str) -> None:
    write_bytes(uri, text.encode("utf-8"))


def read_text_if_exists(uri: str) -> str | None:
    """The text at `uri`, or None when no file is there (a first attempt, an optional input)."""
    try:
        return read_text(uri)
    except (FileNotFoundError, IsADirectoryError):
        return None


def json_bytes(obj: Any, *, sort_keys: bool = True) -> bytes:
    """The project's JSON document format: indented, UTF-8, anything unknown as its str()."""
    return json.dumps(obj, indent=2, sort_keys=sort_keys, ensure_ascii=False, default=str).encode("utf-8")


def read_json(uri: str) -> Any:
    return json.loads(read_bytes(uri))


def write_json(uri: str, obj: Any, *, sort_keys: bool = True) -> None:
    """`obj` as a JSON document (`json_bytes`), atomically; `sort_keys=False` keeps the dict's order."""
    write_bytes(uri, json_bytes(obj, sort_keys=sort_keys))


def exists(uri: str) -> bool:
    """Whether a file or folder is at `uri` (on S3: an object, or a prefix with objects under it)."""
    fs, path = _filesystem(uri)
    return _exists(fs, path)


def is_dir(uri: str) -> bool:
    fs, path = _filesystem(uri)
    return _kind(fs, path) == pafs.FileType.Directory


def list_files(uri: str, suffix: str = "") -> list[str]:
    """Base names (not URIs; `join(uri, name)` gives one) of the files directly under `uri`.

    Sorted; only names ending with `suffix`; temporaries ('.'-prefixed) left out; [] when `uri` is
    no folder.
    """
    fs, path = _filesystem(uri)
    return _children(fs, path, pafs.FileType.File, suffix)


def list_dirs(uri: str) -> list[str]:
    """Base names of the folders directly under `uri`, sorted; '.'-prefixed ones left out."""
    fs, path = _filesystem(uri)
    return _children(fs, path, pafs.FileType.Directory)


def delete_dir(uri: str) -> None:
    """Remove the folder at `uri` and everything under it; nothing to do when it is missing."""
    fs, path = _filesystem(uri)
    kind = _kind(fs, path)
    if kind == pafs.FileType.NotFound:
        return
    if kind == pafs.FileType.File:
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), uri)
    with_retries(lambda: fs.delete_dir(path), what="deleting", where=_where(fs, path, uri))


def upload_dir(local_dir: str | os.PathLike, uri: str) -> None:
    """Copy the local folder `local_dir` to `uri`, replacing whatever folder was there.

    Locally the copy is built beside the destination and renamed into place, so the destination
    never holds half a folder. On S3 the old prefix is deleted, then every file is one PUT.
    """
    source = os.path.abspath(local_dir)
    if not os.path.isdir(source):
        raise FileNotFoundError(errno.ENOENT, "no folder to upload", source)
    fs, path = _filesystem(uri)
    if _is_local(fs):
        if source != path:
            _replace_local_dir(source, path)
        return

    def copy() -> None:
        if _kind(fs, path) != pafs.FileType.NotFound:
            fs.delete_dir(path)
        pafs.copy_files(source, path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)

    with_retries(copy, what=f"uploading {source} to", where=_where(fs, path, uri))


def _replace_local_dir(source: str, dest: str) -> None:
    parent, name = os.path.split(dest)
    os.makedirs(parent, exist_ok=True)
    staged = os.path.join(parent, f".tmp-{uuid.uuid4().hex}-{name}")
    retired = os.path.join(parent, f".old-{uuid.uuid4().hex}-{name}")
    try:
        with_retries(lambda: shutil.copytree(source, staged, dirs_exist_ok=True), what=f"copying {source} to",
                     where=staged)
        # Two renames: the old folder stays whole until the new one is in, and comes back on failure.
        had_old = os.path.lexists(dest)
        if had_old:
            os.rename(dest, retired)
        try:
            os.rename(staged, dest)
        except OSError:
            if had_old:
                os.rename(retired, dest)
            raise
    finally:
        shutil.rmtree(staged, ignore_errors=True)
        shutil.rmtree(retired, ignore_errors=True)


def download_dir(uri: str, local_dir: str | os.PathLike) -> None:
    """Copy the folder at `uri` into `local_dir` (created if needed); FileNotFoundError when missing."""
    fs, path = _filesystem(uri)
    if _kind(fs, path) != pafs.FileType.Directory:
        raise FileNotFoundError(errno.ENOENT, "no folder", uri)
    target = os.path.abspath(local_dir)
    Path(target).mkdir(parents=True, exist_ok=True)
    with_retries(lambda: pafs.copy_files(path, target, source_filesystem=fs,
                                         destination_filesystem=pafs.LocalFileSystem()),
                 what=f"downloading to {target} from", where=_where(fs, path, uri))


# ---------------------------------------------------------------------------------------------
# Run folders with exactly-once shard commits


def table_to_parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


@dataclass(frozen=True)
class ShardInfo:
    path: str  # relative to the run folder
    rows: int
    bytes: int
    sha256: str
    created: bool  # False when it was already committed by an earlier attempt

    def as_dict(self) -> dict:
        return {"path": self.path, "rows": self.rows, "bytes": self.bytes, "sha256": self.sha256}


class RunStore:
    """The folder of one run: `<output>/<run_name>/` on a local disk or in S3."""

    def __init__(self, output: str, run_name: str, endpoint_url: str | None = None):
        validate_run_name(run_name)
        self.output = str(output)
        self.run_name = run_name
        self.fs, base = _filesystem(self.output, endpoint_url=endpoint_url)
        self.root = join(base, run_name)
        self.uri = join(self.output, run_name)
        self._local = _is_local(self.fs)
        if self._local:
            # The output root may itself be a symlink (a big disk); nothing below it may lead out.
            self._real_root = os.path.join(os.path.realpath(base), run_name)
            self._inside(self.root)

    def _inside(self, path: str) -> str:
        real = os.path.realpath(path)
        if real != self._real_root and not real.startswith(self._real_root + os.sep):
            raise StorageError(f"{path} resolves to {real}, outside the run folder {self._real_root} (a symlink?)")
        return path

    def path(self, rel: str) -> str:
        p = join(self.root, rel)
        return self._inside(p) if self._local else p

    def exists(self, rel: str) -> bool:
        return _exists(self.fs, self.path(rel))

    def read_bytes(self, rel: str) -> bytes:
        return _read(self.fs, self.path(rel), shown=join(self.uri, rel))

    def commit_bytes(self, rel: str, data: bytes) -> tuple[bool, str]:
        """Write `rel` once. Returns (created, sha256 of what is stored)."""
        if self.exists(rel):
            return False, hashlib.sha256(self.read_bytes(rel)).hexdigest()
        _put_atomic(self.fs, self.path(rel), data)
        return True, hashlib.sha256(data).hexdigest()

    def write_stream(self, rel: str, write: Callable[[Any], Any]) -> None:
        """Replace `rel` with what `write(stream)` writes, atomically (a reader sees the old file or
        the new one): for outputs too large to hold in memory, written a block at a time."""
        _stream_atomic(self.fs, self.path(rel), write)

    def commit_table(self, rel: str, table: pa.Table) -> ShardInfo:
        data = table_to_parquet_bytes(table)
        created, digest = self.commit_bytes(rel, data)
        if not created:
            meta = pq.read_metadata(pa.BufferReader(self.read_bytes(rel)))
            return ShardInfo(rel, meta.num_rows, self.size(rel), digest, False)
        return ShardInfo(rel, table.num_rows, len(data), digest, True)

    def write_json(self, rel: str, obj: Any, *, overwrite: bool = True) -> str:
        """Small JSON documents (stats, manifest). These are rewritten whole, atomically."""
        if not overwrite and self.exists(rel):
            return self.path(rel)
        return self.write_bytes(rel, json_bytes(obj))

    def write_bytes(self, rel: str, data: bytes) -> str:
        _put_atomic(self.fs, self.path(rel), data)
        return self.path(rel)

    def read_json(self, rel: str) -> Any:
        return json.loads(self.read_bytes(rel))

    def read_table(self, rel: str) -> pa.Table:
        return pq.read_table(pa.BufferReader(self.read_bytes(rel)))

    def size(self, rel: str) -> int:
        path = self.path(rel)
        return with_retries(lambda: self.fs.get_file_info(path).size or 0,
                            what="looking up", where=_where(self.fs, path))

    def list(self, rel_dir: str, suffix: str = "") -> list[str]:
        """Committed files under `rel_dir` (relative paths, sorted); temporaries excluded."""
        names = _children(self.fs, self.path(rel_dir), pafs.FileType.File, suffix)
        return [f"{rel_dir.strip('/')}/{n}" for n in names]


# ---------------------------------------------------------------------------------------------
# Run names

# One rule for every stage: run names become path segments, so nothing may escape the output root.
_RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def validate_run_name(name: str) -> None:
    """Raise StorageError unless `name` is a safe single path segment (no '/', no '..', no leading '.')."""
    if not isinstance(name, str) or not _RUN_NAME.fullmatch(name) or ".." in name:
        raise StorageError(
            f"invalid run name {name!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, no '..'"
        )


def check_run_name(name: str) -> str:
    """`validate_run_name` for pydantic validators: ValueError with the same one-line message."""
    try:
        validate_run_name(name)
    except StorageError as e:
        raise ValueError(str(e)) from None
    return name


RunName = Annotated[
    str,
    AfterValidator(check_run_name),
    Field(description="name of the run's folder under `output`: 1-128 letters, digits, '.', '_' or '-', "
          "starting with a letter or digit, no '..'"),
]
"""The type of every stage config's `run_name` (`run_name: RunName = "eval"`)."""
