"""Chat mode through both local engines on CPU: the in-process `tiny` model given a chat template,
run through a small Ray Data pass. The engines report how many tokens they fed the model, so the
counts prove which text they saw: the templated one, with one BOS, and not the raw prompt."""

import json
import shutil

import pytest

from metamath_ray.engines import EngineConfig, SamplingConfig, build_generation_stage
from metamath_ray.engines.config import METAMATH_SYSTEM_PROMPT

pytestmark = pytest.mark.integration

PROMPT = "Question: Tom has 3 apples and buys 2 more. How many apples?\nAnswer:"
# Writes BOS itself (as Llama-2/3 templates do) and marks every turn: the engine must not double BOS.
TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@pytest.fixture(scope="module")
def tiny_chat_model(tmp_path_factory, tiny_model):
    """A copy of the shared tiny model whose tokenizer_config.json carries a chat template."""
    path = tmp_path_factory.mktemp("tiny-chat") / "model"
    shutil.copytree(tiny_model, path)
    config_file = path / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config["chat_template"] = TEMPLATE
    config_file.write_text(json.dumps(config))
    (path / "chat_template.jinja").unlink(missing_ok=True)  # a saved template file would win
    return str(path)


def _tokens(model, text):
    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(model)(text)["input_ids"]
    return len(ids)


def _run(local_ray, engine):
    rows = [{"prompt": PROMPT, "sample_seed": s, "k": s} for s in (1, 2)]
    stage = build_generation_stage(engine, SamplingConfig(temperature=1.0, max_tokens=6, seed=0))
    return sorted(stage(local_ray.data.from_items(rows)).take_all(), key=lambda r: r["k"])


def _expected(system):
    head = f"<|system|>\n{system}\n" if system else ""
    return f"{head}<|user|>\n{PROMPT}\n<|assistant|>\n"


def _check(out, model, system):
    templated = _tokens(model, _expected(system))  # the tokenizer adds the one BOS
    assert templated > _tokens(model, PROMPT) + 5
    assert [r["num_input_tokens"] for r in out] == [templated, templated]
    assert all(r["prompt"] == PROMPT for r in out), "rows keep their untemplated prompt"
    assert all(isinstance(r["generated_text"], str) and 1 <= r["num_generated_tokens"] <= 6 for r in out)
    assert not {"messages", "untemplated_prompt"} & set(out[0])


@pytest.mark.parametrize("system", [METAMATH_SYSTEM_PROMPT, None])
def test_hf_engine_applies_the_chat_template(local_ray, tiny_chat_model, system):
    engine = EngineConfig(kind="hf", model=tiny_chat_model, batch_size=8, num_gpus_per_replica=0,
                          chat=True, system_prompt=system)
    _check(_run(local_ray, engine), tiny_chat_model, system)


def test_vllm_engine_applies_the_chat_template(local_ray, tiny_chat_model):
    engine = EngineConfig(kind="vllm", model=tiny_chat_model, max_model_len=512, batch_size=8,
                          engine_kwargs={"enforce_eager": True}, chat=True)
    _check(_run(local_ray, engine), tiny_chat_model, METAMATH_SYSTEM_PROMPT)


def test_vllm_replica_applies_the_chat_template(local_ray, tiny_chat_model):
    """The same through a long-lived replica (engines/service.py), the path augment jobs take."""
    from metamath_ray.engines.service import generate

    engine = EngineConfig(kind="vllm", model=tiny_chat_model, max_model_len=512, engine_kwargs={"enforce_eager": True},
                          chat=True)
    rows = [{"prompt": PROMPT, "sample_seed": s, "k": s} for s in (1, 2)]
    out = sorted(generate(rows, engine, SamplingConfig(temperature=1.0, max_tokens=6, seed=0)), key=lambda r: r["k"])
    _check(out, tiny_chat_model, METAMATH_SYSTEM_PROMPT)
