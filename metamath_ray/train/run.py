"""Entry points: `run_train` (Ray Train TorchTrainer, DeepSpeed inside each worker) and
`train_single_process` (the same loop in one process, no Ray) for benchmarking on one device.

Both read as a recipe: prepare the data and plan the steps on the driver, write the drop report,
run the loop (`loop.run_worker`) on every worker, write the summary. The run folder's layout is in
`run_folder.py`.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections import Counter
from typing import Any

from metamath_ray import storage
from metamath_ray.train import io as tio
from metamath_ray.train.config import TrainConfig
from metamath_ray.train.data import count_packs, describe_drop, plan_steps_per_epoch, tokenize_table
from metamath_ray.train.metrics import Schedule
from metamath_ray.train.run_folder import (
    DROPPED_FILE,
    LOG_FILE,
    RAY_RUN_NAME,
    SUMMARY_FILE,
    WORKER_SUMMARY_FILE,
    LocalWorkerIO,
    RayWorkerIO,
)

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------- planning (driver side, pure)

def plan(cfg: TrainConfig, stats_rows: list[dict]) -> dict:
    """Steps per epoch and the drop report from per-example (id, num_tokens, drop_reason) rows."""
    kept_rows = [r for r in stats_rows if not r["drop_reason"]]
    # Under cfg.truncate a kept example may be longer than max_length before it is cut.
    kept_lengths = [min(r["num_tokens"], cfg.max_length) for r in kept_rows]
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
        "truncated": sum(r["num_tokens"] > cfg.max_length for r in kept_rows),
        "dropped_rows": dropped,
        "kept_tokens": sum(kept_lengths),
    }


def _write_drop_report(cfg: TrainConfig, planned: dict) -> None:
    rows = "".join(json.dumps(r) + "\n" for r in planned["dropped_rows"])
    storage.write_text(storage.join(cfg.run_uri, DROPPED_FILE), rows)


def _summary(cfg: TrainConfig, planned: dict, worker: dict, checkpoint_uri: str | None, wall_s: float) -> dict:
    summary = {
        "run_uri": cfg.run_uri,
        "model_uri": worker.get("model_uri"),
        "checkpoint_uri": checkpoint_uri,
        "loss_curve_uri": storage.join(cfg.run_uri, LOG_FILE),
        "dropped_uri": storage.join(cfg.run_uri, DROPPED_FILE),
        **{k: v for k, v in worker.items() if k != "model_uri"},
        **{k: v for k, v in planned.items() if k != "dropped_rows"},
        "wall_time_s": wall_s,
    }
    storage.write_json(storage.join(cfg.run_uri, SUMMARY_FILE), summary, sort_keys=False)
    return summary


def check_devices(cfg: TrainConfig) -> None:
    """One-line ConfigError, before Ray or any worker starts, when this machine is the one that trains
    (local Ray or one process) and the config asks for GPUs it does not have. On a cluster the
    workers' nodes decide (an autoscaler may still add GPU nodes), so nothing is checked there."""
    from metamath_ray.config import ConfigError
    from metamath_ray.engines.devices import cuda_available

    on_cluster = bool(cfg.ray.address or os.environ.get("RAY_ADDRESS"))
    if not cfg.use_gpu or on_cluster or cuda_available():
        return
    if cfg.lora.quantize_4bit:
        raise ConfigError(
            "lora.quantize_4bit (QLoRA) needs CUDA GPUs (bitsandbytes 4-bit), and this machine has none: "
            "run on a GPU machine or cluster, or use plain LoRA on CPU (lora.quantize_4bit=false use_gpu=false)"
        )
    raise ConfigError("use_gpu=true but this machine has no CUDA GPU: set use_gpu=false to train on CPU")


# ---------------------------------------------------------------- Ray Train

def _ray_train_fn(args: dict) -> None:
    import ray.train

    from metamath_ray.train.loop import run_worker

    cfg = TrainConfig.model_validate(args["cfg"])
    summary = run_worker(cfg, RayWorkerIO(cfg), steps_per_epoch=args["steps_per_epoch"])
    # Result.metrics only carries checkpointed reports, so rank 0 hands its summary over in storage.
    if ray.train.get_context().get_world_rank() == 0:
        storage.write_json(storage.join(cfg.run_uri, WORKER_SUMMARY_FILE), summary, sort_keys=False)


def _ray_dataset(cfg: TrainConfig):
    """Tokenized records (materialized once: drop counts and step planning need a full pass) and
    their per-example stats."""
    records = tio.read_records_dataset(cfg.data)
    tokenized = records.map_batches(
        tokenize_table, batch_format="pyarrow",
        fn_kwargs={"tokenizer_name": cfg.tokenizer or cfg.model, "max_length": cfg.max_length, "template": cfg.template,
                   "truncate": cfg.truncate},
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
    from metamath_ray.ray_setup import start_ray

    start = time.perf_counter()
    check_devices(cfg)
    storage.ensure_reachable(cfg.run_uri)  # a wrong S3 endpoint fails now, not after Ray and tokenising
    start_ray(cfg.ray)
    cfg = with_absolute_local_paths(cfg)
    if cfg.objective == "pretrain":  # workers read the raw text themselves (train/pretrain.py)
        from metamath_ray.train.pretrain import plan_pretrain, with_absolute_sources

        cfg = with_absolute_sources(cfg)
        datasets, planned = None, plan_pretrain(cfg)
    else:
        kept, stats_rows = _ray_dataset(cfg)
        datasets, planned = {"train": kept}, plan(cfg, stats_rows)
    _write_drop_report(cfg, planned)  # also creates a local run folder, where Ray Train stores its run
    steps = Schedule(cfg, planned["steps_per_epoch"]).total_steps
    logger.info("training %s on %d Ray Train worker(s): %d optimizer steps", cfg.run_uri, cfg.num_workers, steps)
    result = _torch_trainer(cfg, datasets, planned).fit()
    worker = json.loads(storage.read_text_if_exists(storage.join(cfg.run_uri, WORKER_SUMMARY_FILE)) or "{}")
    checkpoint_uri = None
    if result.checkpoint is not None:
        checkpoint_uri = ("s3://" + result.checkpoint.path) if storage.is_s3(cfg.run_uri) else result.checkpoint.path
    return _summary(cfg, planned, worker, checkpoint_uri, time.perf_counter() - start)


def _torch_trainer(cfg: TrainConfig, datasets: dict | None, planned: dict):
    """The TorchTrainer: `cfg.num_workers` workers running `_ray_train_fn`, checkpoints in the run folder."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    fs, path = storage.resolve_filesystem(cfg.run_uri)
    # Workers need the object-store settings and the DeepSpeed extension cache the driver has.
    env = {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "TORCH_EXTENSIONS_DIR", "METAMATH_RAY_"))}
    return TorchTrainer(
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


# ---------------------------------------------------------------- one process, no Ray

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
    check_devices(cfg)
    _single_process_group_env()
    if cfg.objective == "pretrain":
        from metamath_ray.train.pretrain import plan_pretrain

        planned, kept = plan_pretrain(cfg), []
    else:
        planned, kept = _tokenize_in_process(cfg)
    _write_drop_report(cfg, planned)
    io = LocalWorkerIO(cfg, kept)
    worker = run_worker(cfg, io, steps_per_epoch=planned["steps_per_epoch"])
    return _summary(cfg, planned, worker, io.last_checkpoint_uri, time.perf_counter() - start)


def _single_process_group_env() -> None:
    """torch.distributed's env:// rendezvous for a world of one, on loopback."""
    for key, value in {"MASTER_ADDR": "127.0.0.1", "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"}.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("MASTER_PORT", str(_free_loopback_port()))


def _tokenize_in_process(cfg: TrainConfig) -> tuple[dict, list[dict[str, Any]]]:
    """The plan and the kept examples (input_ids, labels), tokenized here."""
    table = tokenize_table(
        tio.read_records_table(cfg.data), tokenizer_name=cfg.tokenizer or cfg.model,
        max_length=cfg.max_length, template=cfg.template, truncate=cfg.truncate,
    )
    rows = table.to_pylist()
    kept = [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows if not r["drop_reason"]]
    return plan(cfg, rows), kept
