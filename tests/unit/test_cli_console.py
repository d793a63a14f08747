"""Each command's console through `cli.main`, with the stage runners replaced (no Ray): messages on
stderr, the summary and the log's location on stdout, everything in `<run>/logs/<command>-*.log`."""

from __future__ import annotations

import logging

import pytest

from metamath_ray import logs
from metamath_ray.cli import main


@pytest.fixture(autouse=True)
def _unconfigured():
    yield
    logs.shutdown()


def _one_log(run_dir):
    found = list((run_dir / "logs").glob("*.log"))
    assert len(found) == 1, found
    return found[0]


def test_train_prints_its_summary_and_keeps_a_log(tmp_path, monkeypatch, capfd):
    import metamath_ray.train.run as train_run

    def fake_train(cfg):
        logging.getLogger("metamath_ray.train.loop").info("step 1/1 loss 2.0")
        print("DeepSpeed noise")  # what a library prints: the run log only
        return {"steps": 1, "final_loss": 2.0, "tokens_per_s": 10.0, "model_uri": f"{cfg.run_uri}/model",
                "run_uri": cfg.run_uri}

    monkeypatch.setattr(train_run, "run_train", fake_train)
    assert main(["train", "--output", str(tmp_path), "--data", "bundled:gsm8k"]) == 0
    out, err = capfd.readouterr()
    log = _one_log(tmp_path / "train")
    assert out.splitlines() == ["train: 1 steps, final loss 2.0000, 10 tokens/s", f"  model: {tmp_path}/train/model",
                                f"  run: {tmp_path}/train", f"log: {log}"]
    assert err.splitlines() == [f"[train] log: {log}", "[train] step 1/1 loss 2.0"]
    assert "DeepSpeed noise" in log.read_text(encoding="utf-8")


def test_evaluate_prints_its_report_and_quiet_keeps_only_that(tmp_path, monkeypatch, capfd):
    import metamath_ray.evaluate.report as report_mod
    import metamath_ray.pipeline.evaluate as evaluate_mod

    def fake_evaluate(cfg):
        logging.getLogger("metamath_ray.pipeline.evaluate").info("24 greedy requests")
        run = f"{cfg.output}/{cfg.run_name}"
        return {"outputs": {"run": run, "samples": f"{run}/samples"}}

    monkeypatch.setattr(evaluate_mod, "run_evaluate", fake_evaluate)
    monkeypatch.setattr(report_mod, "render_markdown", lambda report: "# Evaluation: eval")
    assert main(["evaluate", "--output", str(tmp_path), "--quiet"]) == 0
    out, err = capfd.readouterr()
    log = _one_log(tmp_path / "eval")
    assert err == ""
    assert out.splitlines() == ["# Evaluation: eval", f"report: {tmp_path}/eval/report.json; samples: {tmp_path}/eval/samples",
                                f"log: {log}"]
    assert "24 greedy requests" in log.read_text(encoding="utf-8")
