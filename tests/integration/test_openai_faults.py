"""engine.kind=openai through the real augment job, against a server that misbehaves.

The fault-injecting OpenAI-compatible server (tests/fault_server.py) runs on 127.0.0.1 in this
process; the augment job runs on local Ray and reaches it through the openai engine's actors.
About half of all first attempts meet a fault (429 with Retry-After, 500, a response slower than
`engine.request_timeout_s`, a connection dropped mid-body) and every request about one seed is
answered 503 on every attempt in the first run. The server answers the rest with a correct chain
of thought (it knows each question's answer), so candidates are accepted.

Checked: every request ends answered or rejected with `engine_error`, the accounting holds, the
rerun of the same run name retries exactly the failed requests (same ids) and duplicates nothing,
a third run sends nothing, and the planted API key appears in no output file, no captured log and
none of Ray's session logs.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import pytest

from metamath_ray.augment.config import AugmentConfig
from metamath_ray.config import load_config
from metamath_ray.pipeline.augment import direct_variants, run_augment
from metamath_ray.pipeline.finalize import current_candidate_shards
from metamath_ray.seeds import load_seeds
from metamath_ray.storage import RunStore
from tests.fault_server import FAULTS, FaultServer, hashed_faults, last_question, prompt_of

pytestmark = pytest.mark.pipeline

RUN = "openai-faults"
N_SEEDS = 4
KEY_ENV = "MY_KEY"
PLANTED_KEY = f"sk-planted-{uuid.uuid4().hex}"
# The server's "rephrasing": the question framed by enough words that it is not refused as a copy.
REPHRASED = "Here is a word problem, told again in other words so that a careful reader can follow every step of it: "
REPHRASED_END = " Read it twice, note every quantity it gives, and then work out what it asks."


def _overrides(base_url: str) -> list[str]:
    return [
        "engine.kind=openai", f"engine.base_url={base_url}", "engine.model=teacher", "engine.api=chat",
        f"engine.api_key_env={KEY_ENV}", "engine.max_retries=2", "engine.request_timeout_s=2.5",
        "engine.qps=40", "engine.max_concurrent_requests=8", "engine.batch_size=8",
        "chunk_seeds=2", "augmentations=[AnsAug, FOBAR, Rephrasing]",
        "aug.AnsAug.k=2", "aug.AnsAug.max_attempts=2",
        "aug.FOBAR.k=1", "aug.FOBAR.max_attempts=1", "aug.FOBAR.max_variants=1",
        "aug.Rephrasing.rewrites=1", "aug.Rephrasing.k=1", "aug.Rephrasing.max_attempts=1",
    ]


@pytest.fixture(scope="module")
def seed_file(tmp_path_factory) -> str:
    from importlib.resources import files

    from metamath_ray.seeds import BUNDLED

    name, _ = BUNDLED["bundled:gsm8k"]
    lines = (files("metamath_ray") / "data" / "seeds" / name).read_text().splitlines()[:N_SEEDS]
    path = tmp_path_factory.mktemp("seeds") / "gsm8k.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


class Teacher:
    """What the server knows: every question's answer and seed, so it can answer correctly and
    doom every request about one seed."""

    def __init__(self, cfg: AugmentConfig):
        seeds = load_seeds(cfg.seeds).seeds
        self.doomed_seed = seeds[0]["seed_id"]
        self.answer_of: dict[str, str] = {}
        self.seed_of: dict[str, str] = {}
        for seed in seeds:
            self._know(seed["question"].strip(), str(seed["answer"]), seed["seed_id"])
            for v in direct_variants(seed, "FOBAR", cfg):
                self._know(v.query.strip(), v.expected, seed["seed_id"])

    def _know(self, question: str, answer: str, seed_id: str) -> None:
        self.answer_of[question] = answer
        self.seed_of[question] = seed_id

    def answer(self, question: str, body: dict) -> str:
        if prompt_of(body).rstrip().endswith("Rephrased:"):
            return REPHRASED + question + REPHRASED_END
        known = self.answer_of.get(question.removeprefix(REPHRASED).removesuffix(REPHRASED_END))
        if known is None:
            return "I cannot tell.\nThe answer is: -1"
        return f"Working through it (draft {body.get('seed', 0) % 997}) step by step.\nThe answer is: {known}"

    def doomed(self, body: dict) -> bool:
        question = last_question(prompt_of(body)).removeprefix(REPHRASED).removesuffix(REPHRASED_END)
        return self.seed_of.get(question) == self.doomed_seed


def _current_rows(store: RunStore) -> list[dict]:
    return [r for _, path in current_candidate_shards(store).values() for r in store.read_table(path).to_pylist()]


def _outcome_ids(store: RunStore) -> list[str]:
    return [i for kind in ("data", "rejected") for s in store.list(kind, ".parquet")
            for i in store.read_table(s).column("id").to_pylist()]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_accounting(store: RunStore, rows: list[dict]) -> dict:
    stats = store.read_json("stats.json")
    totals = stats["totals"]
    solved = [r for r in rows if r["stage"] == "solve"]
    assert totals["candidates"] == len(solved) == totals["accepted"] + totals["rejected"]
    assert totals["engine_errors"] == sum(r["reject_reason"] in ("engine_error", "rewrite_engine_error") for r in rows)
    ids = _outcome_ids(store)
    assert len(ids) == len(set(ids)) and set(ids) == {r["id"] for r in rows}  # each candidate once, none lost
    assert store.read_json("manifest.json")["totals"] == totals
    return stats


def test_faults_retries_engine_errors_and_the_rerun_that_fills_them(local_ray, seed_file, tmp_path, monkeypatch,
                                                                   capfd, caplog):
    caplog.set_level("DEBUG")
    monkeypatch.setenv(KEY_ENV, PLANTED_KEY)
    out = tmp_path / "out"
    probe = load_config(AugmentConfig, None, _overrides("http://127.0.0.1:1/v1"),
                        base={"output": str(out), "run_name": RUN, "seeds": [{"path": seed_file}]})
    teacher = Teacher(probe)
    with FaultServer(teacher.answer, faults=hashed_faults(0.5, seed="faults-1"), doomed=teacher.doomed,
                     api_key=PLANTED_KEY, slow_s=4.0, retry_after_s="1") as server:
        cfg = probe.model_copy(update={"engine": probe.engine.model_copy(update={"base_url": server.base_url})})
        store = RunStore(str(out), RUN)

        # -- 1. the faulted run: finishes, every request answered or an engine_error ---------------
        run_augment(cfg)
        first = _current_rows(store)
        stats = _check_accounting(store, first)
        errors = [r for r in first if r["reject_reason"] in ("engine_error", "rewrite_engine_error")]
        assert {r["seed_id"] for r in errors} == {teacher.doomed_seed}
        assert {r["seed_id"] for r in first if r["seed_id"] == teacher.doomed_seed} == {teacher.doomed_seed}
        assert all(r["reject_reason"] in ("engine_error", "rewrite_engine_error") for r in first
                   if r["seed_id"] == teacher.doomed_seed)  # doomed: every request about it failed
        assert {r["reject_reason"] for r in errors} == {"engine_error", "rewrite_engine_error"}
        assert all(r["reject_detail"].startswith("HTTP 503") and "gave up after 3 attempts" in r["reject_detail"]
                   for r in errors)
        assert all(server.stats[f] >= 1 for f in FAULTS), dict(server.stats)  # each fault met at least once
        assert stats["totals"]["accepted"] >= N_SEEDS - 1  # the transient faults were retried away
        # every distinct request the server saw is one candidate row, or a rewrite that became a variant
        rewrites_parsed = (N_SEEDS - 1)  # one rephrasing per seed, the doomed seed's failed
        assert len(server.attempts) == len(first) + rewrites_parsed
        assert server.stats["503_doomed"] == 3 * len(errors)  # 1 + max_retries attempts each
        chunk_file = out / RUN / "candidates" / "part-00000.parquet"
        chunk_sha = _sha(chunk_file)
        attempts_before = dict(server.attempts)

        # -- 2. the rerun with a healthy server: exactly the failed requests again -----------------
        server.doom = False
        run_augment(cfg)
        second = _current_rows(store)
        stats = _check_accounting(store, second)
        assert stats["totals"]["engine_errors"] == 0, [(r["aug"], r["stage"], r["reject_detail"]) for r in second
                                                       if r["reject_reason"] in ("engine_error", "rewrite_engine_error")]
        resent = {k for k, n in server.attempts.items() if k in attempts_before and n > attempts_before[k]}
        assert len(resent) == len(errors)  # the failed requests, nothing else, were sent again
        by_id = {r["id"]: r for r in second}
        failed_rewrites = {r["id"] for r in errors if r["stage"] == "rewrite"}
        assert {r["id"] for r in first} - failed_rewrites <= set(by_id)  # same ids
        assert not failed_rewrites & set(by_id)  # the rewrite parses now: its variant was solved instead
        new = [r for r in second if r["id"] not in {x["id"] for x in first}]
        # only the chains of thought of the rephrasing whose rewrite failed before are new
        assert new and all(r["seed_id"] == teacher.doomed_seed and r["aug"] == "Rephrasing"
                           and r["stage"] == "solve" for r in new)
        assert all(by_id[r["id"]]["reject_reason"] != "engine_error" for r in errors if r["stage"] == "solve")
        assert _sha(chunk_file) == chunk_sha  # the first commit is never rewritten
        versions = sorted(p.name for p in (out / RUN / "candidates").iterdir())
        assert versions == ["part-00000.parquet", "part-00000.repair-1.parquet", "part-00001.parquet"]
        assert any(r["accepted"] for r in second if r["seed_id"] == teacher.doomed_seed)

        # -- 3. a third run: complete, nothing sent ------------------------------------------------
        sent = server.stats["requests"]
        run_augment(cfg)
        assert server.stats["requests"] == sent

    # -- the planted key: sent to the server, and nowhere else --------------------------------------
    assert server.stats["401"] == 0 and server.stats["answered"] > 0
    needle = PLANTED_KEY.encode()
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name == "run_config.json" for p in files)
    assert [str(p) for p in files if needle in p.read_bytes()] == []
    run_config = json.loads((out / RUN / "run_config.json").read_text())
    assert run_config["config"]["engine"]["api_key_env"] == KEY_ENV
    captured = capfd.readouterr()
    assert needle not in (captured.out + captured.err + caplog.text).encode()
    session = Path(local_ray._private.worker._global_node.get_session_dir_path()) / "logs"
    assert session.is_dir()
    assert [str(p) for p in session.rglob("*") if p.is_file() and needle in p.read_bytes()] == []


def test_evaluate_through_the_completions_api_scores_a_failed_request_wrong(local_ray, tmp_path, monkeypatch):
    """Evaluate with engine.kind=openai, api=completions: the model name is the server's (nothing is
    downloaded); every request about one question fails on every attempt and is scored wrong, its
    reason kept in the samples and counted in the report."""
    import pyarrow.parquet as pq

    from metamath_ray.evaluate.config import EvaluateConfig
    from metamath_ray.evaluate.datasets import load_items
    from metamath_ray.pipeline.evaluate import run_evaluate

    monkeypatch.setenv(KEY_ENV, PLANTED_KEY)
    second = load_items("gsm8k", None, 3)[1].question
    with FaultServer(lambda question, body: "Adding up.\nThe answer is: 18", faults=hashed_faults(0.5, seed="eval"),
                     doomed=lambda body: second in body.get("prompt", ""), api_key=PLANTED_KEY, slow_s=4.0) as server:
        cfg = EvaluateConfig(engine={"kind": "openai", "base_url": server.base_url, "api": "completions",
                                     "model": "served-teacher", "api_key_env": KEY_ENV, "max_retries": 2,
                                     "request_timeout_s": 2.5},
                             datasets="gsm8k", limit=3, output=str(tmp_path), run_name="ev")
        report = run_evaluate(cfg)
    samples = {s["source_index"]: s for s in pq.read_table(tmp_path / "ev" / "samples").to_pylist()}
    assert report["engine_errors"] == 1 and report["model"] == "served-teacher" and report["engine"] == "openai"
    assert samples[0]["correct_strict"] and samples[0]["engine_error"] is None  # GSM8K test 0's answer is 18
    failed = samples[1]
    assert failed["response"] == "" and not failed["correct_strict"] and not failed["correct_metamath"]
    assert failed["engine_error"].startswith("HTTP 503") and "gave up after 3 attempts" in failed["engine_error"]
    assert server.stats["401"] == 0 and server.stats["503_doomed"] == 3
    needle = PLANTED_KEY.encode()
    assert [str(p) for p in (tmp_path / "ev").rglob("*") if p.is_file() and needle in p.read_bytes()] == []
