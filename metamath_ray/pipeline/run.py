"""`metamath-ray run`: augment -> train -> evaluate from one config, for clusters.

The demo's big sibling. One YAML holds a section per stage; the links between stages are filled in
here, so a user never copies URIs by hand:

    <output>/<name>/augment/    the augment run (data/, metamathqa.json, stats.json, manifest.json)
    <output>/<name>/train/      trained on the augment run's accepted data; model/ is the HF export
    <output>/<name>/evaluate/   evaluation of train/model (or of `evaluate.model` when training is skipped)

Every section is validated before any stage starts, so a typo in `evaluate:` fails in a second,
not after a day of generation. Each stage resumes on its own (same run names), so re-submitting
the same config after a crash skips what is done.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from metamath_ray import storage
from metamath_ray.augment.config import AugmentConfig
from metamath_ray.config import ConfigError, build_config
from metamath_ray.evaluate.config import EvaluateConfig
from metamath_ray.storage import StorageError, join, validate_run_name
from metamath_ray.train.config import TrainConfig

Stage = Literal["augment", "train", "evaluate"]
MODEL_DIR = "model"  # train/run.py writes the consolidated Hugging Face folder here
SEED_SOLUTION_MIX = "train-data/train.json"  # under the root, when train_on_seed_solutions is set

log = logging.getLogger(__name__)


class PipelineConfig(BaseModel):
    """Top level of a `metamath-ray run` config; the stage sections are the stages' own configs."""

    model_config = ConfigDict(extra="forbid")

    output: str = Field(..., description="root for all three runs: local folder or s3://bucket/prefix")
    name: str | None = Field(
        "metamath", description="runs go to <output>/<name>/{augment,train,evaluate}; null: straight under <output>"
    )
    stages: list[Stage] = Field(
        default_factory=lambda: ["augment", "train", "evaluate"], description="which stages run, in this order"
    )
    train_on_seed_solutions: bool = Field(
        False,
        description="train on the augment run's accepted records plus the seeds' own reference solutions "
        f"(written to <root>/{SEED_SOLUTION_MIX}); the demo's random model gets every answer rejected",
    )
    augment: dict[str, Any] = Field(default_factory=dict, description="an AugmentConfig (output/run_name filled in)")
    train: dict[str, Any] = Field(default_factory=dict, description="a TrainConfig (data/output/run_name filled in)")
    evaluate: dict[str, Any] = Field(default_factory=dict, description="an EvaluateConfig (model/output/run_name filled in)")

    @model_validator(mode="after")
    def _check(self):
        try:
            if self.name is not None:
                validate_run_name(self.name)
        except StorageError as e:  # a ValueError here becomes the one-line config error
            raise ValueError(str(e)) from None
        if not self.stages:
            raise ValueError("stages is empty")
        if len(set(self.stages)) != len(self.stages):
            raise ValueError("stages lists a stage twice")
        return self

    @property
    def root(self) -> str:
        return self.output if self.name is None else join(self.output, self.name)


def _linked(section: dict, filled: dict, stage: str) -> dict:
    clash = sorted(k for k in filled if k in section)
    if clash:
        raise ConfigError(f"{stage}.{clash[0]}: set by `run` itself (it links the stages); remove it")
    return {**section, **filled}


def _with_trained_model(cfg: PipelineConfig) -> dict:
    """The evaluate section with `engine.model` linked to the model the train stage exports."""
    engine = dict(cfg.evaluate.get("engine") or {})
    if "model" in engine or "model" in cfg.evaluate:
        where = "engine.model" if "model" in engine else "model"
        raise ConfigError(f"evaluate.{where}: set by `run` itself (it evaluates train/{MODEL_DIR}); remove it")
    return {**cfg.evaluate, "engine": {**engine, "model": join(cfg.root, "train", MODEL_DIR)}}


def stage_configs(cfg: PipelineConfig) -> dict[str, BaseModel]:
    """Validate every wanted stage's section with the links filled in (pure; no I/O)."""
    out: dict[str, BaseModel] = {}
    augment_uri = join(cfg.root, "augment")
    if "augment" in cfg.stages:
        out["augment"] = build_config(
            AugmentConfig, _linked(cfg.augment, {"output": cfg.root, "run_name": "augment"}, "augment"), "augment")
    if "train" in cfg.stages:
        data = {"data": augment_uri} if "augment" in cfg.stages or "data" not in cfg.train else {}
        if cfg.train_on_seed_solutions:
            data = {"data": join(cfg.root, SEED_SOLUTION_MIX)}
        out["train"] = build_config(
            TrainConfig, _linked(cfg.train, {**data, "output": cfg.root, "run_name": "train"}, "train"), "train")
    if "evaluate" in cfg.stages:
        section = _with_trained_model(cfg) if "train" in cfg.stages else cfg.evaluate
        out["evaluate"] = build_config(
            EvaluateConfig, _linked(section, {"output": cfg.root, "run_name": "evaluate"}, "evaluate"), "evaluate")
    return out


def run_pipeline(cfg: PipelineConfig) -> dict[str, Any]:
    """Run the wanted stages in order; each stage's result feeds the next."""
    configs = stage_configs(cfg)
    summary: dict[str, Any] = {"root": cfg.root, "stages": list(configs)}
    started = time.time()
    runners = {"augment": _run_augment, "train": _run_train, "evaluate": _run_evaluate}
    for number, (stage, stage_cfg) in enumerate(configs.items(), 1):
        log.info("stage %d/%d: %s", number, len(configs), stage)
        summary[stage] = runners[stage](cfg, stage_cfg, summary)
    summary["wall_time_s"] = round(time.time() - started, 1)
    return summary


def _run_augment(cfg: PipelineConfig, aug_cfg: AugmentConfig, summary: dict) -> dict:
    from metamath_ray.pipeline.augment import run_augment

    manifest = run_augment(aug_cfg)
    stats = storage.read_json(join(manifest["uri"], "stats.json"))
    return {"uri": manifest["uri"], "totals": manifest["totals"], "stats": stats}


def _run_train(cfg: PipelineConfig, train_cfg: TrainConfig, summary: dict) -> dict:
    from metamath_ray.train.run import run_train

    augment_uri = join(cfg.root, "augment")
    if "augment" in summary and not storage.exists(join(augment_uri, "manifest.json")):
        raise ConfigError(f"augment run {augment_uri} has no manifest.json; it did not finish")
    if cfg.train_on_seed_solutions:
        _write_seed_solution_mix(cfg, train_cfg.data)
    log.info("training %s on %s", train_cfg.model, train_cfg.data)
    return run_train(train_cfg)


def _write_seed_solution_mix(cfg: PipelineConfig, data_uri: str) -> None:
    """The augment run's accepted records (if any) plus the seeds' reference solutions, as one
    MetaMathQA file: with a random model, verification rejects every chain of thought, and
    training would otherwise have nothing to learn from."""
    from metamath_ray.augment.export import seed_solution_records
    from metamath_ray.seeds import load_seeds

    aug_cfg = build_config(AugmentConfig, {**cfg.augment, "output": cfg.root, "run_name": "augment"}, "augment")
    records = json.loads(storage.read_text_if_exists(join(cfg.root, "augment", "metamathqa.json")) or "[]")
    seeds = load_seeds(aug_cfg.seeds, limit=aug_cfg.limit).seeds
    storage.write_bytes(data_uri, json.dumps(records + seed_solution_records(seeds), ensure_ascii=False).encode())
    log.info("training data: %d accepted records + %d seed solutions", len(records), len(seeds))


def _run_evaluate(cfg: PipelineConfig, eval_cfg: EvaluateConfig, summary: dict) -> dict:
    from metamath_ray.pipeline.evaluate import run_evaluate

    trained = summary.get("train", {}).get("model_uri")
    if trained:
        eval_cfg = eval_cfg.model_copy(update={"engine": eval_cfg.engine.model_copy(update={"model": trained})})
    log.info("evaluating %s on %s", eval_cfg.engine.model, ", ".join(eval_cfg.datasets))
    report = run_evaluate(eval_cfg)
    return {"uri": report["outputs"]["run"], "accuracy": _headline(report), "report": report}


def _headline(report: dict) -> dict[str, Any]:
    """dataset -> strict accuracy (greedy, or maj@k when only sampling ran), for the summary."""
    from metamath_ray.evaluate.summary import headline

    out = {}
    for name, entry in report.get("datasets", {}).items():
        cell = headline(entry, "strict")
        out[name] = cell.get("accuracy") if cell else None
    return out


# Every command's config model, by the name of its command (config checks and fuzzing walk these).
STAGES: dict[str, type[BaseModel]] = {
    "augment": AugmentConfig,
    "train": TrainConfig,
    "evaluate": EvaluateConfig,
    "run": PipelineConfig,
}

__all__ = ["STAGES", "PipelineConfig", "run_pipeline", "stage_configs"]
