"""The console a person reads, through the real console script (`metamath-ray`, a subprocess off a
terminal, as in a job log or CI).

A successful demo prints at most 80 lines and no traceback, ends with the summary table and where
the outputs and the log are; the Ray worker and engine output it used to print (661 lines, 7
tracebacks from vLLM's resource trackers) is in the run's log file instead. A failure still
reaches the console in full.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

MAX_DEMO_LINES = 80


def _console_script() -> str:
    found = shutil.which("metamath-ray") or str(Path(sys.executable).with_name("metamath-ray"))
    assert Path(found).exists(), "the metamath-ray console script is not installed (pip install -e .)"
    return found


def _run(args: list[str], cwd: Path, timeout: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("RAY_ADDRESS", None)  # a local Ray of its own, as a user's first run has
    return subprocess.run([_console_script(), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _one_log(run_root: Path, command: str) -> Path:
    logs = sorted((run_root / "logs").glob(f"{command}-*.log"))
    assert len(logs) == 1, logs
    return logs[0]


@pytest.mark.integration
def test_successful_demo_is_short_clean_and_ends_with_the_summary(tmp_path):
    out = tmp_path / "demo-output"
    proc = _run(["demo", "--output", str(out)], tmp_path, timeout=1800)
    console = proc.stdout + proc.stderr
    assert proc.returncode == 0, console[-4000:]
    lines = console.splitlines()
    assert "Traceback" not in console, console
    assert len(lines) <= MAX_DEMO_LINES, f"{len(lines)} console lines:\n{console}"

    log = _one_log(out, "demo")
    summary = proc.stdout.splitlines()
    assert summary[0].startswith("augment: 45 seed rows")
    assert any(re.match(r"train: \d+ steps, final loss ", line) for line in summary)
    assert any(line.startswith("evaluate: ") for line in summary)
    assert any(line.startswith("done in ") and str(out) in line for line in summary)
    assert summary[-1] == f"log: {log}"
    assert f"[demo] log: {log}" in proc.stderr  # also said up front, to follow it while it runs

    # the noise is kept, not lost: vLLM and Ray Train worker output, the resource-tracker tracebacks
    text = log.read_text(encoding="utf-8")
    assert "vLLM" in text and "RayTrainWorker" in text
    for name in ("augment", "train", "evaluate"):
        assert (out / name).is_dir()
    assert (out / "evaluate" / "report.json").is_file()


@pytest.mark.pipeline
def test_a_failure_reaches_the_console_in_full(tmp_path):
    """A bug in a worker: its traceback (Ray's, with the worker's own inside) on the console."""
    out = tmp_path / "runs"
    proc = _run(["augment", "--output", str(out), "--limit", "1", "augmentations=[AnsAug]",
                 "engine.kind=scripted", "engine.script=math:sqrt", "ray.num_cpus=2"], tmp_path, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback (most recent call last)" in proc.stderr
    assert "TypeError" in proc.stderr and "must be real number" in proc.stderr
    log = _one_log(out / "augment", "augment")
    assert f"[augment] log: {log}" in proc.stderr
    assert "must be real number" in log.read_text(encoding="utf-8")
