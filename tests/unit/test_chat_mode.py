"""Chat mode for the local engines: messages built from a prompt, the driver-side plan the model's
chat template decides (no template, no system role, BOS written by the template), and the candidate
ids of runs that leave chat mode at its defaults."""

import pytest

from metamath_ray.config import ConfigError
from metamath_ray.engines.chat import ChatPlan, plan_chat
from metamath_ray.engines.config import METAMATH_SYSTEM_PROMPT, EngineConfig

PROMPT = "Question: 2+2?\nAnswer: 4\n\nQuestion: 3+3?\nAnswer:"

# A ChatML-like template that writes BOS itself, as Llama-2/3, Mistral and Gemma templates do.
TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
# Gemma's refusal of a system role.
NO_SYSTEM_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}<u>{{ m['content'] }}</u>{% endfor %}{% if add_generation_prompt %}<a>{% endif %}"
)
# A template that silently drops every message but the user's.
DROPS_SYSTEM_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'user' %}<u>{{ m['content'] }}</u>{% endif %}{% endfor %}<a>"
)


@pytest.fixture(scope="module")
def tokenizer():
    from metamath_ray.models import train_tiny_tokenizer

    # prepends BOS on its own (TemplateProcessing), like the LLaMA tokenizers
    return train_tiny_tokenizer([PROMPT, METAMATH_SYSTEM_PROMPT, TEMPLATE] * 4, vocab_size=300)


def _model(tmp_path, tokenizer, template):
    tokenizer.chat_template = template
    path = tmp_path / "model"
    tokenizer.save_pretrained(path)
    return str(path)


def _engine(path, **kw):
    return EngineConfig(kind="hf", model=path, chat=True, **kw)


def test_messages_follow_metamath_by_default():
    plan = ChatPlan(system_prompt=EngineConfig().system_prompt)
    assert plan.messages(PROMPT) == [
        {"role": "system", "content": "Follow the given examples and answer the question."},
        {"role": "user", "content": PROMPT},
    ]


@pytest.mark.parametrize("system", [None, ""])
def test_no_system_prompt_sends_the_prompt_alone(system):
    assert ChatPlan(system_prompt=system).messages(PROMPT) == [{"role": "user", "content": PROMPT}]


def test_folded_system_prompt_leads_the_user_message():
    plan = ChatPlan(system_prompt="Be brief.", fold_system=True)
    assert plan.messages(PROMPT) == [{"role": "user", "content": "Be brief.\n\n" + PROMPT}]


def test_chat_off_needs_no_template(tmp_path):
    assert plan_chat(EngineConfig(kind="hf", model="/does/not/exist"), "/does/not/exist") is None


def test_model_without_chat_template_is_a_one_line_config_error(tmp_path, tokenizer):
    path = _model(tmp_path, tokenizer, None)
    with pytest.raises(ConfigError) as err:
        plan_chat(_engine(path), path)
    assert str(err.value) == (
        f"engine.chat=true but model {path!r} has no chat template (tokenizer_config.json chat_template); "
        "use a chat/instruct model or engine.chat=false"
    )


def test_template_bos_is_not_doubled(tmp_path, tokenizer):
    from transformers import AutoTokenizer

    path = _model(tmp_path, tokenizer, TEMPLATE)
    plan = plan_chat(_engine(path), path)
    assert plan.template_kwargs == {"bos_token": ""} and not plan.fold_system
    tok = AutoTokenizer.from_pretrained(path)
    text = plan.render(tok, PROMPT)
    assert text == f"<|system|>\n{METAMATH_SYSTEM_PROMPT}\n<|user|>\n{PROMPT}\n<|assistant|>\n"
    ids = tok(text)["input_ids"]  # what vLLM does with the templated text: special tokens added
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1


def test_custom_and_empty_system_prompt(tmp_path, tokenizer):
    from transformers import AutoTokenizer

    path = _model(tmp_path, tokenizer, TEMPLATE)
    tok = AutoTokenizer.from_pretrained(path)
    custom = plan_chat(_engine(path, system_prompt="Think step by step."), path).render(tok, PROMPT)
    assert custom.startswith("<|system|>\nThink step by step.\n<|user|>\n")
    none = plan_chat(_engine(path, system_prompt=None), path).render(tok, PROMPT)
    assert none == f"<|user|>\n{PROMPT}\n<|assistant|>\n"


@pytest.mark.parametrize("template", [NO_SYSTEM_TEMPLATE, DROPS_SYSTEM_TEMPLATE])
def test_template_without_system_role_gets_it_folded(tmp_path, tokenizer, template):
    from transformers import AutoTokenizer

    path = _model(tmp_path, tokenizer, template)
    plan = plan_chat(_engine(path), path)
    assert plan.fold_system and plan.template_kwargs == {}  # these templates write no BOS
    text = plan.render(AutoTokenizer.from_pretrained(path), PROMPT)
    assert text.startswith(f"<u>{METAMATH_SYSTEM_PROMPT}\n\n{PROMPT}</u>")


def test_candidate_ids_unchanged_at_the_defaults():
    from metamath_ray.augment.config import AugmentConfig
    from metamath_ray.records import config_hash

    # The hash of the default config before chat mode existed (commit 429f390): runs keep their ids.
    base = AugmentConfig()
    assert config_hash(base) == "fbbd181e53ebd25f"
    explicit = AugmentConfig(engine={"chat": False, "system_prompt": METAMATH_SYSTEM_PROMPT})
    assert config_hash(explicit) == config_hash(base)
    changed = {
        config_hash(AugmentConfig(engine=e))
        for e in ({"chat": True}, {"chat": True, "system_prompt": None}, {"chat": True, "system_prompt": "x"})
    }
    assert len(changed) == 3 and config_hash(base) not in changed


# Llama-2-chat's template, as in meta-llama/Llama-2-7b-chat-hf (the 7B job's teacher).
LLAMA2_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)


@pytest.mark.parametrize("adds_bos", [True, False])
def test_llama2_chat_prompt_has_one_bos(tmp_path, adds_bos):
    """Whether the tokenizer prepends BOS (Llama-2-7b-chat-hf's does: add_bos_token) or not, the
    templated prompt vLLM tokenizes starts with exactly one BOS."""
    import shutil
    from pathlib import Path

    from transformers import AutoTokenizer, LlamaTokenizer

    source = Path(__file__).resolve().parents[3] / "shared" / "data" / "tokenizers" / "llama2" / "tokenizer.model"
    if not source.exists():
        pytest.skip("shared LLaMA-2 tokenizer not available")
    shutil.copy(source, tmp_path / "tokenizer.model")
    tok = LlamaTokenizer.from_pretrained(str(tmp_path), add_bos_token=adds_bos)
    tok.chat_template = LLAMA2_CHAT_TEMPLATE
    tok.save_pretrained(tmp_path)
    plan = plan_chat(_engine(str(tmp_path)), str(tmp_path))
    assert plan.template_kwargs == ({"bos_token": ""} if adds_bos else {}) and not plan.fold_system
    tok = AutoTokenizer.from_pretrained(str(tmp_path))
    text = plan.render(tok, PROMPT)
    assert text.endswith(f"[INST] <<SYS>>\n{METAMATH_SYSTEM_PROMPT}\n<</SYS>>\n\n{PROMPT.strip()} [/INST]")
    ids = tok(text)["input_ids"]  # what vLLM does with the templated text: special tokens added
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
    if adds_bos:  # Meta's reference encoding (llama/generation.py): BOS + SentencePiece of the text
        import sentencepiece

        assert ids == [tok.bos_token_id] + sentencepiece.SentencePieceProcessor(model_file=str(source)).encode(text)


def test_augment_refuses_chat_mode_without_a_template_before_reading_seeds(tmp_path, monkeypatch):
    """The one-line error comes before seeds are read or Ray starts (the registry's preflight)."""
    from metamath_ray.augment.config import AugmentConfig
    from metamath_ray.config import ConfigError
    from metamath_ray.pipeline import augment

    def no_seeds_yet(*args, **kwargs):
        raise AssertionError("seeds were read before the engine was checked")

    monkeypatch.setattr(augment, "load_seeds", no_seeds_yet)
    cfg = AugmentConfig(output=str(tmp_path), engine={"kind": "hf", "model": "tiny", "chat": True})
    with pytest.raises(ConfigError, match="has no chat template"):
        augment.run_augment(cfg)


@pytest.mark.parametrize("kind, extra", [("openai", {"base_url": "http://127.0.0.1:1/v1"}), ("scripted", {"script": "gold"})])
def test_chat_flag_on_an_engine_without_local_templates_is_a_one_line_error(kind, extra):
    from metamath_ray.config import ConfigError, build_config
    from metamath_ray.engines.config import EngineConfig

    with pytest.raises(ConfigError, match="engine.chat applies to the local engines") as err:
        build_config(EngineConfig, {"kind": kind, "chat": True, **extra})
    assert "\n" not in str(err.value)
