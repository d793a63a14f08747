import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from metamath_ray.models import tiny_model_dir
from metamath_ray.templates import build_prompt
from metamath_ray.train.data import (
    DROP_EMPTY,
    DROP_TOO_LONG,
    IGNORE_INDEX,
    batch_token_count,
    collate_packed,
    collate_padded,
    count_packs,
    describe_drop,
    load_tokenizer,
    micro_batches,
    pack_examples,
    plan_steps_per_epoch,
    tokenize_example,
)

QUERY = "Natalia sold clips to 48 of her friends in April, and then half as many in May. How many in total?"
RESPONSE = "In May she sold 48/2 = 24 clips. In total 48+24 = 72.\nThe answer is: 72"


def tok():
    return load_tokenizer(str(tiny_model_dir()))


def test_labels_cover_the_response_and_eos_only():
    t = tok()
    ex = tokenize_example(t, QUERY, RESPONSE, max_length=1024, template="train")
    prompt_ids = t(build_prompt(QUERY), add_special_tokens=True)["input_ids"]
    assert ex["drop_reason"] == ""
    assert ex["input_ids"][: len(prompt_ids)] == prompt_ids  # exactly what evaluation feeds the model
    assert ex["labels"][: len(prompt_ids)] == [IGNORE_INDEX] * len(prompt_ids)
    response_labels = ex["labels"][len(prompt_ids) :]
    assert response_labels == ex["input_ids"][len(prompt_ids) :]
    assert response_labels[-1] == t.eos_token_id
    assert t.decode(response_labels[:-1]) == RESPONSE
    assert ex["num_tokens"] == len(ex["input_ids"])


def test_metamath_template_tokenises_prompt_and_response_as_one_string():
    """train_math.py: tokenizer(source + response + eos_token); the loss skips len(tokenizer(source))."""
    t = tok()
    query = "Q1 has 3 apples.\nIf the answer is 5, what is x?"
    ex = tokenize_example(t, query, RESPONSE, max_length=1024)
    source = build_prompt(query, "metamath")
    assert "### Input:\nIf the answer is 5, what is x?" in source
    assert ex["input_ids"] == t(source + RESPONSE + t.eos_token)["input_ids"]
    n_prompt = len(t(source)["input_ids"])
    assert ex["labels"] == [IGNORE_INDEX] * n_prompt + ex["input_ids"][n_prompt:]
    assert ex["input_ids"][0] == t.bos_token_id and ex["input_ids"][-1] == t.eos_token_id


def test_too_long_examples_are_dropped_with_reason_not_truncated():
    t = tok()
    full = tokenize_example(t, QUERY, RESPONSE, max_length=4096)["num_tokens"]
    fits = tokenize_example(t, QUERY, RESPONSE, max_length=full)
    assert fits["drop_reason"] == "" and len(fits["input_ids"]) == full
    dropped = tokenize_example(t, QUERY, RESPONSE, max_length=full - 1)
    assert dropped["drop_reason"] == DROP_TOO_LONG and dropped["input_ids"] == []
    assert dropped["num_tokens"] == full
    assert describe_drop(DROP_TOO_LONG, full, full - 1) == f"too_long: {full} tokens > max_length {full - 1}"


def test_empty_response_is_dropped():
    assert tokenize_example(tok(), QUERY, "  ", max_length=1024)["drop_reason"] == DROP_EMPTY


def _ex(n, start=1):
    ids = list(range(start, start + n))
    return {"input_ids": ids, "labels": [IGNORE_INDEX] * (n // 2) + ids[n // 2 :]}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 64), max_size=40), st.integers(64, 200))
def test_packing_keeps_order_never_splits_and_fits(lengths, max_length):
    examples = [_ex(n, start=i * 1000) for i, n in enumerate(lengths)]
    packs = list(pack_examples(examples, max_length))
    assert [ex for pack in packs for ex in pack] == examples
    assert all(sum(len(ex["input_ids"]) for ex in pack) <= max_length for pack in packs)
    assert len(packs) == count_packs(lengths, max_length)


def test_collate_padded_masks_padding():
    batch = collate_padded([_ex(3), _ex(5)], pad_id=0)
    assert batch["input_ids"].shape == (2, 5)
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1] * 5]
    assert batch["labels"][0, 3:].tolist() == [IGNORE_INDEX] * 2
    assert batch_token_count(batch, pad_id=0) == 8


def test_collate_packed_restarts_positions_per_example():
    batch = collate_packed([[_ex(3), _ex(2, start=50)], [_ex(4)]], pad_id=0)
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1], [0, 1, 2, 3, 0]]
    assert "attention_mask" not in batch
    assert batch["labels"][1, 4].item() == IGNORE_INDEX


def test_packed_attention_does_not_cross_example_boundaries():
    """Logits of an example inside a pack equal its logits when run alone."""
    from transformers import AutoModelForCausalLM

    t = tok()
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir()), dtype=torch.float32, attn_implementation="sdpa")
    model.eval()
    a = tokenize_example(t, QUERY, RESPONSE, max_length=1024)
    b = tokenize_example(t, "What is 2+3?", "2+3=5.\nThe answer is: 5", max_length=1024)
    packed = collate_packed([[a, b]], pad_id=t.pad_token_id)
    with torch.no_grad():
        # use_cache=False as in training: transformers derives the packed mask only without a KV cache.
        together = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False).logits[0]
        alone_b = model(input_ids=torch.tensor([b["input_ids"]])).logits[0]
        alone_a = model(input_ids=torch.tensor([a["input_ids"]])).logits[0]
    na = len(a["input_ids"])
    torch.testing.assert_close(together[:na], alone_a, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(together[na:], alone_b, atol=1e-4, rtol=1e-4)


def test_micro_batches_drop_the_trailing_partial_batch():
    examples = [_ex(4) for _ in range(7)]
    batches = list(micro_batches(examples, micro_batch_size=3, packing=False, max_length=64, pad_id=0))
    assert [b["input_ids"].shape[0] for b in batches] == [3, 3]
    # 7 examples of 4 tokens pack two to a sequence of 8: 4 packs, 2 micro-batches of 2.
    packed = list(micro_batches(examples, micro_batch_size=2, packing=True, max_length=8, pad_id=0))
    assert [b["input_ids"].shape for b in packed] == [(2, 8), (2, 8)]


def test_plan_steps_per_epoch():
    lengths = [10] * 100
    common = dict(world_size=2, micro_batch_size=4, grad_accum_steps=2, max_length=40)
    assert plan_steps_per_epoch(lengths, packing=False, **common) == 6  # 50 per worker // 8
    assert plan_steps_per_epoch(lengths, packing=True, **common) == 1  # 25 packs, 12 per worker // 8
