"""The cost estimate: dollars per dataset x augmentation and in total (stats.json, report.md, the
CLI's summary) and per evaluation (report.json's throughput), at the prices the config states;
null, and no cost column, when the config states none."""

from __future__ import annotations

import pytest

from metamath_ray import results
from metamath_ray.augment import report
from metamath_ray.augment.config import AugmentConfig
from metamath_ray.engines import EngineConfig
from metamath_ray.engines.pricing import cost_usd, format_usd, prices_per_1m
from metamath_ray.evaluate.report import render_markdown
from metamath_ray.pipeline.evaluate import throughput_summary
from metamath_ray.pipeline.finalize import build_stats
from metamath_ray.seeds import LoadedSeeds

# gpt-3.5-turbo-0125's list prices ($0.50 / $1.50 per 1M tokens)
PRICED = {"kind": "openai", "base_url": "http://127.0.0.1:8000/v1", "model": "gpt-3.5-turbo",
          "price_per_1m_input_tokens": 0.5, "price_per_1m_output_tokens": 1.5}


def _candidate(i: int, dataset: str, aug: str, tokens_in: int, tokens_out: int, accepted: bool) -> dict:
    return {"id": f"c{i}", "seed_id": f"s{i}", "dataset": dataset, "aug": aug, "stage": "solve", "variant": 0,
            "sample_idx": 0, "accepted": accepted, "reject_reason": None if accepted else "wrong_answer",
            "tokens_in": tokens_in, "tokens_out": tokens_out,
            "level": "Level 3" if dataset == "math" else None, "type": "Algebra" if dataset == "math" else None}


def _stats(engine: dict) -> dict:
    candidates = [
        _candidate(0, "gsm8k", "AnsAug", 1_000_000, 200_000, True),
        _candidate(1, "gsm8k", "AnsAug", 1_000_000, 200_000, False),
        _candidate(2, "math", "SV", 400_000, 1_000_000, True),
    ]
    kept = [c for c in candidates if c["accepted"]]
    cfg = AugmentConfig(engine=engine, decontam={"enabled": False})
    loaded = LoadedSeeds(seeds=[{}, {}, {}], rows_read=3)
    return build_stats(candidates, kept, [], loaded, 1, 10.0, cfg)


def test_pricing_needs_both_prices():
    assert prices_per_1m(EngineConfig(**PRICED)) == {"input": 0.5, "output": 1.5}
    assert cost_usd(EngineConfig(**PRICED), 2_000_000, 1_000_000) == 2.5
    half = {**PRICED, "price_per_1m_output_tokens": None}
    assert prices_per_1m(EngineConfig(**half)) is None and cost_usd(EngineConfig(**half), 10, 10) is None
    assert cost_usd(EngineConfig(kind="hf"), 10, 10) is None and cost_usd(None, 10, 10) is None


@pytest.mark.parametrize("dollars, text", [(None, "–"), (0.0, "$0.00"), (1234.5, "$1,234.50"),
                                           (0.000123, "$0.000123"), (0.25, "$0.25")])
def test_format_usd(dollars, text):
    assert format_usd(dollars) == text


def test_stats_cost_per_dataset_aug_and_in_total():
    stats = _stats(PRICED)
    rows = {(r["dataset"], r["aug"]): r for r in stats["by_dataset_aug"]}
    assert rows[("gsm8k", "AnsAug")]["cost_usd"] == pytest.approx(2 * 0.5 + 0.4 * 1.5)  # 2M in, 0.4M out
    assert rows[("math", "SV")]["cost_usd"] == pytest.approx(0.4 * 0.5 + 1.0 * 1.5)
    assert stats["totals"]["cost_usd"] == pytest.approx(1.6 + 1.7)
    assert stats["prices_per_1m_tokens"] == {"input": 0.5, "output": 1.5}


def test_stats_without_prices_say_null():
    stats = _stats({"kind": "hf", "model": "tiny"})
    assert [r["cost_usd"] for r in stats["by_dataset_aug"]] == [None, None]
    assert stats["totals"]["cost_usd"] is None and stats["prices_per_1m_tokens"] is None


def test_report_has_a_cost_column_only_with_prices(tmp_path):
    priced = report.write_report(_stats(PRICED), str(tmp_path / "priced"))[0]
    md = open(priced).read()
    assert "| tokens in | tokens out | cost |" in md
    assert "| gsm8k | AnsAug | 2 | 2 | 1 | 1 | 50.0% | 0 | 0 | 2,000,000 | 400,000 | $1.60 |" in md
    assert "| **all** | | 3 | 3 | 2 | 1 | 66.7% | 0 | 0 | 2,400,000 | 1,400,000 | $3.30 |" in md
    local = open(report.write_report(_stats({"kind": "hf", "model": "tiny"}), str(tmp_path / "local"))[0]).read()
    assert "cost" not in local and "| 2,400,000 | 1,400,000 |\n" in local


def test_cli_summary_states_the_cost_only_with_prices():
    stats = {**_stats(PRICED), "export": {"records": 2}}
    lines = results.augment_lines(stats, "/runs/a")
    assert "  cost: $3.30 for 2,400,000 prompt and 1,400,000 generated tokens (at the config's prices)" in lines
    assert not [line for line in results.augment_lines(_stats({"kind": "hf", "model": "tiny"}), "/r") if "cost" in line]


def test_evaluation_throughput_cost():
    rows = [{"num_generated_tokens": 500_000, "num_input_tokens": 1_000_000, "decoding": "greedy", "scored_at": 1.0},
            {"num_generated_tokens": 500_000, "num_input_tokens": 1_000_000, "decoding": "greedy", "scored_at": 2.0}]
    priced = throughput_summary(rows, 4.0, [], EngineConfig(**PRICED))
    assert priced["input_tokens"] == 2_000_000 and priced["generated_tokens"] == 1_000_000
    assert priced["cost_usd"] == pytest.approx(2.5)
    assert throughput_summary(rows, 4.0, [], EngineConfig(kind="hf"))["cost_usd"] is None
    tp = {**priced, "steady_samples_per_s": {}}
    md = render_markdown({"datasets": {}, "throughput": tp, "model": "m", "run_name": "r", "engine": "openai",
                           "template": "metamath"})
    assert "Cost at the config's prices: $2.50 for 2,000,000 prompt and 1,000,000 generated tokens." in md
