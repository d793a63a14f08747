"""Chat mode for the local engines (`engine.chat: true`).

MetaMath sent every request through GPT-3.5's chat API as a system message ("Follow the given
examples and answer the question.") and the whole few-shot prompt as one user message. Chat mode
does the same for a local chat/instruct model: the engine layer wraps each row's `prompt` in those
messages and applies the model's own chat template (ray.data.llm's chat-template stage for vllm,
`tokenizer.apply_chat_template` for hf), so augmentations and evaluation prompts stay plain text.

Everything that depends on the model's template is decided once, on the driver, before an engine
starts (`plan_chat`), and travels to the workers as a small `ChatPlan`:

- a model without a chat template is a one-line `ConfigError`;
- a template that refuses or drops a system message (Gemma's raises "System role not supported")
  gets the system text folded into the user message, `system + "\\n\\n" + prompt`;
- a template that writes the BOS token itself (Llama-2/3, Mistral, Gemma) is rendered with
  `bos_token=""` when the tokenizer adds BOS on its own: vLLM tokenizes the templated text with
  special tokens (ray.data.llm passes no `add_special_tokens=False` for generation), so the prompt
  would otherwise start with two BOS tokens. Both engines use the same rendering, so the same ids.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from metamath_ray.config import ConfigError

if TYPE_CHECKING:
    from metamath_ray.engines.config import EngineConfig

# A string no template writes on its own: seeing it in the render proves the system message is kept.
_PROBE = "metamath-ray-system-probe"


@dataclass(frozen=True)
class ChatPlan:
    """How one model's rows become chat messages, decided on the driver."""

    system_prompt: str | None  # None or "": no system message
    fold_system: bool = False  # the template has no system role: the system text leads the user message
    template_kwargs: dict[str, Any] = field(default_factory=dict)  # extra variables for the template

    def messages(self, prompt: str) -> list[dict[str, str]]:
        if not self.system_prompt:
            return [{"role": "user", "content": prompt}]
        if self.fold_system:
            return [{"role": "user", "content": f"{self.system_prompt}\n\n{prompt}"}]
        return [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": prompt}]

    def render(self, tokenizer, prompt: str) -> str:
        """The templated text the model sees (what the hf engine tokenizes)."""
        return tokenizer.apply_chat_template(
            self.messages(prompt), add_generation_prompt=True, tokenize=False, **self.template_kwargs
        )


def load_tokenizer(model_path: str):
    """The model's tokenizer on the driver: a local folder or hub id, or a cloud URI (s3://, gs://)
    fetched tokenizer-only the way ray.data.llm's own stages fetch it."""
    from transformers import AutoTokenizer

    if "://" in model_path:
        from ray.llm._internal.common.utils.download_utils import (
            NodeModelDownloadable,
            download_model_files,
        )

        model_path = download_model_files(
            model_id=model_path, download_model=NodeModelDownloadable.TOKENIZER_ONLY,
            download_extra_files=False,
        )
    return AutoTokenizer.from_pretrained(model_path)


def _keeps_system_role(tokenizer, kwargs: dict) -> bool:
    probe = [{"role": "system", "content": _PROBE}, {"role": "user", "content": "q"}]
    try:
        text = tokenizer.apply_chat_template(probe, add_generation_prompt=True, tokenize=False, **kwargs)
    except Exception:  # jinja2 TemplateError from the template's raise_exception, or any refusal
        return False
    return _PROBE in text


def _bos_kwargs(tokenizer) -> dict[str, Any]:
    """`bos_token=""` when the tokenizer prepends BOS itself and the template writes it too."""
    bos, bos_id = tokenizer.bos_token, tokenizer.bos_token_id
    if not bos or bos_id is None or tokenizer("x")["input_ids"][:1] != [bos_id]:
        return {}
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "q"}], add_generation_prompt=True, tokenize=False
    )
    return {"bos_token": ""} if text.startswith(bos) else {}


@functools.lru_cache(maxsize=8)
def _plan(model_path: str, model_name: str, system_prompt: str | None) -> ChatPlan:
    tokenizer = load_tokenizer(model_path)
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(
            f"engine.chat=true but model {model_name!r} has no chat template (tokenizer_config.json "
            "chat_template); use a chat/instruct model or engine.chat=false"
        )
    kwargs = _bos_kwargs(tokenizer)
    fold = bool(system_prompt) and not _keeps_system_role(tokenizer, kwargs)
    return ChatPlan(system_prompt=system_prompt or None, fold_system=fold, template_kwargs=kwargs)


def plan_chat(engine: EngineConfig, model_path: str) -> ChatPlan | None:
    """The chat plan for `engine` (None when chat mode is off). Raises `ConfigError` on the driver
    when the model has no chat template, before any engine starts. Cached per model and prompt: a
    run builds its generation stage once per pass."""
    if not engine.chat:
        return None
    return _plan(model_path, engine.model, engine.system_prompt)


def preflight(engine: EngineConfig) -> None:
    """Checks a run makes before it reads seeds or starts Ray: chat mode needs a chat template."""
    if engine.chat:
        from metamath_ray.models import resolve_model

        plan_chat(engine, resolve_model(engine.model))
