"""Entry points: `run_train` (Ray Train TorchTrainer, DeepSpeed inside each worker) and
`train_single_process` (same loop, one process, no Ray) for benchmarking on one device.

Run output under `<output>/<run_name>/`:
  ray_train/checkpoint_*/   sharded DeepSpeed checkpoints (Ray run; re-submitting resumes from the latest)
  checkpoints/step_*/       the same, for one-process runs
  model/                    consolidated Hugging Face folder (transformers / vLLM load it)
  train_log.jsonl           one record per optimizer step: loss, lr, tokens/s, MFU
  dropped.jsonl             examples left out, each with its reason (never truncated)
  train_summary.json        what `run_train` returns
  attempts.jsonl            one line per start of the loop (first run, re-submit, worker restart)
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from metamath_ray.train import io as tio
from metamath_ray.train.config import TrainConfig, join_uri
from metamath_ray.train.data import count_packs, describe_drop, plan_steps_per_epoch, tokenize_table
from metamath_ray.train.metrics import StepLog

RAY_RUN_NAME = "ray_train"
LOG_FILE, SUMMARY_FILE, DROPPED_FILE, MODEL_DIR = "train_log.jsonl", "train_summary.json", "dropped.jsonl", "model"
WORKER_SUMMARY_FILE = "worker_summary.json"
ATTEMPTS_FILE = "attempts.jsonl"  # one line per start of the training loop: where it resumed from


# ---------------------------------------------------------------- planning (driver side, pure)

def plan(cfg: TrainConfig, stats_rows: list[dict]) -> dict:
    """Steps per epoch and the drop report from per-example (id, num_tokens, drop_reason) rows."""
    kept_lengths = [r["num_tokens"] for r in stats_rows if not r["drop_reason"]]
    dropped = [
        {"id": r["id"], "reason": describe_drop(r["drop_reason"], r["num_tokens"], cfg.max_length),
         "num_tokens": r["num_tokens"]}
        for r in stats_rows if r["drop_reason"]
    ]
    spe = plan_steps_per_epoch(
        kept_lengths, world_size=cfg.num_workers, micro_batch_size=cfg.micro_batch_size,
        grad_accum_steps=cfg.grad_accum_steps, packing=cfg.packing, max_length=cfg.max_length,
    )
    if spe == 0:
        units = count_packs(kept_lengths, cfg.max_length) if cfg.packing else len(kept_lengths)
        raise ValueError(
            f"not enough training data for one optimizer step: {len(kept_lengths)} examples kept "
            f"({units} {'packed sequences' if cfg.packing else 'examples'}), {len(dropped)} dropped; "
            f"global_batch_size={cfg.global_batch_size} needs that many"
        )
    return {
        "steps_per_epoch": spe,
        "examples": len(stats_rows),
        "kept": len(kept_lengths),
        "dropped": len(dropped),
        "dropped_by_reason": dict(Counter(r["drop_reason"] for r in stats_rows if r["drop_reason"])),
        "dropped_rows": dropped,
        "kept_tokens": sum(kept_lengths),
    }


def _write_run_files(cfg: TrainConfig, planned: dict) -> None:
    tio.write_text(join_uri(cfg.run_uri, DROPPED_FILE), "".join(json.dumps(r) + "\n" for r in planned["dropped_rows"]))


def _summary(cfg: TrainConfig, planned: dict, worker: dict, checkpoint_uri: str | None, wall_s: float) -> dict:
    summary = {
        "run_uri": cfg.run_uri,
        "model_uri": worker.get("model_uri"),
        "checkpoint_uri": checkpoint_uri,
        "loss_curve_uri": join_uri(cfg.run_uri, LOG_FILE),
        "dropped_uri": join_uri(cfg.run_uri, DROPPED_FILE),
        **{k: v for k, v in worker.items() if k != "model_uri"},
        **{k: v for k, v in planned.items() if k != "dropped_rows"},
        "wall_time_s": wall_s,
    }
    tio.write_text(join_uri(cfg.run_uri, SUMMARY_FILE), json.dumps(summary, indent=2))
    return summary


class _RunFiles:
    """Shared by both WorkerIO implementations: step log and model publication in the run output,
    and the objective=pretrain data stream (each worker reads its share of the raw text itself)."""

    cfg: TrainConfig
    _pretrain: Any = None

    def _start_pretrain(self) -> None:
        if self.cfg.objective == "pretrain":
            from metamath_ray.train.pretrain import PretrainStream

            self._pretrain = PretrainStream(self.cfg, self.rank, self.world_size)

    def data_summary(self) -> dict | None:
        return self._pretrain.summary() if self._pretrain is not None else None

    def previous_log(self, up_to_step: int) -> list[dict]:
        text = tio.read_text(join_uri(self.cfg.run_uri, LOG_FILE))
        return StepLog.from_jsonl(text, up_to_step) if text and up_to_step else []

    def _write_log(self, step_log: StepLog | None) -> None:
        if step_log is not None:
            tio.write_text(join_uri(self.cfg.run_uri, LOG_FILE), step_log.to_jsonl())

    def record_attempt(self, resumed_from_step: int) -> list[dict]:
        uri = join_uri(self.cfg.run_uri, ATTEMPTS_FILE)
        text = tio.read_text(uri) or ""
        attempts = [json.loads(line) for line in text.splitlines() if line.strip()]
        attempts.append({"attempt": len(attempts) + 1, "resumed_from_step": resumed_from_step, "started_at": time.time()})
        tio.write_text(uri, "".join(json.dumps(a) + "\n" for a in attempts))
        return attempts

    def publish_model(self, local_dir: Path) -> str:
        uri = join_uri(self.cfg.run_uri, MODEL_DIR)
        tio.upload_dir(local_dir, uri)
        return uri


# ---------------------------------------------------------------- Ray Train

class _RayWorkerIO(_RunFiles):
    def __init__(self, cfg: TrainConfig):
        import ray.train

        self.cfg = cfg
        ctx = ray.train.get_context()
        self.rank, self.world_size = ctx.get_world_rank(), ctx.get_world_size()
        self._start_pretrain()
        self._shard = None if self._pretrain is not None else ray.train.get_dataset_shard("train")

    def examples(self, epoch: int):
        if self._pretrain is not None:
            return self._pretrain.examples(epoch)
        return self._shard_examples(epoch)

    def _shard_examples(self, epoch: int):
        batches = self._shard.iter_batches(
            batch_size=256, batch_format="numpy",
            local_shuffle_buffer_size=1024 if self.cfg.shuffle else None,
            local_shuffle_seed=self.cfg.seed + epoch if self.cfg.shuffle else None,
        )
        for batch in batches:
            for input_ids, labels in zip(batch["input_ids"], batch["labels"]):
                yield {"input_ids": input_ids, "labels": labels}

    @contextlib.contextmanager
    def latest_checkpoint(self):
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            yield None
            return
        with checkpoint.as_directory() as d:
            yield Path(d)

    def report(self, metrics: dict, checkpoint_dir: Path | None, step_log: StepLog | None) -> None:
        import ray.train

        self._write_log(step_log)
        checkpoint = ray.train.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        ray.train.report(metrics, checkpoint=checkpoint)


def _ray_train_fn(args: dict) -> None:
    import ray.train

    from metamath_ray.train.loop import run_worker

    cfg = TrainConfig.model_validate(args["cfg"])
    summary = run_worker(cfg, _RayWorkerIO(cfg), steps_per_epoch=args["steps_per_epoch"])
    # Result.metrics only carries checkpointed reports, so rank 0 hands its summary over in storage.
    if ray.train.get_context().get_world_rank() == 0:
        tio.write_text(join_uri(cfg.run_uri, WORKER_SUMMARY_FILE), json.dumps(summary))


def _ensure_ray() -> None:
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init()
    else:  # local Ray: loopback only, no dashboard (it is a remote-code-execution surface)
        ray.init(include_dashboard=False, _node_ip_address="127.0.0.1")


def _ray_dataset(cfg: TrainConfig):
    """Tokenized records (materialized once: drop counts and step planning need a full pass) and
    their per-example stats."""
    records = tio.read_records_dataset(cfg.data)
    tokenized = records.map_batches(
        tokenize_table, batch_format="pyarrow",
        fn_kwargs={"tokenizer_name": cfg.tokenizer or cfg.model, "max_length": cfg.max_length, "template": cfg.template},
    )
    if cfg.shuffle:
        tokenized = tokenized.random_shuffle(seed=cfg.seed)
    tokenized = tokenized.materialize()
    rows = tokenized.select_columns(["id", "num_tokens", "drop_reason"]).take_all()
    # Materialized before the trainer starts: its workers may hold every CPU of a small cluster,
    # and a lazy filter would then wait forever for a CPU to run on.
    kept = (
        tokenized.filter(lambda r: r["drop_reason"] == "").select_columns(["input_ids", "labels"]).materialize()
    )
    return kept, rows


def with_absolute_local_paths(cfg: TrainConfig) -> TrainConfig:
    """Local `output`, `data` and model folder made absolute on the driver: Ray Train workers do not
    run in the driver's working directory, so a relative path would name a different folder there."""
    def absolute(path: str | None, must_exist: bool = False) -> str | None:
        if not path or "://" in path or path == "tiny" or os.path.isabs(path):
            return path
        if must_exist and not os.path.exists(path):
            return path  # a hub id such as meta-llama/Llama-2-7b-hf
        return os.path.abspath(path)

    return cfg.model_copy(update={"output": absolute(cfg.output), "data": absolute(cfg.data),
                                  "model": absolute(cfg.model, must_exist=True)})


def run_train(cfg: TrainConfig) -> dict:
    """Fine-tune with Ray Train (TorchTrainer, DeepSpeed ZeRO in each worker).

    Re-running the same config (same output and run_name) resumes from the latest checkpoint."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    start = time.perf_counter()
    _ensure_ray()
    cfg = with_absolute_local_paths(cfg)
    if cfg.objective == "pretrain":  # workers read the raw text themselves (train/pretrain.py)
        from metamath_ray.train.pretrain import plan_pretrain, with_absolute_sources

        cfg = with_absolute_sources(cfg)
        datasets, planned = None, plan_pretrain(cfg)
    else:
        kept, stats_rows = _ray_dataset(cfg)
        datasets, planned = {"train": kept}, plan(cfg, stats_rows)
    _write_run_files(cfg, planned)
    fs, path = tio.resolve_filesystem(cfg.run_uri)
    fs.create_dir(path, recursive=True)
    env = {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "TORCH_EXTENSIONS_DIR", "METAMATH_RAY_"))}
    trainer = TorchTrainer(
        _ray_train_fn,
        train_loop_config={"cfg": cfg.model_dump(), "steps_per_epoch": planned["steps_per_epoch"]},
        scaling_config=ScalingConfig(
            num_workers=cfg.num_workers, use_gpu=cfg.use_gpu,
            resources_per_worker={"CPU": cfg.cpus_per_worker, **({"GPU": 1} if cfg.use_gpu else {})},
        ),
        datasets=datasets,
        run_config=RunConfig(
            name=RAY_RUN_NAME,
            storage_path=path,
            storage_filesystem=fs,
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.keep_checkpoints),
            failure_config=FailureConfig(max_failures=cfg.max_failures),
            worker_runtime_env={"env_vars": {"OMP_NUM_THREADS": str(cfg.cpus_per_worker), **env}},
        ),
    )
    result = trainer.fit()
    worker = json.loads(tio.read_text(join_uri(cfg.run_uri, WORKER_SUMMARY_FILE)) or "{}")
    checkpoint_uri = None
    if result.checkpoint is not None:
        checkpoint_uri = ("s3://" + result.checkpoint.path) if cfg.run_uri.startswith("s3://") else result.checkpoint.path
    return _summary(cfg, planned, worker, checkpoint_uri, time.perf_counter() - start)


# ---------------------------------------------------------------- one process, no Ray

class _LocalIO(_RunFiles):
    rank, world_size = 0, 1

    def __init__(self, cfg: TrainConfig, kept: list[dict[str, Any]]):
        self.cfg = cfg
        self._kept = kept
        self._ckpt_root = join_uri(cfg.run_uri, "checkpoints")
        self.last_checkpoint_uri: str | None = None
        self._start_pretrain()

    def examples(self, epoch: int):
        if self._pretrain is not None:
            return self._pretrain.examples(epoch)
        order = list(range(len(self._kept)))
        if self.cfg.shuffle:
            random.Random(self.cfg.seed + epoch).shuffle(order)
        return (self._kept[i] for i in order)

    @contextlib.contextmanager
    def latest_checkpoint(self):
        names = [n for n in tio.list_dirs(self._ckpt_root) if n.startswith("step_")]
        if not names:
            yield None
            return
        with tempfile.TemporaryDirectory(prefix="mmr-resume-") as tmp:
            tio.download_dir(join_uri(self._ckpt_root, names[-1]), tmp)
            yield Path(tmp)

    def report(self, metrics: dict, checkpoint_dir: Path | None, step_log: StepLog | None) -> None:
        self._write_log(step_log)
        if checkpoint_dir is None:
            return
        uri = join_uri(self._ckpt_root, f"step_{metrics['step']:08d}")
        tio.upload_dir(checkpoint_dir, uri)
        self.last_checkpoint_uri = uri
        names = [n for n in tio.list_dirs(self._ckpt_root) if n.startswith("step_")]
        for old in names[: -self.cfg.keep_checkpoints]:
            tio.delete_dir(join_uri(self._ckpt_root, old))


def _free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_single_process(cfg: TrainConfig) -> dict:
    """The same loop in this process (world size 1), no Ray: for single-device benchmarks."""
    from metamath_ray.train.loop import run_worker

    if cfg.num_workers != 1:
        cfg = cfg.model_copy(update={"num_workers": 1})
        TrainConfig.model_validate(cfg.model_dump())  # the batch arithmetic must still hold
    start = time.perf_counter()
    for key, value in {"MASTER_ADDR": "127.0.0.1", "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"}.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("MASTER_PORT", str(_free_loopback_port()))
    if cfg.objective == "pretrain":
        from metamath_ray.train.pretrain import plan_pretrain

        planned = plan_pretrain(cfg)
        _write_run_files(cfg, planned)
        io = _LocalIO(cfg, [])
        worker = run_worker(cfg, io, steps_per_epoch=planned["steps_per_epoch"])
        return _summary(cfg, planned, worker, io.last_checkpoint_uri, time.perf_counter() - start)
    table = tokenize_table(
        tio.read_records_table(cfg.data), tokenizer_name=cfg.tokenizer or cfg.model,
        max_length=cfg.max_length, template=cfg.template,
    )
    rows = table.to_pylist()
    planned = plan(cfg, rows)
    _write_run_files(cfg, planned)
    kept = [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows if not r["drop_reason"]]
    io = _LocalIO(cfg, kept)
    worker = run_worker(cfg, io, steps_per_epoch=planned["steps_per_epoch"])
    return _summary(cfg, planned, worker, io.last_checkpoint_uri, time.perf_counter() - start)
