"""Pydantic models for every stage, loaded from YAML with `key.sub=value` overrides.

Errors are one line naming the key (`ConfigError`); the CLI turns them into exit status 2.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from metamath_ray.augment.base import AUGMENTATIONS, DEFAULT_AUGMENTATIONS
from metamath_ray.engines.config import EngineConfig, SamplingConfig

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


class AugSettings(BaseModel):
    """Budget of one augmentation."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(4, ge=1, description="accepted chains of thought wanted per question variant")
    max_attempts: int = Field(
        8, ge=1, description="chains of thought sampled per variant at most (adaptive mode keeps sampling until k accepted or this is spent)"
    )
    max_variants: int | None = Field(
        None, ge=1, description="question variants per seed at most (FOBAR masks, SV masks, rephrasings)"
    )
    rewrites: int = Field(1, ge=1, description="Rephrasing/SV: LLM rewrites requested per variant")


class AnsAugSettings(AugSettings):
    k: int = Field(4, ge=1)
    max_attempts: int = Field(8, ge=1)


class RephrasingSettings(AugSettings):
    k: int = Field(2, ge=1)
    max_attempts: int = Field(4, ge=1)
    rewrites: int = Field(2, ge=1)


class FobarSettings(AugSettings):
    k: int = Field(2, ge=1)
    max_attempts: int = Field(4, ge=1)
    max_variants: int | None = Field(3, ge=1)


class SVSettings(FobarSettings):
    pass


class PoTSettings(AugSettings):
    """Program of thought: programs per question, and the sandbox that runs each of them."""

    k: int = Field(2, ge=1)
    max_attempts: int = Field(4, ge=1)
    sandbox_wall_s: float = Field(10.0, gt=0, description="wall clock per program (after interpreter start-up)")
    sandbox_cpu_s: int = Field(5, ge=1, description="CPU seconds per program")
    sandbox_memory_mb: int = Field(1024, ge=256, description="address space per program")
    sandbox_concurrency: int = Field(2, ge=1, description="Ray tasks running programs at once")

    def limits(self):
        from metamath_ray.sandbox import SandboxLimits

        return SandboxLimits(wall_s=self.sandbox_wall_s, cpu_s=self.sandbox_cpu_s, memory_mb=self.sandbox_memory_mb)


class AugBudgets(BaseModel):
    """Per-augmentation budgets; each has its own defaults so `aug.FOBAR.k=3` keeps the rest."""

    model_config = ConfigDict(extra="forbid")

    AnsAug: AnsAugSettings = Field(default_factory=AnsAugSettings)
    Rephrasing: RephrasingSettings = Field(default_factory=RephrasingSettings)
    FOBAR: FobarSettings = Field(default_factory=FobarSettings)
    SV: SVSettings = Field(default_factory=SVSettings)
    PoT: PoTSettings = Field(default_factory=PoTSettings)

    def __getitem__(self, name: str) -> AugSettings:
        return getattr(self, name)


class SeedSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(..., description="JSONL/JSON/Parquet file (local or s3://), 'bundled:gsm8k'/'bundled:math', or hf://owner/name[#split]")
    dataset: Literal["gsm8k", "math"] | None = Field(None, description="gsm8k | math; inferred from the fields when null")
    split: str = Field("train", description="used in seed ids")


class DedupConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    threshold: float = Field(0.85, gt=0, le=1, description="MinHash Jaccard above which two texts are near-duplicates")
    num_perm: int = Field(128, ge=16)
    ngram: int = Field(3, ge=1, description="word shingles")


class DecontamConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    references: list[str] = Field(
        default_factory=lambda: ["bundled:eval"],
        description="evaluation files (GSM8K test, MATH test, GSM8K-Backward, SVAMP; local or s3://); 'bundled:eval' = the packaged slices",
    )
    ngram_sizes: list[int] = Field(default_factory=lambda: [8, 13], description="word n-gram sizes")


class AugmentConfig(BaseModel):
    """`metamath-ray augment`: seeds in, MetaMathQA-style data out."""

    model_config = ConfigDict(extra="forbid")

    seeds: list[SeedSource] = Field(
        default_factory=lambda: [SeedSource(path="bundled:gsm8k"), SeedSource(path="bundled:math")]
    )
    output: str = Field("runs", description="local folder or s3://bucket/prefix; the run lives in <output>/<run_name>/")
    run_name: str = Field("augment", description="rerunning the same name resumes and never duplicates")
    augmentations: list[str] = Field(
        default_factory=lambda: list(DEFAULT_AUGMENTATIONS), description="add PoT for program-of-thought data"
    )
    aug: AugBudgets = Field(default_factory=AugBudgets, description="per augmentation budgets")
    adaptive: bool = Field(
        True, description="resample variants with fewer than k accepted until k or max_attempts (DART-Math style)"
    )
    limit: int | None = Field(None, ge=1, description="first N seeds of every source")
    chunk_seeds: int = Field(64, ge=1, description="seeds per committed shard (the unit of resume)")
    chunks_per_wave: int = Field(
        16, ge=1,
        description="chunks generated per wave; every wave starts the engine once per pass (minutes for a "
        "7B model on GPUs), so more amortises start-up and fewer loses less work to a crash",
    )
    max_question_chars: int = Field(4000, ge=10, description="longer seed questions are quarantined")
    engine: EngineConfig = Field(default_factory=EngineConfig)
    sampling: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(temperature=0.7, top_p=1.0, max_tokens=512),
        description="chains of thought",
    )
    rewrite_sampling: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(temperature=0.7, top_p=1.0, max_tokens=256),
        description="Rephrasing / SV rewrites",
    )
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    decontam: DecontamConfig = Field(default_factory=DecontamConfig)
    export_mix: dict[str, int | float] | None = Field(
        None, description="MetaMathQA type -> count (int) or weight (float) for metamathqa.json; null keeps all"
    )
    prompt_version: str = Field("v1", description="recorded on every row; bump when prompts change")
    ray: RayConfig = Field(default_factory=RayConfig)

    @field_validator("augmentations")
    @classmethod
    def _known_augs(cls, value: list[str]) -> list[str]:
        unknown = [a for a in value if a not in AUGMENTATIONS]
        if unknown:
            raise ValueError(f"unknown augmentation(s) {unknown}; expected some of {list(AUGMENTATIONS)}")
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _fill_aug_settings(self) -> "AugmentConfig":
        for name in AUGMENTATIONS:
            s = self.aug[name]
            if s.max_attempts < s.k:
                raise ValueError(f"aug.{name}: max_attempts ({s.max_attempts}) < k ({s.k})")
        from metamath_ray.storage import StorageError, validate_run_name

        try:
            validate_run_name(self.run_name)
        except StorageError as e:
            raise ValueError(str(e)) from None
        return self


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
