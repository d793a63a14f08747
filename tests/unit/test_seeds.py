"""Seed normalisation and quarantine: every row read is either a seed or a quarantine row."""

import json

import pytest

from metamath_ray.seeds import SeedSourceError, load_seeds, normalize_row

GSM = {"question": "Tom has 3 apples and buys 2 more. How many now?", "answer": "3 + 2 = 5\n#### 5"}
MATH = {"problem": "Compute $1+1$.", "solution": "We get $\\boxed{2}$.", "level": "Level 1", "type": "Algebra"}


def norm(row, dataset=None):
    return normalize_row(row, index=7, source="t", dataset=dataset, split="train", max_question_chars=200)


def test_gsm8k_gold_from_hashes():
    seed, bad = norm(GSM)
    assert bad is None
    assert seed["seed_id"] == "gsm8k/train/7" and seed["dataset"] == "gsm8k" and seed["answer"] == "5"


def test_math_gold_from_last_boxed_and_unique_id():
    seed, _ = norm({**MATH, "solution": "First $\\boxed{1}$, then $\\boxed{\\frac{1}{2}}$."})
    assert seed["answer"] == "\\frac{1}{2}" and seed["seed_id"] == "math/train/algebra/7"
    seed, _ = norm({**MATH, "unique_id": "train/algebra/123.json"})
    assert seed["seed_id"] == "math/train/algebra/123"


def test_math500_schema_with_int_level_and_subject():
    seed, _ = norm({"problem": "p?", "solution": "$\\boxed{3}$", "level": 2, "subject": "Algebra"}, "math")
    assert (seed["level"], seed["type"]) == ("Level 2", "Algebra")


@pytest.mark.parametrize(
    "row, reason",
    [
        ("not a dict", "not_an_object"),
        ({"foo": 1}, "unknown_dataset"),
        ({**GSM, "question": ""}, "empty_question"),
        ({**GSM, "question": "   "}, "empty_question"),
        ({**GSM, "question": 12}, "wrong_type_question"),
        ({"question": None, "answer": "#### 4"}, "missing_question"),
        ({**GSM, "answer": "no hashes here"}, "unknown_dataset"),
        ({**MATH, "solution": "no box"}, "no_gold_answer"),
        ({**MATH, "problem": "x" * 500}, "question_too_long"),
        ({**MATH, "problem": "bad \ud800 surrogate"}, "invalid_utf8_question"),
        ({**MATH, "problem": b"\xff\xfe"}, "invalid_utf8_question"),
        ({**MATH, "problem": "nul\x00byte"}, "control_chars_question"),
    ],
)
def test_bad_rows_are_quarantined_with_reason(row, reason):
    seed, bad = norm(row)
    assert seed is None and bad["reason"] == reason


def test_file_loading_accounts_for_every_row(tmp_path):
    path = tmp_path / "seeds.jsonl"
    lines = [json.dumps(GSM), "{not json", json.dumps({**GSM, "question": ""}), "", json.dumps(GSM)]
    path.write_bytes(("\n".join(lines) + "\n").encode() + b"\xff\xfe\n")
    out = load_seeds([{"path": str(path), "dataset": "gsm8k"}])
    assert out.rows_read == len(out.seeds) + len(out.quarantine) == 5
    assert len(out.seeds) == 2  # two distinct ids (line numbers) for the repeated row
    assert sorted(q["reason"] for q in out.quarantine) == ["empty_question", "invalid_json", "invalid_utf8"]


def test_bundled_seeds_and_limit():
    out = load_seeds([{"path": "bundled:gsm8k"}, {"path": "bundled:math"}], limit=5)
    assert len(out.seeds) == 10 and not out.quarantine
    assert {s["dataset"] for s in out.seeds} == {"gsm8k", "math"}


def test_parquet_and_json_array(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([MATH, MATH]), tmp_path / "m.parquet")
    (tmp_path / "g.json").write_text(json.dumps([GSM]))
    out = load_seeds([{"path": str(tmp_path / "m.parquet")}, {"path": str(tmp_path / "g.json")}])
    assert len(out.seeds) == 3


@pytest.mark.parametrize("name, content, match", [
    ("missing.jsonl", None, "not found"),
    ("seeds.csv", b"a,b\n", "unsupported"),
    ("obj.json", b"{}", "list of objects"),
])
def test_unreadable_sources_are_one_line_errors(tmp_path, name, content, match):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SeedSourceError, match=match):
        load_seeds([{"path": str(path)}])
