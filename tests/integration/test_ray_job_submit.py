"""`ray job submit` for real: a local Ray head on 127.0.0.1, the demo submitted as a job.

Starts `ray start --head` bound to loopback (dashboard included: the job API lives there) with a
private temp dir, submits `metamath-ray demo --stages augment --engine hf` with the repository as
`--working-dir` exactly as the README tells users, waits for SUCCEEDED, reads the job's logs and
checks the run's manifest. The product must join the job's cluster (RAY_ADDRESS), not start a
second Ray. Teardown ends only the processes of this head (found by its private temp dir), never
other Ray sessions on the machine (`ray stop` would stop every Ray of this user).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
JOB_TIMEOUT_S = 1200
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_bin() -> str:
    path = Path(sys.executable).with_name("ray")
    return str(path) if path.exists() else "ray"


def _head_processes(temp_dir: str):
    """Every process of the head started with `temp_dir`, with all their descendants."""
    import psutil

    found = {}
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if any(temp_dir in arg for arg in (p.info["cmdline"] or [])):
                found[p.pid] = p
                for c in p.children(recursive=True):
                    found[c.pid] = c
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return list(found.values())


def _stop_head(temp_dir: str) -> None:
    import psutil

    procs = _head_processes(temp_dir)
    for p in procs:
        try:
            p.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=15)
    for p in alive:  # kill fallback
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=10)


def _refresh_ray_auth_config() -> None:
    # Ray caches RAY_AUTH_MODE in its C++ config when it is first used; re-read it (as Ray itself
    # does when ray.init() turns token auth on) so this process's job client follows the env.
    # Its token loader caches the token too: drop it, so no other Ray in this process gets ours.
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


@pytest.fixture()
def ray_head(tmp_path):
    """A Ray head on 127.0.0.1 with the dashboard (and its job API) on loopback only, with token
    authentication on and a private token (never the machine's ~/.ray/auth_token)."""
    # short private temp dir: Ray's unix socket paths must stay under 107 characters
    temp_dir = tempfile.mkdtemp(prefix="mmjob-", dir="/tmp")
    gcs_port, dash_port = _free_port(), _free_port()
    token = secrets.token_hex(32)
    env = {
        **os.environ,
        "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token,
    }
    # This process's job client needs the token too. Save what was there: an earlier local
    # ray.init() in this process may have set RAY_AUTH_MODE=token (Ray's default for new local
    # clusters), and later tests must get exactly that back, with Ray's cached config to match.
    saved_env = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token})
    _refresh_ray_auth_config()
    env.pop("RAY_ADDRESS", None)
    cmd = [
        _ray_bin(), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={gcs_port}",
        "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash_port}",
        f"--temp-dir={temp_dir}", "--num-cpus=2", "--num-gpus=0", "--disable-usage-stats",
    ]
    try:
        start = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
        assert start.returncode == 0, f"ray start failed:\n{start.stdout}\n{start.stderr}"
        address = f"http://127.0.0.1:{dash_port}"
        _wait_for_job_api(address)
        yield {"address": address, "env": env, "temp_dir": temp_dir, "gcs": f"127.0.0.1:{gcs_port}"}
    finally:
        _stop_head(temp_dir)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _refresh_ray_auth_config()  # later tests start their own local Ray as before this one
        assert not _head_processes(temp_dir), "Ray head processes survived teardown"
        subprocess.run(["rm", "-rf", temp_dir], check=False)


def _wait_for_job_api(address: str, timeout: float = 120) -> None:
    from ray.job_submission import JobSubmissionClient

    deadline, last = time.time() + timeout, None
    while time.time() < deadline:
        try:
            JobSubmissionClient(address).list_jobs()
            return
        except Exception as e:  # noqa: BLE001 - the dashboard agent is still starting
            last = e
            time.sleep(2)
    raise AssertionError(f"job API at {address} not up after {timeout} s: {last}")


def test_demo_as_a_ray_job(ray_head, tmp_path):
    from ray.job_submission import JobSubmissionClient

    out = tmp_path / "demo-out"
    sub_id = f"mm-demo-{uuid.uuid4().hex[:8]}"
    submit = subprocess.run(
        [_ray_bin(), "job", "submit", "--address", ray_head["address"], "--submission-id", sub_id,
         "--working-dir", str(REPO), "--no-wait", "--",
         "metamath-ray", "demo", "--output", str(out), "--stages", "augment", "--engine", "hf"],
        env=ray_head["env"], capture_output=True, text=True, timeout=300,
    )
    assert submit.returncode == 0, f"ray job submit failed:\n{submit.stdout}\n{submit.stderr}"

    client = JobSubmissionClient(ray_head["address"])
    deadline, status = time.time() + JOB_TIMEOUT_S, None
    while time.time() < deadline:
        status = str(client.get_job_status(sub_id)).split(".")[-1]
        if status in TERMINAL:
            break
        time.sleep(5)
    logs = client.get_job_logs(sub_id)
    if status not in TERMINAL:
        client.stop_job(sub_id)
    assert status == "SUCCEEDED", f"job ended {status}; last logs:\n{logs[-4000:]}"

    # the job's logs: the demo's own lines and summary; Ray's output is in the run log it names, and
    # shows the job joined the job's cluster instead of starting one
    run_logs = list((out / "logs").glob("demo-*.log"))
    assert len(run_logs) == 1 and f"log: {run_logs[0]}" in logs, logs[-4000:]
    assert "[run] stage 1/1: augment" in logs and "done in" in logs, logs[-4000:]
    ray_output = run_logs[0].read_text(encoding="utf-8") + logs
    assert "Started a local Ray instance" not in ray_output, "the job started its own Ray instead of joining"
    info = client.get_job_info(sub_id)
    assert info.driver_info is not None, "no driver registered with the job's cluster"
    assert info.runtime_env.get("working_dir", "").startswith("gcs://"), info.runtime_env

    # the run's outputs
    run = out / "augment"
    manifest = json.loads((run / "manifest.json").read_text())
    stats = json.loads((run / "stats.json").read_text())
    assert manifest["shards"] and stats["seeds"]["rows_read"] == stats["seeds"]["processed"] + stats["seeds"]["quarantined"]
    assert stats["seeds"]["processed"] > 0
    for shard in manifest["shards"]:
        assert (run / shard["path"]).is_file(), shard
    assert (run / "metamathqa.json").is_file()
