"""answers.wellformed: which texts can be a final answer at all (issue 16 item 0)."""

import json
import os
from pathlib import Path

import pytest

from metamath_ray.answers import is_well_formed_answer, malformed_answer
from metamath_ray.answers.wellformed import has_unprintable, scan_tokens

DATA = Path(os.environ.get("METAMATH_SHARED_DATA", "/work/shared/data"))

WELL_FORMED = [
    "36", "36 dollars", "She has 36 apples", "8\\sqrt{3} square inches", "$36", "\\$36.50", "\\frac{3}{2}",
    "x = 5", "(1, 2)", "\\boxed{16}", "[2, 5)", "(-\\infty, 3] \\cup (5, \\infty)",
    "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", "5 hours and 30 minutes", "\\text{Devon}",
    "-(ab + ac + bc)", "\\text{Softball, Kickball, Picnic}", "9 p.m.", "10mph", "3rd", "H2O", "sin2x",
    "The answer is: 5", "Therefore $x \\geq 5$ is the solution.", "Jebediah has 36 apples", "100 zorbs",
    "36 sq ft", "\\$1,234.50", "10\\%", "x^2 + 2xy + y^2", "S_{MBCN}:S=7:32", "计划的比例为13/28",
    "2\\pi", "\\theta = 30^\\circ", "π", "x \\in [2, 5]", "\\text{(C)}", "101_2", "It takes 25 minutes",
]

# (text, the reason malformed_answer gives, before its colon)
MALFORMED = [
    ("row13 disindraw whe perimeter 100 ook will", "number_in_word"),
    ("whe 100 ook disindraw", "non_words"),
    ("row100", "number_in_word"),
    ("100ook", "number_in_word"),
    ("ro11day which people", "number_in_word"),
    ("2If100 was 0 square 100", "number_in_word"),
    ("mefter o n digit minutes 100", "non_words"),
    ("ads withOn from 100", "non_words"),
    ("bulyQomoxes", "non_words"),
    ("13 zorbs 100", "numbers_among_non_words"),
    ("\x00\x01\x02100", "unprintable"),
    ("100\x07", "unprintable"),
    ("\ufffd\ufffd 100", "unprintable"),
    ("\x89PNG\r\n\x1a\n 100", "unprintable"),
    ("Ã©Ã¨ 100", "non_words"),
    ("the will of perimeter " * 8 + "100", "too_many_words"),
    ("1" * 1_500, "too_long"),
    ("coordinates}} 100", "unbalanced_braces"),
    ("=<< discount 100", "stray_markup"),
]


@pytest.mark.parametrize("text", WELL_FORMED)
def test_real_answer_forms_are_well_formed(text):
    assert malformed_answer(text) is None
    assert is_well_formed_answer(text)


@pytest.mark.parametrize("text, reason", MALFORMED, ids=[r + ":" + repr(t[:20]) for t, r in MALFORMED])
def test_junk_is_malformed_with_its_reason(text, reason):
    assert (malformed_answer(text) or "").split(":")[0] == reason


@pytest.mark.parametrize("bad", [None, 5, b"5"])
def test_non_text_is_malformed_and_does_not_raise(bad):
    assert malformed_answer(bad) == "not_text"


def test_tabs_line_breaks_and_form_feeds_are_printable():
    # "\frac" typed into a non-raw Python string is "\x0crac": a known artefact of test tables
    assert not has_unprintable("a\tb\nc\r\n\x0b\x0c")
    assert has_unprintable("a\x00b") and has_unprintable("\ue000") and has_unprintable("\ufffd")


def test_seed_words_count_as_known():
    assert scan_tokens("Priyanka gallivants", frozenset({"priyanka", "gallivants"})).unknown == []
    assert scan_tokens("Priyanka gallivants").unknown == ["Priyanka", "gallivants"]


def _gold_answers() -> list[str]:
    golds = []
    for name in ("train", "test"):
        golds += [json.loads(line)["answer"] for line in (DATA / "math" / f"{name}.jsonl").open()]
        golds += [json.loads(line)["answer"].split("####")[-1].strip()
                  for line in (DATA / "gsm8k" / f"{name}.jsonl").open()]
    return golds


@pytest.mark.skipif(not (DATA / "math" / "test.jsonl").exists(), reason="shared data not available")
def test_every_gold_answer_of_gsm8k_and_math_is_well_formed():
    # test splits are held out: the word list is built from the training splits only
    assert [g for g in _gold_answers() if malformed_answer(g)] == []
