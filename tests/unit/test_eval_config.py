from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from metamath_ray.config import ConfigError, RayConfig, build_config
from metamath_ray.engines.config import EngineConfig
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
    data = yaml.safe_load(text)
    assert "model" not in data, "job files name the model once, as engine.model"
    cfg = EvaluateConfig(**data)
    assert cfg.engine.kind == "vllm" and cfg.engine.model != "tiny" and cfg.datasets
    assert "--model " in text.splitlines()[0]  # the launch command replaces it with the user's checkpoint


def test_there_are_job_files():
    assert len(JOBS) >= 3


@pytest.mark.parametrize(
    "data, kind, model",
    [
        ({}, "vllm", "tiny"),
        ({"engine": {"kind": "hf", "model": "m"}}, "hf", "m"),
        ({"model": "m"}, "vllm", "m"),  # `model` (train's key) is another name for engine.model
        ({"model": "m", "engine": {"kind": "hf"}}, "hf", "m"),
        ({"model": "m", "engine": {"kind": "hf", "model": "m"}}, "hf", "m"),
        ({"model": "m", "engine": EngineConfig(kind="hf")}, "hf", "m"),
        ({"model": None, "engine": {"model": "m"}}, "vllm", "m"),
    ],
)
def test_one_model_field(data, kind, model):
    cfg = EvaluateConfig(**data)
    assert (cfg.engine.kind, cfg.engine.model) == (kind, model)
    assert "model" not in cfg.model_dump()


@pytest.mark.parametrize("engine", [{"model": "b"}, EngineConfig(model="b")])
def test_two_different_models_are_refused_in_one_line(engine):
    with pytest.raises(ConfigError) as err:
        build_config(EvaluateConfig, {"model": "a", "engine": engine})
    message = str(err.value)
    assert "\n" not in message and "model='a' and engine.model='b'" in message


def test_ray_section_is_the_shared_one():
    cfg = EvaluateConfig(ray={"num_cpus": 3})
    assert isinstance(cfg.ray, RayConfig) and cfg.ray.num_cpus == 3 and cfg.ray.address is None
    with pytest.raises(ValidationError):
        EvaluateConfig(ray={"bogus": 1})


def test_every_field_is_described():
    undescribed = [name for name, field in EvaluateConfig.model_fields.items() if not field.description]
    assert undescribed == []


class _Accepted(Exception):
    pass


@pytest.fixture()
def accepted_configs(monkeypatch):
    """The CLI's config, caught where the stage would start."""
    import metamath_ray.pipeline.evaluate as stage

    seen: list[EvaluateConfig] = []

    def accept(cfg):
        seen.append(cfg)
        raise _Accepted

    monkeypatch.setattr(stage, "run_evaluate", accept)
    return seen


@pytest.mark.parametrize("job", JOBS[:1], ids=lambda p: p.name)
def test_cli_model_flag_replaces_the_job_files_model(job, accepted_configs):
    from metamath_ray import cli

    with pytest.raises(_Accepted):
        cli.main(["evaluate", "--config", str(job), "--model", "tiny", "--engine", "hf"])
    [cfg] = accepted_configs
    assert (cfg.engine.kind, cfg.engine.model) == ("hf", "tiny")
    assert cfg.engine.batch_size == yaml.safe_load(job.read_text())["engine"]["batch_size"]  # the rest stays


def test_cli_model_flag_against_a_top_level_model_is_one_line_error(tmp_path, accepted_configs, capsys):
    from metamath_ray import cli

    job = tmp_path / "job.yaml"
    job.write_text("model: meta-math/MetaMath-7B-V1.0\ndatasets: [gsm8k]\n")
    assert cli.main(["evaluate", "--config", str(job), "--model", "tiny"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "engine.model" in err and not accepted_configs


@pytest.mark.parametrize("model", ["meta-math/MetaMath-7B-V1.0", "Qwen/Qwen2.5-Math-7B-Instruct"])
def test_cli_takes_a_hub_id_for_a_model_not_a_missing_folder(model, monkeypatch, tmp_path):
    """`owner/name` is a hub id; it must reach the stage, not fail as a missing local folder."""
    from metamath_ray import cli

    seen = {}

    def stop_before_running(cfg):
        seen["cfg"] = cfg
        raise KeyboardInterrupt  # stop here: nothing runs

    monkeypatch.setattr("metamath_ray.pipeline.evaluate.run_evaluate", stop_before_running)
    code = cli.main(["evaluate", "--model", model, "--datasets", "gsm8k", "--output", str(tmp_path)])
    assert seen["cfg"].engine.model == model  # the stage was reached with the hub id
    assert code == 130  # and an interrupted command does not exit 0


def test_cli_refuses_a_missing_local_model_folder(capsys, tmp_path):
    from metamath_ray import cli

    assert cli.main(["evaluate", "--model", "./no/such/model", "--datasets", "gsm8k", "--output", str(tmp_path)]) == 2
    assert "model folder not found" in capsys.readouterr().err
