import json

import pytest

from metamath_ray.evaluate.compare import compare_reports, render_comparison
from metamath_ray.evaluate.report import render_markdown, render_plots
from metamath_ray.evaluate.summary import summarize


def _rows(correct_pattern, dataset="math500"):
    rows = []
    for i, ok in enumerate(correct_pattern):
        rows.append({
            "dataset": dataset, "item_id": f"q{i}", "type": ["Algebra", "Geometry"][i % 2] if dataset == "math500" else "",
            "level": 1 + i % 3 if dataset == "math500" else 0,
            "decoding": "greedy", "sample_idx": 0, "correct_strict": ok, "correct_metamath": ok,
            "vote_key": "1", "vote_key_metamath": "1", "extracted": "1", "extracted_metamath": "1",
            "num_input_tokens": 4, "num_generated_tokens": 8,
        })
    return rows


def _report(name, pattern):
    return {
        "run_name": name, "model": "tiny", "engine": "hf", "template": "eval_cot",
        "datasets": summarize(_rows(pattern) + _rows([True, False], dataset="gsm8k")),
        "throughput": {"samples": 8, "wall_s": 2.0, "samples_per_s": 4.0, "generated_tokens_per_s": 32.0,
                       "steady_samples_per_s": {"greedy": 3.5, "sample": None}},
    }


def test_markdown_lists_every_dataset_and_type_level_table():
    md = render_markdown(_report("base", [True, False, True, False, True, True]))
    assert "| math500 | 6 | 66.7 [" in md
    assert "| gsm8k | 2 | 50.0 [" in md
    assert "## math500: strict accuracy by type x level" in md and "| Algebra |" in md
    assert "4.00 samples/s" in md
    assert "Once running (first to last scored batch): greedy 3.50 samples/s." in md


def test_plots_are_png():
    plots = render_plots(_report("base", [True, False, True, False]))
    assert set(plots) == {"accuracy.png", "math500_type_level.png"}
    assert all(png.startswith(b"\x89PNG") for png in plots.values())


def test_report_is_json_serialisable():
    json.dumps(_report("base", [True]))


def test_compare_deltas_per_dataset_and_category():
    a = _report("a", [False, False, False, False])
    b = _report("b", [True, True, False, False])
    del b["datasets"]["gsm8k"]
    diff = compare_reports(a, b)
    assert diff["datasets"]["math500"]["headline"]["strict"]["delta"] == pytest.approx(0.5)
    assert diff["datasets"]["math500"]["by_type"]["Algebra"]["strict"]["delta"] == pytest.approx(0.5)
    assert diff["datasets"]["math500"]["by_level"]["2"]["metamath"]["delta"] == pytest.approx(1.0)
    assert diff["only_in_a"] == ["gsm8k"] and diff["only_in_b"] == []
    md = render_comparison(diff)
    assert "| math500 | 0.0 -> 50.0 (+50.0) |" in md
    assert "Evaluated only in a: gsm8k" in md


def test_write_report_publishes_report_json_last_and_atomically(tmp_path, monkeypatch):
    """report.json marks a finished evaluation: plots and report.md are in place before it appears."""
    from metamath_ray import storage
    from metamath_ray.evaluate.compare import load_report
    from metamath_ray.evaluate.report import write_report

    published = []
    real_put = storage._put_atomic

    def recording_put(fs, path, data):  # every write of the storage layer publishes here
        published.append(path)
        real_put(fs, path, data)

    monkeypatch.setattr(storage, "_put_atomic", recording_put)
    report = _report("base", [True, False])
    written = write_report(report, str(tmp_path / "run"))
    assert published == [str(tmp_path / "run" / rel) for rel in (
        "plots/accuracy.png", "plots/math500_type_level.png", "report.md", "report.json")]
    assert written == published
    assert load_report(str(tmp_path / "run")) == report and list(load_report(str(tmp_path / "run"))) == list(report)
    assert not [p for p in (tmp_path / "run").rglob(".*")]  # no temporaries left
