"""Turn a model reference into something engines can load: a local folder or a hub id.

`tiny` is built in-process; a local folder or hub id passes through; an `s3://` folder (a training
checkpoint export) is copied once into a local cache with `storage.download_dir` and reused.
The cache must be visible to every engine replica: on a multi-node cluster point `cache_dir` at a
shared filesystem (or let each node run the same download, which is idempotent).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from metamath_ray.models import default_cache_dir, resolve_model


def _hf_folder(root: Path) -> Path | None:
    """The folder holding config.json: `root`, or a single child (e.g. a checkpoint's `model/`)."""
    if (root / "config.json").exists():
        return root
    children = [c for c in root.iterdir() if c.is_dir() and (c / "config.json").exists()]
    return children[0] if len(children) == 1 else None


def download_model_folder(uri: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Copy the model folder at `uri` (s3://bucket/prefix) to the local cache; return the HF folder."""
    from metamath_ray import storage

    root = Path(cache_dir) if cache_dir else default_cache_dir() / "models"
    name = uri.rstrip("/").rsplit("/", 1)[-1] or "model"
    final = root / f"{name}-{hashlib.sha256(uri.encode()).hexdigest()[:12]}"
    if final.exists() and (found := _hf_folder(final)) is not None:
        return found
    if not storage.is_dir(uri):
        raise FileNotFoundError(f"no model folder at {uri}")
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=root))
    try:
        storage.download_dir(uri, tmp)
        if _hf_folder(tmp) is None:
            raise FileNotFoundError(f"{uri} holds no Hugging Face model folder (no config.json)")
        try:
            os.rename(tmp, final)  # atomic publish; a concurrent download may win the race
        except OSError:
            if not final.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _hf_folder(final)  # type: ignore[return-value]


def materialize_model(model: str, cache_dir: str | os.PathLike | None = None) -> str:
    """A local folder or hub id for `model` ('tiny', a folder, a hub id, or an s3:// folder)."""
    if model.startswith("s3://"):
        return str(download_model_folder(model, cache_dir))
    if "://" in model:
        raise ValueError(f"unsupported model location {model!r}; use a local folder, a hub id or s3://")
    return resolve_model(model)
