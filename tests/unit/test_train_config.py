from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from metamath_ray.train.config import TrainConfig
from metamath_ray.train.model import deepspeed_config
from metamath_ray.train.run import plan

JOBS = Path(__file__).resolve().parents[2] / "jobs"


@pytest.mark.parametrize("name", ["train_llama2_7b", "train_llama2_13b", "train_llama2_70b_qlora", "train_tiny"])
def test_job_files_validate_and_name_their_launch_command(name):
    text = (JOBS / f"{name}.yaml").read_text()
    assert text.splitlines()[0] == f"# ray job submit --working-dir . -- metamath-ray train --config jobs/{name}.yaml"
    cfg = TrainConfig.model_validate(yaml.safe_load(text))
    assert cfg.global_batch_size % (cfg.micro_batch_size * cfg.num_workers) == 0


def test_defaults_are_metamath_recipe():
    cfg = TrainConfig(data="d", output="o")
    assert (cfg.lr, cfg.epochs, cfg.global_batch_size, cfg.warmup_ratio, cfg.weight_decay) == (2e-5, 3, 128, 0.03, 0.0)
    assert cfg.lr_scheduler == "cosine" and cfg.dtype == "bf16" and cfg.deepspeed.stage == 3
    assert cfg.max_length >= 1024
    assert cfg.checkpoint_every_steps == 1000 and cfg.keep_checkpoints == 2


def test_7b_job_accumulates_to_global_batch_128():
    cfg = TrainConfig.model_validate(yaml.safe_load((JOBS / "train_llama2_7b.yaml").read_text()))
    assert cfg.grad_accum_steps == 4  # 8 workers x 4 per micro-batch x 4 = 128, as MetaMath's run.sh


@pytest.mark.parametrize(
    "bad",
    [
        {"global_batch_size": 10, "micro_batch_size": 4},
        {"lora": {"quantize_4bit": True}},
        {"lora": {"enabled": True, "quantize_4bit": True}},  # QLoRA on CPU
        {"deepspeed": {"stage": 2, "offload_params": True}},
        {"unknown_key": 1},
        {"deepspeed": {"stage": 4}},
    ],
)
def test_invalid_configs_are_rejected(bad):
    with pytest.raises(ValidationError):
        TrainConfig(data="d", output="o", **bad)


def test_deepspeed_config_follows_train_config():
    cfg = TrainConfig(data="d", output="o", num_workers=2, micro_batch_size=2, global_batch_size=16,
                      dtype="fp32", deepspeed={"stage": 3, "offload_optimizer": True, "offload_params": True})
    ds = deepspeed_config(cfg, world_size=2)
    assert ds["train_batch_size"] == 16 and ds["gradient_accumulation_steps"] == 4
    assert ds["zero_optimization"]["stage"] == 3
    assert ds["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    assert ds["zero_optimization"]["offload_param"]["device"] == "cpu"
    assert not ds["bf16"]["enabled"] and not ds["fp16"]["enabled"]
    assert ds["optimizer"]["params"]["torch_adam"] is True  # CPU: no compiled Adam
    assert ds["optimizer"]["params"]["weight_decay"] == 0.0
    gpu = deepspeed_config(TrainConfig(data="d", output="o", use_gpu=True, num_workers=8), world_size=8)
    assert gpu["bf16"]["enabled"] and gpu["optimizer"]["params"]["torch_adam"] is False


def _rows(lengths, dropped=()):
    rows = [{"id": str(i), "num_tokens": n, "drop_reason": ""} for i, n in enumerate(lengths)]
    rows += [{"id": f"d{i}", "num_tokens": n, "drop_reason": "too_long"} for i, n in enumerate(dropped)]
    return rows


def test_plan_counts_drops_with_reasons():
    cfg = TrainConfig(data="d", output="o", global_batch_size=4, micro_batch_size=2, max_length=100)
    p = plan(cfg, _rows([50] * 9, dropped=[150, 101]))
    assert p["steps_per_epoch"] == 2 and p["kept"] == 9 and p["dropped"] == 2
    assert p["dropped_by_reason"] == {"too_long": 2}
    assert p["dropped_rows"][0] == {"id": "d0", "reason": "too_long: 150 tokens > max_length 100", "num_tokens": 150}


def test_plan_refuses_too_little_data():
    cfg = TrainConfig(data="d", output="o", global_batch_size=8, micro_batch_size=2)
    with pytest.raises(ValueError, match="not enough training data"):
        plan(cfg, _rows([10] * 7))


def test_local_paths_become_absolute_for_ray_workers(tmp_path, monkeypatch):
    """Ray Train workers run elsewhere: relative local paths are resolved on the driver."""
    import os

    from metamath_ray.train.run import with_absolute_local_paths

    monkeypatch.chdir(tmp_path)
    (tmp_path / "my-model").mkdir()
    cfg = TrainConfig(model="my-model", data="aug/run1", output="demo-output", run_name="r")
    out = with_absolute_local_paths(cfg)
    assert out.output == os.path.join(str(tmp_path), "demo-output")
    assert out.data == os.path.join(str(tmp_path), "aug/run1")
    assert out.model == os.path.join(str(tmp_path), "my-model")
    hub = with_absolute_local_paths(TrainConfig(model="meta-llama/Llama-2-7b-hf", data="s3://b/d", output="s3://b/o"))
    assert (hub.model, hub.data, hub.output) == ("meta-llama/Llama-2-7b-hf", "s3://b/d", "s3://b/o")


def _sections(model) -> list[type]:
    """`model` and every config section class reachable from its fields (lists included)."""
    from typing import get_args

    from pydantic import BaseModel

    found, todo = [], [model]
    while todo:
        cls = todo.pop()
        if cls in found:
            continue
        found.append(cls)
        for field in cls.model_fields.values():
            for t in [field.annotation, *get_args(field.annotation)]:
                if isinstance(t, type) and issubclass(t, BaseModel):
                    todo.append(t)
    return found


def test_every_field_of_every_section_has_a_description():
    from metamath_ray.config import RayConfig
    from metamath_ray.train.config import DeepSpeedSettings, LoraSettings, PretrainSettings, PretrainSource

    sections = _sections(TrainConfig)
    assert {DeepSpeedSettings, LoraSettings, PretrainSettings, PretrainSource, RayConfig} <= set(sections)
    missing = [f"{cls.__name__}.{name}" for cls in sections
               for name, field in cls.model_fields.items() if not (field.description or "").strip()]
    assert not missing, f"fields without a description: {missing}"


def test_train_config_has_the_shared_ray_section():
    cfg = TrainConfig(data="d", output="o", ray={"num_cpus": 2})
    assert cfg.ray.address is None and cfg.ray.num_cpus == 2
