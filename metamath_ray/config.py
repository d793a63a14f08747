"""Loading stage configs from YAML with `key.sub=value` overrides, and the sections all stages share.

Each stage's own config lives beside it (`augment/config.py`, `train/config.py`, `evaluate/config.py`).

Errors are one line naming the key (`ConfigError`); the CLI turns them into exit status 2.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A bad config file, key, type or value; the message is one line."""

    def __init__(self, message: str) -> None:
        # user text (keys, values, paths) may hold line breaks: keep the message on one line
        super().__init__(str(message).replace("\r", "\\r").replace("\n", "\\n"))


class RayConfig(BaseModel):
    """Where the job runs. `address: null` starts a local Ray bound to 127.0.0.1 only."""

    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(
        None, description="Ray cluster address; null: connect to RAY_ADDRESS if set (ray job submit), else start a local loopback Ray"
    )
    num_cpus: int | None = Field(None, ge=1, description="local Ray only: CPUs to declare (default: all)")
    num_gpus: int | None = Field(
        None, ge=0, description="local Ray only: GPUs to declare; on a CPU-only machine the vllm engine needs 1 (a logical GPU)"
    )
    object_store_memory_gb: float | None = Field(None, gt=0, description="local Ray only")


# ---------------------------------------------------------------------------------------------
# Loading


def parse_override(item: str) -> tuple[list[str], Any]:
    """`engine.replicas=4` -> (['engine', 'replicas'], 4); the value is parsed as YAML."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not key=value")
    key, raw = item.split("=", 1)
    parts = key.strip().split(".")
    if not all(p.strip() for p in parts):
        raise ConfigError(f"override {item!r} has an empty key part")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except (yaml.YAMLError, ValueError):  # ValueError: a 5000-digit int, a date like 2001-13-45
        value = raw
    except RecursionError:
        raise ConfigError(f"override {key.strip()!r}: value nested too deeply") from None
    return parts, value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    for item in overrides:
        parts, value = parse_override(item)
        node = data
        for p in parts[:-1]:
            child = node.get(p)
            if child is None:
                child = node[p] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {p!r} is not a section")
            node = child
        node[parts[-1]] = value
    return data


def read_yaml(path: str | os.PathLike) -> dict:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"invalid YAML in {path}{where}: {getattr(e, 'problem', e)}") from None
    except RecursionError:
        raise ConfigError(f"invalid YAML in {path}: nested too deeply") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {path} is not UTF-8 text: {e.reason} at byte {e.start}") from None
    except ValueError as e:  # a scalar YAML cannot build: a 5000-digit int, a date like 2001-13-45
        raise ConfigError(f"invalid value in {path}: {str(e).splitlines()[0] if str(e) else 'bad scalar'}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def format_validation_error(err: ValidationError, source: str = "config") -> str:
    first = err.errors()[0]
    loc = ".".join(str(x) for x in first.get("loc", ())) or "(top level)"
    msg = first.get("msg", "invalid")
    if first.get("type") == "extra_forbidden":
        msg = "unknown key"
    more = f" (+{len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"{source}: {loc}: {msg}{more}"


def build_config(model: type[M], data: dict, source: str = "config") -> M:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, source)) from None


def load_config(
    model: type[M], path: str | os.PathLike | None = None, overrides: list[str] | None = None,
    base: dict | None = None,
) -> M:
    """YAML file (optional) <- `base` values (CLI flags) <- `key=value` overrides, then validate."""
    data = read_yaml(path) if path else {}
    for key, value in (base or {}).items():
        if value is not None:
            data[key] = value
    apply_overrides(data, list(overrides or []))
    return build_config(model, data, source=str(path) if path else "config")
