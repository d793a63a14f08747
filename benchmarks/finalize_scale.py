"""Finalize at scale: wall time and the driver's peak RSS at 100K / 400K / 1.5M candidates.

Synthetic but realistic candidate shards, laid out as a real augment run folder
(`candidates/part-NNNNN.parquet` of 64 seeds each, `run_config.json`, `quarantine/`): real GSM8K /
MATH training questions and solutions (from /work/shared/data), ~100 candidates per seed across
AnsAug (20 samples), Rephrasing (3 variants; one in 8 copies its question), FOBAR (one variant per
masked number, up to 3) and SV (2 variants), 10 samples each; responses are real solutions with
~25% of the words perturbed, and ~10% of them near-duplicates of a sibling sample (one word
changed); ~55% accepted on GSM8K, ~35% on MATH; a few refused rewrites.

Every measurement runs `finalize` in a child process (old = a checkout of the code before the
streaming finalize, e.g. `git worktree add /tmp/finalize-old <commit>`; new = this checkout);
the child reports its own peak RSS (`getrusage(RUSAGE_SELF)`: the driver), and the parent polls
the child's descendants (Ray workers, raylet, GCS) for their summed peak RSS.

Results go to benchmarks/results/finalize_scale.json under "<impl name>@<size>" (earlier entries
are kept; pick new names to keep a measurement), each with the code's commit (`code_commit`).
`--compare` checks the outputs of the impl named "new" (else the last one) against `clean_accepted`.

Run (heavy: take the shared lock; Ray needs loopback):
  flock /tmp/metamath-heavy.lock unshare -n sh -c 'ip link set lo up && OMP_NUM_THREADS=1 \
    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 RAY_USAGE_STATS_ENABLED=0 \
    python benchmarks/finalize_scale.py --sizes 100000,400000,1500000 --impl old=/tmp/finalize-old --impl new=.'
Before / after a change: `git worktree add /tmp/finalize-base HEAD` first, then
  --impl base=/tmp/finalize-base --impl new=.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

DATA = Path(os.environ.get("METAMATH_SHARED_DATA", "/work/shared/data"))
DEFAULT_OUT = Path(__file__).parent / "results" / "finalize_scale.json"
DEFAULT_WORK = Path(os.environ.get("FINALIZE_SCALE_WORK", "/tmp/finalize-scale"))
CHUNK_SEEDS = 64
FOBAR_SUFFIX = " If we know the answer to the above question is {a}, what is the value of unknown variable x?"


# -- synthetic candidates ------------------------------------------------------------------------

def _seeds() -> list[dict]:
    out = []
    for i, line in enumerate((DATA / "gsm8k" / "train.jsonl").open()):
        r = json.loads(line)
        body, _, gold = r["answer"].partition("####")
        out.append({"seed_id": f"gsm8k/train/{i}", "dataset": "gsm8k", "question": r["question"],
                    "solution": re.sub(r"<<[^>]*>>", "", body).strip(), "answer": gold.strip(), "level": "", "type": ""})
    for i, line in enumerate((DATA / "math" / "train.jsonl").open()):
        r = json.loads(line)
        out.append({"seed_id": f"math/train/{i}", "dataset": "math", "question": r["problem"],
                    "solution": r["solution"], "answer": str(r.get("answer") or "1"),
                    "level": str(r.get("level", "")), "type": str(r.get("type", ""))})
    random.Random(0).shuffle(out)
    return out


def _perturb(text: str, rng: random.Random, share: float) -> str:
    words = text.split()
    for i in range(len(words)):
        if rng.random() < share:
            words[i] = rng.choice(("so", "then", "we", "get", "thus", "which", "gives", "total", str(rng.randint(2, 99))))
    return " ".join(words)


def _responses(solution: str, answer: str, k: int, rng: random.Random) -> list[str]:
    out: list[str] = []
    for _ in range(k):
        if out and rng.random() < 0.10:  # a near-duplicate of an earlier sample: one word changed
            base = rng.choice(out).split("\nThe answer is:")[0]
            out.append(f"{_perturb(base, rng, 1.5 / max(1, len(base.split())))}\nThe answer is: {answer}")
        else:
            out.append(f"{_perturb(solution, rng, 0.25)}\nThe answer is: {answer}")
    return out


def _masked_questions(question: str, limit: int) -> list[tuple[str, str]]:
    numbers = list(dict.fromkeys(re.findall(r"\b\d+\b", question)))[:limit]
    return [(re.sub(rf"\b{n}\b", "x", question, count=1), n) for n in numbers]


def _variants(seed: dict, rng: random.Random) -> list[tuple[str, int, str, str, str]]:
    """(aug, variant, query, expected, stage) of one seed."""
    q, a = seed["question"], seed["answer"]
    out = [("AnsAug", 0, q, a, "solve")]
    for v in range(3):
        text = q if rng.random() < 0.125 else _perturb(q, rng, 0.2)
        out.append(("Rephrasing", v, text, a, "rewrite" if rng.random() < 0.05 else "solve"))
    for v, (masked, n) in enumerate(_masked_questions(q, 3)):
        out.append(("FOBAR", v, masked + FOBAR_SUFFIX.format(a=a), n, "solve"))
    for v, (masked, n) in enumerate(_masked_questions(q, 2)):
        out.append(("SV", v, f"{masked} {_perturb(q.split('.')[-1], rng, 0.3)}. What is the value of unknown variable x?",
                    n, "rewrite" if rng.random() < 0.05 else "solve"))
    return out


def _seed_rows(seed: dict, rng: random.Random) -> list[dict]:
    from metamath_ray.records import candidate_row

    accept = 0.55 if seed["dataset"] == "gsm8k" else 0.35
    rows = []
    for aug, variant, query, expected, stage in _variants(seed, rng):
        k = 20 if aug == "AnsAug" else 10
        samples = [None] if stage == "rewrite" else _responses(seed["solution"], expected, k, rng)
        for idx, response in enumerate(samples):
            ok = stage == "solve" and rng.random() < accept
            rows.append(candidate_row(
                seed_id=seed["seed_id"], dataset=seed["dataset"], aug=aug, stage=stage, variant=variant,
                sample_idx=-1 if stage == "rewrite" else idx, round=0, query=query, original_question=seed["question"],
                response=response or "", expected=expected, predicted=expected if ok else "0", accepted=ok,
                reject_reason=None if ok else ("bad_rewrite" if stage == "rewrite" else rng.choice(("wrong_answer", "no_answer"))),
                reject_detail=None, level=seed["level"], type=seed["type"], tokens_in=300, tokens_out=len(response or "") // 4,
                model="synthetic", prompt_version="v1", engine_key="bench"))
    return rows


def generate(n_candidates: int, run_dir: Path) -> dict:
    """A run folder with about `n_candidates` candidates; returns its description."""
    from metamath_ray.records import CANDIDATE_SCHEMA, QUARANTINE_SCHEMA, to_table
    from metamath_ray.storage import table_to_parquet_bytes

    info_path = run_dir / "bench.json"
    if info_path.exists():
        return json.loads(info_path.read_text())
    shutil.rmtree(run_dir, ignore_errors=True)
    (run_dir / "candidates").mkdir(parents=True)
    (run_dir / "quarantine").mkdir()
    seeds, rng = _seeds(), random.Random(n_candidates)
    total, chunk, used = 0, 0, 0
    while total < n_candidates:
        rows = []
        for s in range(CHUNK_SEEDS):
            seed = dict(seeds[used % len(seeds)])
            if used >= len(seeds):  # past one epoch of the real seeds: a new id, same text
                seed["seed_id"] += f"/copy{used // len(seeds)}"
            rows.extend(_seed_rows(seed, rng))
            used += 1
        rows.sort(key=lambda r: r["id"])
        (run_dir / "candidates" / f"part-{chunk:05d}.parquet").write_bytes(table_to_parquet_bytes(to_table(rows, CANDIDATE_SCHEMA)))
        total += len(rows)
        chunk += 1
    (run_dir / "quarantine" / "part-00000.parquet").write_bytes(table_to_parquet_bytes(to_table([], QUARANTINE_SCHEMA)))
    (run_dir / "run_config.json").write_text(json.dumps({"config_hash": "bench", "config": {}}))
    info = {"candidates": total, "seeds": used, "chunks": chunk}
    info_path.write_text(json.dumps(info))
    return info


# -- one measured finalize (child process) -------------------------------------------------------

def child(run_dir: str, seeds: int, chunks: int) -> None:
    """Finalize `run_dir` in this process (the code on sys.path); print wall time and peak RSS."""
    import resource

    from metamath_ray.augment.config import AugmentConfig
    from metamath_ray.pipeline.finalize import finalize
    from metamath_ray.seeds import LoadedSeeds
    from metamath_ray.storage import RunStore

    path = Path(run_dir)
    cfg = AugmentConfig(output=str(path.parent), run_name=path.name, chunk_seeds=CHUNK_SEEDS)
    loaded = LoadedSeeds(seeds=[{}] * seeds, quarantine=[], rows_read=seeds)
    ray_start_s = None
    if "finalize_passes" in (p.stem for p in (Path(finalize.__code__.co_filename).parent).iterdir()):
        # The streaming finalize runs inside an augment job, where Ray is already up: start it first.
        from metamath_ray.ray_setup import start_ray

        t0 = time.time()
        start_ray(cfg.ray)
        ray_start_s = round(time.time() - t0, 1)
    started = time.time()
    manifest = finalize(RunStore(cfg.output, cfg.run_name), cfg, loaded, n_chunks=chunks, timings=[], wall_start=started)
    wall = time.time() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    passes = json.loads((path / "stats.json").read_text()).get("timing", {}).get("finalize")
    print("RESULT " + json.dumps({"wall_s": round(wall, 1), "ray_start_s": ray_start_s, "passes_s": passes, "driver_peak_rss_mib": round(peak_kib / 1024, 1),
                                  "accepted": manifest["totals"]["accepted"],
                                  "metamathqa_records": manifest["metamathqa_records"]}), flush=True)


def reference_outcome(run_dir: str, out: str) -> None:
    """The kept / dropped sets by `clean_accepted` (in-memory, the code on sys.path) -> `out` (JSON)."""
    import pyarrow.parquet as pq

    from metamath_ray.augment.config import AugmentConfig
    from metamath_ray.pipeline.finalize import clean_accepted, current_candidate_shards
    from metamath_ray.storage import RunStore

    path = Path(run_dir)
    store = RunStore(str(path.parent), path.name)
    rows = [r for _, p in current_candidate_shards(store).values() for r in pq.read_table(path / p).to_pylist()
            if r["stage"] == "solve" and r["accepted"]]
    kept, dropped = clean_accepted(rows, AugmentConfig(output=str(path.parent), run_name=path.name))
    Path(out).write_text(json.dumps({"kept": sorted(r["id"] for r in kept),
                                     "dropped": {r["id"]: r["reject_reason"] for r in dropped}}))


def written_outcome(run_dir: Path) -> dict:
    """The kept / dropped sets a finalize wrote (data/ and the dedup/decontam reasons in rejected/)."""
    import pyarrow.parquet as pq

    kept = sorted(i for f in sorted((run_dir / "data").glob("*.parquet")) for i in pq.read_table(f, columns=["id"])["id"].to_pylist())
    dropped = {}
    for f in sorted((run_dir / "rejected").glob("*.parquet")):
        for r in pq.read_table(f, columns=["id", "reject_reason"]).to_pylist():
            if r["reject_reason"].startswith("duplicate") or r["reject_reason"] == "contaminated":
                dropped[r["id"]] = r["reject_reason"]
    return {"kept": kept, "dropped": dropped}


def agreement(a: dict, b: dict) -> dict:
    ka, kb = set(a["kept"]), set(b["kept"])
    same_reason = sum(1 for i, r in a["dropped"].items() if b["dropped"].get(i) == r)
    return {"kept_a": len(ka), "kept_b": len(kb), "kept_both": len(ka & kb), "only_a": len(ka - kb), "only_b": len(kb - ka),
            "dropped_a": len(a["dropped"]), "dropped_b": len(b["dropped"]), "dropped_same_reason": same_reason}


def _clean_outputs(run_dir: Path) -> None:
    for name in ("data", "rejected", "report", "finalize"):
        shutil.rmtree(run_dir / name, ignore_errors=True)
    for name in ("metamathqa.json", "stats.json", "manifest.json"):
        (run_dir / name).unlink(missing_ok=True)


def _poll_descendants(pid: int, peak: dict, stop: threading.Event) -> None:
    import psutil

    me = psutil.Process(pid)
    while not stop.is_set():
        try:
            kids = me.children(recursive=True)
            rss = sum(k.memory_info().rss for k in kids if k.is_running())
            peak["workers"] = max(peak.get("workers", 0), rss)
        except psutil.Error:
            pass
        stop.wait(0.5)


def measure(code_dir: str, run_dir: Path, info: dict) -> dict:
    _clean_outputs(run_dir)
    env = {**os.environ, "PYTHONPATH": str(Path(code_dir).resolve())}
    cmd = [sys.executable, os.path.abspath(__file__), "--child", str(run_dir.resolve()), str(info["seeds"]), str(info["chunks"])]
    # In the code's folder: Ray puts the driver's working directory first on its workers' sys.path.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True, cwd=Path(code_dir).resolve())
    peak, stop = {}, threading.Event()
    poller = threading.Thread(target=_poll_descendants, args=(proc.pid, peak, stop), daemon=True)
    poller.start()
    out, _ = proc.communicate()
    stop.set()
    if proc.returncode:
        raise RuntimeError(f"finalize failed ({proc.returncode}) in {code_dir}")
    result = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
    result["ray_processes_peak_rss_mib"] = round(peak.get("workers", 0) / 2**20, 1)
    result["code_commit"] = _commit_of(code_dir)
    result.update(_output_digests(run_dir))
    (run_dir.parent / f"{run_dir.name}.{Path(code_dir).resolve().name}.outcome.json").write_text(json.dumps(written_outcome(run_dir)))
    return result


def _output_digests(run_dir: Path) -> dict:
    """sha256 of metamathqa.json and of stats.json's counts (its times left out): equal digests
    across implementations mean the same outputs."""
    import hashlib

    export_sha = hashlib.sha256()
    with (run_dir / "metamathqa.json").open("rb") as f:
        while block := f.read(1 << 22):
            export_sha.update(block)
    stats = json.loads((run_dir / "stats.json").read_text())
    counts = {k: stats.get(k) for k in ("totals", "by_dataset_aug", "by_math_level_type", "by_difficulty",
                                         "decontam_by_reference", "per_seed_pass_rate", "export")}
    return {"metamathqa_sha256": export_sha.hexdigest(),
            "stats_counts_sha256": hashlib.sha256(json.dumps(counts, sort_keys=True).encode()).hexdigest()}


def _commit_of(code_dir: str) -> str | None:
    """HEAD of the code measured, "+dirty" with uncommitted changes to what finalize runs."""
    git = ["git", "-C", code_dir]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if head.returncode:
        return None
    dirty = subprocess.run([*git, "status", "--porcelain", "--",
                            "metamath_ray/pipeline/finalize*.py", "metamath_ray/augment", "metamath_ray/storage.py"], capture_output=True, text=True).stdout
    return head.stdout.strip() + ("+dirty" if dirty.strip() else "")


def compare(run_dir: Path, new_code: str, old_code: str) -> dict:
    """Kept/dropped of the new finalize's outputs vs `clean_accepted` of the same code (exactness of
    the distributed dedup) and vs `clean_accepted` of the old code (the hashing change)."""
    written = json.loads((run_dir.parent / f"{run_dir.name}.{Path(new_code).resolve().name}.outcome.json").read_text())
    out = {}
    for name, code in (("same_code_reference", new_code), ("old_code_reference", old_code)):
        target = run_dir.parent / f"{run_dir.name}.{name}.json"
        env = {**os.environ, "PYTHONPATH": str(Path(code).resolve())}
        subprocess.run([sys.executable, os.path.abspath(__file__), "--reference", str(run_dir.resolve()), str(target)],
                       env=env, check=True, cwd=Path(code).resolve())
        out[name] = agreement(written, json.loads(target.read_text()))
    return out


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        return child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    if sys.argv[1:2] == ["--reference"]:
        return reference_outcome(sys.argv[2], sys.argv[3])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,400000,1500000")
    parser.add_argument("--impl", action="append", default=[], help="NAME=CODE_DIR (repeatable); default new=.")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--generate-only", action="store_true")
    parser.add_argument("--compare", metavar="OLD_CODE_DIR", help="after measuring, compare the outputs of new=. with "
                        "clean_accepted of this code and of OLD_CODE_DIR (kept/dropped agreement)")
    args = parser.parse_args()
    impls = dict(i.split("=", 1) for i in (args.impl or ["new=."]))
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    for size in (int(s) for s in args.sizes.split(",")):
        run_dir = args.work / f"run-{size}"
        info = generate(size, run_dir)
        print(f"{size}: {info}", flush=True)
        if args.generate_only:
            continue
        for name, code in impls.items():
            res = measure(code, run_dir, info)
            results[f"{name}@{size}"] = {"impl": name, "target_candidates": size, **info, **res,
                                         "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            print(f"{name:>4} {info['candidates']:>9} cand: {res['wall_s']:>7.1f} s, driver peak "
                  f"{res['driver_peak_rss_mib']:>7.1f} MiB, ray processes peak {res['ray_processes_peak_rss_mib']:>7.1f} MiB, "
                  f"accepted {res['accepted']}", flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2, sort_keys=True))
        if args.compare:
            name = "new" if "new" in impls else list(impls)[-1]
            label = f"agreement@{size}" if name == "new" else f"agreement-{name}@{size}"
            results[label] = compare(run_dir, impls[name], args.compare)
            print(json.dumps(results[label]), flush=True)
            args.out.write_text(json.dumps(results, indent=2, sort_keys=True))
    _print_table(results)


def _print_table(results: dict) -> None:
    print(f"\n{'run':<14}{'candidates':>12}{'wall s':>9}{'driver MiB':>12}{'ray MiB':>10}{'accepted':>10}")
    runs = {k: r for k, r in results.items() if "impl" in r}
    for key, r in sorted(runs.items(), key=lambda kv: (kv[1]["target_candidates"], kv[1]["impl"])):
        print(f"{key:<14}{r['candidates']:>12}{r['wall_s']:>9.1f}{r['driver_peak_rss_mib']:>12.1f}"
              f"{r['ray_processes_peak_rss_mib']:>10.1f}{r['accepted']:>10}")


if __name__ == "__main__":
    main()
