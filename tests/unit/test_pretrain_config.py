"""objective=pretrain config validation (one-line errors) and the LLEMMA schedule (cosine to 1/30)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from metamath_ray.config import ConfigError, load_config
from metamath_ray.train.config import TrainConfig
from metamath_ray.train.metrics import lr_multiplier, warmup_steps_for

JOBS = Path(__file__).resolve().parents[2] / "jobs"


def _load(tmp_path, text: str, *overrides: str) -> TrainConfig:
    path = tmp_path / "train_x.yaml"
    path.write_text(text)
    return load_config(TrainConfig, path, list(overrides))


GOOD = """
objective: pretrain
output: /tmp/o
max_steps: 10
pretrain:
  sources:
    - {path: s3://b/arxiv, weight: 2}
    - {path: s3://b/owm, weight: 4, text_column: content}
"""


def test_pretrain_sources_resolve(tmp_path):
    cfg = _load(tmp_path, GOOD)
    sources = cfg.pretrain.resolved_sources(cfg.data)
    assert [(s.name, s.text_column, s.weight) for s in sources] == [("arxiv", "text", 2.0), ("owm", "content", 4.0)]


def test_data_alone_is_a_one_source_mixture(tmp_path):
    cfg = _load(tmp_path, "objective: pretrain\noutput: o\nmax_steps: 3\ndata: ./owm.parquet\n",
                "pretrain.text_column=body")
    [s] = cfg.pretrain.resolved_sources(cfg.data)
    assert (s.path, s.name, s.text_column, s.weight) == ("./owm.parquet", "owm.parquet", "body", 1.0)


@pytest.mark.parametrize("text, overrides, message", [
    (GOOD.replace("max_steps: 10\n", ""), [], "objective=pretrain needs max_steps"),
    ("objective: pretrain\noutput: o\nmax_steps: 2\n", [], "needs pretrain.sources"),
    (GOOD, ["data=x.parquet"], "either data or pretrain.sources"),
    (GOOD.replace("weight: 4", "weight: 0"), [], "pretrain.sources.1.weight"),
    (GOOD.replace("weight: 4,", "weight: 4, name: arxiv,"), [], "names must be unique"),
    (GOOD.replace("text_column", "column"), [], "pretrain.sources.1.column: unknown key"),
    (GOOD.replace("objective: pretrain", "objective: sft") + "data: d\n", [], "only used with objective=pretrain"),
    ("output: o\n", [], "data is required"),
    (GOOD, ["objective=clm"], "objective"),
    (GOOD, ["lr_min_ratio=1.5"], "lr_min_ratio"),
])
def test_bad_configs_fail_in_one_line(tmp_path, text, overrides, message):
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, text, *overrides)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_sft_default_schedule_is_unchanged():
    cfg = TrainConfig(data="d", output="o")
    assert cfg.objective == "sft" and cfg.lr_min_ratio == 0.0 and cfg.warmup_steps is None
    assert warmup_steps_for(1000, cfg.warmup_ratio, cfg.warmup_steps) == 30  # MetaMath: 3% warm-up
    assert lr_multiplier(1000, 1000, 30, "cosine", cfg.lr_min_ratio) == pytest.approx(0.0)


def test_llemma_schedule_warmup_500_then_cosine_to_one_thirtieth():
    total = 48_000
    warm = warmup_steps_for(total, 0.03, 500)  # an absolute warm-up wins over the ratio
    assert warm == 500
    m = lambda s: lr_multiplier(s, total, warm, "cosine", 1 / 30)
    assert m(0) == 0.0 and m(250) == pytest.approx(0.5) and m(500) == pytest.approx(1.0)
    assert m(total) == pytest.approx(1 / 30) and m(total + 100) == pytest.approx(1 / 30)
    mid = (total + warm) // 2
    assert m(mid) == pytest.approx(1 / 30 + (1 - 1 / 30) * 0.5 * (1 + math.cos(math.pi * (mid - warm) / (total - warm))))
    values = [m(s) for s in range(warm, total + 1, 97)]
    assert all(a >= b for a, b in zip(values, values[1:]))  # never below the floor, never rising
    assert lr_multiplier(total, total, warm, "linear", 0.1) == pytest.approx(0.1)


def test_warmup_steps_capped_by_total():
    assert warmup_steps_for(100, 0.0, 500) == 100


def test_llemma_job_mirrors_the_recipe():
    cfg = load_config(TrainConfig, JOBS / "pretrain_llemma_7b.yaml")
    assert cfg.objective == "pretrain" and "CodeLlama-7b" in cfg.model
    assert (cfg.lr, cfg.lr_min_ratio, cfg.warmup_steps, cfg.max_length) == (1e-4, pytest.approx(1 / 30), 500, 4096)
    assert cfg.dtype == "bf16" and cfg.deepspeed.stage == 3
    # LLEMMA's global batch: 4M tokens = 1024 sequences of 4096
    assert cfg.global_batch_size * cfg.max_length == 4 * 1024 * 1024
    weights = {s.name: s.weight for s in cfg.pretrain.resolved_sources(cfg.data)}
    assert weights == {"arxiv": 2, "open-web-math": 4, "algebraic-stack": 1}


def test_relative_local_sources_become_absolute_for_workers(tmp_path, monkeypatch):
    from metamath_ray.train.pretrain import with_absolute_sources

    monkeypatch.chdir(tmp_path)
    cfg = with_absolute_sources(_load(tmp_path, GOOD.replace("s3://b/arxiv", "corpus/arxiv")))
    assert [s.path for s in cfg.pretrain.sources] == [str(tmp_path / "corpus/arxiv"), "s3://b/owm"]
    one = with_absolute_sources(TrainConfig(objective="pretrain", data="x.jsonl", output="o", max_steps=1))
    assert one.data == str(tmp_path / "x.jsonl")
