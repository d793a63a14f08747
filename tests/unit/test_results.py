"""End-of-command summaries (metamath_ray/results.py): short tables from each stage's own records."""

from __future__ import annotations

from metamath_ray import results

STATS = {
    "seeds": {"rows_read": 46, "processed": 45, "quarantined": 1},
    "totals": {"candidates": 90, "accepted": 12, "rejected": 78},
    "by_dataset_aug": [
        {"dataset": "gsm8k", "aug": "AnsAug", "candidates": 48, "accepted": 12, "acceptance_rate": 0.25,
         "rewrites_rejected": 0},
        {"dataset": "math", "aug": "SV", "candidates": 0, "accepted": 0, "acceptance_rate": None,
         "rewrites_rejected": 19},
    ],
    "export": {"records": 11},
}


def test_augment_table():
    lines = results.augment_lines(STATS, "s3://b/runs/augment")
    assert lines[0] == "augment: 46 seed rows = 45 processed + 1 quarantined"
    assert lines[2].split() == ["gsm8k", "AnsAug", "48", "12", "25%", "0"]
    assert lines[3].split() == ["math", "SV", "0", "0", "-", "19"]  # no candidate: no rate, not 0%
    assert lines[4].split() == ["total", "90", "12"]
    assert lines[5] == "  data: s3://b/runs/augment (11 records in metamathqa.json)"


def test_train_lines_with_and_without_a_model():
    summary = {"steps": 5, "final_loss": 6.65449, "tokens_per_s": 4211.7, "model_uri": "/r/train/model",
               "run_uri": "/r/train"}
    assert results.train_lines(summary) == [
        "train: 5 steps, final loss 6.6545, 4212 tokens/s", "  model: /r/train/model", "  run: /r/train"]
    assert results.train_lines({"steps": 0, "final_loss": None, "run_uri": "/r/train"}) == [
        "train: 0 steps", "  run: /r/train"]


def test_evaluate_table_uses_the_headline_metric():
    cell = {"accuracy": 0.125, "ci95": [0.02, 0.47]}
    report = {
        "model": "/r/train/model", "outputs": {"run": "/r/evaluate"},
        "datasets": {
            "gsm8k": {"questions": 8, "greedy": {"strict": cell, "metamath": {"accuracy": 0.25, "ci95": [0, 1]}}},
            # sampling only: the headline is maj@k
            "math500": {"questions": 8, "k": 4, "maj@4": {"strict": cell, "metamath": cell}},
        },
    }
    lines = results.evaluate_lines(report)
    assert lines[0] == "evaluate: /r/train/model"
    assert lines[2].split() == ["gsm8k", "8", "12.5%", "25.0%"]
    assert lines[3].split() == ["math500", "8", "12.5%", "12.5%"]
    assert lines[-1] == "  report: /r/evaluate/report.md"


def test_pipeline_summary_lists_the_stages_that_ran():
    summary = {"root": "/r", "wall_time_s": 371.4, "train": {"steps": 5, "run_uri": "/r/train"}}
    assert results.pipeline_lines(summary) == ["train: 5 steps", "  run: /r/train", "done in 371 s; outputs under /r"]
