"""Text generation engines as Ray Data stages.

Every engine is a function `Dataset -> Dataset`. Input rows need `prompt` (str) and `sample_seed`
(int), optionally `max_tokens` (int); output rows keep every input column and add
`generated_text`, `num_input_tokens` and `num_generated_tokens`.
"""

from __future__ import annotations

from typing import Callable

from metamath_ray.engines.config import EngineConfig, SamplingConfig

__all__ = ["EngineConfig", "SamplingConfig", "build_generation_stage"]


def build_generation_stage(engine: EngineConfig, sampling: SamplingConfig) -> Callable:
    if engine.kind == "vllm":
        from metamath_ray.engines.vllm_engine import build_vllm_stage

        return build_vllm_stage(engine, sampling)
    if engine.kind == "hf":
        from metamath_ray.engines.hf_engine import build_hf_stage

        return build_hf_stage(engine, sampling)
    raise ValueError(f"unknown engine kind {engine.kind!r}")
