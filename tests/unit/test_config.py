"""Config loading: YAML + dotted overrides, one-line errors naming the key."""

import pytest

from metamath_ray.augment.config import AugmentConfig
from metamath_ray.config import ConfigError, load_config, parse_override


@pytest.mark.parametrize(
    "item, parts, value",
    [
        ("engine.replicas=4", ["engine", "replicas"], 4),
        ("sampling.temperature=0.5", ["sampling", "temperature"], 0.5),
        ("adaptive=false", ["adaptive"], False),
        ("run_name=abc", ["run_name"], "abc"),
        ("sampling.stop=[a, b]", ["sampling", "stop"], ["a", "b"]),
        ("engine.engine_kwargs={enforce_eager: true}", ["engine", "engine_kwargs"], {"enforce_eager": True}),
        ("output=s3://bucket/x=y", ["output"], "s3://bucket/x=y"),  # only the first '=' splits
    ],
)
def test_parse_override(item, parts, value):
    assert parse_override(item) == (parts, value)


def test_nested_override_keeps_sibling_defaults():
    cfg = load_config(AugmentConfig, None, ["aug.FOBAR.k=3"])
    assert cfg.aug["FOBAR"].k == 3
    assert cfg.aug["FOBAR"].max_variants == 3  # FOBAR's own default survives


def test_yaml_then_base_then_overrides(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("run_name: from-yaml\nengine:\n  replicas: 2\n  kind: hf\n")
    cfg = load_config(AugmentConfig, path, ["engine.replicas=3"], base={"output": "/tmp/o", "run_name": None})
    assert (cfg.run_name, cfg.engine.replicas, cfg.engine.kind, cfg.output) == ("from-yaml", 3, "hf", "/tmp/o")


@pytest.mark.parametrize(
    "overrides, needle",
    [
        (["engine.replicaz=2"], "engine.replicaz: unknown key"),
        (["engine.replicas=two"], "engine.replicas"),
        (["augmentations=[AnsAug, Bogus]"], "augmentations"),
        (["aug.AnsAug.k=9"], "max_attempts"),
        (["run_name=../escape"], "invalid run name"),
        (["engine"], "not key=value"),
        (["engine.kind=hf", "engine.kind.x=1"], "not a section"),
    ],
)
def test_errors_are_one_line_and_name_the_key(overrides, needle):
    with pytest.raises(ConfigError) as e:
        load_config(AugmentConfig, None, overrides)
    assert needle in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(AugmentConfig, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(AugmentConfig, bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(AugmentConfig, lst)


@pytest.mark.parametrize(
    "override, same_data",
    [
        # where and how it runs: a resume may change these
        ("chunks_per_wave=64", True), ("engine.replicas=8", True), ("engine.batch_size=7", True),
        ("output=elsewhere", True), ("run_name=other", True),
        # what is generated: a resume with any of these changed must be refused
        ("chunk_seeds=3", False), ("sampling.seed=7", False), ("aug.AnsAug.k=2", False), ("engine.model=other", False),
    ],
)
def test_config_hash_tracks_only_what_determines_the_data(override, same_data):
    from metamath_ray.records import config_hash

    base = load_config(AugmentConfig, None, [])
    changed = load_config(AugmentConfig, None, [override])
    assert (config_hash(changed) == config_hash(base)) is same_data
