"""MetaMathQA export: schema, target mixes (counts and weights), deterministic sampling."""

import io
import json

import pytest

from metamath_ray.augment import export

RESPONSES = {
    "gsm8k": "James buys 5 packs of beef that are 4 pounds each, so he buys a total of 5 * 4 = 20 pounds of beef.\n"
             "The price of beef is $5.50 per pound, so he pays 20 * $5.50 = $110.\n#### 110\nThe answer is: 110",
    "math": "We have $\\frac{1}{2^{10}} = \\frac{5^{10}}{10^{10}}$, so the last digit is the last digit of $5^{10}$, "
            "which is $\\boxed{5}$.\nThe answer is: 5",
}


def _rows(dataset, aug, n, prefix=""):
    return [{"id": f"{prefix}{dataset}-{aug}-{i:04d}", "dataset": dataset, "aug": aug,
             "query": f"{aug} question {i} about {dataset}?", "original_question": f"Original {i}?",
             "response": RESPONSES[dataset], "accepted": True} for i in range(n)]


ALL = (_rows("gsm8k", "AnsAug", 40) + _rows("gsm8k", "Rephrasing", 30) + _rows("gsm8k", "FOBAR", 20)
       + _rows("gsm8k", "SV", 10) + _rows("math", "AnsAug", 30) + _rows("math", "FOBAR", 5))


def test_records_have_the_public_schema_and_type_names():
    records = export.to_metamathqa(ALL, mix=None)
    assert len(records) == len(ALL)
    assert all(list(r) == ["type", "query", "original_question", "response"] for r in records)
    assert {r["type"] for r in records} == {"GSM_AnsAug", "GSM_Rephrased", "GSM_FOBAR", "GSM_SV",
                                           "MATH_AnsAug", "MATH_FOBAR"}
    assert all(r["response"].splitlines()[-1].startswith("The answer is: ") for r in records)
    types = [r["type"] for r in records]
    assert types == sorted(types, key=list(export.EXPORT_TYPES.values()).index)


@pytest.mark.parametrize(
    "mix, expected",
    [({"GSM_AnsAug": 10, "MATH_AnsAug": 100}, {"GSM_AnsAug": 10, "MATH_AnsAug": 30}),
     ({"GSM_SV": 0, "GSM_FOBAR": 7}, {"GSM_FOBAR": 7}),
     ({"GSM_AnsAug": 0.5, "GSM_FOBAR": 0.5}, {"GSM_AnsAug": 20, "GSM_FOBAR": 20}),
     ({"GSM_AnsAug": 2.0, "GSM_SV": 1.0}, {"GSM_AnsAug": 20, "GSM_SV": 10}),
     ({"GSM_AnsAug": 0.5, "MATH_SV": 0.5}, {})],
)
def test_mix_counts_and_weights(mix, expected):
    records = export.to_metamathqa(ALL, mix=mix, seed=0)
    counts = {}
    for r in records:
        counts[r["type"]] = counts.get(r["type"], 0) + 1
    assert counts == expected


def test_metamathqa_proportions_are_the_papers():
    assert sum(export.METAMATHQA_MIX.values()) == 395_000
    assert export.METAMATHQA_WEIGHTS["GSM_AnsAug"] == pytest.approx(80 / 395)
    rows = sum((_rows(ds, aug, n) for ds, aug, n in [
        ("gsm8k", "AnsAug", 200), ("gsm8k", "Rephrasing", 200), ("gsm8k", "SV", 200), ("gsm8k", "FOBAR", 200),
        ("math", "AnsAug", 200), ("math", "Rephrasing", 200), ("math", "SV", 200), ("math", "FOBAR", 200)]), [])
    records = export.to_metamathqa(rows, mix=export.METAMATHQA_WEIGHTS)
    counts = {t: sum(r["type"] == t for r in records) for t in export.METAMATHQA_MIX}
    # GSM_AnsAug (80/395 of the total) is the binding type: 200 of it, the others in proportion.
    assert counts["GSM_AnsAug"] == 200 and counts["MATH_SV"] == 37 and counts["MATH_AnsAug"] == 187


def test_sampling_is_deterministic_and_seeded():
    first = export.to_metamathqa(ALL, mix={"GSM_AnsAug": 5}, seed=1)
    again = export.to_metamathqa(list(reversed(ALL)), mix={"GSM_AnsAug": 5}, seed=1)
    other = export.to_metamathqa(ALL, mix={"GSM_AnsAug": 5}, seed=2)
    assert first == again and first != other
    bigger = export.to_metamathqa(ALL, mix={"GSM_AnsAug": 8}, seed=1)
    assert all(r in bigger for r in first)  # growing a target only adds rows


@pytest.mark.parametrize(
    "change",
    [{"query": "   "}, {"response": "He pays $110."}, {"response": "So 110.\nThe answer is: "},
     {"aug": "Unknown"}, {"dataset": "svamp"}],
)
def test_rows_metamathqa_cannot_hold_are_skipped(change):
    row = {**_rows("gsm8k", "AnsAug", 1)[0], **change}
    assert export.to_metamathqa([row]) == []


def test_unknown_type_in_mix_is_an_error():
    with pytest.raises(ValueError):
        export.to_metamathqa(ALL, mix={"GSM_Backward": 3})


@pytest.mark.parametrize("make", [io.StringIO, io.BytesIO])
def test_write_json_round_trips_on_text_and_binary(make):
    records = export.to_metamathqa(ALL[:3] + _rows("math", "AnsAug", 2))
    buf = make()
    export.write_json(records, buf)
    raw = buf.getvalue()
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    assert json.loads(text) == records
    assert "\\\\frac" in text and "\\\\\\frac" not in text  # LaTeX backslashes JSON-escaped once


def test_write_json_of_nothing_is_an_empty_array():
    buf = io.StringIO()
    export.write_json([], buf)
    assert json.loads(buf.getvalue()) == []
