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

from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from metamath_ray.config import AugmentConfig, ConfigError, build_config
from metamath_ray.evaluate.config import EvaluateConfig
from metamath_ray.storage import StorageError, validate_run_name
from metamath_ray.train.config import TrainConfig, join_uri

Stage = Literal["augment", "train", "evaluate"]
MODEL_DIR = "model"  # train/run.py writes the consolidated Hugging Face folder here


class PipelineConfig(BaseModel):
    """Top level of a `metamath-ray run` config; the stage sections are the stages' own configs."""

    model_config = ConfigDict(extra="forbid")

    output: str = Field(..., description="root for all three runs: local folder or s3://bucket/prefix")
    name: str = Field("metamath", description="runs go to <output>/<name>/{augment,train,evaluate}")
    stages: list[Stage] = Field(default_factory=lambda: ["augment", "train", "evaluate"])
    augment: dict[str, Any] = Field(default_factory=dict, description="an AugmentConfig (output/run_name filled in)")
    train: dict[str, Any] = Field(default_factory=dict, description="a TrainConfig (data/output/run_name filled in)")
    evaluate: dict[str, Any] = Field(default_factory=dict, description="an EvaluateConfig (model/output/run_name filled in)")

    @model_validator(mode="after")
    def _check(self):
        try:
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
        return join_uri(self.output, self.name)


def _linked(section: dict, filled: dict, stage: str) -> dict:
    clash = sorted(k for k in filled if k in section)
    if clash:
        raise ConfigError(f"{stage}.{clash[0]}: set by `run` itself (it links the stages); remove it")
    return {**section, **filled}


def stage_configs(cfg: PipelineConfig) -> dict[str, BaseModel]:
    """Validate every wanted stage's section with the links filled in (pure; no I/O)."""
    out: dict[str, BaseModel] = {}
    augment_uri = join_uri(cfg.root, "augment")
    if "augment" in cfg.stages:
        out["augment"] = build_config(
            AugmentConfig, _linked(cfg.augment, {"output": cfg.root, "run_name": "augment"}, "augment"), "augment")
    if "train" in cfg.stages:
        data = {"data": augment_uri} if "augment" in cfg.stages or "data" not in cfg.train else {}
        out["train"] = build_config(
            TrainConfig, _linked(cfg.train, {**data, "output": cfg.root, "run_name": "train"}, "train"), "train")
    if "evaluate" in cfg.stages:
        model = {"model": join_uri(cfg.root, "train", MODEL_DIR)} if "train" in cfg.stages else {}
        out["evaluate"] = build_config(
            EvaluateConfig, _linked(cfg.evaluate, {**model, "output": cfg.root, "run_name": "evaluate"}, "evaluate"),
            "evaluate")
    return out


def run_pipeline(cfg: PipelineConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the wanted stages in order; each stage's result feeds the next."""
    import time

    from metamath_ray.storage import RunStore

    configs = stage_configs(cfg)
    summary: dict[str, Any] = {"root": cfg.root, "stages": list(configs)}
    t0 = time.time()
    if "augment" in configs:
        from metamath_ray.pipeline.augment import run_augment

        log(f"[run] augment -> {cfg.root}/augment")
        manifest = run_augment(configs["augment"], log=log)
        summary["augment"] = {"uri": manifest["uri"], "totals": manifest["totals"]}
    if "train" in configs:
        from metamath_ray.train.run import run_train

        train_cfg = configs["train"]
        if "augment" in configs and not RunStore(cfg.root, "augment").exists("manifest.json"):
            raise ConfigError(f"augment run {cfg.root}/augment has no manifest.json; it did not finish")
        log(f"[run] train {train_cfg.model} on {train_cfg.data} -> {train_cfg.run_uri}")
        summary["train"] = run_train(train_cfg)
    if "evaluate" in configs:
        from metamath_ray.pipeline.evaluate import run_evaluate

        eval_cfg = configs["evaluate"]
        if "train" in summary and summary["train"].get("model_uri"):
            eval_cfg = eval_cfg.model_copy(update={"model": summary["train"]["model_uri"]})
        log(f"[run] evaluate {eval_cfg.model} on {', '.join(eval_cfg.datasets)}")
        report = run_evaluate(eval_cfg)
        summary["evaluate"] = {"uri": report["outputs"]["run"], "accuracy": _headline(report)}
    summary["wall_time_s"] = round(time.time() - t0, 1)
    return summary


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
