import json
from pathlib import Path

import pytest

from metamath_ray.evaluate.datasets import (
    DATASETS,
    dataset_spec,
    load_items,
    parse_hf_uri,
    parse_records,
    svamp_question,
)

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
FULL_FILES = {
    "gsm8k": "gsm8k/test.jsonl",
    "math": "math/test.jsonl",
    "math500": "math/test500.jsonl",
    "gsm8k_backward": "gsm8k_backward/test.jsonl",
    "svamp": "svamp/SVAMP.json",
}


@pytest.mark.parametrize("name", list(DATASETS))
def test_bundled_slice_parses(name):
    items = load_items(name)
    assert 20 <= len(items) <= 21
    assert len({i.item_id for i in items}) == len(items)
    for item in items:
        assert item.dataset == name and item.question.strip() and item.gold.strip()
    assert load_items(name, limit=5) == items[:5]


@pytest.mark.parametrize("name", ["math", "math500"])
def test_math_slices_carry_type_and_level(name):
    items = load_items(name)
    assert {i.level for i in items} == {1, 2, 3, 4, 5} or {i.level for i in items} <= {1, 3, 5}
    assert len({i.type for i in items}) == 7


@pytest.mark.parametrize("name", list(FULL_FILES))
def test_full_public_files_parse(name):
    path = SHARED / FULL_FILES[name]
    if not path.exists():
        pytest.skip("shared benchmark data not present")
    items = load_items(name, str(path))
    assert len(items) == dataset_spec(name).full_size
    assert len({i.item_id for i in items}) == len(items)
    if dataset_spec(name).kind == "numeric":
        assert all(float(i.gold) == float(i.gold_metamath) for i in items)


@pytest.mark.parametrize("name", ["math", "math500"])
def test_metamath_gold_matches_ours_on_public_math(name):
    """MetaMath reads golds with remove_boxed(last_boxed_only_string()); on the public MATH test sets
    that yields the same string as the released/derived `answer`, so both scorers share one gold."""
    path = SHARED / FULL_FILES[name]
    if not path.exists():
        pytest.skip("shared benchmark data not present")
    items = load_items(name, str(path))
    assert [i.gold_metamath for i in items] == [i.gold for i in items]


@pytest.mark.parametrize("solution", ["so \\fbox{7}", "thus $\\boxed 7$"])
def test_metamath_gold_is_none_where_their_box_parser_fails(solution):
    from metamath_ray.evaluate.datasets import DATASETS

    item = DATASETS["math"].parse({"problem": "p", "solution": solution}, 0, "math")
    assert item.gold == "7" and item.gold_metamath is None


def test_gsm8k_item_fields():
    item = load_items("gsm8k", limit=1)[0]
    assert item.item_id == "gsm8k/0" and item.gold == "18" and item.gold_metamath == "18"


@pytest.mark.parametrize(
    "row, gold",
    [
        ({"query": "q?", "response": "work\n#### 1,200"}, "1200"),  # MetaMath's GSM8K_test.jsonl fields
        ({"question": "q?", "answer": "#### -3"}, "-3"),
    ],
)
def test_gsm8k_alternative_field_names(tmp_path, row, gold):
    path = tmp_path / "gsm.jsonl"
    path.write_text(json.dumps(row) + "\n")
    from metamath_ray.evaluate import datasets

    assert datasets.load_items("gsm8k", str(path))[0].gold == gold


def test_bad_row_names_the_row(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"question": "q", "answer": "no marker"}) + "\n")
    with pytest.raises(ValueError, match="gsm8k row 0"):
        load_items("gsm8k", str(path))


@pytest.mark.parametrize(
    "data, path, n",
    [
        (b'{"a": 1}\n\n{"a": 2}\n', "x.jsonl", 2),
        (b'[{"a": 1}, {"a": 2}, {"a": 3}]', "x.json", 3),
        (b'\xef\xbb\xbf{"a": 1}\n', "x.jsonl", 1),
    ],
)
def test_parse_records(data, path, n):
    assert len(parse_records(data, path)) == n


def test_parse_records_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"question": ["q"], "answer": ["#### 4"]}), tmp_path / "t.parquet")
    assert parse_records((tmp_path / "t.parquet").read_bytes(), "t.parquet") == [{"question": "q", "answer": "#### 4"}]


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("hf://openai/gsm8k/main#test", ("openai/gsm8k", "main", "test")),
        ("hf://HuggingFaceH4/MATH-500", ("HuggingFaceH4/MATH-500", None, "test")),
        ("hf://meta-math/GSM8K_Backward#train", ("meta-math/GSM8K_Backward", None, "train")),
    ],
)
def test_parse_hf_uri(uri, expected):
    assert parse_hf_uri(uri) == expected


@pytest.mark.parametrize("uri", ["hf://gsm8k", "hf://a/b/c/d"])
def test_parse_hf_uri_rejects(uri):
    with pytest.raises(ValueError):
        parse_hf_uri(uri)


@pytest.mark.parametrize(
    "body, question, expected",
    [
        ("Dan had $ 3 left", "How much?", "Dan had $ 3 left. How much?"),
        ("He ran 5 miles. ", " How far?", "He ran 5 miles. How far?"),
    ],
)
def test_svamp_question(body, question, expected):
    assert svamp_question(body, question) == expected


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset"):
        dataset_spec("asdiv")


@pytest.mark.parametrize("data, path", [(b"{not json", "x.jsonl"), (b"PAR1garbage", "x.parquet")])
def test_unreadable_file_is_a_data_error(data, path):
    from metamath_ray.evaluate.datasets import EvalDataError

    with pytest.raises(EvalDataError, match=path):
        parse_records(data, path)
