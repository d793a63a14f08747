from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from metamath_ray.evaluate.config import EvaluateConfig


def test_datasets_from_comma_string_dedupes():
    cfg = EvaluateConfig(datasets="gsm8k, math500,gsm8k", output="/tmp/x")
    assert cfg.datasets == ["gsm8k", "math500"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"datasets": "gsm8k,asdiv"},
        {"datasets": ""},
        {"greedy": False, "k": 1},
        {"paths": {"mmlu": "x.jsonl"}},
        {"k": 4, "sampling": {"temperature": 0.0}},
        {"run_name": "a/b"},
        {"unknown_key": 1},
    ],
)
def test_invalid_configs(kwargs):
    with pytest.raises(ValidationError):
        EvaluateConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs, dataset, expected",
    [
        ({}, "gsm8k", 512),
        ({}, "math500", 2048),
        ({"max_tokens_default": 64}, "math", 64),
        ({"max_tokens_default": 64, "max_tokens": {"math": 300}}, "math", 300),
    ],
)
def test_max_tokens_for(kwargs, dataset, expected):
    assert EvaluateConfig(**kwargs).max_tokens_for(dataset) == expected


JOBS = sorted((Path(__file__).resolve().parents[2] / "jobs").glob("evaluate_*.yaml"))


@pytest.mark.parametrize("path", JOBS, ids=lambda p: p.name)
def test_job_files_validate(path):
    text = path.read_text()
    assert text.startswith("# ray job submit") and "metamath-ray evaluate --config" in text.splitlines()[0]
    cfg = EvaluateConfig(**yaml.safe_load(text))
    assert cfg.engine.kind == "vllm" and cfg.datasets


def test_there_are_job_files():
    assert len(JOBS) >= 3
