"""Training examples: tokenisation with response-only labels, drop-with-reason, padding and packing.

Everything here is pure (no Ray): the Ray Data edge (`run.py: _ray_dataset`) maps these functions over
batches, and the one-process loop calls them directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch

from metamath_ray.templates import TemplateVariant, build_prompt, metamath_prompt

IGNORE_INDEX = -100  # labels the loss skips (prompt tokens, padding)

DROP_TOO_LONG = "too_long"
DROP_EMPTY = "empty_query_or_response"
DROP_PROMPT_TOO_LONG = "prompt_too_long"  # truncate=True: nothing of the response is left


def tokenize_example(
    tokenizer, query: str, response: str, *, max_length: int, template: TemplateVariant = "metamath",
    truncate: bool = False,
) -> dict[str, Any]:
    """One training example: input ids, and labels that are IGNORE_INDEX over the prompt.

    An example longer than `max_length` comes back with `drop_reason` set and empty ids, unless
    `truncate`: then it is cut to `max_length` as MetaMath's train_math.py cut it (the end of the
    response and the EOS are lost); one whose prompt alone fills `max_length` has nothing to learn
    and is dropped. `num_tokens` is always the untruncated length.
    """
    if not (query or "").strip() or not (response or "").strip():
        return _dropped(DROP_EMPTY, 0)
    if template == "metamath":
        ids, prompt_len = metamath_token_ids(tokenizer, query, response)
    else:
        ids, prompt_len = _separate_token_ids(tokenizer, build_prompt(query, template), response)
    n = len(ids)
    if n > max_length:
        if not truncate:
            return _dropped(DROP_TOO_LONG, n)
        ids = ids[:max_length]
    prompt_len = min(prompt_len, len(ids))
    if prompt_len == len(ids):
        return _dropped(DROP_PROMPT_TOO_LONG, n)
    return {
        "input_ids": list(ids),
        "labels": [IGNORE_INDEX] * prompt_len + list(ids[prompt_len:]),
        "num_tokens": n,
        "drop_reason": "",
    }


def metamath_token_ids(tokenizer, query: str, response: str) -> tuple[list[int], int]:
    """(input ids, number of leading prompt positions the loss skips), as train_math.py makes them.

    train_math.py appends the EOS *string* to the response, tokenises source + target as one string
    (the tokenizer adds BOS), and masks as many leading positions as the source alone tokenises to.
    Tokenising the pair jointly matters at the seam: "### Response:" is followed by the response's
    first character, with no sentencepiece word-start marker added in between.
    """
    source = metamath_prompt(query)
    ids = tokenizer(source + response + tokenizer.eos_token, add_special_tokens=True)["input_ids"]
    prompt_len = len(tokenizer(source, add_special_tokens=True)["input_ids"])
    return list(ids), prompt_len


def _separate_token_ids(tokenizer, prompt: str, response: str) -> tuple[list[int], int]:
    """Prompt ids (BOS included) + response ids + EOS, tokenised separately, so the prompt ids are
    exactly what evaluation feeds the model for this prompt."""
    prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return list(prompt_ids) + list(response_ids), len(prompt_ids)


def _dropped(reason: str, n: int) -> dict[str, Any]:
    return {"input_ids": [], "labels": [], "num_tokens": n, "drop_reason": reason}


def describe_drop(reason: str, num_tokens: int, max_length: int) -> str:
    if reason in (DROP_TOO_LONG, DROP_PROMPT_TOO_LONG):
        return f"{reason}: {num_tokens} tokens > max_length {max_length}"
    return reason


def pack_examples(examples: Iterable[dict[str, Any]], max_length: int) -> Iterator[list[dict[str, Any]]]:
    """Greedy in-order packing: fill a sequence of `max_length` tokens, start a new one when the next
    example does not fit. Examples are never split across sequences."""
    pack: list[dict[str, Any]] = []
    used = 0
    for ex in examples:
        n = len(ex["input_ids"])
        if pack and used + n > max_length:
            yield pack
            pack, used = [], 0
        pack.append(ex)
        used += n
    if pack:
        yield pack


def count_packs(lengths: Iterable[int], max_length: int) -> int:
    """How many sequences `pack_examples` makes from examples of these lengths (for step planning)."""
    packs, used = 0, 0
    for n in lengths:
        if packs == 0 or used + n > max_length:
            packs += 1
            used = 0
        used += n
    return packs


def collate_padded(examples: list[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a micro-batch to its longest example."""
    width = max(len(ex["input_ids"]) for ex in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, ex in enumerate(examples):
        n = len(ex["input_ids"])
        input_ids[i, :n] = torch.as_tensor(ex["input_ids"])
        labels[i, :n] = torch.as_tensor(ex["labels"])
        attention_mask[i, :n] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}


def collate_packed(packs: list[list[dict[str, Any]]], pad_id: int) -> dict[str, torch.Tensor]:
    """A micro-batch of packed sequences.

    Position ids restart at 0 for every example and no attention mask is passed: transformers then
    derives a block-diagonal causal mask from the position-id resets (`find_packed_sequence_indices`;
    only when the forward pass runs with use_cache=False, as training does),
    so no token attends across example boundaries. The padded tail is its own block, labelled
    IGNORE_INDEX. Labels need no boundary fix-up: each example starts with prompt tokens whose labels
    are already IGNORE_INDEX, so the last token of one example is never trained to predict the next.
    """
    width = max(sum(len(ex["input_ids"]) for ex in pack) for pack in packs)
    input_ids = torch.full((len(packs), width), pad_id, dtype=torch.long)
    labels = torch.full((len(packs), width), IGNORE_INDEX, dtype=torch.long)
    position_ids = torch.zeros((len(packs), width), dtype=torch.long)
    for i, pack in enumerate(packs):
        start = 0
        for ex in pack:
            n = len(ex["input_ids"])
            input_ids[i, start : start + n] = torch.as_tensor(ex["input_ids"])
            labels[i, start : start + n] = torch.as_tensor(ex["labels"])
            position_ids[i, start : start + n] = torch.arange(n)
            start += n
        position_ids[i, start:] = torch.arange(width - start)
    return {"input_ids": input_ids, "labels": labels, "position_ids": position_ids}


def micro_batches(
    examples: Iterable[dict[str, Any]], *, micro_batch_size: int, packing: bool, max_length: int, pad_id: int
) -> Iterator[dict[str, torch.Tensor]]:
    """Collated micro-batches from kept examples; a trailing partial micro-batch is dropped."""
    units: Iterable[Any] = pack_examples(examples, max_length) if packing else examples
    collate = collate_packed if packing else collate_padded
    buf: list[Any] = []
    for unit in units:
        buf.append(unit)
        if len(buf) == micro_batch_size:
            yield collate(buf, pad_id)
            buf = []


def batch_token_count(batch: dict[str, torch.Tensor], pad_id: int) -> int:
    """Real (non-padding) tokens in a collated micro-batch, for tokens/s."""
    if "attention_mask" in batch:
        return int(batch["attention_mask"].sum())
    # Packed: padding sits only in each row's tail block and carries pad ids and ignored labels.
    real = (batch["input_ids"] != pad_id) | (batch["labels"] != IGNORE_INDEX)
    return int(real.sum())


def plan_steps_per_epoch(
    kept_lengths: list[int], *, world_size: int, micro_batch_size: int, grad_accum_steps: int,
    packing: bool, max_length: int,
) -> int:
    """Optimizer steps per epoch, as planned on the driver before training.

    Each worker gets an equal share of the kept examples; a step needs `micro_batch_size *
    grad_accum_steps` units (examples, or packed sequences) on every worker. With packing the
    per-worker pack count is estimated from packing all examples in order; workers stop together as
    soon as any of them runs out, so an estimate that is slightly high only shortens the last epoch.
    """
    units = count_packs(kept_lengths, max_length) if packing else len(kept_lengths)
    return (units // world_size) // (micro_batch_size * grad_accum_steps)


_TOKENIZERS: dict[str, Any] = {}


def load_tokenizer(name_or_path: str):
    """Tokenizer for a model folder (cached per process: Ray Data reuses its worker processes)."""
    if name_or_path not in _TOKENIZERS:
        from transformers import AutoTokenizer

        from metamath_ray.models import resolve_model

        tok = AutoTokenizer.from_pretrained(resolve_model(name_or_path))
        if tok.pad_token_id is None:  # LLaMA-2 has none; padding is masked out anyway
            tok.pad_token = tok.unk_token or tok.eos_token
        _TOKENIZERS[name_or_path] = tok
    return _TOKENIZERS[name_or_path]


def tokenize_table(
    table, *, tokenizer_name: str, max_length: int, template: TemplateVariant, truncate: bool = False
):
    """Arrow table (id, query, response) -> (id, input_ids, labels, num_tokens, drop_reason)."""
    import pyarrow as pa

    tok = load_tokenizer(tokenizer_name)
    rows = [
        tokenize_example(tok, q, r, max_length=max_length, template=template, truncate=truncate)
        for q, r in zip(table["query"].to_pylist(), table["response"].to_pylist())
    ]
    return pa.table({
        "id": table["id"],
        "input_ids": pa.array([r["input_ids"] for r in rows], pa.list_(pa.int32())),
        "labels": pa.array([r["labels"] for r in rows], pa.list_(pa.int32())),
        "num_tokens": pa.array([r["num_tokens"] for r in rows], pa.int32()),
        "drop_reason": pa.array([r["drop_reason"] for r in rows], pa.string()),
    })
