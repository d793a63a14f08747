"""The streaming finalize (Ray Data passes) gives the in-memory semantics (`clean_accepted`,
`build_stats`, `export.to_metamathqa`) and resumes an interrupted finalize without redoing
committed chunks."""

from __future__ import annotations

import io
import json
import random

import pytest

from metamath_ray.augment import export
from metamath_ray.augment.config import AugmentConfig
from metamath_ray.pipeline.finalize import build_stats, clean_accepted, finalize
from metamath_ray.records import CANDIDATE_SCHEMA, candidate_row, to_table
from metamath_ray.seeds import LoadedSeeds
from metamath_ray.storage import RunStore

pytestmark = pytest.mark.pipeline

QUESTIONS = [
    "Tom buys 3 apples at 2 dollars each and 4 pears at 5 dollars each for his family picnic. How much does he spend?",
    "A train travels 60 miles per hour for 3 hours and then 40 miles per hour for 2 hours. How far does it go?",
    "Sara has 12 marbles and gives 5 of them to her brother and 3 to her sister. How many marbles are left?",
    "What is the value of $x$ if $3x + 7 = 22$ and $x$ is a positive integer?",
    "A rectangle has a length of 8 and a width of 5. What is the area of the rectangle in square units?",
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?",  # noqa: E501 (a GSM8K train question; the reference below)
]
TAIL = " If we know the answer to the above question is 26, what is the value of unknown variable x?"


def _rows(seed_no: int, question: str, rng: random.Random) -> list[dict]:
    seed_id = f"gsm8k/train/{seed_no}"
    variants = [("AnsAug", 0, question), ("Rephrasing", 0, question),  # a rephrasing that copies its question
                ("Rephrasing", 1, "Please tell me: " + question)]
    numbers = [w for w in question.split() if w.isdigit()][:2]
    variants += [("FOBAR", v, question.replace(n, "x", 1) + TAIL) for v, n in enumerate(numbers)]
    rows = []
    for aug, variant, query in variants:
        base = f"We compute the steps for {query} carefully and add them up one by one to get the total amount"
        for idx in range(3):
            response = base if idx == 2 else f"{base} variant {rng.randint(0, 10**6)} {idx} with extra words {idx}"
            rows.append(candidate_row(
                seed_id=seed_id, dataset="gsm8k", aug=aug, stage="solve", variant=variant, sample_idx=idx, round=0,
                query=query, original_question=question, response=f"{response}\nThe answer is: 26", expected="26",
                predicted="26", accepted=rng.random() < 0.8, reject_reason=None, reject_detail=None, level="",
                type="", tokens_in=10, tokens_out=20, model="m", prompt_version="v1", engine_key="k"))
    for r in rows:
        if not r["accepted"]:
            r["reject_reason"] = "wrong_answer"
    return rows


@pytest.fixture()
def run(tmp_path):
    rng = random.Random(0)
    seeds = QUESTIONS + [QUESTIONS[0]]  # a second seed with the same question: its copies are duplicates
    store = RunStore(str(tmp_path), "r")
    all_rows = []
    for chunk in range(3):
        rows = [r for i in range(chunk * 3, min(len(seeds), chunk * 3 + 3)) for r in _rows(i, seeds[i], rng)]
        store.commit_table(f"candidates/part-{chunk:05d}.parquet", to_table(sorted(rows, key=lambda r: r["id"]), CANDIDATE_SCHEMA))
        all_rows += rows
    ref = tmp_path / "ref.jsonl"
    ref.write_text(json.dumps({"question": QUESTIONS[-1]}) + "\n")
    cfg = AugmentConfig(output=str(tmp_path), run_name="r", decontam={"references": [str(ref)]}, chunk_seeds=3)
    return store, cfg, all_rows, LoadedSeeds(seeds=[{}] * len(seeds), rows_read=len(seeds))


def _finalize(store, cfg, loaded):
    return finalize(store, cfg, loaded, n_chunks=3, timings=[], wall_start=0.0)


def _outcome(store):
    data = sorted(i for p in store.list("data", ".parquet") for i in store.read_table(p)["id"].to_pylist())
    rejected = {r["id"]: (r["reject_reason"], r["reject_detail"]) for p in store.list("rejected", ".parquet")
                for r in store.read_table(p).to_pylist()}
    return data, rejected


def test_streaming_finalize_equals_the_in_memory_semantics(local_ray, run):
    store, cfg, rows, loaded = run
    _finalize(store, cfg, loaded)
    kept, dropped = clean_accepted([r for r in rows if r["accepted"]], cfg)
    data, rejected = _outcome(store)
    assert data == sorted(r["id"] for r in kept)
    assert {r["id"]: (r["reject_reason"], r["reject_detail"]) for r in dropped} == {
        i: v for i, v in rejected.items() if v[0] != "wrong_answer"}
    assert {reason for reason, _ in rejected.values()} >= {"duplicate_query", "contaminated", "wrong_answer"}
    buf = io.BytesIO()
    export.write_json(export.to_metamathqa(kept), buf)
    assert store.read_bytes("metamathqa.json") == buf.getvalue()
    expected = build_stats(rows, kept, dropped, loaded, 3, 1.0, cfg)
    got = store.read_json("stats.json")
    for key in ("totals", "by_dataset_aug", "by_math_level_type", "by_difficulty", "decontam_by_reference", "per_seed_pass_rate"):
        assert got[key] == json.loads(json.dumps(expected[key])), key


def test_interrupted_finalize_resumes_without_redoing_committed_chunks(local_ray, run, tmp_path):
    store, cfg, _, loaded = run
    _finalize(store, cfg, loaded)
    outputs = _outcome(store), store.read_bytes("metamathqa.json")
    work = next((tmp_path / "r" / "finalize").iterdir())
    # The state a finalize killed during its last pass leaves: chunk 2's outputs missing, nothing final.
    for rel in ["manifest.json", "stats.json", "metamathqa.json", "data/part-00002.parquet",
                "rejected/part-00002.parquet", f"finalize/{work.name}/done/part-00002.json"]:
        (tmp_path / "r" / rel).unlink()
    committed = [p for p in (tmp_path / "r").rglob("*.*") if p.is_file() and "report" not in p.parts]
    before = {p: p.stat().st_mtime_ns for p in committed}
    _finalize(store, cfg, loaded)
    assert {p: p.stat().st_mtime_ns for p in committed} == before  # nothing committed was written again
    assert (tmp_path / "r" / "data" / "part-00002.parquet").exists() and store.exists("manifest.json")
    assert (_outcome(store), store.read_bytes("metamathqa.json")) == outputs


def test_sampled_export_over_several_id_ranges_equals_the_in_memory_export(local_ray, run, monkeypatch):
    """`export_mix` (the rank cut-off tasks) with every type split into several id ranges."""
    from metamath_ray.pipeline import finalize_outputs

    store, cfg, rows, loaded = run
    mix = {"GSM_AnsAug": 3, "GSM_Rephrased": 2, "GSM_FOBAR": 100}
    cfg = cfg.model_copy(update={"export_mix": mix})
    monkeypatch.setattr(finalize_outputs, "EXPORT_RANGE_ROWS", 2)  # read where the ranges are cut: on the driver
    _finalize(store, cfg, loaded)
    kept, _ = clean_accepted([r for r in rows if r["accepted"]], cfg)
    buf = io.BytesIO()
    export.write_json(export.to_metamathqa(kept, mix, cfg.sampling.seed), buf)
    assert store.read_bytes("metamathqa.json") == buf.getvalue()
