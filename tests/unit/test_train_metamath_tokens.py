"""template=metamath tokenises a MetaMathQA record exactly as MetaMath's train_math.py did, with the
real LLaMA-2 tokenizer: the ids below are written out, and re-derived here with sentencepiece alone
(train_math.py's way: BOS + one encode of source + response, then the EOS id; the loss skips as many
leading positions as the source alone tokenises to). Skipped when the shared tokenizer is absent."""

from __future__ import annotations

import shutil

import pytest

from conftest import LLAMA2_TOKENIZER
from metamath_ray.train.data import IGNORE_INDEX, load_tokenizer, tokenize_example

pytestmark = pytest.mark.skipif(not LLAMA2_TOKENIZER.exists(), reason="shared LLaMA-2 tokenizer not available")

NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the "
    "request.\n\n### Instruction:\n{instruction}\n\n### Response:"
)
WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:"
)

# MetaMathQA GSM_FOBAR format: the question, then the backward question on a second line.
FOBAR_Q1 = "James writes a 3-page letter to x different friends twice a week. How many pages does he write a year?"
FOBAR_Q2 = "If we know the answer to the above question is 624, what is the value of unknown variable x?"
FOBAR_RESPONSE = (
    "James writes a 3-page letter to x different friends twice a week, so he writes 3 * x * 2 = 6x pages every week.\n"
    "There are 52 weeks in a year, so he writes 6x * 52 = 312x pages a year.\n"
    "We are given that he writes 624 pages a year, so we can write: 312x = 624.\n"
    "Dividing both sides by 312, we get: x = 2.\nThe value of x is 2.\nThe answer is: 2"
)
FOBAR_IDS = [
    1, 13866, 338, 385, 15278, 393, 16612, 263, 3414, 29892, 3300, 2859, 411, 385, 1881, 393, 8128, 4340,
    3030, 29889, 14350, 263, 2933, 393, 7128, 2486, 1614, 2167, 278, 2009, 29889, 13, 13, 2277, 29937, 2799,
    4080, 29901, 13, 29470, 15873, 263, 29871, 29941, 29899, 3488, 5497, 304, 921, 1422, 7875, 8951, 263,
    4723, 29889, 1128, 1784, 6515, 947, 540, 2436, 263, 1629, 29973, 13, 13, 2277, 29937, 10567, 29901, 13,
    3644, 591, 1073, 278, 1234, 304, 278, 2038, 1139, 338, 29871, 29953, 29906, 29946, 29892, 825, 338, 278,
    995, 310, 9815, 2286, 921, 29973, 13, 13, 2277, 29937, 13291, 29901, 29470, 15873, 263, 29871, 29941,
    29899, 3488, 5497, 304, 921, 1422, 7875, 8951, 263, 4723, 29892, 577, 540, 15873, 29871, 29941, 334, 921,
    334, 29871, 29906, 353, 29871, 29953, 29916, 6515, 1432, 4723, 29889, 13, 8439, 526, 29871, 29945, 29906,
    11405, 297, 263, 1629, 29892, 577, 540, 15873, 29871, 29953, 29916, 334, 29871, 29945, 29906, 353, 29871,
    29941, 29896, 29906, 29916, 6515, 263, 1629, 29889, 13, 4806, 526, 2183, 393, 540, 15873, 29871, 29953,
    29906, 29946, 6515, 263, 1629, 29892, 577, 591, 508, 2436, 29901, 29871, 29941, 29896, 29906, 29916, 353,
    29871, 29953, 29906, 29946, 29889, 13, 29928, 3640, 292, 1716, 11192, 491, 29871, 29941, 29896, 29906,
    29892, 591, 679, 29901, 921, 353, 29871, 29906, 29889, 13, 1576, 995, 310, 921, 338, 29871, 29906, 29889,
    13, 1576, 1234, 338, 29901, 29871, 29906, 2,
]
FOBAR_PROMPT_LEN = 101  # BOS + the with-input source, ending "##", "#", "▁Response", ":"

# MetaMathQA GSM_AnsAug format: a one-line GSM8K question.
ANSAUG_Q = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?"
)
ANSAUG_RESPONSE = (
    "Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips altogether in April and May.\n"
    "The answer is: 72"
)
ANSAUG_IDS = [
    1, 13866, 338, 385, 15278, 393, 16612, 263, 3414, 29889, 14350, 263, 2933, 393, 7128, 2486, 1614, 2167,
    278, 2009, 29889, 13, 13, 2277, 29937, 2799, 4080, 29901, 13, 29940, 2075, 423, 5239, 9335, 567, 304,
    29871, 29946, 29947, 310, 902, 7875, 297, 3786, 29892, 322, 769, 1183, 5239, 4203, 408, 1784, 9335, 567,
    297, 2610, 29889, 1128, 1784, 9335, 567, 1258, 26259, 423, 19417, 19148, 297, 3786, 322, 2610, 29973, 13,
    13, 2277, 29937, 13291, 29901, 29940, 2075, 423, 5239, 29871, 29946, 29947, 29914, 29906, 353, 29871,
    29906, 29946, 9335, 567, 297, 2610, 29889, 13, 29940, 2075, 423, 5239, 29871, 29946, 29947, 29974, 29906,
    29946, 353, 29871, 29955, 29906, 9335, 567, 19148, 297, 3786, 322, 2610, 29889, 13, 1576, 1234, 338,
    29901, 29871, 29955, 29906, 2,
]
ANSAUG_PROMPT_LEN = 77

CASES = {
    "fobar": (f"{FOBAR_Q1}\n{FOBAR_Q2}", FOBAR_RESPONSE, WITH_INPUT.format(instruction=FOBAR_Q1, input=FOBAR_Q2),
              FOBAR_IDS, FOBAR_PROMPT_LEN),
    "ansaug": (ANSAUG_Q, ANSAUG_RESPONSE, NO_INPUT.format(instruction=ANSAUG_Q), ANSAUG_IDS, ANSAUG_PROMPT_LEN),
}


@pytest.fixture(scope="module")
def llama2_tokenizer(tmp_path_factory):
    """The LLaMA-2 tokenizer as Llama-2's hub folder configures it (add_bos_token: true), loaded the
    way training loads it. A bare tokenizer.model under transformers 5 would add no BOS."""
    from transformers import LlamaTokenizer

    folder = tmp_path_factory.mktemp("llama2tok")
    shutil.copy(LLAMA2_TOKENIZER, folder / "tokenizer.model")
    LlamaTokenizer.from_pretrained(str(folder), add_bos_token=True, add_eos_token=False).save_pretrained(str(folder))
    return load_tokenizer(str(folder))


def _metamath_ids_by_sentencepiece(source: str, response: str) -> tuple[list[int], int]:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(LLAMA2_TOKENIZER))
    ids = [sp.bos_id()] + sp.encode(source + response) + [sp.eos_id()]
    return ids, 1 + len(sp.encode(source))


@pytest.mark.parametrize("name", sorted(CASES))
def test_written_ids_are_metamaths(name):
    query, response, source, ids, prompt_len = CASES[name]
    assert _metamath_ids_by_sentencepiece(source, response) == (ids, prompt_len)


@pytest.mark.parametrize("name", sorted(CASES))
def test_template_metamath_gives_those_ids_and_labels(llama2_tokenizer, name):
    query, response, _, ids, prompt_len = CASES[name]
    ex = tokenize_example(llama2_tokenizer, query, response, max_length=2048, template="metamath")
    assert ex["drop_reason"] == "" and ex["num_tokens"] == len(ids)
    assert ex["input_ids"] == ids
    assert ex["labels"] == [IGNORE_INDEX] * prompt_len + ids[prompt_len:]


def test_the_seam_is_tokenised_jointly(llama2_tokenizer):
    """train_math.py tokenises source + response as one string: "Response:Natalia" has no word-start
    marker before the response ("N", "atal"), unlike tokenising the response on its own ("▁Natal")."""
    pieces = llama2_tokenizer.convert_ids_to_tokens(ANSAUG_IDS[ANSAUG_PROMPT_LEN - 2 : ANSAUG_PROMPT_LEN + 2])
    assert pieces == ["▁Response", ":", "N", "atal"]
    separate = tokenize_example(llama2_tokenizer, ANSAUG_Q, ANSAUG_RESPONSE, max_length=2048, template="train")
    assert separate["input_ids"][ANSAUG_PROMPT_LEN] != ANSAUG_IDS[ANSAUG_PROMPT_LEN]


def test_truncate_cuts_like_train_math(llama2_tokenizer):
    """truncate=true: MetaMath's truncation to model_max_length, the EOS lost, labels masked by the
    (also truncated) source length; a prompt that fills max_length leaves nothing to learn: dropped."""
    query, response, _, ids, prompt_len = CASES["fobar"]
    cut = tokenize_example(llama2_tokenizer, query, response, max_length=150, template="metamath", truncate=True)
    assert cut["input_ids"] == ids[:150] and cut["num_tokens"] == len(ids)
    assert cut["labels"] == [IGNORE_INDEX] * prompt_len + ids[prompt_len:150]
    assert tokenize_example(llama2_tokenizer, query, response, max_length=150, template="metamath")["drop_reason"] == "too_long"
    none_left = tokenize_example(llama2_tokenizer, query, response, max_length=prompt_len, template="metamath", truncate=True)
    assert none_left["drop_reason"] == "prompt_too_long" and none_left["input_ids"] == []
