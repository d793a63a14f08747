"""The openai engine without Ray: request building, the retry policy, error rows, pacing, config.

The client tests talk to the fault-injecting server (tests/fault_server.py) on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import random
import time

import aiohttp
import pytest

from metamath_ray.config import ConfigError, load_config
from metamath_ray.engines.config import METAMATH_SYSTEM_PROMPT, EngineConfig, SamplingConfig
from metamath_ray.engines.openai_engine import (
    API_MAX_STOP,
    MAX_RETRY_AFTER_S,
    MalformedResponse,
    OpenAIClient,
    RateLimiter,
    Secret,
    backoff_delay,
    build_request,
    client_kwargs,
    is_retryable_exception,
    is_retryable_status,
    one_line,
    parse_response,
    parse_retry_after,
)
from tests.fault_server import FaultServer

ROW = {"prompt": "Question: What is 2+3?\nAnswer:", "sample_seed": 1234, "max_tokens": 64}


# ---------------------------------------------------------------------------------------------
# Requests and responses


def test_chat_request_is_metamaths_system_message_then_the_prompt_as_one_user_message():
    path, body = build_request("chat", "gpt-3.5-turbo", METAMATH_SYSTEM_PROMPT, ROW,
                               SamplingConfig(temperature=0.7, stop=["\nQuestion:"]))
    assert path == "/chat/completions"
    assert body["messages"] == [
        {"role": "system", "content": "Follow the given examples and answer the question."},
        {"role": "user", "content": ROW["prompt"]},
    ]
    assert body["model"] == "gpt-3.5-turbo" and body["temperature"] == 0.7 and body["n"] == 1
    assert body["seed"] == 1234 and body["max_tokens"] == 64 and body["stop"] == ["\nQuestion:"]
    assert "prompt" not in body


def test_completions_request_sends_the_raw_prompt_and_no_system_message():
    path, body = build_request("completions", "tiny", METAMATH_SYSTEM_PROMPT, ROW, SamplingConfig(temperature=0.0))
    assert path == "/completions"
    assert body["prompt"] == ROW["prompt"] and "messages" not in body
    assert body["seed"] == 1234  # greedy rows send their seed too: both APIs take one
    assert "stop" not in body  # an empty stop list is left out


@pytest.mark.parametrize("system_prompt", ["", None])
def test_chat_request_without_a_system_prompt(system_prompt):
    _, body = build_request("chat", "m", system_prompt, ROW, SamplingConfig())
    assert body["messages"] == [{"role": "user", "content": ROW["prompt"]}]


def test_at_most_four_stop_strings_go_to_the_api():
    stops = [f"\nS{i}:" for i in range(7)]
    _, body = build_request("chat", "m", "", {"prompt": "p"}, SamplingConfig(stop=stops))
    assert body["stop"] == stops[:API_MAX_STOP] and "seed" not in body


@pytest.mark.parametrize("api,body,expected", [
    ("chat", {"choices": [{"message": {"content": "hi"}}], "usage": {"prompt_tokens": 7, "completion_tokens": 2}},
     ("hi", 7, 2)),
    ("completions", {"choices": [{"text": "yo"}], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}, ("yo", 3, 1)),
    ("chat", {"choices": [{"message": {"content": None}}]}, ("", 0, 0)),  # no usage: counted as 0
])
def test_parse_response_reads_text_and_usage(api, body, expected):
    assert parse_response(api, body) == expected


@pytest.mark.parametrize("body", [{}, {"choices": []}, {"choices": [{"text": "x"}]}, [], None])
def test_parse_response_refuses_bodies_without_a_chat_answer(body):
    with pytest.raises(MalformedResponse):
        parse_response("chat", body)


# ---------------------------------------------------------------------------------------------
# Retry policy


@pytest.mark.parametrize("status,retry", [
    (429, True), (408, True), (500, True), (502, True), (503, True), (504, True), (599, True),
    (400, False), (401, False), (403, False), (404, False), (409, False), (413, False), (422, False),
])
def test_which_statuses_are_retried(status, retry):
    assert is_retryable_status(status) is retry


@pytest.mark.parametrize("exc,retry", [
    (asyncio.TimeoutError(), True),
    (TimeoutError(), True),
    (ConnectionResetError(), True),
    (aiohttp.ServerDisconnectedError(), True),
    (aiohttp.ClientConnectionError("refused"), True),
    (aiohttp.ClientPayloadError("Response payload is not completed"), True),
    (json.JSONDecodeError("Expecting value", "{\"a\": ", 6), True),
    (ValueError("bug"), False),
    (KeyError("x"), False),
])
def test_which_exceptions_are_retried(exc, retry):
    assert is_retryable_exception(exc) is retry


def test_retry_after_in_seconds_and_as_an_http_date():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("0.25") == 0.25
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None and parse_retry_after("nan") is None
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("86400") == MAX_RETRY_AFTER_S
    now = time.time()
    assert parse_retry_after(email.utils.formatdate(now + 10, usegmt=True), now=now) == pytest.approx(10, abs=1)


def test_backoff_is_exponential_with_jitter_and_honours_retry_after():
    rng = random.Random(0)
    for attempt in range(6):
        waits = [backoff_delay(attempt, None, rng, base=0.5) for _ in range(200)]
        top = min(30.0, 0.5 * 2 ** attempt)
        assert all(top / 2 <= w <= top for w in waits)
        assert len(set(waits)) > 100  # jittered, not one value
    assert all(2.0 <= backoff_delay(0, 2.0, rng) <= 2.2 for _ in range(100))


def test_error_details_are_one_line_bounded_and_never_the_key():
    text = one_line("HTTP 401: Incorrect API key provided: sk-planted-123\nsee docs " + "x" * 500, "sk-planted-123")
    assert "\n" not in text and len(text) <= 200 and "sk-planted-123" not in text and "***" in text


# ---------------------------------------------------------------------------------------------
# Pacing


def test_rate_limiter_paces_starts_at_qps():
    clock = [100.0]
    limiter = RateLimiter(4.0, clock=lambda: clock[0])
    waits = [limiter.reserve() for _ in range(8)]
    assert waits == pytest.approx([0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75])
    clock[0] = 200.0  # idle for a long time: no burst credit is saved up beyond the next slot
    assert limiter.reserve() == 0 and limiter.reserve() == pytest.approx(0.25)
    assert RateLimiter(None).reserve() == 0


# ---------------------------------------------------------------------------------------------
# The client against the fault server


def _answer(question: str, body: dict) -> str:
    return f"We add.\nThe answer is: {question.count('+') + 4}"


def _client(server: FaultServer, **overrides) -> OpenAIClient:
    kwargs = dict(base_url=server.base_url, api="chat", model="m", system_prompt=METAMATH_SYSTEM_PROMPT,
                  sampling=SamplingConfig(stop=["\nQuestion:"]), api_key=Secret("sk-planted-unit"), qps=None,
                  max_concurrent_requests=8, max_retries=2, request_timeout_s=0.5, backoff_base_s=0.05)
    kwargs.update(overrides)
    return OpenAIClient(**kwargs)


def _complete_all(client: OpenAIClient, rows: list[dict]):
    async def go():
        try:
            return await asyncio.gather(*(client.complete(r) for r in rows))
        finally:
            await client.close()
    return asyncio.run(go())


def _fault_for(fault: str):
    return lambda key: fault


@pytest.mark.parametrize("fault", ["429", "500", "slow", "drop"])
def test_a_transient_fault_is_retried_and_answered(fault):
    with FaultServer(_answer, faults=_fault_for(fault), api_key="sk-planted-unit", slow_s=2.0,
                     retry_after_s="0.3") as server:
        started = time.monotonic()
        (outcome,) = _complete_all(_client(server), [ROW])
        elapsed = time.monotonic() - started
    assert outcome.error == "" and outcome.text == "We add.\nThe answer is: 5" and outcome.retries == 1
    assert outcome.tokens_in > 0 and outcome.tokens_out == 6  # from the response's usage
    assert server.stats[fault] == 1 and server.stats["answered"] == 1
    if fault == "429":
        assert elapsed >= 0.3  # Retry-After honoured


def test_exhausted_retries_give_an_error_row_not_an_exception():
    with FaultServer(_answer, doomed=lambda body: True) as server:
        (outcome,) = _complete_all(_client(server, api_key=None), [ROW])
    assert outcome.text == "" and outcome.retries == 2 and server.stats["503_doomed"] == 3
    assert outcome.error.startswith("HTTP 503: overloaded (doomed request)") and "gave up after 3 attempts" in outcome.error


def test_a_bad_key_is_not_retried_and_the_error_names_no_key():
    with FaultServer(_answer, api_key="sk-the-right-one") as server:
        (outcome,) = _complete_all(_client(server), [ROW])
    assert server.stats["requests"] == 1 and outcome.retries == 0
    assert outcome.error == "HTTP 401: Incorrect API key provided" and "sk-" not in outcome.error


def test_an_unreachable_endpoint_is_retried_then_an_error_row():
    class Nowhere:
        base_url = "http://127.0.0.1:9/v1"  # discard port: nothing listens
    (outcome,) = _complete_all(_client(Nowhere, api_key=None, max_retries=1), [ROW])
    assert outcome.text == "" and outcome.retries == 1 and "ClientConnectorError" in outcome.error


def test_stop_strings_beyond_the_api_limit_are_applied_to_the_answer():
    def chatty(question, body):
        return "step one\nS5: more\nThe answer is: 5"
    stops = [f"\nS{i}:" for i in range(7)]
    with FaultServer(chatty) as server:
        (outcome,) = _complete_all(_client(server, api_key=None, sampling=SamplingConfig(stop=stops)), [ROW])
    assert outcome.text == "step one"


def test_requests_in_flight_never_exceed_the_cap():
    in_flight, peak = [0], [0]

    def slowish(question, body):
        return "The answer is: 1"

    server = FaultServer(slowish)
    handle = server._handle

    async def counting(request):
        in_flight[0] += 1
        peak[0] = max(peak[0], in_flight[0])
        await asyncio.sleep(0.05)
        try:
            return await handle(request)
        finally:
            in_flight[0] -= 1
    server._handle = counting
    with server:
        rows = [{**ROW, "sample_seed": i} for i in range(24)]
        outcomes = _complete_all(_client(server, api_key=None, max_concurrent_requests=3), rows)
    assert all(o.error == "" for o in outcomes) and server.stats["requests"] == 24
    assert peak[0] == 3


# ---------------------------------------------------------------------------------------------
# Config


def _engine(**kw) -> EngineConfig:
    return EngineConfig(kind="openai", base_url="http://127.0.0.1:8000/v1", **kw)


def test_openai_config_errors_are_one_line():
    from metamath_ray.augment.config import AugmentConfig

    with pytest.raises(ConfigError, match=r"engine.kind=openai needs engine.base_url") as e:
        load_config(AugmentConfig, None, ["engine.kind=openai"])
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="http:// or https://"):
        load_config(AugmentConfig, None, ["engine.kind=openai", "engine.base_url=127.0.0.1:8000"])
    with pytest.raises(ConfigError, match="engine.api"):
        load_config(AugmentConfig, None, ["engine.kind=openai", "engine.base_url=http://h/v1", "engine.api=responses"])
    with pytest.raises(ConfigError, match="engine.qps"):
        load_config(AugmentConfig, None, ["engine.kind=openai", "engine.base_url=http://h/v1", "engine.qps=0"])


def test_a_key_pasted_into_api_key_env_is_refused_without_being_repeated():
    from metamath_ray.augment.config import AugmentConfig

    with pytest.raises(ConfigError, match="NAME of an environment variable") as e:
        load_config(AugmentConfig, None, ["engine.kind=openai", "engine.base_url=http://h/v1",
                                          "engine.api_key_env=sk-planted-abc123"])
    assert "sk-planted" not in str(e.value)


def test_the_key_is_read_on_the_driver_and_never_printed(monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-planted-xyz")
    kwargs = client_kwargs(_engine(api_key_env="MY_KEY", qps=10, max_concurrent_requests=9, replicas=2),
                           SamplingConfig(), replicas=2)
    assert kwargs["api_key"].reveal() == "sk-planted-xyz" and "sk-planted" not in repr(kwargs)
    assert kwargs["qps"] == 5 and kwargs["max_concurrent_requests"] == 4  # split over the replicas
    monkeypatch.delenv("MY_KEY")
    with pytest.raises(ValueError, match="MY_KEY: that environment variable is not set"):
        client_kwargs(_engine(api_key_env="MY_KEY"), SamplingConfig(), replicas=1)
    assert client_kwargs(_engine(), SamplingConfig(), replicas=1)["api_key"] is None


def _old_config_hash(cfg) -> str:
    """config_hash as it was before the openai fields (what earlier runs' candidate ids used)."""
    from metamath_ray.records import _PLACEMENT_KEYS

    old_placement = {"replicas", "batch_size", "max_concurrent_batches", "cpu_kv_cache_gib"}
    new_fields = {"chat", "system_prompt", "base_url", "api", "api_key_env", "qps", "max_concurrent_requests",
                  "max_retries", "request_timeout_s", "price_per_1m_input_tokens", "price_per_1m_output_tokens",
                  "in_process"}
    payload = cfg.model_dump(exclude=_PLACEMENT_KEYS, mode="json")
    # `adaptive` was a bool then, and budget_per_variant did not exist
    payload["adaptive"] = {"uniform": True, "off": False}[payload["adaptive"]]
    payload.pop("budget_per_variant")
    payload.pop("verify")  # verify.steps did not exist either (issue 16)
    payload["engine"] = {k: v for k, v in payload["engine"].items()
                         if k not in old_placement | new_fields and not (k == "script" and v is None)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


@pytest.mark.parametrize("overrides", [[], ["engine.kind=hf", "engine.model=tiny"], ["engine.kind=scripted", "engine.script=gold"]])
def test_earlier_runs_keep_their_config_hash(overrides):
    from metamath_ray.augment.config import AugmentConfig
    from metamath_ray.records import config_hash

    cfg = load_config(AugmentConfig, None, overrides)
    assert config_hash(cfg) == _old_config_hash(cfg)


@pytest.mark.parametrize("override,same_data", [
    ("engine.qps=3", True), ("engine.max_concurrent_requests=4", True), ("engine.max_retries=0", True),
    ("engine.request_timeout_s=5", True), ("engine.api_key_env=OTHER_KEY", True),
    ("engine.price_per_1m_input_tokens=0.5", True), ("engine.price_per_1m_output_tokens=1.5", True),
    ("engine.api=completions", False), ("engine.base_url=http://other:8000/v1", False),
    ("engine.system_prompt=Be brief.", False), ("engine.model=gpt-4o-mini", False),
])
def test_openai_settings_in_the_config_hash(override, same_data):
    from metamath_ray.augment.config import AugmentConfig
    from metamath_ray.records import config_hash

    base_overrides = ["engine.kind=openai", "engine.base_url=http://127.0.0.1:8000/v1", "engine.model=m"]
    base = load_config(AugmentConfig, None, base_overrides)
    changed = load_config(AugmentConfig, None, [*base_overrides, override])
    assert (config_hash(changed) == config_hash(base)) is same_data


# ---------------------------------------------------------------------------------------------
# What a failed request means downstream (pure functions of the stages)


def _failed_solve_row(**over) -> dict:
    row = {"seed_id": "gsm8k/train/1", "dataset": "gsm8k", "aug": "AnsAug", "variant": 0, "sample_idx": 1,
           "round": 0, "query": "What is 2+3?", "original_question": "What is 2+3?", "expected": "5", "chunk": 0,
           "generated_text": "", "engine_error": "HTTP 503: overloaded (gave up after 3 attempts)",
           "num_input_tokens": 0, "num_generated_tokens": 0}
    return {**row, **over}


def test_a_failed_request_becomes_a_candidate_rejected_with_engine_error():
    from metamath_ray.pipeline.augment import judge_rows

    failed, answered = judge_rows([_failed_solve_row(),
                                   _failed_solve_row(sample_idx=2, engine_error="", generated_text="2+3=5.\nThe answer is: 5")],
                                  "m", "key", "v1")
    assert (failed["accepted"], failed["reject_reason"]) == (False, "engine_error")
    assert failed["reject_detail"] == "HTTP 503: overloaded (gave up after 3 attempts)" and failed["response"] == ""
    assert answered["accepted"] and answered["reject_detail"] is None


def test_a_failed_evaluation_request_is_scored_wrong_with_its_reason():
    from metamath_ray.pipeline.evaluate import score_rows

    base = {"item_id": "gsm8k/test/0", "dataset": "gsm8k", "kind": "numeric", "type": "", "level": 0,
            "source_index": 0, "question": "q", "gold": "5", "gold_metamath": "5", "decoding": "greedy",
            "sample_idx": 0, "sample_seed": 0, "max_tokens": 64, "prompt": "p"}
    failed, answered = score_rows([{**base, "generated_text": "", "engine_error": "HTTP 500: boom"},
                                   {**base, "generated_text": "The answer is: 5", "engine_error": ""}])
    assert failed["correct_strict"] is False and failed["correct_metamath"] is False
    assert failed["engine_error"] == "HTTP 500: boom" and answered["engine_error"] is None
    assert answered["correct_strict"] is True


@pytest.mark.parametrize("path,expected", [
    ("candidates/part-00003.parquet", ("part-00003.parquet", 0)),
    ("candidates/part-00003.repair-2.parquet", ("part-00003.parquet", 2)),
    ("part-12345.repair-10.parquet", ("part-12345.parquet", 10)),
])
def test_candidate_shard_versions(path, expected):
    from metamath_ray.pipeline.finalize import shard_version

    assert shard_version(path) == expected


def test_finalize_reads_the_newest_version_of_each_chunk_and_replaces_changed_outputs(tmp_path):
    import pyarrow as pa

    from metamath_ray.pipeline.finalize import _commit_derived, current_candidate_shards
    from metamath_ray.storage import RunStore

    store = RunStore(str(tmp_path), "run")
    table = pa.table({"id": ["a"]})
    for name in ("part-00000.parquet", "part-00000.repair-1.parquet", "part-00000.repair-2.parquet",
                 "part-00001.parquet"):
        store.commit_table(f"candidates/{name}", table)
    assert current_candidate_shards(store) == {
        "part-00000.parquet": (2, "candidates/part-00000.repair-2.parquet"),
        "part-00001.parquet": (0, "candidates/part-00001.parquet"),
    }
    first = _commit_derived(store, "data/part-00000.parquet", table)
    mtime = (tmp_path / "run" / "data" / "part-00000.parquet").stat().st_mtime_ns
    assert _commit_derived(store, "data/part-00000.parquet", table) == first  # same content: not rewritten
    assert (tmp_path / "run" / "data" / "part-00000.parquet").stat().st_mtime_ns == mtime
    repaired = _commit_derived(store, "data/part-00000.parquet", pa.table({"id": ["a", "b"]}))
    assert repaired["rows"] == 2 and store.read_table("data/part-00000.parquet").num_rows == 2


def test_preflight_refuses_a_missing_key_before_any_work(monkeypatch):
    from metamath_ray.engines import preflight

    monkeypatch.delenv("MY_KEY", raising=False)
    with pytest.raises(ValueError, match="engine.api_key_env=MY_KEY"):
        preflight(_engine(api_key_env="MY_KEY"))
    monkeypatch.setenv("MY_KEY", "sk-planted-pre")
    preflight(_engine(api_key_env="MY_KEY"))
    preflight(_engine())  # no key configured: nothing to check
