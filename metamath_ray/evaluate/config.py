"""Configuration of one evaluation run (`metamath-ray evaluate`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from metamath_ray.config import RayConfig
from metamath_ray.engines.config import EngineConfig, SamplingConfig
from metamath_ray.evaluate.datasets import DATASETS
from metamath_ray.storage import RunName


class EvaluateConfig(BaseModel):
    """What to evaluate, how to decode and score, and where the results go.

    Decoding: `greedy` runs one temperature-0 answer per question (the published protocol);
    `k` > 1 adds k sampled answers per question (temperature from `sampling`) for maj@k and pass@k.

    The model under test is `engine.model`, as in every stage that generates. A top-level `model:`
    (the key `train` uses) is accepted as another name for it; both at once must agree.
    """

    model_config = ConfigDict(extra="forbid")

    datasets: list[str] = Field(
        default_factory=lambda: ["gsm8k", "math500", "gsm8k_backward"],
        description="benchmarks to run, a list or a comma string: " + ", ".join(DATASETS),
    )
    paths: dict[str, str] = Field(
        default_factory=dict,
        description="per dataset: a file (local or s3://), 'hf', or hf://owner/name[/config][#split]; "
        "datasets not listed use the bundled slice",
    )
    limit: int | None = Field(None, ge=1, description="first N questions of every dataset")
    greedy: bool = Field(True, description="one greedy answer per question")
    k: int = Field(1, ge=1, description="sampled answers per question for maj@k / pass@k; 1 = none")
    template: Literal["eval_cot", "train", "fewshot"] = Field(
        "eval_cot", description="eval_cot: MetaMath's zero-shot CoT prompt; fewshot: for base models"
    )
    fewshot_shots: int = Field(4, ge=1, le=16, description="template=fewshot: worked examples before the question")
    stop: list[str] | None = Field(None, description="stop strings; default MetaMath's list")
    max_tokens: dict[str, int] = Field(
        default_factory=dict, description="per-dataset new-token budget (default 512 GSM8K-style, 2048 MATH)"
    )
    max_tokens_default: int | None = Field(
        None, ge=1, description="budget for datasets not in max_tokens (replaces the per-dataset defaults)"
    )
    engine: EngineConfig = Field(
        default_factory=EngineConfig,
        description="the engine and the model under test (engine.model: 'tiny', a local HF folder, an s3:// "
        "checkpoint folder, or a hub id)",
    )
    ray: RayConfig = Field(default_factory=RayConfig, description="where the job runs (the section every stage shares)")
    sampling: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(temperature=0.7, top_p=1.0), description="for the k samples"
    )
    output: str = Field("eval-output", description="local path or s3:// URI; the run goes to <output>/<run_name>")
    run_name: RunName = "eval"
    model_cache_dir: str | None = Field(None, description="where s3:// checkpoints are downloaded")
    mode: Literal["cot", "hybrid"] = Field(
        "cot", description="hybrid: also a greedy program per question, run in the sandbox, with the CoT "
        "answer as fallback when the program fails (MAmmoTH); reported beside CoT-only accuracy"
    )
    sandbox_wall_s: float = Field(10.0, gt=0, description="hybrid: wall clock per program")
    sandbox_concurrency: int = Field(2, ge=1, description="hybrid: Ray tasks running programs at once")

    @model_validator(mode="before")
    @classmethod
    def _model_is_engine_model(cls, data: Any) -> Any:
        """Move a top-level `model` into `engine.model`; refuse two different models."""
        if not isinstance(data, dict) or "model" not in data:
            return data
        data = dict(data)
        model = data.pop("model")
        engine = data.get("engine")
        if model is None or not isinstance(engine, (dict, EngineConfig, type(None))):
            return data  # nothing to move, or an engine value its own validation will reject
        if isinstance(engine, EngineConfig):
            engine = engine.model_dump(exclude_unset=True)
        chosen = (engine or {}).get("model")
        if chosen is not None and chosen != model:
            raise ValueError(f"model={model!r} and engine.model={chosen!r} name two models; set engine.model only")
        data["engine"] = {**(engine or {}), "model": model}
        return data

    @field_validator("datasets", mode="before")
    @classmethod
    def _split_names(cls, value):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("datasets")
    @classmethod
    def _known_names(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in DATASETS]
        if unknown:
            raise ValueError(f"unknown dataset(s) {', '.join(unknown)}; expected some of {', '.join(DATASETS)}")
        if not value:
            raise ValueError("no dataset to evaluate")
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _consistent(self) -> "EvaluateConfig":
        if not self.greedy and self.k < 2:
            raise ValueError("nothing to generate: set greedy=true or k >= 2")
        if self.mode == "hybrid" and not self.greedy:
            raise ValueError("mode=hybrid falls back to the greedy chain of thought: set greedy=true")
        for table in (self.paths, self.max_tokens):
            stray = sorted(set(table) - set(DATASETS))
            if stray:
                raise ValueError(f"unknown dataset(s) in paths/max_tokens: {', '.join(stray)}")
        if self.k > 1 and self.sampling.temperature == 0:
            raise ValueError("k > 1 samples need sampling.temperature > 0 (greedy samples are identical)")
        return self

    def max_tokens_for(self, dataset: str) -> int:
        from metamath_ray.evaluate.datasets import dataset_spec

        if dataset in self.max_tokens:
            return self.max_tokens[dataset]
        return self.max_tokens_default or dataset_spec(dataset).max_tokens
