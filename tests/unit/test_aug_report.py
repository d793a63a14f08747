"""Augmentation report: Markdown tables and PNG charts from a stats dict."""

import json
from pathlib import Path

import pytest

from metamath_ray.augment import report

STATS = json.loads((Path(__file__).parents[1] / "fixtures" / "augment" / "stats_small.json").read_text())
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return out, report.write_report(STATS, str(out))


def test_writes_markdown_and_every_chart_as_png(written):
    out, paths = written
    assert [Path(p).name for p in paths] == ["report.md", "acceptance.png", "rejections.png", "tokens.png",
                                             "math_level_type.png"]
    for p in paths[1:]:
        assert Path(p).read_bytes()[:8] == PNG_MAGIC
    md = (out / "report.md").read_text()
    for p in paths[1:]:
        assert f"({Path(p).name})" in md


def test_main_table_rows_in_dataset_then_augmentation_order(written):
    out, _ = written
    md = (out / "report.md").read_text()
    table = [line for line in md.splitlines() if line.startswith("| gsm8k") or line.startswith("| math")]
    assert [tuple(c.strip() for c in line.split("|")[1:3]) for line in table[:5]] == [
        ("gsm8k", "AnsAug"), ("gsm8k", "Rephrasing"), ("gsm8k", "FOBAR"), ("math", "AnsAug"), ("math", "SV")]
    assert "| gsm8k | AnsAug | 400 | 400 | 288 | 112 | 72.0% | 9 | 0 | 520,000 | 61,000 |" in md
    assert "| math | AnsAug | 0 | 0 | 0 | 0 | – |" in md  # no candidates: no rate, no division by zero
    assert "| **all** | | 1,800 | 1,640 | 930 | 710 | 56.7% | 16 | 4 |" in md


def test_rejection_reasons_and_level_type_tables(written):
    out, _ = written
    md = (out / "report.md").read_text()
    assert "| dataset/aug | answer_leaked | answer_missing | copied_question | no_answer | still_asks_question | wrong_answer |" in md
    assert "| math/SV | 0 | 14 | 0 | 20 | 25 | 150 |" in md
    assert "| Algebra | 75.0% (30/40) | – | 10.0% (4/40) | – |" in md
    assert "| Prealgebra | – | – | – | – (0/0) |" in md
    assert "Model: `meta-llama/Llama-2-7b-hf`" in md and "# Augmentation report: demo-7b" in md


def test_empty_stats_still_give_a_report(tmp_path):
    paths = report.write_report({"by_dataset_aug": [], "by_math_level_type": []}, str(tmp_path / "new" / "dir"))
    assert [Path(p).name for p in paths] == ["report.md"]
    assert "No rejections were recorded." in Path(paths[0]).read_text()


@pytest.mark.parametrize("accepted, candidates, rate", [(0, 0, None), (3, 4, 0.75), (0, 5, 0.0)])
def test_acceptance_rate(accepted, candidates, rate):
    assert report.acceptance_rate(accepted, candidates) == rate


def test_report_counts_contaminated_rows_per_reference_set(tmp_path):
    stats = {**STATS, "decontam_by_reference": {"decontam/gsm8k_test.jsonl.gz": 3, "decontam/svamp.jsonl.gz": 1}}
    report.write_report(stats, str(tmp_path))
    md = (tmp_path / "report.md").read_text()
    assert "## Decontamination" in md
    assert "| decontam/gsm8k_test.jsonl.gz | 3 |" in md and "| decontam/svamp.jsonl.gz | 1 |" in md
