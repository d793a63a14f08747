"""Seed normalisation and quarantine: every row read is either a seed or a quarantine row."""

import json
from pathlib import Path

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
        ({**MATH, "solution": "no box"}, "bad_gold"),
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


@pytest.mark.parametrize(
    "row, dataset, detail",
    [
        ({**MATH, "solution": "no box"}, "math", "no gold answer"),
        ({**MATH, "solution": "so $\\boxed{}$"}, "math", "empty gold answer"),
        ({**MATH, "solution": "so $\\boxed{\\frac{\\sqrt6}2}$"}, "math", "the verifier cannot read"),
        ({**MATH, "solution": "so $\\boxed{\\text{(E)},}$"}, "math", "the verifier cannot read"),
        ({**GSM, "answer": "She has 3.\n#### three"}, "gsm8k", "#### line is not a number"),
        ({**GSM, "answer": "She has 3.\n#### {3"}, "gsm8k", "unbalanced braces"),
        ({**GSM, "answer": "She has 3.\n####   "}, "gsm8k", "no gold answer"),
    ],
)
def test_unusable_gold_answers_are_quarantined_as_bad_gold_with_the_offending_text(row, dataset, detail):
    seed, bad = norm(row, dataset)
    assert seed is None and bad["reason"] == "bad_gold"
    assert detail in bad["detail"]


@pytest.mark.parametrize("answer", ["\\frac{\\sqrt{6}}{2}", "\\text{(E)}", "(1, -2)", "x^2+1", "\\{1, 2\\}",
                                    "\\dfrac{12}{5525}", "\\text{Monday}", "2\\sqrt{2}"])
def test_readable_math_golds_are_kept(answer):
    seed, bad = norm({**MATH, "solution": f"so $\\boxed{{{answer}}}$"}, "math")
    assert bad is None and seed["answer"] == answer


SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def test_real_training_and_test_golds_are_nearly_all_usable():
    """Measured: 13 of the 12,500 MATH golds (train + test) are refused (2 empty \\boxed{}, 11 the
    symbolic parser cannot read, e.g. \\frac{\\sqrt6}2) and none of GSM8K's 7,473."""
    from metamath_ray.answers import extract_boxed, extract_gsm8k_gold
    from metamath_ray.answers.gold import gold_problem

    files = [SHARED / "math" / "train.jsonl", SHARED / "math" / "test.jsonl", SHARED / "gsm8k" / "train.jsonl"]
    if not all(f.exists() for f in files):
        pytest.skip("shared benchmark data not present")
    math_rows = [json.loads(line) for f in files[:2] for line in f.open()]
    refused = [r for r in math_rows if gold_problem(extract_boxed(r["solution"]), "math")]
    assert len(refused) <= 13
    gsm = [json.loads(line) for line in files[2].open()]
    assert not [r for r in gsm if gold_problem(extract_gsm8k_gold(r["answer"]), "gsm8k")]
