"""Small byte-level I/O on local paths and `s3://` URIs, through the project's filesystem resolution."""

from __future__ import annotations

import posixpath


def _resolve(uri: str):
    from metamath_ray.storage import resolve_filesystem

    return resolve_filesystem(uri)


def join_uri(base: str, *parts: str) -> str:
    if "://" in base:
        scheme, rest = base.split("://", 1)
        return f"{scheme}://" + posixpath.join(rest, *parts)
    return posixpath.join(base, *parts)


def read_bytes(uri: str) -> bytes:
    fs, path = _resolve(uri)
    with fs.open_input_stream(path) as stream:
        return stream.read()


def write_bytes(uri: str, data: bytes) -> None:
    fs, path = _resolve(uri)
    parent = posixpath.dirname(path)
    if parent:
        fs.create_dir(parent, recursive=True)
    with fs.open_output_stream(path) as stream:
        stream.write(data)


def exists(uri: str) -> bool:
    import pyarrow.fs as pafs

    fs, path = _resolve(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound
