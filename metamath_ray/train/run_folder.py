"""The training run's folder and each worker's view of it.

Run output under `<output>/<run_name>/` (local or s3://, all through `metamath_ray.storage`):
  ray_train/checkpoint_*/   sharded DeepSpeed checkpoints (Ray run; re-submitting resumes from the latest)
  checkpoints/step_*/       the same, for one-process runs
  model/                    consolidated Hugging Face folder (transformers / vLLM load it)
  train_log.jsonl           one record per optimizer step: loss, lr, tokens/s, MFU
  dropped.jsonl             examples left out, each with its reason (cut only under truncate=true)
  train_summary.json        what `run_train` returns
  attempts.jsonl            one line per start of the loop (first run, re-submit, worker restart)

The training loop (`loop.py`) is the same for Ray Train workers and the one-process run. What
differs (where examples come from, where checkpoints go, how progress is reported) is a `WorkerIO`:
`RayWorkerIO` inside Ray Train, `LocalWorkerIO` in one process.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from metamath_ray import storage
from metamath_ray.train.checkpoint import CheckpointFolder
from metamath_ray.train.config import TrainConfig
from metamath_ray.train.metrics import StepLog

RAY_RUN_NAME = "ray_train"
LOCAL_CHECKPOINTS = "checkpoints"
MODEL_DIR = "model"
LOG_FILE = "train_log.jsonl"
DROPPED_FILE = "dropped.jsonl"
SUMMARY_FILE = "train_summary.json"
WORKER_SUMMARY_FILE = "worker_summary.json"  # rank 0's summary, handed to the driver through storage
ATTEMPTS_FILE = "attempts.jsonl"


class WorkerIO(Protocol):
    rank: int
    world_size: int

    def examples(self, epoch: int) -> Iterable[dict[str, Any]]:
        """This worker's kept, tokenized examples for `epoch`, in training order."""

    def latest_checkpoint(self) -> AbstractContextManager[Path | None]:
        """A local folder holding the latest checkpoint (all ranks' shards), or None."""

    def report(self, metrics: dict, checkpoint_dir: Path | None, step_log: StepLog | None) -> None:
        """Persist a checkpoint written by every rank, and the step log (rank 0)."""

    def previous_log(self, up_to_step: int) -> list[dict]:
        """Step-log records of earlier attempts, up to the step this one resumes from."""

    def publish_model(self, local_dir: Path) -> str:
        """Copy the exported model folder into the run output; returns its URI."""

    def record_attempt(self, resumed_from_step: int) -> list[dict]:
        """Append this attempt (the step it starts from) to the run's attempt history; return it all."""

    def data_summary(self) -> dict | None:
        """objective=pretrain: the realised data mixture (a collective: every rank calls it); else None."""


class RunFiles:
    """What both WorkerIO implementations share: step log, attempts and model publication in the
    run folder, and the objective=pretrain data stream (each worker reads its share of the raw
    text itself)."""

    cfg: TrainConfig
    rank: int
    world_size: int
    _pretrain: Any = None

    def _start_pretrain(self) -> None:
        if self.cfg.objective == "pretrain":
            from metamath_ray.train.pretrain import PretrainStream

            self._pretrain = PretrainStream(self.cfg, self.rank, self.world_size)

    def _uri(self, name: str) -> str:
        return storage.join(self.cfg.run_uri, name)

    def data_summary(self) -> dict | None:
        return self._pretrain.summary() if self._pretrain is not None else None

    def previous_log(self, up_to_step: int) -> list[dict]:
        text = storage.read_text_if_exists(self._uri(LOG_FILE))
        return StepLog.from_jsonl(text, up_to_step) if text and up_to_step else []

    def _write_log(self, step_log: StepLog | None) -> None:
        if step_log is not None:
            storage.write_text(self._uri(LOG_FILE), step_log.to_jsonl())

    def record_attempt(self, resumed_from_step: int) -> list[dict]:
        uri = self._uri(ATTEMPTS_FILE)
        text = storage.read_text_if_exists(uri) or ""
        attempts = [json.loads(line) for line in text.splitlines() if line.strip()]
        attempts.append({"attempt": len(attempts) + 1, "resumed_from_step": resumed_from_step, "started_at": time.time()})
        storage.write_text(uri, "".join(json.dumps(a) + "\n" for a in attempts))
        return attempts

    def publish_model(self, local_dir: Path) -> str:
        uri = self._uri(MODEL_DIR)
        storage.upload_dir(local_dir, uri)
        return uri


class RayWorkerIO(RunFiles):
    """Inside a Ray Train worker: the dataset shard Ray hands this rank, and Ray's checkpoints."""

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


class LocalWorkerIO(RunFiles):
    """The one-process run (world size 1): examples from a list, checkpoints under checkpoints/."""

    rank, world_size = 0, 1

    def __init__(self, cfg: TrainConfig, kept: list[dict[str, Any]]):
        self.cfg = cfg
        self._kept = kept
        self._checkpoints = CheckpointFolder(self._uri(LOCAL_CHECKPOINTS), keep=cfg.keep_checkpoints)
        self.last_checkpoint_uri: str | None = None
        self._start_pretrain()

    def examples(self, epoch: int):
        if self._pretrain is not None:
            return self._pretrain.examples(epoch)
        order = list(range(len(self._kept)))
        if self.cfg.shuffle:
            random.Random(self.cfg.seed + epoch).shuffle(order)
        return (self._kept[i] for i in order)

    def latest_checkpoint(self):
        return self._checkpoints.latest()

    def report(self, metrics: dict, checkpoint_dir: Path | None, step_log: StepLog | None) -> None:
        self._write_log(step_log)
        if checkpoint_dir is not None:
            self.last_checkpoint_uri = self._checkpoints.publish(checkpoint_dir, metrics["step"])
