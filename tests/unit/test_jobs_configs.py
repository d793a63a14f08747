"""Every job file under jobs/ loads through the project's own config models and names its launch
command in its first line.

The file name says which stage a config is for: augment_* -> AugmentConfig, train_* ->
TrainConfig (pretrain_* too: continued pretraining is `train` with objective=pretrain),
evaluate_* -> EvaluateConfig, run_* -> PipelineConfig (every stage section validated
with the stage links filled in; the demo is a preset of `run`, so it has no job file of its own).
rayjob*.yaml is a KubeRay
manifest: parsed as YAML, and its entrypoint must name a job config that exists here.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from metamath_ray.augment.config import AugmentConfig
from metamath_ray.config import load_config
from metamath_ray.evaluate.config import EvaluateConfig
from metamath_ray.pipeline.run import PipelineConfig, stage_configs
from metamath_ray.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
JOBS = ROOT / "jobs"

MODELS = {"augment_": AugmentConfig, "train_": TrainConfig, "evaluate_": EvaluateConfig, "run_": PipelineConfig,
          "pretrain_": TrainConfig}
STAGE_OF = {"augment_": "augment", "train_": "train", "evaluate_": "evaluate", "run_": "run", "pretrain_": "train"}
LAUNCH_PREFIXES = ("# ray job submit", "# metamath-ray")

ALL_YAML = sorted(p for p in JOBS.glob("*.y*ml"))
CONFIGS = [p for p in ALL_YAML if not p.name.startswith("rayjob")]
RAYJOBS = [p for p in ALL_YAML if p.name.startswith("rayjob")]


def _prefix(path: Path) -> str:
    for prefix in MODELS:
        if path.name.startswith(prefix):
            return prefix
    raise AssertionError(
        f"{path.name}: job configs are named augment_*, train_*, pretrain_*, evaluate_* or run_* "
        "(the prefix picks the config model the CLI validates it with)"
    )


def _first_line(path: Path) -> str:
    return path.read_text(encoding="utf-8").splitlines()[0] if path.stat().st_size else ""


def test_there_are_job_files():
    names = {p.name for p in ALL_YAML}
    assert any(n.startswith("augment_") for n in names)
    assert RAYJOBS, "jobs/rayjob.yaml (KubeRay) is missing"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_validates_against_its_stage_model(path):
    model = MODELS[_prefix(path)]
    cfg = load_config(model, path)  # raises ConfigError (one line, naming the key) when invalid
    assert isinstance(cfg, model)
    if model is PipelineConfig:
        assert set(stage_configs(cfg)) == set(cfg.stages)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_starts_with_its_launch_command(path):
    first = _first_line(path)
    assert first.startswith(LAUNCH_PREFIXES), f"{path.name}: first line must be the launch command, got {first!r}"
    # The command runs this very file with the right stage: `metamath-ray <stage> --config jobs/<file>`.
    words = shlex.split(first.lstrip("#"))
    assert "metamath-ray" in words, first
    stage = words[words.index("metamath-ray") + 1]
    assert stage == STAGE_OF[_prefix(path)], f"{path.name}: launch command runs {stage!r}"
    assert "--config" in words and words[words.index("--config") + 1] == f"jobs/{path.name}", first


@pytest.mark.parametrize("path", RAYJOBS, ids=lambda p: p.name)
def test_rayjob_manifest(path):
    manifest = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert _first_line(path).startswith("# kubectl apply -f jobs/" + path.name)
    assert manifest["apiVersion"] == "ray.io/v1"
    assert manifest["kind"] == "RayJob"
    spec = manifest["spec"]
    entrypoint = spec["entrypoint"]
    m = re.search(r"metamath-ray\s+(\w+)\s+.*--config\s+(\S+)", entrypoint)
    assert m, entrypoint
    stage, config = m.group(1), m.group(2)
    target = ROOT / config
    assert config.startswith("jobs/") and target.is_file(), f"entrypoint names a missing file: {config}"
    assert STAGE_OF[_prefix(target)] == stage
    load_config(MODELS[_prefix(target)], target)
    yaml.safe_load(spec.get("runtimeEnvYAML", "") or "{}")  # the embedded runtime env is YAML too

    cluster = spec["rayClusterSpec"]
    head = cluster["headGroupSpec"]
    assert str(head["rayStartParams"].get("num-cpus")) == "0", "the head must run no tasks"
    images = [c["image"] for c in head["template"]["spec"]["containers"]]
    for group in cluster["workerGroupSpecs"]:
        assert group.get("minReplicas", 0) == 0
        images += [c["image"] for c in group["template"]["spec"]["containers"]]
    import ray

    for image in images:
        assert image.startswith(f"rayproject/ray-llm:{ray.__version__}-"), image
    assert cluster["rayVersion"] == ray.__version__
