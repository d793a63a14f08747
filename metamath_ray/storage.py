"""The one storage layer: local paths and `s3://` URIs through pyarrow, for every stage.

URI-level API (what stages use): `join`, `read_bytes` / `write_bytes`, `read_text` / `write_text`,
`read_json` / `write_json`, `read_text_if_exists`, `exists`, `is_dir`, `list_files`, `list_dirs`,
`delete_dir`, `upload_dir`, `download_dir`. `RunStore` is the folder of one augment run, with
exactly-once shard commits, built on the same private fs-level helpers, so there is one code path.

Guarantees, for every operation:
- Writes publish atomically: locally a temporary file in the same folder (dot-prefixed, so listings
  skip it) is written, fsynced and renamed over the target; on S3 a single PUT / completed multipart
  upload (S3 never shows a partial object). A reader sees the old bytes or the new, never a mix.
- Transient errors (an `OSError` that is not "missing", "not allowed", "wrong kind of entry") are
  retried with exponential back-off (`with_retries`), so a restarting object store is ridden out.
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


class StorageError(RuntimeError):
    pass


def is_s3(uri: str) -> bool:
    return str(uri).startswith("s3://")


def resolve_filesystem(uri: str, endpoint_url: str | None = None, region: str | None = None):
    """Return `(filesystem, path)` for a local path or an `s3://bucket/key` URI.

    S3: the endpoint comes from `endpoint_url`, else `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`
    (the AWS CLI convention, which pyarrow does not read by itself); credentials come from the
    standard AWS variables, profiles or instance roles via pyarrow's default chain.
    """
    uri = str(uri)
    if is_s3(uri):
        parsed = urlparse(uri)
        if not parsed.netloc:
            raise StorageError(f"bad S3 URI {uri!r}: no bucket")
        endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        kwargs: dict[str, Any] = {
            "region": region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            # Retries ride out short outages of the object store (a restarted server, throttling).
            "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=10),
            "connect_timeout": 5,
            "request_timeout": 60,
        }
        if endpoint:
            ep = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
            kwargs["endpoint_override"] = ep.netloc
            kwargs["scheme"] = ep.scheme or "https"
            # Self-hosted stores (MinIO, SeaweedFS, moto) use path-style addressing.
            kwargs["force_virtual_addressing"] = False
        fs = pafs.S3FileSystem(**kwargs)
        return fs, f"{parsed.netloc}{parsed.path}".rstrip("/")
    if "://" in uri and not uri.startswith("file://"):
        raise StorageError(f"unsupported URI scheme in {uri!r} (use a local path or s3://)")
    path = uri[len("file://"):] if uri.startswith("file://") else uri
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(path))


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
# Retries

# Errors that say something about the request, not the weather: retrying cannot change them.
_PERMANENT_ERRORS = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError)
_PERMANENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.ENAMETOOLONG}  # a full or read-only disk


def is_transient(err: BaseException) -> bool:
    """Whether `err` may go away on retry: an OSError (pyarrow's I/O error type) not known permanent."""
    return (
        isinstance(err, OSError)
        and not isinstance(err, _PERMANENT_ERRORS)
        and err.errno not in _PERMANENT_ERRNOS
    )


def with_retries(fn: Callable[[], T], *, attempts: int = 6, base_delay: float = 0.5) -> T:
    """Run `fn`, retrying transient storage errors with exponential back-off (0.5 s, 1 s, … 8 s)."""
    for i in range(attempts):
        try:
            return fn()
        except OSError as err:
            if i == attempts - 1 or not is_transient(err):
                raise
            time.sleep(base_delay * (2**i))
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------------------------
# fs-level helpers: one implementation behind the URI functions and RunStore


def _is_local(fs: pafs.FileSystem) -> bool:
    return isinstance(fs, pafs.LocalFileSystem)


def _kind(fs: pafs.FileSystem, path: str) -> pafs.FileType:
    return with_retries(lambda: fs.get_file_info(path).type)


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

    return with_retries(get)


def _put_atomic(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """Publish `data` at `path` whole or not at all (see the module docstring)."""
    if _is_local(fs):
        with_retries(lambda: _put_local(path, data))
        return

    def put() -> None:
        with fs.open_output_stream(path) as out:
            out.write(data)

    with_retries(put)


def _put_local(path: str, data: bytes) -> None:
    """Temporary file beside the target, fsync, rename over it; the temporary never outlives a failure."""
    parent, name = os.path.split(path)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".tmp-{uuid.uuid4().hex}-{name}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
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
    infos = with_retries(lambda: fs.get_file_info(pafs.FileSelector(path, recursive=False)))
    return sorted(
        i.base_name for i in infos
        if i.type == kind and i.base_name.endswith(suffix) and not i.base_name.startswith(".")
    )


# ---------------------------------------------------------------------------------------------
# URI-level API


def read_bytes(uri: str) -> bytes:
    """The bytes stored at `uri`; FileNotFoundError when nothing is there."""
    fs, path = resolve_filesystem(uri)
    return _read(fs, path, shown=uri)


def write_bytes(uri: str, data: bytes) -> None:
    """Store `data` at `uri`, atomically, creating local parent folders; replaces what was there."""
    fs, path = resolve_filesystem(uri)
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
    fs, path = resolve_filesystem(uri)
    return _exists(fs, path)


def is_dir(uri: str) -> bool:
    fs, path = resolve_filesystem(uri)
    return _kind(fs, path) == pafs.FileType.Directory


def list_files(uri: str, suffix: str = "") -> list[str]:
    """Base names (not URIs; `join(uri, name)` gives one) of the files directly under `uri`.

    Sorted; only names ending with `suffix`; temporaries ('.'-prefixed) left out; [] when `uri` is
    no folder.
    """
    fs, path = resolve_filesystem(uri)
    return _children(fs, path, pafs.FileType.File, suffix)


def list_dirs(uri: str) -> list[str]:
    """Base names of the folders directly under `uri`, sorted; '.'-prefixed ones left out."""
    fs, path = resolve_filesystem(uri)
    return _children(fs, path, pafs.FileType.Directory)


def delete_dir(uri: str) -> None:
    """Remove the folder at `uri` and everything under it; nothing to do when it is missing."""
    fs, path = resolve_filesystem(uri)
    kind = _kind(fs, path)
    if kind == pafs.FileType.NotFound:
        return
    if kind == pafs.FileType.File:
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), uri)
    with_retries(lambda: fs.delete_dir(path))


def upload_dir(local_dir: str | os.PathLike, uri: str) -> None:
    """Copy the local folder `local_dir` to `uri`, replacing whatever folder was there.

    Locally the copy is built beside the destination and renamed into place, so the destination
    never holds half a folder. On S3 the old prefix is deleted, then every file is one PUT.
    """
    source = os.path.abspath(local_dir)
    if not os.path.isdir(source):
        raise FileNotFoundError(errno.ENOENT, "no folder to upload", source)
    fs, path = resolve_filesystem(uri)
    if _is_local(fs):
        if source != path:
            _replace_local_dir(source, path)
        return

    def copy() -> None:
        if _kind(fs, path) != pafs.FileType.NotFound:
            fs.delete_dir(path)
        pafs.copy_files(source, path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)

    with_retries(copy)


def _replace_local_dir(source: str, dest: str) -> None:
    parent, name = os.path.split(dest)
    os.makedirs(parent, exist_ok=True)
    staged = os.path.join(parent, f".tmp-{uuid.uuid4().hex}-{name}")
    retired = os.path.join(parent, f".old-{uuid.uuid4().hex}-{name}")
    try:
        with_retries(lambda: shutil.copytree(source, staged, dirs_exist_ok=True))
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
    fs, path = resolve_filesystem(uri)
    if _kind(fs, path) != pafs.FileType.Directory:
        raise FileNotFoundError(errno.ENOENT, "no folder", uri)
    target = os.path.abspath(local_dir)
    Path(target).mkdir(parents=True, exist_ok=True)
    with_retries(lambda: pafs.copy_files(
        path, target, source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem()))


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
        self.fs, base = resolve_filesystem(self.output, endpoint_url=endpoint_url)
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
        return with_retries(lambda: self.fs.get_file_info(self.path(rel)).size or 0)

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
