import pytest

from metamath_ray.evaluate.summary import headline, question_outcomes, summarize, summarize_dataset


def _row(item, decoding, idx, strict, mm, key=None, mm_key=None, *, dataset="math500", type_="Algebra", level=1,
         extracted="x", gen=10):
    return {
        "dataset": dataset, "item_id": item, "type": type_, "level": level, "decoding": decoding,
        "sample_idx": idx, "correct_strict": strict, "correct_metamath": mm,
        "vote_key": key, "vote_key_metamath": mm_key if mm_key is not None else key,
        "extracted": extracted, "extracted_metamath": extracted,
        "num_input_tokens": 5, "num_generated_tokens": gen,
    }


def _sampled_rows():
    # q1: samples 3,3,4 (3 correct) -> maj right, c=2 of 3; q2: 5,6,6 (5 correct) -> maj wrong, c=1 of 3
    return [
        _row("q1", "sample", 0, True, True, "3"),
        _row("q1", "sample", 1, True, True, "3"),
        _row("q1", "sample", 2, False, False, "4"),
        _row("q2", "sample", 2, False, False, "6", type_="Geometry", level=3),
        _row("q2", "sample", 0, True, True, "5", type_="Geometry", level=3),
        _row("q2", "sample", 1, False, False, "6", type_="Geometry", level=3),
    ]


def test_greedy_accuracy_both_scorers():
    rows = [
        _row("q1", "greedy", 0, True, True),
        _row("q2", "greedy", 0, False, True, type_="Geometry", level=3),
        _row("q3", "greedy", 0, False, False, extracted=None, level=3),
    ]
    summary = summarize_dataset(rows)
    assert summary["questions"] == 3
    assert summary["greedy"]["strict"]["correct"] == 1
    assert summary["greedy"]["metamath"]["correct"] == 2
    assert summary["extraction_failure_rate"]["strict"] == pytest.approx(1 / 3)
    assert summary["tokens"] == {"input": 15, "generated": 30, "mean_generated": 10.0}
    assert summary["by_type"]["Algebra"]["strict"]["n"] == 2
    assert summary["by_level"]["3"]["metamath"]["correct"] == 1
    assert summary["by_type_level"]["Geometry"]["3"]["metamath"]["accuracy"] == 1.0
    assert "k" not in summary
    assert headline(summary, "metamath")["correct"] == 2


def test_maj_and_pass_at_k_from_samples():
    summary = summarize_dataset(_sampled_rows())
    assert summary["k"] == 3
    assert summary["maj@3"]["strict"]["correct"] == 1
    # pass@1 = mean(c/n) = (2/3 + 1/3) / 2; pass@3 = 1 for both (each has a correct sample)
    assert summary["pass@k"]["strict"]["1"]["accuracy"] == pytest.approx(0.5)
    assert summary["pass@k"]["strict"]["3"]["accuracy"] == pytest.approx(1.0)
    # pass@2: q1 1 - C(1,2)/C(3,2) = 1; q2 1 - C(2,2)/C(3,2) = 2/3
    assert summary["pass@k"]["strict"]["2"]["accuracy"] == pytest.approx((1 + 2 / 3) / 2)
    assert "greedy" not in summary
    assert headline(summary, "strict") == summary["maj@3"]["strict"]


def test_outcomes_sort_samples_by_index():
    outcomes = question_outcomes(_sampled_rows())
    # q2's rows arrive out of order; the tie-free vote is 6 either way, but c/n must count all three
    assert outcomes["q2"]["n_strict"] == 3 and outcomes["q2"]["c_strict"] == 1
    assert outcomes["q2"]["maj_strict"] is False


def test_summarize_splits_datasets():
    rows = [_row("a", "greedy", 0, True, True, dataset="gsm8k", type_="", level=0),
            _row("b", "greedy", 0, False, False, dataset="svamp", type_="Addition", level=0)]
    summaries = summarize(rows)
    assert set(summaries) == {"gsm8k", "svamp"}
    assert "by_type" not in summaries["gsm8k"] and "by_level" not in summaries["gsm8k"]
    assert "by_type" in summaries["svamp"] and "by_type_level" not in summaries["svamp"]
