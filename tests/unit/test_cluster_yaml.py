"""cluster.yaml passes Ray's own autoscaler validation (no AWS call) and keeps its promises.

`ray up` runs `prepare_config` (merge with the AWS defaults, setup-command merging, docker
checks, per-type worker bounds) and then `validate_config` (ray-schema.json + cross-field checks)
before it ever talks to EC2; this test runs the same two steps offline.
"""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "cluster.yaml"

GPU_TYPES = {
    "g5.xlarge": {"CPU": 4, "GPU": 1},
    "p4d.24xlarge": {"CPU": 96, "GPU": 8},
    "p5.48xlarge": {"CPU": 192, "GPU": 8},
}


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(CLUSTER.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def prepared(raw) -> dict:
    util = pytest.importorskip("ray.autoscaler._private.util")
    pytest.importorskip("jsonschema")
    config = util.prepare_config(copy.deepcopy(raw))
    util.validate_config(config)
    return config


def test_ray_validation_passes(prepared):
    assert prepared["provider"]["type"] == "aws"
    assert prepared["head_node_type"] in prepared["available_node_types"]


def test_ray_validation_rejects_a_broken_copy(raw):
    """The validation really runs: an unknown key or a missing field is refused."""
    jsonschema = pytest.importorskip("jsonschema")
    util = pytest.importorskip("ray.autoscaler._private.util")
    bad = copy.deepcopy(raw)
    bad["available_node_types"]["head"]["not_a_field"] = 1
    with pytest.raises(jsonschema.ValidationError):
        util.validate_config(util.prepare_config(bad))
    bad = copy.deepcopy(raw)
    del bad["available_node_types"]["gpu_a10g"]["resources"]
    with pytest.raises(jsonschema.ValidationError):
        util.validate_config(util.prepare_config(bad))


def test_head_runs_no_work(raw):
    head = raw["available_node_types"][raw["head_node_type"]]
    assert head["resources"].get("CPU") == 0
    assert head["resources"].get("GPU", 0) == 0
    assert not head["node_config"]["InstanceType"].startswith(("g", "p"))


def test_gpu_types_autoscale_from_zero(raw):
    types = raw["available_node_types"]
    workers = {k: v for k, v in types.items() if k != raw["head_node_type"]}
    by_instance = {v["node_config"]["InstanceType"]: v for v in workers.values()}
    assert set(by_instance) == set(GPU_TYPES)
    for instance, node in by_instance.items():
        assert node["min_workers"] == 0, instance
        assert node["max_workers"] >= 1, instance
        # Declared resources match the instance, so the autoscaler can plan without asking EC2.
        assert node["resources"] == GPU_TYPES[instance], instance
    assert raw["max_workers"] >= max(n["max_workers"] for n in workers.values())


def test_docker_image_pins_the_ray_version(raw):
    image = raw["docker"]["image"]
    m = re.fullmatch(r"rayproject/ray-llm:(\d+\.\d+\.\d+)-py(\d)(\d+)-cu\d+", image)
    assert m, image
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    ray_pin = next(d for d in deps if d.startswith("ray["))
    assert ray_pin.endswith("==" + m.group(1)), (ray_pin, image)
    import ray

    assert ray.__version__ == m.group(1)


def test_setup_installs_the_package_with_the_gpu_extra(raw):
    commands = " ".join(raw["setup_commands"])
    assert "pip install" in commands and "[gpu]" in commands
    assert "metamath-ray" in commands
    # The checkout it installs from is mounted on every node.
    assert any("metamath-ray" in remote for remote in raw["file_mounts"])


def test_dashboard_not_exposed(raw):
    head_start = " ".join(raw["head_start_ray_commands"])
    assert "--dashboard-host=0.0.0.0" not in head_start
    assert "--dashboard-host=127.0.0.1" in head_start


def test_header_has_launch_commands():
    text = CLUSTER.read_text(encoding="utf-8")
    assert "ray up cluster.yaml" in text
    assert "ray job submit" in text
