"""Property tests: any mix of scored samples summarises and renders (Markdown, PNG plots, run
comparison) without crashing, and every reported interval holds its accuracy.

Found by the evaluation benchmark: at 0% accuracy on some question counts, rounding put the Wilson
lower bound a hair above 0 and matplotlib refused the negative error bar, so the whole run failed
after its samples were written.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metamath_ray.evaluate.compare import compare_reports, render_comparison
from metamath_ray.evaluate.report import render_markdown, render_plots
from metamath_ray.evaluate.summary import summarize

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_answer = st.one_of(st.none(), st.sampled_from(["1", "2", "\\frac{1}{2}", "x"]))


@st.composite
def scored_rows(draw) -> list[dict]:
    rows = []
    for dataset in draw(st.lists(st.sampled_from(["gsm8k", "math500", "svamp"]), min_size=1, max_size=3, unique=True)):
        k = draw(st.sampled_from([0, 1, 2, 4]))  # 0: greedy only
        greedy = k == 0 or draw(st.booleans())
        for q in range(draw(st.integers(1, 13))):
            category = {
                "type": draw(st.sampled_from(["Algebra", "Geometry", ""])) if dataset == "math500" else "",
                "level": draw(st.integers(0, 5)) if dataset == "math500" else 0,
            }
            decodings = ([("greedy", 0)] if greedy else []) + [("sample", i) for i in range(k)]
            for decoding, idx in decodings:
                extracted, ok = draw(_answer), draw(st.booleans())
                rows.append({
                    "dataset": dataset, "item_id": f"{dataset}-{q}", **category, "decoding": decoding,
                    "sample_idx": idx, "extracted": extracted, "extracted_metamath": extracted,
                    "correct_strict": ok and extracted is not None, "correct_metamath": ok,
                    "vote_key": extracted, "vote_key_metamath": extracted,
                    "num_input_tokens": draw(st.integers(0, 50)), "num_generated_tokens": draw(st.integers(0, 50)),
                })
    return rows


def _report(name: str, rows: list[dict]) -> dict:
    return {
        "run_name": name, "model": "tiny", "engine": "hf", "template": "eval_cot",
        "datasets": summarize(rows),
        "throughput": {"samples": len(rows), "wall_s": 1.0, "samples_per_s": float(len(rows)),
                       "generated_tokens_per_s": 0.0, "steady_samples_per_s": {"greedy": None}},
    }


def _intervals(node):
    if isinstance(node, dict):
        if "ci95" in node:
            yield node
        for value in node.values():
            yield from _intervals(value)


@FUZZ
@given(a=scored_rows(), b=scored_rows())
def test_any_scored_run_summarises_renders_and_compares(a, b):
    report_a, report_b = _report("a", a), _report("b", b)
    for entry in _intervals(report_a["datasets"]):
        lo, hi = entry["ci95"]
        assert 0.0 <= lo <= entry["accuracy"] <= hi <= 1.0, entry
    assert render_markdown(report_a).startswith("#")
    plots = render_plots(report_a)
    assert plots and all(png.startswith(b"\x89PNG") for png in plots.values())
    assert isinstance(render_comparison(compare_reports(report_a, report_b)), str)
