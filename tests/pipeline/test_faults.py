"""Fault injection on the augment job (local Ray on loopback, hf engine, tiny model).

Every test compares the *final data* of a run that suffered a fault with an uninterrupted run of
the same config (same seed file, same run name): the set of record ids in `data/` + `rejected/`
must be equal (nothing lost), every id must appear once (nothing duplicated).

The config has `chunk_seeds=1` and more seeds than `chunks_per_wave`, so the run generates in two
waves and commits the first wave's shards while the second is still to come: a kill during the
second wave leaves a half-finished run behind.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from metamath_ray.augment.config import AugmentConfig
from metamath_ray.config import load_config
from metamath_ray.pipeline.augment import run_augment
from metamath_ray.seeds import BUNDLED
from metamath_ray.storage import RunStore

pytestmark = pytest.mark.pipeline

RUN = "faults"
CHUNKS_PER_WAVE = 16
N_SEEDS = CHUNKS_PER_WAVE + 2  # two waves of chunks of one seed
OVERRIDES = [
    "engine.kind=hf", "engine.model=tiny", "engine.num_gpus_per_replica=0", "engine.batch_size=4",
    "sampling.max_tokens=16", "chunk_seeds=1", f"chunks_per_wave={CHUNKS_PER_WAVE}", "augmentations=[AnsAug, FOBAR]",
    "aug.AnsAug.k=1", "aug.AnsAug.max_attempts=1",
    "aug.FOBAR.k=1", "aug.FOBAR.max_attempts=1", "aug.FOBAR.max_variants=1",
]


@pytest.fixture(scope="module")
def seed_file(tmp_path_factory) -> str:
    from importlib.resources import files

    name, _ = BUNDLED["bundled:gsm8k"]
    lines = (files("metamath_ray") / "data" / "seeds" / name).read_text().splitlines()
    assert len(lines) >= N_SEEDS
    path = tmp_path_factory.mktemp("seeds") / "gsm8k_seeds.jsonl"
    path.write_text("\n".join(lines[:N_SEEDS]) + "\n")
    return str(path)


def _cfg(seed_file: str, output: str) -> AugmentConfig:
    return load_config(AugmentConfig, None, OVERRIDES,
                       base={"output": output, "run_name": RUN, "seeds": [{"path": seed_file}]})


def _records(store: RunStore) -> dict[str, dict]:
    """id -> row over data/ and rejected/, failing on any id stored twice."""
    out: dict[str, dict] = {}
    for kind in ("data", "rejected"):
        for shard in store.list(kind, ".parquet"):
            for row in store.read_table(shard).to_pylist():
                assert row["id"] not in out, f"record {row['id']} stored twice ({kind}, {shard})"
                out[row["id"]] = row
    return out


def _candidate_ids(store: RunStore) -> list[str]:
    return [i for s in store.list("candidates", ".parquet") for i in store.read_table(s).column("id").to_pylist()]


def _check_complete(store: RunStore, baseline: dict[str, dict]) -> dict[str, dict]:
    assert store.exists("manifest.json")
    records = _records(store)
    cand = _candidate_ids(store)
    assert len(cand) == len(set(cand)), "a candidate id was committed twice"
    assert set(cand) == set(records)
    missing, extra = set(baseline) - set(records), set(records) - set(baseline)
    assert not missing and not extra, f"{len(missing)} records lost, {len(extra)} unexpected"
    assert len(store.list("candidates", ".parquet")) == N_SEEDS
    return records


@pytest.fixture(scope="module")
def ray_session():
    """The in-process runs start local Ray themselves; shut it down when the module is done."""
    import ray

    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def baseline(ray_session, seed_file, tmp_path_factory) -> dict[str, dict]:
    """An uninterrupted run of the config every fault test uses."""
    out = str(tmp_path_factory.mktemp("baseline"))
    run_augment(_cfg(seed_file, out))
    records = _records(RunStore(out, RUN))
    augs = [r["aug"] for r in records.values()]
    assert augs.count("AnsAug") == N_SEEDS and augs.count("FOBAR") >= N_SEEDS // 2
    return records


# ---------------------------------------------------------------------------------------------
# 1. An engine actor dies mid-augment


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


class EngineActorKiller(threading.Thread):
    """SIGKILLs the process of the first HFGenerator actor once it is busy generating.

    Ray Data's actor-pool actors are unnamed, and the state API needs the dashboard (off in local
    mode), so the actor is found in the GCS actor table and killed by pid: a hard crash, as the OOM
    killer or a segfault would do it. "Busy" is measured, not guessed: the actor is ALIVE (model
    loaded) and has since burned `busy_cpu_s` of CPU time, which an idle worker does not.
    """

    def __init__(self, busy_cpu_s: float = 0.2, timeout_s: float = 300):
        super().__init__(daemon=True)
        self.busy_cpu_s, self.timeout_s = busy_cpu_s, timeout_s
        self.killed: dict | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()

    def run(self) -> None:
        try:
            self._run()
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e

    def _run(self) -> None:
        import ray

        start_cpu: dict[int, float] = {}
        deadline = time.monotonic() + self.timeout_s
        while not self.done.is_set() and time.monotonic() < deadline:
            if ray.is_initialized():
                for actor_id, a in ray._private.state.actors().items():
                    if "HFGenerator" not in a["ActorClassName"] or a["State"] != "ALIVE":
                        continue
                    pid = a["Pid"]
                    try:
                        cpu = _cpu_seconds(pid)
                    except (FileNotFoundError, ProcessLookupError):
                        continue
                    first = start_cpu.setdefault(pid, cpu)
                    if cpu - first >= self.busy_cpu_s:
                        os.kill(pid, signal.SIGKILL)
                        self.killed = {"actor_id": actor_id, "pid": pid, "busy_cpu_s": cpu - first,
                                       "at": time.monotonic()}
                        return
            time.sleep(0.05)


def test_engine_actor_killed_mid_augment(baseline, seed_file, tmp_path):
    import ray

    killer = EngineActorKiller()
    killer.start()
    t0 = time.monotonic()
    run_augment(_cfg(seed_file, str(tmp_path)))
    killer.done.set()
    killer.join()
    assert killer.error is None, killer.error
    assert killer.killed, "no engine actor was seen busy: the fault was not injected"

    # Ray restarted the killed actor (max_restarts) and re-ran its in-flight batches
    # (max_task_retries): the same actor id came back in a new process.
    actor = ray._private.state.actors()[killer.killed["actor_id"]]
    assert actor["NumRestarts"] >= 1, actor
    assert killer.killed["at"] - t0 > 0

    records = _check_complete(RunStore(str(tmp_path), RUN), baseline)
    # Retried batches regenerate identically (per-request seeds): not only the ids, the text too.
    changed = [i for i, r in records.items() if r["response"] != baseline[i]["response"]]
    assert not changed, f"{len(changed)} responses differ from the uninterrupted run"
    print(f"engine actor pid {killer.killed['pid']} SIGKILLed after {killer.killed['busy_cpu_s']:.2f} s of "
          f"generation; restarts {actor['NumRestarts']}; {len(records)} records = baseline {len(baseline)}, "
          f"0 lost, 0 duplicated, 0 responses changed")


# ---------------------------------------------------------------------------------------------
# 2. The driver dies mid-run; the same command is run again


def _shards(folder: Path) -> dict[str, tuple[int, int, str]]:
    return {
        p.name: (p.stat().st_mtime_ns, p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(folder.glob("part-*.parquet"))
    } if folder.exists() else {}


def test_driver_killed_mid_run_then_resumed(baseline, seed_file, tmp_path):
    import ray

    ray.shutdown()  # the CLI starts its own local Ray, as a user's job would
    out = tmp_path / "out"
    exe = Path(sys.executable).with_name("metamath-ray")  # the installed console script, as users run it
    cmd = [str(exe), "augment", "--seeds", seed_file, "--output", str(out),
           "--model", "tiny", "--engine", "hf", "--run-name", RUN, *OVERRIDES]
    env = {**os.environ, "RAY_DATA_DISABLE_PROGRESS_BARS": "1"}
    run_dir = out / RUN
    log1 = tmp_path / "first.log"

    with open(log1, "wb") as log:
        # Its own session: after killing the driver, whatever it started can be reaped by group.
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            deadline = time.monotonic() + 400
            while not _shards(run_dir / "candidates"):
                assert proc.poll() is None, f"driver exited early ({proc.returncode}):\n{log1.read_text()[-3000:]}"
                assert time.monotonic() < deadline, "no shard committed in time"
                time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    committed = _shards(run_dir / "candidates")
    assert 0 < len(committed) < N_SEEDS, f"kill did not land mid-run: {len(committed)} of {N_SEEDS} shards"
    assert not (run_dir / "manifest.json").exists()

    rerun = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, timeout=500)
    assert rerun.returncode == 0, rerun.stdout.decode(errors="replace")[-3000:]

    after = _shards(run_dir / "candidates")
    assert {k: after[k] for k in committed} == committed, "a committed shard was rewritten"
    assert len(after) == N_SEEDS
    records = _check_complete(RunStore(str(out), RUN), baseline)
    print(f"driver SIGKILLed with {len(committed)} of {N_SEEDS} shards committed; rerun left them unchanged; "
          f"{len(records)} records = baseline {len(baseline)}, 0 lost, 0 duplicated")
