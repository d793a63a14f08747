"""Model resolution, including the in-process `tiny` LLaMA used by the demo and the tests.

`tiny` is a random LLaMA (head size 64, so vLLM's CPU attention kernels accept it) with a byte-level
BPE tokenizer trained in-process on the bundled seed text. It is saved as an ordinary Hugging Face
folder, so every engine loads it exactly like a real model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path

TINY = "tiny"
# Bump when the recipe below changes, so cached folders are rebuilt.
_TINY_RECIPE_VERSION = 2

SPECIAL_TOKENS = {"unk": "<unk>", "bos": "<s>", "eos": "</s>", "pad": "<pad>"}


def default_cache_dir() -> Path:
    root = os.environ.get("METAMATH_RAY_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "metamath-ray"
    )
    return Path(root)


def _bundled_text() -> list[str]:
    texts: list[str] = []
    seeds = resources.files("metamath_ray") / "data" / "seeds"
    for name in sorted(p.name for p in seeds.iterdir() if p.name.endswith(".jsonl")):
        for line in (seeds / name).read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            texts.extend(str(v) for k, v in row.items() if isinstance(v, str))
    return texts


def train_tiny_tokenizer(texts: list[str], vocab_size: int = 1024):
    """Byte-level BPE trained on `texts`; every string stays encodable through byte fallback."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    from tokenizers.processors import TemplateProcessing

    bos = SPECIAL_TOKENS["bos"]
    tok.post_processor = TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token=SPECIAL_TOKENS["unk"],
        bos_token=SPECIAL_TOKENS["bos"],
        eos_token=SPECIAL_TOKENS["eos"],
        pad_token=SPECIAL_TOKENS["pad"],
        model_max_length=4096,
    )


def build_tiny_llama(
    out_dir: str | os.PathLike,
    *,
    tokenizer_dir: str | os.PathLike | None = None,
    hidden_size: int = 128,
    num_layers: int = 2,
    seed: int = 0,
) -> Path:
    """Write a random tiny LLaMA + tokenizer to `out_dir` and return it.

    `tokenizer_dir`: use an existing tokenizer (e.g. the LLaMA-2 SentencePiece one) instead of
    training one on the bundled seeds.
    """
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if tokenizer_dir is None:
        tokenizer = train_tiny_tokenizer(_bundled_text())
    else:
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 3,
        num_hidden_layers=num_layers,
        num_attention_heads=hidden_size // 64,
        num_key_value_heads=hidden_size // 64,
        head_dim=64,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        torch_dtype="float32",
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def tiny_model_dir(cache_dir: str | os.PathLike | None = None, tokenizer_dir: str | None = None) -> Path:
    """Build (once, atomically) and return the cached tiny model folder."""
    key = hashlib.sha256(
        json.dumps([_TINY_RECIPE_VERSION, str(tokenizer_dir or "bundled")]).encode()
    ).hexdigest()[:12]
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    final = root / f"tiny-llama-{key}"
    if (final / "config.json").exists():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny-", dir=root))
    try:
        build_tiny_llama(tmp, tokenizer_dir=tokenizer_dir)
        try:
            os.rename(tmp, final)  # atomic: concurrent builders race, one wins
        except OSError:
            if not (final / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def resolve_model(model: str, cache_dir: str | os.PathLike | None = None) -> str:
    """`tiny` -> the built folder; anything else (local folder or hub id) passes through."""
    if model == TINY:
        return str(tiny_model_dir(cache_dir))
    return model
