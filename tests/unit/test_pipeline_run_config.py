"""`metamath-ray run`: one config, three stages, links filled in and validated up front (no Ray)."""

from __future__ import annotations

import pytest

from metamath_ray.cli import main
from metamath_ray.config import ConfigError, load_config
from metamath_ray.pipeline.run import PipelineConfig, run_pipeline, stage_configs


def _cfg(overrides=(), **base):
    return load_config(PipelineConfig, None, list(overrides), base={"output": "s3://bucket/runs", **base})


def test_stages_are_linked_through_the_output_root():
    configs = stage_configs(_cfg(["train.model=tiny"], name="exp1"))
    assert list(configs) == ["augment", "train", "evaluate"]
    assert configs["augment"].output == "s3://bucket/runs/exp1" and configs["augment"].run_name == "augment"
    assert configs["train"].data == "s3://bucket/runs/exp1/augment"
    assert configs["train"].run_uri == "s3://bucket/runs/exp1/train"
    assert configs["evaluate"].model == "s3://bucket/runs/exp1/train/model"
    assert configs["evaluate"].run_name == "evaluate"


def test_stage_sections_are_the_stages_own_configs():
    configs = stage_configs(_cfg(["augment.aug.AnsAug.k=7", "train.lr=3e-5", "evaluate.limit=5"]))
    assert configs["augment"].aug.AnsAug.k == 7
    assert configs["train"].lr == pytest.approx(3e-5)
    assert configs["evaluate"].limit == 5


def test_without_training_evaluate_keeps_its_own_model_and_train_its_own_data():
    configs = stage_configs(_cfg(["evaluate.model=tiny"], stages=["evaluate"]))
    assert list(configs) == ["evaluate"] and configs["evaluate"].model == "tiny"
    configs = stage_configs(_cfg(["train.data=s3://bucket/other/aug"], stages=["train"]))
    assert configs["train"].data == "s3://bucket/other/aug"


@pytest.mark.parametrize("override, message", [
    (["evaluate.bogus=1"], "evaluate: bogus: unknown key"),
    (["train.lr=fast"], "train: lr:"),
    (["augment.engine.kind=tpu"], "augment: engine.kind:"),
    (["train.output=/elsewhere"], "train.output: set by `run` itself"),
    (["augment.run_name=x"], "augment.run_name: set by `run` itself"),
    (["colour=blue"], "colour: unknown key"),
])
def test_bad_sections_fail_before_anything_runs(override, message):
    with pytest.raises(ConfigError) as err:
        stage_configs(_cfg(override))
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("base, message", [
    ({"stages": []}, "stages is empty"),
    ({"stages": ["train", "train"]}, "twice"),
    ({"name": "../escape"}, "name"),
])
def test_bad_top_level(base, message):
    with pytest.raises(ConfigError) as err:
        _cfg(**base)
    assert message in str(err.value)


@pytest.fixture()
def fake_stages(monkeypatch):
    """Stand-ins for the three stage entry points that record what `run` hands each of them."""
    import metamath_ray.pipeline.augment as aug_mod
    import metamath_ray.pipeline.evaluate as eval_mod
    import metamath_ray.train.run as train_mod
    from metamath_ray.storage import RunStore

    calls: dict = {"write_manifest": True}

    def fake_augment(cfg, log=print):
        calls["augment"] = cfg
        store = RunStore(cfg.output, cfg.run_name)
        if calls["write_manifest"]:
            store.write_json("manifest.json", {"ok": True})
        return {"uri": store.uri, "totals": {"accepted": 3}}

    def fake_train(cfg):
        calls["train"] = cfg
        return {"model_uri": f"{cfg.run_uri}/model", "steps": 2}

    def fake_evaluate(cfg):
        calls["evaluate"] = cfg
        return {"outputs": {"run": f"{cfg.output}/{cfg.run_name}"},
                "datasets": {"gsm8k": {"greedy": {"strict": {"accuracy": 0.25}}}}}

    monkeypatch.setattr(aug_mod, "run_augment", fake_augment)
    monkeypatch.setattr(train_mod, "run_train", fake_train)
    monkeypatch.setattr(eval_mod, "run_evaluate", fake_evaluate)
    return calls


def test_run_feeds_each_stage_the_previous_stage_output(tmp_path, fake_stages):
    summary = run_pipeline(_cfg(output=str(tmp_path), name="e2e"), log=lambda _: None)
    root = f"{tmp_path}/e2e"
    assert fake_stages["train"].data == f"{root}/augment"
    assert fake_stages["evaluate"].model == f"{root}/train/model"
    assert summary["evaluate"] == {"uri": f"{root}/evaluate", "accuracy": {"gsm8k": 0.25}}
    assert summary["stages"] == ["augment", "train", "evaluate"]


def test_training_on_an_unfinished_augment_run_is_refused(tmp_path, fake_stages):
    fake_stages["write_manifest"] = False
    with pytest.raises(ConfigError, match="no manifest.json"):
        run_pipeline(_cfg(output=str(tmp_path)), log=lambda _: None)
    assert "train" not in fake_stages


def test_cli_run_errors_are_one_line_exit_2(capsys):
    assert main(["run", "--output", "/tmp/x", "evaluate.bogus=1"]) == 2
    assert capsys.readouterr().err.strip() == "error: evaluate: bogus: unknown key"
    assert main(["run", "--output", "/tmp/x", "--stages", "augment,deploy"]) == 2
    assert main(["run", "--config", "/no/such.yaml"]) == 2
