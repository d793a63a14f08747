"""Configuration of the augment stage (`metamath-ray augment`): seeds in, MetaMathQA-style data out.

Per-augmentation budgets (`aug.<name>`) come from the augmentation registry, so a new augmentation
brings its own section. Pure pydantic: no Ray.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from metamath_ray.augment.budget import AdaptiveMode
from metamath_ray.augment.registry import AUGMENTATIONS, DEFAULT_AUGMENTATIONS, AugBudgets
from metamath_ray.config import RayConfig
from metamath_ray.engines.config import EngineConfig, SamplingConfig
from metamath_ray.storage import RunName


class SeedSource(BaseModel):
    """One file (or dataset) of seed questions."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(..., description="JSONL/JSON/Parquet file (local or s3://), 'bundled:gsm8k'/'bundled:math', or hf://owner/name[#split]")
    dataset: Literal["gsm8k", "math"] | None = Field(None, description="gsm8k | math; inferred from the fields when null")
    split: str = Field("train", description="used in seed ids")


class DedupConfig(BaseModel):
    """MinHash near-duplicate removal over accepted data."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="drop near-duplicate questions and (question, response) pairs")
    threshold: float = Field(0.85, gt=0, le=1, description="MinHash Jaccard above which two texts are near-duplicates")
    num_perm: int = Field(128, ge=16, description="MinHash permutations (more: a finer similarity estimate)")
    ngram: int = Field(3, ge=1, description="word shingles")


class DecontamConfig(BaseModel):
    """n-gram decontamination against the evaluation sets."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="drop accepted rows whose question shares an n-gram with an evaluation set")
    references: list[str] = Field(
        default_factory=lambda: ["bundled:eval"],
        description="evaluation files (GSM8K test, MATH test, GSM8K-Backward, SVAMP; local or s3://); 'bundled:eval' = the packaged full sets: GSM8K test, MATH test, GSM8K-Backward, SVAMP",
    )
    ngram_sizes: list[int] = Field(default_factory=lambda: [8, 13], description="word n-gram sizes")


class VerifyConfig(BaseModel):
    """Checks on a chain of thought beyond its final answer."""

    model_config = ConfigDict(extra="forbid")

    steps: bool = Field(
        True,
        description="recompute every explicit arithmetic claim of a right-answer chain of thought "
        "(`5 * 4 = 20`, `<<48/2=24>>`, LaTeX) exactly and reject it as wrong_step when one does not hold "
        "(answers/steps.py; claims with a variable or an unreadable side are skipped, stated rounding is allowed)",
    )


class AugmentConfig(BaseModel):
    """`metamath-ray augment`: seeds in, MetaMathQA-style data out."""

    model_config = ConfigDict(extra="forbid")

    seeds: list[SeedSource] = Field(
        default_factory=lambda: [SeedSource(path="bundled:gsm8k"), SeedSource(path="bundled:math")],
        description="seed sources; default the bundled GSM8K and MATH training slices",
    )
    output: str = Field("runs", description="local folder or s3://bucket/prefix; the run lives in <output>/<run_name>/")
    run_name: RunName = Field("augment", description="rerunning the same name resumes and never duplicates")
    augmentations: list[str] = Field(
        default_factory=lambda: list(DEFAULT_AUGMENTATIONS), description="add PoT for program-of-thought data"
    )
    aug: AugBudgets = Field(default_factory=AugBudgets, description="per augmentation budgets")
    adaptive: AdaptiveMode = Field(
        "uniform",
        description="chains of thought per question variant after round 0 (k each): 'off' samples k once; "
        "'uniform' resamples variants short of k accepted until k or max_attempts; 'prop2diff' (DART-Math) "
        "gives each variant a target of accepted answers proportional to its round-0 failure rate "
        "(ceil(k_max x failure rate), k_max fitted to the wave's budget; none beyond round 0 for a variant "
        "that failed nothing) and resamples, round after round, until the target, max_attempts or the "
        "wave's budget_per_variant x variants is spent, keeping every accepted one (augment/budget.py). "
        "true/false (older configs) mean uniform/off",
    )
    budget_per_variant: float = Field(
        2.0, ge=0,
        description="prop2diff: extra chains of thought per variant on average after round 0 (a wave's "
        "budget is this x its variants, rounded down; it sets k_max, and solving stops when it is spent). "
        "To compare with uniform at one budget, set it to a uniform run's stats.json "
        "by_difficulty.extra_attempts / variants; ignored by off and uniform",
    )
    limit: int | None = Field(None, ge=1, description="first N seeds of every source")
    chunk_seeds: int = Field(64, ge=1, description="seeds per committed shard (the unit of resume)")
    chunks_per_wave: int = Field(
        16, ge=1,
        description="chunks generated per wave (the engines start once per job and serve every wave); a "
        "wave's passes end together, so more keeps the replicas busier and fewer loses less work to a crash",
    )
    max_question_chars: int = Field(4000, ge=10, description="longer seed questions are quarantined")
    engine: EngineConfig = Field(default_factory=EngineConfig, description="the teacher that generates")
    sampling: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(temperature=0.7, top_p=1.0, max_tokens=512),
        description="chains of thought",
    )
    rewrite_sampling: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(temperature=0.7, top_p=1.0, max_tokens=256),
        description="Rephrasing / SV rewrites",
    )
    verify: VerifyConfig = Field(default_factory=VerifyConfig, description="checks beyond the final answer")
    dedup: DedupConfig = Field(default_factory=DedupConfig, description="near-duplicate removal")
    decontam: DecontamConfig = Field(default_factory=DecontamConfig, description="decontamination against evaluation sets")
    export_mix: dict[str, int | float] | None = Field(
        None, description="MetaMathQA type -> count (int) or weight (float) for metamathqa.json; null keeps all"
    )
    prompt_version: str = Field("v1", description="recorded on every row; bump when prompts change")
    ray: RayConfig = Field(default_factory=RayConfig, description="where the job runs (local loopback Ray by default)")

    @field_validator("augmentations")
    @classmethod
    def _known_augs(cls, value: list[str]) -> list[str]:
        unknown = [a for a in value if a not in AUGMENTATIONS]
        if unknown:
            raise ValueError(f"unknown augmentation(s) {unknown}; expected some of {list(AUGMENTATIONS)}")
        return list(dict.fromkeys(value))

    @field_validator("adaptive", mode="before")
    @classmethod
    def _legacy_adaptive(cls, value):
        # `adaptive` was a bool before prop2diff: keep those configs working with the same meaning.
        return {True: "uniform", False: "off"}.get(value, value) if isinstance(value, bool) else value

    @model_validator(mode="after")
    def _budgets_consistent(self) -> "AugmentConfig":
        for name in AUGMENTATIONS:
            s = self.aug[name]
            if s.max_attempts < s.k:
                raise ValueError(f"aug.{name}: max_attempts ({s.max_attempts}) < k ({s.k})")
        return self
