"""Property-based fuzzing of configs (hypothesis): YAML files and `key.sub=value` overrides.

Through `load_config` every input gives a validated model or a one-line `ConfigError`, never any
other exception. Through the CLI (`metamath_ray.cli.main`, stage runners replaced by recorders so
a valid config returns at once) every input exits 0 with a validated config, or 2 with exactly one
`error: ...` line on stderr, never a traceback.
"""

from __future__ import annotations

import contextlib
import io
import string
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from metamath_ray import cli
from metamath_ray.augment.config import AugmentConfig
from metamath_ray.config import ConfigError, load_config
from metamath_ray.pipeline.run import STAGES

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Keys the models know (so fuzzing reaches type and value checks), plus unknown ones.
KNOWN_KEYS = [
    "seeds", "output", "run_name", "augmentations", "aug", "AnsAug", "FOBAR", "SV", "Rephrasing", "k",
    "max_attempts", "max_variants", "rewrites", "adaptive", "limit", "chunk_seeds", "max_question_chars",
    "engine", "kind", "model", "replicas", "batch_size", "engine_kwargs", "max_model_len",
    "tensor_parallel_size", "num_gpus_per_replica", "sampling", "temperature", "top_p", "max_tokens",
    "stop", "rewrite_sampling", "dedup", "enabled", "threshold", "num_perm", "ngram", "decontam",
    "references", "ngram_sizes", "export_mix", "prompt_version", "ray", "address", "num_cpus", "num_gpus",
    "object_store_memory_gb", "path", "dataset", "split", "data", "num_workers", "deepspeed", "stage",
    "dtype", "lr", "epochs", "datasets", "paths", "greedy", "mode", "train", "evaluate", "augment",
    "lora", "objective", "pretrain", "sources", "template",
]
key = st.one_of(st.sampled_from(KNOWN_KEYS), st.text(string.ascii_letters + "_.-", min_size=1, max_size=12))
scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30), st.sampled_from(["", "..", "../x", "/etc", "s3://", "s3://b/k", "hf", "vllm", "tiny",
                                           "AnsAug", "Bogus", "gsm8k", "bundled:gsm8k", "-1", "1e400", "\x00"]),
)
yaml_tree = st.recursive(
    scalar,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(key, children, max_size=5)),
    max_leaves=25,
)
config_tree = st.dictionaries(key, yaml_tree, max_size=8)

dotted_key = st.lists(key, min_size=1, max_size=4).map(".".join)
override_value = st.one_of(
    yaml_tree.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip().replace("\n", " ")),
    st.text(max_size=30),
    st.sampled_from(["[", "{a: ", "]]", "{{}}", "&a [*a]", "!!python/object:os.system ls", "[" * 800,
                     "*undefined", "1" * 5000, "null", "~", "'", '"', "2001-13-45", "0x" + "f" * 4000]),
)
override = st.one_of(
    st.tuples(dotted_key, override_value).map(lambda kv: f"{kv[0]}={kv[1]}"),
    st.sampled_from(["", "=", "=1", "a..b=1", ".a=1", "a.=1", "novalue", "engine", "engine.kind",
                     "engine.kind=hf=x", " . =1", "aug.AnsAug=3", "engine.kind.x=1"]),
    st.text(max_size=20),
)
STAGE_MODELS = sorted(STAGES.items())


def assert_one_line_error(e: ConfigError) -> None:
    msg = str(e)
    assert msg and "\n" not in msg and "\r" not in msg, repr(msg)
    assert "Traceback" not in msg


def _load(model: type[BaseModel], path, overrides, base=None):
    try:
        cfg = load_config(model, path, overrides, base=base)
    except ConfigError as e:
        assert_one_line_error(e)
        return None
    assert isinstance(cfg, model)
    return cfg


@FUZZ
@given(stage=st.sampled_from(STAGE_MODELS), tree=config_tree)
def test_random_yaml_trees_load_or_fail_in_one_line(stage, tree):
    _, model = stage
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "job.yaml"
        path.write_text(yaml.safe_dump(tree, allow_unicode=True), encoding="utf-8")
        _load(model, path, [])


@FUZZ
@given(stage=st.sampled_from(STAGE_MODELS), overrides=st.lists(override, max_size=5))
def test_random_overrides_load_or_fail_in_one_line(stage, overrides):
    _, model = stage
    _load(model, None, overrides, base={"output": "/tmp/x"} if model is not AugmentConfig else None)


@FUZZ
@given(body=st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.sampled_from([
        b"[" * 20_000 + b"]" * 20_000, b"a: " + b"{x: " * 5000, b"- - - - - -", b"a: &a [*a]",
        b"a: !!python/object/apply:os.system [echo hi]", b"\xff\xfe\x00a\x00:\x001", b"---\n---\n", b"a: 1\na: 2",
        b"? [1, 2]\n: x", b"engine: {kind: hf, kind: vllm}", b"%YAML 9.9\n---\na: 1", b"\t", b"a:\n\t- 1",
        b"limit: " + b"1" * 5000, b"run_name: 2001-13-45", b"output: 2001-02-30 25:00:00", b"limit: 0x" + b"f" * 4000,
    ]),
))
def test_hostile_yaml_files_load_or_fail_in_one_line(body):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "job.yaml"
        path.write_bytes(body)
        _load(AugmentConfig, path, [])


def test_known_regressions_are_config_errors(tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_bytes(b"a: " + b"[" * 20_000 + b"]" * 20_000)
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(AugmentConfig, deep)
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(b"run_name: caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(AugmentConfig, latin1)
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(AugmentConfig, None, ["engine.engine_kwargs=" + "[" * 5000])
    with pytest.raises(ConfigError) as e:
        load_config(AugmentConfig, None, ["engine.kin\nd=hf"])
    assert_one_line_error(e.value)


# ---------------------------------------------------------------------------------------------
# Through the CLI


class Accepted(Exception):
    """Raised by the replaced stage runners: the CLI accepted this config and would run it."""

    def __init__(self, cfg):
        super().__init__("accepted")
        self.cfg = cfg


def _accept(cfg, *args, **kwargs):
    raise Accepted(cfg)


@pytest.fixture(scope="module")
def recorded_runs():
    """Replace the stage runners so a valid config is recorded instead of run."""
    import metamath_ray.logs as logs
    import metamath_ray.pipeline.augment as aug
    import metamath_ray.pipeline.evaluate as ev
    import metamath_ray.pipeline.run as run
    import metamath_ray.train.run as tr

    mp = pytest.MonkeyPatch()
    mp.setattr(aug, "run_augment", _accept)
    mp.setattr(tr, "run_train", _accept)
    mp.setattr(ev, "run_evaluate", _accept)
    mp.setattr(run, "run_pipeline", _accept)  # `run` and `demo` (a preset of `run`)
    # no run log: a recorded run writes nothing (the default outputs are relative folders)
    mp.setattr(logs, "run_log", lambda uri, command: contextlib.nullcontext(logs.RunLog("", "")))
    yield []
    mp.undo()


def run_cli(argv: list[str], calls: list | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = cli.main(argv)
        except Accepted as a:
            rc = 0
            if calls is not None:
                calls.append(a.cfg)
    return rc, out.getvalue(), err.getvalue()


def assert_cli_outcome(rc: int, out: str, err: str, calls: list, before: int) -> None:
    assert "Traceback" not in out + err
    assert rc in (0, 2), (rc, out, err)
    if rc == 2:
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and len(lines[0]) > len("error: "), err
        assert len(calls) == before, "a rejected config must not start a run"
    else:
        assert len(calls) == before + 1 and isinstance(calls[-1], BaseModel)


STAGE_ARGS = st.sampled_from([
    ["augment"], ["augment", "--engine", "hf"], ["augment", "--limit", "2"], ["augment", "--run-name", "r"],
    ["train", "--output", "/tmp/x", "--data", "bundled:gsm8k"], ["train", "--output", "/tmp/x"],
    ["evaluate"], ["evaluate", "--datasets", "gsm8k"], ["evaluate", "--limit", "1"],
])


@FUZZ
@given(args=STAGE_ARGS, overrides=st.lists(override, max_size=4), tree=st.one_of(st.none(), config_tree))
def test_cli_exits_0_or_2_with_one_line(recorded_runs, args, overrides, tree):
    with tempfile.TemporaryDirectory() as d:
        argv = list(args)
        if tree is not None:
            path = Path(d) / "job.yaml"
            path.write_text(yaml.safe_dump(tree, allow_unicode=True), encoding="utf-8")
            argv += ["--config", str(path)]
        # `--` keeps overrides that start with '-' from being read as options
        argv += ["--", *overrides] if overrides else []
        before = len(recorded_runs)
        rc, out, err = run_cli(argv, recorded_runs)
    assert_cli_outcome(rc, out, err, recorded_runs, before)


FLAG_VALUES = st.one_of(st.text(max_size=20), st.sampled_from(["-1", "0", "1e9", "nan", "", "..", "../../x", "s3://"]))


@FUZZ
@given(stage=st.sampled_from(["augment", "train", "evaluate", "demo"]),
       flags=st.lists(st.tuples(st.sampled_from([
           "--limit", "--engine", "--run-name", "--output", "--seeds", "--model", "--data", "--datasets",
           "--stages", "--config", "--bogus", "-c", "--help-me"]), FLAG_VALUES), max_size=3))
def test_cli_bad_flags_exit_2_with_one_line(recorded_runs, stage, flags):
    argv = [stage] + [x for pair in flags for x in pair]
    if stage == "train" and "--output" not in argv:
        argv += ["--output", "/tmp/x"]
    before = len(recorded_runs)
    rc, out, err = run_cli(argv, recorded_runs)
    assert_cli_outcome(rc, out, err, recorded_runs, before)


@pytest.mark.parametrize("argv", [
    ["augment", "--", "engine.replicaz=2"],
    ["augment", "--", "run_name=../escape"],
    ["augment", "--", "engine.engine_kwargs=" + "[" * 5000],
    ["augment", "--seeds", "/nonexistent/seeds.jsonl"],
    ["augment", "--limit", "zero"],
    ["augment", "--", "engine.kin\nd=hf"],
    ["evaluate", "--datasets", "gsm8k,no\nsuch"],
    ["train", "--output", "/tmp/x", "--", "num_workers=-1"],
    ["demo", "--stages", "augment,nope"],
    ["demo", "--engine", "openai"],
    ["nosuchcommand"],
])
def test_cli_known_bad_inputs(recorded_runs, argv):
    before = len(recorded_runs)
    rc, out, err = run_cli(argv, recorded_runs)
    assert rc == 2
    assert_cli_outcome(rc, out, err, recorded_runs, before)
