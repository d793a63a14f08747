"""`--dry-run` on augment and run: checks, the plan's counts, the bill, and no Ray or engine.

The endpoint checks talk to a small OpenAI-style server of the test's own on 127.0.0.1.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from metamath_ray.augment.config import AugmentConfig
from metamath_ray.cli import main
from metamath_ray.pipeline import augment as augment_stage
from metamath_ray.pipeline import plan
from metamath_ray.seeds import load_seeds

KEY = "sk-dry-run-test-key-0123456789"


# --- a /models endpoint on 127.0.0.1 ---------------------------------------------------------------

class _Models(BaseHTTPRequestHandler):
    served = ["teacher-7b"]

    def do_GET(self):  # noqa: N802 - http.server's name
        if self.path != "/v1/models":
            self.send_error(404)
        elif self.headers.get("Authorization") != f"Bearer {KEY}":
            self.send_error(401)
        else:
            body = json.dumps({"object": "list", "data": [{"id": m, "object": "model"} for m in self.served]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture()
def endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Models)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def _engine(base_url, model="teacher-7b", key_env="DRY_RUN_KEY"):
    return SimpleNamespace(kind="openai", base_url=base_url, api_key_env=key_env, model=model, request_timeout_s=5.0)


def test_endpoint_reachable_and_key_accepted(endpoint, monkeypatch):
    monkeypatch.setenv("DRY_RUN_KEY", KEY)
    line = plan.check_endpoint(_engine(endpoint))
    assert "reachable, key accepted, serves teacher-7b" in line and KEY not in line


def test_model_not_served_is_said_but_not_fatal(endpoint, monkeypatch):
    monkeypatch.setenv("DRY_RUN_KEY", KEY)
    assert "other-model is NOT among the 1 models" in plan.check_endpoint(_engine(endpoint, model="other-model"))


@pytest.mark.parametrize(
    "key, base_url, message",
    [
        ("sk-wrong", None, "the key was refused (HTTP 401); check DRY_RUN_KEY"),
        ("", None, "DRY_RUN_KEY: that environment variable is not set or empty"),
        (KEY, "http://127.0.0.1:9/v1", "is not reachable"),  # the discard port: nothing listens there
        (KEY, "", "engine.base_url is not set"),
    ],
)
def test_endpoint_failures_are_one_line_errors(endpoint, monkeypatch, key, base_url, message):
    monkeypatch.setenv("DRY_RUN_KEY", key)
    with pytest.raises(plan.PlanCheckError) as err:
        plan.check_endpoint(_engine(endpoint if base_url is None else base_url))
    assert message in str(err.value) and "\n" not in str(err.value) and KEY not in str(err.value)


# --- the plan counts what a run sends ----------------------------------------------------------------

class _RecordingService:
    """A stand-in for the engine service (submit/poll): records every row sent and answers each with
    `text` at once, in process."""

    def __init__(self, sent: list[dict], text: str):
        self.sent, self.text, self.done = sent, text, []

    def submit(self, rows, sampling, *, post=None, post_concurrency=None, stream="default"):
        self.sent.extend(rows)
        out = [{**r, "generated_text": self.text, "num_input_tokens": 0, "num_generated_tokens": 0} for r in rows]
        self.done.append((stream, post(out) if post else out))

    def pending(self, stream=None):
        return sum(len(rows) for s, rows in self.done if stream is None or s == stream)

    def poll(self, stream=None):
        done, self.done = self.done, []
        return done

    def close_stream(self, stream):
        pass


def _record_generate(sent: list[dict], text: str):
    """`engine_service` for the augment job: a _RecordingService."""
    return lambda engine_cfg: _RecordingService(sent, text)


@pytest.mark.parametrize("adaptive", [True, False])
def test_plan_counts_exactly_the_solve_requests_of_a_run(tmp_path, monkeypatch, adaptive):
    """Every answer wrong: adaptive mode samples every variant up to max_attempts, the worst case."""
    cfg = AugmentConfig(output=str(tmp_path), augmentations=["AnsAug", "FOBAR"], limit=4, adaptive=adaptive,
                        seeds=[{"path": "bundled:gsm8k"}, {"path": "bundled:math"}])
    loaded = load_seeds(cfg.seeds, limit=cfg.limit)
    sent: list[dict] = []
    monkeypatch.setattr(augment_stage, "engine_service", _record_generate(sent, "So x = 1.\nThe answer is: -98765"))
    augment_stage.AugmentJob(cfg).run_chunks({0: loaded.seeds})
    planned = plan.plan_augment(cfg, loaded)
    assert planned.worst_case.requests == len(sent)
    assert planned.worst_case.prompt_chars == sum(len(r["prompt"]) for r in sent)
    assert planned.round0.requests == sum(1 for r in sent if r["round"] == 0)
    assert (planned.round0.requests < len(sent)) is adaptive
    assert planned.seeds == {"gsm8k": 4, "math": 4}


@pytest.mark.parametrize("budget_per_variant", [0.5, 100])
def test_plan_bounds_the_prop2diff_requests_of_a_run(tmp_path, monkeypatch, budget_per_variant):
    """Every answer wrong: prop2diff spends its whole budget (0.5 per variant) or, when that is more
    than every variant's max_attempts allows (100), stops at the caps: the plan's worst case either way."""
    cfg = AugmentConfig(output=str(tmp_path), augmentations=["AnsAug", "FOBAR"], limit=4, adaptive="prop2diff",
                        budget_per_variant=budget_per_variant)
    loaded = load_seeds(cfg.seeds, limit=cfg.limit)
    sent: list[dict] = []
    monkeypatch.setattr(augment_stage, "engine_service", _record_generate(sent, "So x = 1.\nThe answer is: -98765"))
    augment_stage.AugmentJob(cfg).run_chunks({0: loaded.seeds})
    planned = plan.plan_augment(cfg, loaded)
    assert planned.worst_case.requests == len(sent) > planned.round0.requests
    assert {r["round"] for r in sent} == {0, 1}


def test_plan_counts_exactly_the_rewrite_requests_of_a_run(tmp_path, monkeypatch):
    cfg = AugmentConfig(output=str(tmp_path), augmentations=["Rephrasing", "SV"], limit=3)
    loaded = load_seeds(cfg.seeds, limit=cfg.limit)
    sent: list[dict] = []
    monkeypatch.setattr(augment_stage, "engine_service", _record_generate(sent, ""))  # every rewrite refused
    augment_stage.AugmentJob(cfg).run_chunks({0: loaded.seeds})
    planned = plan.plan_augment(cfg, loaded)
    assert planned.rewrite.requests == len(sent) > 0
    assert planned.rewrite.prompt_chars == sum(len(r["prompt"]) for r in sent)
    cells = planned.cells
    assert sum(c.rewrite_requests for c in cells.values()) == len(sent)
    assert all(c.variants == 0 and c.round0 == c.rewrite_requests * cfg.aug[aug].k for (_, aug), c in cells.items())


def test_tokens_are_capped_at_max_tokens():
    p = plan.Pass()
    p.add(3, prompt_chars=10, expected=138, cap=100)
    assert (p.requests, p.prompt_chars, p.prompt_tokens, p.generated_tokens, p.max_generated_tokens) == (3, 30, 8, 300, 300)


# --- the bill ---------------------------------------------------------------------------------------

def _passes(rewrite=(0, 0, 0), round0=(0, 0, 0), worst=(0, 0, 0)):
    def make(prompt_tokens, generated, ceiling):
        return plan.Pass(requests=1, prompt_chars=prompt_tokens * plan.CHARS_PER_TOKEN, generated_tokens=generated,
                         max_generated_tokens=ceiling)
    return {"rewrite": make(*rewrite), "round 0": make(*round0), "worst case": make(*worst)}


def test_api_cost_uses_the_config_prices():
    engine = SimpleNamespace(kind="openai", price_per_1m_input_tokens=0.5, price_per_1m_output_tokens=1.5)
    line = plan.cost_line(engine, _passes(rewrite=(1_000_000, 0, 0), round0=(2_000_000, 1_000_000, 2_000_000),
                                          worst=(4_000_000, 2_000_000, 4_000_000)))
    # rewrites $0.50 + round 0 ($1.00 + $1.50); worst: $0.50 + $2.00 + $3.00; ceiling $0.50 + $2.00 + $6.00
    assert "cost: $3.00 for the rewrites and round 0, up to $5.50 in the adaptive worst case ($8.50 if" in line
    assert "$0.5/1M input and $1.5/1M output" in line


def test_api_without_prices_says_how_to_get_an_estimate():
    engine = SimpleNamespace(kind="openai", price_per_1m_input_tokens=None, price_per_1m_output_tokens=None)
    assert "set engine.price_per_1m_input_tokens" in plan.cost_line(engine, _passes())


def test_local_teacher_gets_gpu_hours_at_a_stated_speed():
    engine = SimpleNamespace(kind="vllm", replicas=4, num_gpus_per_replica=1.0)
    rate = plan.ASSUMED_TOKENS_PER_S_PER_GPU
    line = plan.cost_line(engine, _passes(rewrite=(0, 0, 0), round0=(0, rate * 3600, 0), worst=(0, rate * 7200, 0)))
    assert "GPU-hours: 1.00 for the rewrites and round 0, up to 2.00" in line and "~0.50 h wall on 4 GPU(s)" in line
    assert f"ASSUMED {rate} generated tokens/s per GPU" in line


# --- the commands ------------------------------------------------------------------------------------

def _cli(args: list[str], capsys) -> tuple[int, str, str]:
    rc = main(args)
    out, err = capsys.readouterr()
    return rc, out, err


def test_augment_dry_run_prints_the_plan_and_leaves_nothing(tmp_path, capsys):
    output = tmp_path / "out"
    rc, out, _ = _cli(["augment", "--dry-run", "--output", str(output), "--limit", "3"], capsys)
    assert rc == 0
    assert "seeds: 6 rows read = 6 seeds (3 gsm8k, 3 math) + 0 quarantined" in out
    assert f"output: {output} writable" in out and "GPU-hours:" in out and "characters / 4" in out
    for row in ("gsm8k    AnsAug", "math     SV", "rewrite pass", "solve round 0", "solve, all rounds"):
        assert row in out
    assert not output.exists()  # no run folder, no run log, no probe left behind


def test_quarantined_seed_rows_are_counted_by_reason(tmp_path, capsys):
    seeds = tmp_path / "seeds.jsonl"
    rows = [{"question": "Tom has 3 apples and buys 4 more. How many apples does he have?", "answer": "He has 7.\n#### 7"},
            {"question": "No answer here?"}, "not an object"]
    seeds.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    rc, out, _ = _cli(["augment", "--dry-run", "--seeds", str(seeds), "--output", str(tmp_path / "o")], capsys)
    assert rc == 0 and "3 rows read = 1 seeds (1 gsm8k) + 2 quarantined (" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["seeds=[{path: /nonexistent/seeds.jsonl}]"], "error: seeds: "),
        (["--output", "{tmp}/a-file/below"], "is not writable"),
        (["aug.FOBAR.k=0"], "error: "),
    ],
)
def test_augment_dry_run_failures_exit_2_with_one_line(tmp_path, capsys, args, message):
    (tmp_path / "a-file").write_text("a file, not a folder")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "--output" not in args:
        args += ["--output", str(tmp_path / "o")]
    rc, out, err = _cli(["augment", "--dry-run", *args], capsys)
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1 and not out


def _openai_registered() -> bool:
    from metamath_ray.engines.registry import engine_spec

    try:
        engine_spec("openai")
    except ValueError:
        return False
    return True


@pytest.mark.skipif(not _openai_registered(), reason="engine.kind=openai is not registered in this tree")
@pytest.mark.parametrize("key, rc", [(KEY, 0), ("sk-wrong", 2)])
def test_augment_dry_run_checks_the_openai_endpoint_and_prices(tmp_path, capsys, monkeypatch, endpoint, key, rc):
    monkeypatch.setenv("DRY_RUN_KEY", key)
    code, out, err = _cli(["augment", "--dry-run", "--output", str(tmp_path), "--limit", "2", "engine.kind=openai",
                           f"engine.base_url={endpoint}", "engine.model=teacher-7b", "engine.api_key_env=DRY_RUN_KEY",
                           "engine.price_per_1m_input_tokens=0.5", "engine.price_per_1m_output_tokens=1.5"], capsys)
    assert code == rc and KEY not in out + err
    if rc == 0:
        assert "key accepted, serves teacher-7b" in out and "cost: $" in out and "/1M input" in out
    else:
        assert "the key was refused" in err


def test_run_dry_run_validates_every_stage(tmp_path, capsys):
    rc, out, _ = _cli(["run", "--dry-run", "--output", str(tmp_path / "r"), "augment.limit=2"], capsys)
    assert rc == 0
    assert "stages augment, train, evaluate" in out and "augment dry run:" in out
    assert "train: tiny on the augment run above" in out and "evaluate: the trained model on" in out
    assert not (tmp_path / "r").exists()


def test_run_dry_run_refuses_missing_training_data(tmp_path, capsys):
    rc, _, err = _cli(["run", "--dry-run", "--output", str(tmp_path), "--stages", "train",
                       f"train.data={tmp_path}/missing"], capsys)
    assert rc == 2 and "train.data:" in err and "does not exist" in err


def test_dry_run_starts_no_ray_and_no_engine(tmp_path):
    """In a fresh interpreter: the command never imports Ray, vLLM or torch."""
    code = ("import sys; from metamath_ray.cli import main; "
            f"rc = main(['augment', '--dry-run', '--output', {str(tmp_path)!r}, '--limit', '1']); "
            "print('RC', rc, sorted(m for m in ('ray', 'vllm', 'torch') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "RC 0 []" in result.stdout, result.stderr[-2000:]
