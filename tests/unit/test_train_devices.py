"""GPU-only training settings fail in one line, before Ray or any worker starts, on a machine without
CUDA (QLoRA's bitsandbytes 4-bit is CUDA only); on a cluster the worker nodes decide."""

from __future__ import annotations

import json
import sys

import pytest

from metamath_ray import cli
from metamath_ray.config import ConfigError
from metamath_ray.train.config import TrainConfig
from metamath_ray.train.run import check_devices, train_single_process

QLORA = ["use_gpu=true", "lora.enabled=true", "lora.quantize_4bit=true"]


@pytest.fixture()
def no_cuda(monkeypatch):
    import metamath_ray.engines.devices as devices

    monkeypatch.setattr(devices, "cuda_available", lambda: False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


@pytest.fixture()
def data(tmp_path):
    path = tmp_path / "metamathqa.json"
    path.write_text(json.dumps([{"query": "What is 2 + 3?", "response": "5.\nThe answer is: 5"}] * 4))
    return path


def _ray_started() -> bool:
    return "ray" in sys.modules and sys.modules["ray"].is_initialized()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (QLORA, "error: lora.quantize_4bit (QLoRA) needs CUDA GPUs (bitsandbytes 4-bit), and this machine has none"),
        (["use_gpu=true"], "error: use_gpu=true but this machine has no CUDA GPU"),
    ],
)
def test_cli_train_refuses_gpu_settings_in_one_line(no_cuda, data, tmp_path, capsys, overrides, message):
    argv = ["train", "--data", str(data), "--model", "tiny", "--output", str(tmp_path / "out"), *overrides]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    # one error line, last, no traceback (before it only the console's "[train] log: <file>" line)
    assert len(errors) == 1 and errors[0].startswith(message) and err.strip().endswith(errors[0]), err
    assert "Traceback" not in err
    assert not _ray_started()


def test_one_process_training_checks_too(no_cuda, data, tmp_path):
    cfg = TrainConfig(data=str(data), output=str(tmp_path), use_gpu=True, lora={"enabled": True, "quantize_4bit": True})
    with pytest.raises(ConfigError, match="QLoRA"):
        train_single_process(cfg)


def test_cpu_settings_and_clusters_pass(no_cuda, monkeypatch, tmp_path):
    check_devices(TrainConfig(data="d.json", output=str(tmp_path), lora={"enabled": True}))  # LoRA on CPU
    gpu = TrainConfig(data="d.json", output=str(tmp_path), use_gpu=True, lora={"enabled": True, "quantize_4bit": True})
    check_devices(gpu.model_copy(update={"ray": gpu.ray.model_copy(update={"address": "ray://head:10001"})}))
    monkeypatch.setenv("RAY_ADDRESS", "http://head:8265")  # under `ray job submit`
    check_devices(gpu)
