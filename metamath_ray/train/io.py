"""Filesystem access for training: input discovery, reading records, copying folders to storage.

Uses `metamath_ray.storage.resolve_filesystem` (local paths and s3:// with AWS_ENDPOINT_URL); a small
local/S3 fallback keeps this module usable until that lands.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs


def resolve_filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    try:
        from metamath_ray.storage import resolve_filesystem as shared_resolve
    except ImportError:
        return _fallback_resolve(uri)
    return shared_resolve(uri)


def _fallback_resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    if uri.startswith("s3://"):
        endpoint = os.environ.get("AWS_ENDPOINT_URL")
        kwargs = {}
        if endpoint:
            scheme, _, host = endpoint.partition("://")
            kwargs = {"endpoint_override": host or scheme, "scheme": scheme if host else "https"}
        fs = pafs.S3FileSystem(region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"), **kwargs)
        return fs, uri[len("s3://") :].rstrip("/")
    return pafs.LocalFileSystem(), os.path.abspath(uri)


def _exists(fs: pafs.FileSystem, path: str) -> pafs.FileType:
    return fs.get_file_info(path).type


def find_training_source(uri: str) -> tuple[str, str]:
    """(kind, uri) for a training input: kind is "parquet" (a folder or file) or "json".

    Accepted: an augment run folder (uses its data/ shards, else its metamathqa.json), a folder of
    Parquet shards, a .parquet file, or a MetaMathQA .json (array) / .jsonl file.
    """
    fs, path = resolve_filesystem(uri)
    kind = _exists(fs, path)
    if kind == pafs.FileType.NotFound:
        raise FileNotFoundError(f"training data not found: {uri}")
    if kind == pafs.FileType.File:
        if path.endswith(".parquet"):
            return "parquet", uri
        if path.endswith((".json", ".jsonl")):
            return "json", uri
        raise ValueError(f"training data must be .parquet, .json or .jsonl: {uri}")
    base = uri.rstrip("/")
    if _exists(fs, path + "/data") == pafs.FileType.Directory and _list_parquet(fs, path + "/data"):
        return "parquet", base + "/data"
    if _list_parquet(fs, path):
        return "parquet", base
    if _exists(fs, path + "/metamathqa.json") == pafs.FileType.File:
        return "json", base + "/metamathqa.json"
    raise FileNotFoundError(f"no Parquet shards or metamathqa.json under {uri}")


def _list_parquet(fs: pafs.FileSystem, path: str) -> list[str]:
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=False))
    return sorted(i.path for i in infos if i.type == pafs.FileType.File and i.path.endswith(".parquet"))


def _normalise(table: pa.Table) -> pa.Table:
    """query/response/id columns; rows explicitly marked not accepted are left out."""
    missing = {"query", "response"} - set(table.column_names)
    if missing:
        raise ValueError(f"training data lacks columns {sorted(missing)}; has {table.column_names}")
    if "accepted" in table.column_names:
        table = table.filter(pa.compute.fill_null(table["accepted"], True))
    ids = table["id"] if "id" in table.column_names else pa.array([str(i) for i in range(table.num_rows)])
    return pa.table({"id": pa.compute.cast(ids, pa.string()), "query": table["query"], "response": table["response"]})


def read_json_records(uri: str) -> pa.Table:
    fs, path = resolve_filesystem(uri)
    with fs.open_input_stream(path) as f:
        text = f.read().decode("utf-8")
    stripped = text.lstrip()
    rows = json.loads(text) if stripped.startswith("[") else [json.loads(l) for l in text.splitlines() if l.strip()]
    if not rows:
        return _normalise(pa.table({"query": pa.array([], pa.string()), "response": pa.array([], pa.string())}))
    return _normalise(pa.Table.from_pylist(rows))


def read_records_table(uri: str) -> pa.Table:
    """All training records as one Arrow table (the one-process path)."""
    kind, src = find_training_source(uri)
    if kind == "json":
        return read_json_records(src)
    fs, path = resolve_filesystem(src)
    return _normalise(pads.dataset(path, filesystem=fs, format="parquet").to_table())


def read_records_dataset(uri: str):
    """Training records as a Ray Dataset; Parquet is streamed from storage, JSON read on the driver."""
    import ray.data

    kind, src = find_training_source(uri)
    if kind == "json":
        return ray.data.from_arrow(read_json_records(src))
    fs, path = resolve_filesystem(src)
    ds = ray.data.read_parquet(path, filesystem=fs)
    return ds.map_batches(_normalise, batch_format="pyarrow")


def read_text(uri: str) -> str | None:
    fs, path = resolve_filesystem(uri)
    if _exists(fs, path) != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as f:
        return f.read().decode("utf-8")


def write_text(uri: str, text: str) -> None:
    fs, path = resolve_filesystem(uri)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as f:
        f.write(text.encode("utf-8"))


def upload_dir(local_dir: str | Path, uri: str) -> None:
    """Copy a local folder to a local or s3:// destination (replacing what is there)."""
    fs, path = resolve_filesystem(uri)
    if isinstance(fs, pafs.LocalFileSystem) and os.path.abspath(local_dir) == path:
        return
    if _exists(fs, path) == pafs.FileType.Directory:
        fs.delete_dir(path)
    fs.create_dir(path, recursive=True)
    pafs.copy_files(str(local_dir), path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)


def download_dir(uri: str, local_dir: str | Path) -> None:
    fs, path = resolve_filesystem(uri)
    Path(local_dir).mkdir(parents=True, exist_ok=True)
    pafs.copy_files(path, str(local_dir), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())


def list_dirs(uri: str) -> list[str]:
    fs, path = resolve_filesystem(uri)
    if _exists(fs, path) != pafs.FileType.Directory:
        return []
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=False))
    return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)


def delete_dir(uri: str) -> None:
    fs, path = resolve_filesystem(uri)
    if _exists(fs, path) == pafs.FileType.Directory:
        fs.delete_dir(path)
