"""Object storage: local paths and `s3://` through pyarrow, shards committed exactly once.

Commit protocol. A shard's name is derived from the work it holds (deterministic), so a rerun of
the same run computes the same names. `commit_*` writes a shard only if no object of that name
exists yet, and makes it visible atomically: locally by writing a temporary file in the same folder
and renaming it; on S3 by a single PUT / completed multipart upload (S3 never shows a partial
object). So a crash leaves nothing visible, and a rerun duplicates and overwrites nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, TypeVar
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

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
    return "/".join([base.rstrip("/"), *[p.strip("/") for p in parts if p]])


def with_retries(fn: Callable[[], T], *, attempts: int = 6, base_delay: float = 0.5) -> T:
    """Retry transient storage errors (OSError from pyarrow) with exponential back-off."""
    for i in range(attempts):
        try:
            return fn()
        except OSError:
            if i == attempts - 1:
                raise
            time.sleep(base_delay * (2**i))
    raise AssertionError("unreachable")


def exists(fs: pafs.FileSystem, path: str) -> bool:
    return with_retries(lambda: fs.get_file_info(path).type != pafs.FileType.NotFound)


def _put_atomic(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    parent = path.rsplit("/", 1)[0]
    if isinstance(fs, pafs.LocalFileSystem):
        fs.create_dir(parent, recursive=True)
        tmp = f"{parent}/.tmp-{uuid.uuid4().hex}-{path.rsplit('/', 1)[1]}"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return

    def put() -> None:
        with fs.open_output_stream(path) as out:
            out.write(data)

    with_retries(put)


def read_bytes(fs: pafs.FileSystem, path: str) -> bytes:
    def get() -> bytes:
        with fs.open_input_stream(path) as f:
            return f.read()

    return with_retries(get)


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
        self._local = isinstance(self.fs, pafs.LocalFileSystem)
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
        return exists(self.fs, self.path(rel))

    def commit_bytes(self, rel: str, data: bytes) -> tuple[bool, str]:
        """Write `rel` once. Returns (created, sha256 of what is stored)."""
        if self.exists(rel):
            return False, hashlib.sha256(read_bytes(self.fs, self.path(rel))).hexdigest()
        _put_atomic(self.fs, self.path(rel), data)
        return True, hashlib.sha256(data).hexdigest()

    def commit_table(self, rel: str, table: pa.Table) -> ShardInfo:
        data = table_to_parquet_bytes(table)
        created, digest = self.commit_bytes(rel, data)
        if not created:
            meta = pq.read_metadata(pa.BufferReader(read_bytes(self.fs, self.path(rel))))
            return ShardInfo(rel, meta.num_rows, self.size(rel), digest, False)
        return ShardInfo(rel, table.num_rows, len(data), digest, True)

    def write_json(self, rel: str, obj: Any, *, overwrite: bool = True) -> str:
        """Small JSON documents (stats, manifest). These are rewritten whole, atomically."""
        data = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, default=str).encode()
        if not overwrite and self.exists(rel):
            return self.path(rel)
        _put_atomic(self.fs, self.path(rel), data)
        return self.path(rel)

    def write_bytes(self, rel: str, data: bytes) -> str:
        _put_atomic(self.fs, self.path(rel), data)
        return self.path(rel)

    def read_json(self, rel: str) -> Any:
        return json.loads(read_bytes(self.fs, self.path(rel)))

    def read_table(self, rel: str) -> pa.Table:
        return pq.read_table(pa.BufferReader(read_bytes(self.fs, self.path(rel))))

    def size(self, rel: str) -> int:
        return with_retries(lambda: self.fs.get_file_info(self.path(rel)).size or 0)

    def list(self, rel_dir: str, suffix: str = "") -> list[str]:
        """Committed files under `rel_dir` (relative paths, sorted); temporaries excluded."""
        base = self.path(rel_dir)
        if not exists(self.fs, base):
            return []
        infos = with_retries(lambda: self.fs.get_file_info(pafs.FileSelector(base, recursive=False)))
        names = sorted(
            i.path.rsplit("/", 1)[1] for i in infos
            if i.type == pafs.FileType.File and i.path.endswith(suffix)
            and not i.path.rsplit("/", 1)[1].startswith(".")
        )
        return [f"{rel_dir.strip('/')}/{n}" for n in names]


def check_run_name(name: str) -> str:
    """`validate_run_name` for pydantic validators: ValueError with the same one-line message."""
    try:
        validate_run_name(name)
    except StorageError as e:
        raise ValueError(str(e)) from None
    return name


def validate_run_name(name: str) -> None:
    """Run names become path segments: refuse anything that could escape the output root."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", name or "") or ".." in name:
        raise StorageError(
            f"invalid run name {name!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, no '..'"
        )
