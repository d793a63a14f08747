"""The architecture holds: import-linter contracts (pyproject.toml) and described configs."""

from __future__ import annotations

import shutil
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    proc = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def _sections(annotation) -> list[type[BaseModel]]:
    """Config models inside an annotation: `X`, `list[X]`, `X | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _sections(arg)]


def _fields(model: type[BaseModel], prefix: str = ""):
    """(dotted name, FieldInfo) of every field of `model` and of its nested config sections."""
    for name, info in model.model_fields.items():
        yield f"{prefix}{name}", info
        for sub in _sections(info.annotation):
            yield from _fields(sub, f"{prefix}{name}.")


def _stage_models():
    from metamath_ray.pipeline.run import STAGES

    return sorted(STAGES.items())


@pytest.mark.parametrize("stage,model", _stage_models())
def test_every_config_field_is_described(stage, model):
    missing = [name for name, info in _fields(model) if not (info.description or "").strip()]
    assert not missing, f"{stage}: fields without a description: {missing}"


def test_one_list_of_augmentations():
    from metamath_ray.augment.config import AugmentConfig
    from metamath_ray.augment.registry import AUGMENTATIONS, REGISTRY

    assert list(AugmentConfig().aug.model_dump()) == list(AUGMENTATIONS) == list(REGISTRY)
    for name, aug in REGISTRY.items():
        assert aug.name == name
        assert isinstance(AugmentConfig().aug[name], aug.settings)


def test_manifests_and_reports_record_the_lock_hashes():
    """Every run manifest and evaluation report carries `versions()`: the lock files' hashes too."""
    import hashlib

    from metamath_ray.records import versions

    locks = versions()["locks"]
    assert set(locks) == {"cpu", "gpu"}
    for name, digest in locks.items():
        text = (ROOT / "metamath_ray" / "locks" / f"{name}.txt").read_bytes()
        assert digest == hashlib.sha256(text).hexdigest()[:16]


def test_the_readme_and_ci_install_the_cpu_lock():
    readme = (ROOT / "README.md").read_text()
    assert readme.count("-c metamath_ray/locks/cpu.txt") >= 2  # both of the two commands
    assert "uv pip install" in (ROOT / ".ci" / "run").read_text() and "-c metamath_ray/locks/cpu.txt" in (ROOT / ".ci" / "run").read_text()
