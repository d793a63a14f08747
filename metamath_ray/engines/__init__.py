"""Text generation engines as Ray Data stages, chosen by `engine.kind` through one registry."""

from __future__ import annotations

from metamath_ray.engines.config import EngineConfig, SamplingConfig
from metamath_ray.engines.registry import (
    ENGINES,
    EngineSpec,
    build_generation_stage,
    engine_spec,
    logical_gpus,
    preflight,
    register_engine,
)

__all__ = [
    "ENGINES", "EngineConfig", "EngineSpec", "SamplingConfig", "build_generation_stage", "engine_spec",
    "logical_gpus", "preflight", "register_engine",
]
