import pytest

from metamath_ray.evaluate.config import EvaluateConfig
from metamath_ray.pipeline.evaluate import build_requests, plan_passes, score_rows, steady_state_rate


def test_greedy_and_k_samples_per_question():
    cfg = EvaluateConfig(datasets="gsm8k,math500", limit=3, k=4, max_tokens={"math500": 100})
    requests = build_requests(cfg)
    assert len(requests) == 2 * 3 * (1 + 4)
    greedy = [r for r in requests if r["decoding"] == "greedy"]
    sampled = [r for r in requests if r["decoding"] == "sample"]
    assert len(greedy) == 6 and len(sampled) == 24
    # distinct, reproducible seeds per sample
    assert len({r["sample_seed"] for r in sampled}) == 24
    assert [r["sample_seed"] for r in build_requests(cfg) if r["decoding"] == "sample"] == [
        r["sample_seed"] for r in sampled
    ]
    assert {r["max_tokens"] for r in requests if r["dataset"] == "math500"} == {100}
    assert {r["max_tokens"] for r in requests if r["dataset"] == "gsm8k"} == {512}
    assert all(r["prompt"].endswith("### Response: Let's think step by step.") for r in requests)


def test_seeds_change_with_base_seed():
    a = build_requests(EvaluateConfig(datasets="gsm8k", limit=1, k=2, greedy=False))
    b = build_requests(EvaluateConfig(datasets="gsm8k", limit=1, k=2, greedy=False, sampling={"seed": 1}))
    assert [r["sample_seed"] for r in a] != [r["sample_seed"] for r in b]


def test_fewshot_requests_share_one_prefix():
    requests = build_requests(EvaluateConfig(datasets="gsm8k", limit=2, template="fewshot", fewshot_shots=2))
    first, second = (r["prompt"] for r in requests)
    common = len(first) - len(first.split("### Instruction:")[-1])
    assert first[:common] == second[:common] and first.count("### Instruction:") == 3


def test_score_rows_keeps_texts_and_adds_verdicts():
    [request] = build_requests(EvaluateConfig(datasets="gsm8k", limit=1))
    row = {**request, "generated_text": "5 + 13 = 18.\nThe answer is: 18", "num_input_tokens": 7,
           "num_generated_tokens": 9}
    [record] = score_rows([row])
    assert record["response"] == row["generated_text"] and record["prompt"] == request["prompt"]
    assert record["correct_strict"] and record["correct_metamath"] and record["extracted"] == "18"
    assert record["num_generated_tokens"] == 9


@pytest.mark.parametrize(
    "times, rate",
    [
        ([], None),
        ([5.0, 5.0], None),  # one batch: no interval to measure
        ([0.0, 0.0, 2.0, 2.0, 4.0], 3 / 4),  # start-up before the first batch is not counted
        ([10.0, 11.0], 1.0),
    ],
)
def test_steady_state_rate(times, rate):
    assert steady_state_rate(times) == rate


@pytest.mark.parametrize(
    "cfg, expected",
    [  # every request lands in exactly one pass; greedy CoT and programs share the temperature-0 one
        ({"k": 3}, [("greedy", 0.0, {"greedy"}), ("sample", 0.7, {"sample"})]),
        ({"mode": "hybrid"}, [("greedy", 0.0, {"greedy", "pot"}), ("sample", 0.7, set())]),
        ({"greedy": False, "k": 2, "sampling": {"temperature": 0.5}}, [("greedy", 0.0, set()), ("sample", 0.5, {"sample"})]),
    ],
)
def test_plan_passes(cfg, expected):
    cfg = EvaluateConfig(datasets="gsm8k", limit=2, **cfg)
    passes = plan_passes(cfg, stop=["Question:"])
    decodings = {r["decoding"] for r in build_requests(cfg)}
    assert [(p.name, p.sampling.temperature, decodings & set(p.decodings)) for p in passes] == expected
    assert all(p.sampling.stop == ["Question:"] for p in passes)
