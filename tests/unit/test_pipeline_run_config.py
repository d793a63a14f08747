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
    assert configs["evaluate"].engine.model == "s3://bucket/runs/exp1/train/model"
    assert configs["evaluate"].run_name == "evaluate"


def test_stage_sections_are_the_stages_own_configs():
    configs = stage_configs(_cfg(["augment.aug.AnsAug.k=7", "train.lr=3e-5", "evaluate.limit=5"]))
    assert configs["augment"].aug.AnsAug.k == 7
    assert configs["train"].lr == pytest.approx(3e-5)
    assert configs["evaluate"].limit == 5


def test_without_training_evaluate_keeps_its_own_model_and_train_its_own_data():
    configs = stage_configs(_cfg(["evaluate.model=tiny"], stages=["evaluate"]))
    assert list(configs) == ["evaluate"] and configs["evaluate"].engine.model == "tiny"
    configs = stage_configs(_cfg(["train.data=s3://bucket/other/aug"], stages=["train"]))
    assert configs["train"].data == "s3://bucket/other/aug"


@pytest.mark.parametrize("override, message", [
    (["evaluate.bogus=1"], "evaluate: bogus: unknown key"),
    (["train.lr=fast"], "train: lr:"),
    (["augment.engine.kind=tpu"], "augment: engine.kind:"),
    (["train.output=/elsewhere"], "train.output: set by `run` itself"),
    (["augment.run_name=x"], "augment.run_name: set by `run` itself"),
    (["evaluate.engine.model=other"], "evaluate.engine.model: set by `run` itself"),
    (["evaluate.model=other"], "evaluate.model: set by `run` itself"),
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

    def fake_augment(cfg):
        calls["augment"] = cfg
        store = RunStore(cfg.output, cfg.run_name)
        store.write_json("stats.json", FAKE_STATS)
        store.write_json("metamathqa.json", [{"type": "GSM_AnsAug", "query": "q", "original_question": "q",
                                              "response": "r\nThe answer is: 1"}])
        if calls["write_manifest"]:
            store.write_json("manifest.json", {"ok": True})
        return {"uri": store.uri, "totals": FAKE_STATS["totals"]}

    def fake_train(cfg):
        calls["train"] = cfg
        return {"model_uri": f"{cfg.run_uri}/model", "steps": 2}

    def fake_evaluate(cfg):
        calls["evaluate"] = cfg
        return {"outputs": {"run": f"{cfg.output}/{cfg.run_name}"},
                "datasets": {"gsm8k": {"questions": 4, "greedy": {"strict": {"accuracy": 0.25},
                                                                  "metamath": {"accuracy": 0.5}}}}}

    monkeypatch.setattr(aug_mod, "run_augment", fake_augment)
    monkeypatch.setattr(train_mod, "run_train", fake_train)
    monkeypatch.setattr(eval_mod, "run_evaluate", fake_evaluate)
    return calls


FAKE_STATS = {
    "seeds": {"rows_read": 2, "processed": 2, "quarantined": 0},
    "totals": {"candidates": 4, "accepted": 1, "rejected": 3},
    "by_dataset_aug": [{"dataset": "gsm8k", "aug": "AnsAug", "candidates": 4, "accepted": 1,
                        "acceptance_rate": 0.25, "rewrites_rejected": 0}],
    "export": {"records": 1},
}


def test_run_feeds_each_stage_the_previous_stage_output(tmp_path, fake_stages):
    summary = run_pipeline(_cfg(output=str(tmp_path), name="e2e"))
    root = f"{tmp_path}/e2e"
    assert fake_stages["train"].data == f"{root}/augment"
    assert fake_stages["evaluate"].engine.model == f"{root}/train/model"
    assert summary["evaluate"]["uri"] == f"{root}/evaluate"
    assert summary["evaluate"]["accuracy"] == {"gsm8k": 0.25}
    assert summary["augment"]["stats"] == FAKE_STATS
    assert summary["stages"] == ["augment", "train", "evaluate"]


def test_training_on_an_unfinished_augment_run_is_refused(tmp_path, fake_stages):
    fake_stages["write_manifest"] = False
    with pytest.raises(ConfigError, match="no manifest.json"):
        run_pipeline(_cfg(output=str(tmp_path)))
    assert "train" not in fake_stages


def test_cli_run_errors_are_one_line_exit_2(capsys):
    assert main(["run", "--output", "/tmp/x", "evaluate.bogus=1"]) == 2
    assert capsys.readouterr().err.strip() == "error: evaluate: bogus: unknown key"
    assert main(["run", "--output", "/tmp/x", "--stages", "augment,deploy"]) == 2
    assert main(["run", "--config", "/no/such.yaml"]) == 2


# -- the demo is `run` with a preset ----------------------------------------------------------


def test_demo_is_a_preset_of_run(tmp_path):
    from metamath_ray.demo import demo_config

    cfg = demo_config(str(tmp_path), "hf")
    assert isinstance(cfg, PipelineConfig) and cfg.root == str(tmp_path)  # runs straight under --output
    configs = stage_configs(cfg)
    assert configs["augment"].output == str(tmp_path) and configs["augment"].run_name == "augment"
    assert configs["augment"].engine.kind == "hf" and configs["augment"].aug.AnsAug.k == 2
    assert configs["train"].data == f"{tmp_path}/train-data/train.json"
    assert configs["train"].max_steps == 6
    assert configs["evaluate"].engine.model == f"{tmp_path}/train/model"
    assert configs["evaluate"].engine.kind == "hf" and configs["evaluate"].limit == 8


def test_demo_takes_run_overrides_and_stages(tmp_path):
    from metamath_ray.demo import demo_config

    cfg = demo_config(str(tmp_path), "vllm", ["evaluate"], ["evaluate.limit=2", "augment.aug.AnsAug.k=1"])
    configs = stage_configs(cfg)
    assert list(configs) == ["evaluate"]
    assert configs["evaluate"].limit == 2 and configs["evaluate"].engine.model == "tiny"
    assert configs["evaluate"].engine.engine_kwargs["enforce_eager"] is True
    with pytest.raises(ConfigError, match="train.data: set by `run` itself"):
        stage_configs(demo_config(str(tmp_path), "hf", overrides=["train.data=/elsewhere"]))


def test_demo_trains_on_accepted_records_and_seed_solutions(tmp_path, fake_stages):
    import json

    from metamath_ray.demo import run_demo

    summary = run_demo(str(tmp_path), engine="hf", overrides=["augment.limit=3"])
    mix = json.loads((tmp_path / "train-data" / "train.json").read_text())
    assert fake_stages["train"].data == f"{tmp_path}/train-data/train.json"
    assert mix[0]["query"] == "q"  # the augment run's accepted record comes first
    solutions = mix[1:]
    assert len(solutions) == 6  # 3 bundled GSM8K + 3 MATH seeds, one reference solution each
    assert all(r["response"].splitlines()[-1].startswith("The answer is: ") for r in solutions)
    assert not any("<<" in r["response"] or "####" in r["response"] for r in solutions)
    assert summary["root"] == str(tmp_path) and summary["train"]["steps"] == 2


def test_cli_demo_prints_a_summary_and_keeps_a_run_log(tmp_path, fake_stages, capfd):
    assert main(["demo", "--output", str(tmp_path), "--engine", "hf", "augment.limit=1"]) == 0
    out, err = capfd.readouterr()
    logs = list((tmp_path / "logs").glob("demo-*.log"))
    assert len(logs) == 1
    assert "[run] stage 1/3: augment" in err and f"[demo] log: {logs[0]}" in err
    assert "gsm8k    AnsAug" in out and "train: 2 steps" in out and f"log: {logs[0]}" in out
    assert "gsm8k" in out and "25.0%" in out and "50.0%" in out  # the evaluation table
    assert "random* model" in out
    assert "stage 3/3: evaluate" in logs[0].read_text()
