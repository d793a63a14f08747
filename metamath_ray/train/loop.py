"""The training loop, shared by Ray Train workers and the one-process run.

Read it like a torchtune recipe: `run_worker` sets up (process group, model and DeepSpeed engine,
resume), trains epoch by epoch, saves, and exports. Where data comes from, where checkpoints go and
how results are reported differ between Ray and one process; `WorkerIO` (run_folder.py) is that
difference. Everything else is here once.
"""

from __future__ import annotations

import logging
import os
import random
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from metamath_ray.train import checkpoint as ckpt
from metamath_ray.train.config import TrainConfig
from metamath_ray.train.data import batch_token_count, load_tokenizer, micro_batches
from metamath_ray.train.metrics import Schedule, StepLog, device_peak_tflops, flops_per_token, mfu
from metamath_ray.train.run_folder import WorkerIO

logger = logging.getLogger(__name__)


def run_worker(cfg: TrainConfig, io: WorkerIO, *, steps_per_epoch: int) -> dict:
    """Train on this rank until the planned steps are done or data runs out; returns the summary
    (rank 0's is the one that counts)."""
    recipe = TrainingRecipe(cfg, io, steps_per_epoch)
    recipe.setup()
    recipe.train()
    return recipe.finish()


@dataclass
class Position:
    """Where the loop is: saved in every checkpoint (trainer_state.json) and restored on resume."""

    step: int = 0  # optimizer steps taken
    epoch: int = 0
    step_in_epoch: int = 0
    tokens_seen: int = 0


@dataclass
class StepResult:
    """One optimizer step, summed over every rank."""

    loss: float
    tokens: int
    width: int  # longest micro-batch of this rank (for FLOPs per token)
    seconds: float


class TrainingRecipe:
    """One worker's run: setup -> train -> finish."""

    def __init__(self, cfg: TrainConfig, io: WorkerIO, steps_per_epoch: int):
        self.cfg, self.io = cfg, io
        self.rank, self.world = io.rank, io.world_size
        self.schedule = Schedule(cfg, steps_per_epoch)
        self.position = Position()
        self.resumed_from = 0
        self.last_saved = 0
        self.run_tokens, self.run_time = 0, 0.0  # this attempt only: its throughput

    # ------------------------------------------------------------ setup

    def setup(self) -> None:
        self._seed_and_join_process_group()
        self._build_engine()
        self._resume()
        # Every start of the loop (first run, re-submit, worker-failure restart) is kept in
        # attempts.jsonl, so restarts are visible in the run's own data, not only in logs.
        self.attempts = self.io.record_attempt(self.resumed_from) if self.rank == 0 else []
        self.peak_tflops = device_peak_tflops(self.cfg.use_gpu, self.cfg.peak_tflops_per_worker)
        previous = self.io.previous_log(self.resumed_from) if self.rank == 0 else []
        self.step_log = StepLog(self.schedule.total_steps, previous)

    def _seed_and_join_process_group(self) -> None:
        import deepspeed

        torch.manual_seed(self.cfg.seed)
        random.seed(self.cfg.seed)
        if not self.cfg.use_gpu:
            _disable_cpu_shm_comm()
        self.device = torch.device("cpu")
        if self.cfg.use_gpu:
            local_rank = int(os.environ.get("LOCAL_RANK", 0))
            torch.cuda.set_device(local_rank)
            self.device = torch.device("cuda", local_rank)
        deepspeed.init_distributed(dist_backend="nccl" if self.cfg.use_gpu else "gloo")

    def _build_engine(self) -> None:
        """Tokenizer, model and the DeepSpeed engine (optimizer and lr schedule inside)."""
        import deepspeed
        from transformers.integrations import HfDeepSpeedConfig

        from metamath_ray.models import resolve_model
        from metamath_ray.train.model import deepspeed_config, load_model

        cfg = self.cfg
        ds_config = deepspeed_config(cfg, self.world)
        self.accum = ds_config["gradient_accumulation_steps"]
        # Must outlive from_pretrained (and stay alive during training) for ZeRO-3 partitioned loading.
        self._hf_ds_config = HfDeepSpeedConfig(ds_config) if cfg.deepspeed.stage == 3 else None
        model_path = resolve_model(cfg.model)
        self.tokenizer = load_tokenizer(cfg.tokenizer or cfg.model)
        model = load_model(cfg, model_path)
        self.engine, _, _, _ = deepspeed.initialize(
            model=model,
            model_parameters=[p for p in model.parameters() if p.requires_grad],
            config=ds_config,
            lr_scheduler=lambda optimizer: torch.optim.lr_scheduler.LambdaLR(optimizer, self.schedule.multiplier),
        )

    def _resume(self) -> None:
        """Model, optimizer, scheduler and loop position from the latest checkpoint, if any."""
        with self.io.latest_checkpoint() as resume_dir:
            if resume_dir is not None:
                self.position = Position(**ckpt.load_checkpoint(self.engine, resume_dir))
        self.resumed_from = self.last_saved = self.position.step
        if self.rank == 0 and self.resumed_from:
            logger.info("resumed from step %d (epoch %d)", self.resumed_from, self.position.epoch)

    # ------------------------------------------------------------ train

    def train(self) -> None:
        pos, total = self.position, self.schedule.total_steps
        self.engine.train()
        while pos.epoch < self.cfg.epochs and pos.step < total:
            exhausted = self._train_epoch()
            if exhausted and self.rank == 0:
                logger.info("epoch %d ran out of data after %d steps", pos.epoch, pos.step_in_epoch)
            if not exhausted and pos.step_in_epoch < self.schedule.steps_per_epoch:
                break  # stopped by max_steps mid-epoch: a later run with more steps continues this epoch
            pos.epoch, pos.step_in_epoch = pos.epoch + 1, 0
        if pos.step > self.last_saved:
            self.save_checkpoint()

    def _train_epoch(self) -> bool:
        """Optimizer steps until the epoch or the run is done; True when the data ran out first."""
        pos = self.position
        batches = self._epoch_batches()
        while pos.step_in_epoch < self.schedule.steps_per_epoch and pos.step < self.schedule.total_steps:
            result = self._train_step(batches)
            if result is None:
                return True
            self._advance(result)
            if pos.step % self.cfg.checkpoint_every_steps == 0 and pos.step < self.schedule.total_steps:
                self.save_checkpoint()
        return False

    def _epoch_batches(self) -> Iterator[dict]:
        """This epoch's micro-batches, past the ones a resumed run already trained on."""
        batches = micro_batches(
            # Pretraining examples are already full packed sequences (see train/pretrain.py).
            self.io.examples(self.position.epoch), micro_batch_size=self.cfg.micro_batch_size,
            packing=self.cfg.packing and self.cfg.objective == "sft",
            max_length=self.cfg.max_length, pad_id=self.tokenizer.pad_token_id,
        )
        for _ in range(self.position.step_in_epoch * self.accum):
            next(batches, None)
        return batches

    def _train_step(self, batches: Iterator[dict]) -> StepResult | None:
        """One optimizer step over `accum` micro-batches; None when any rank has run out of data."""
        start = time.perf_counter()
        losses, tokens, width = [], 0, 0
        for _ in range(self.accum):
            batch = next(batches, None)
            # Every rank must take the same number of steps: stop together when any rank runs dry.
            if not _all_min(int(batch is not None)):
                return None
            batch = {k: v.to(self.device) for k, v in batch.items()}
            # No KV cache: with one, transformers would not derive the packed-sequence mask.
            out = self.engine(**batch, use_cache=False)
            self.engine.backward(out.loss)
            self.engine.step()
            losses.append(float(out.loss.detach()))
            tokens += batch_token_count(batch, self.tokenizer.pad_token_id)
            width = max(width, batch["input_ids"].shape[1])
        loss_sum, token_sum, n_losses = _all_sum([sum(losses), float(tokens), float(len(losses))])
        return StepResult(loss_sum / n_losses, int(token_sum), width, time.perf_counter() - start)

    def _advance(self, result: StepResult) -> None:
        """Count the step and log it (rank 0)."""
        pos = self.position
        lr = self.schedule.multiplier(pos.step) * self.cfg.lr  # the rate this step trained with
        pos.step += 1
        pos.step_in_epoch += 1
        pos.tokens_seen += result.tokens
        self.run_tokens += result.tokens
        self.run_time += result.seconds
        if self.rank != 0:
            return
        tokens_per_s = result.tokens / result.seconds
        flops = flops_per_token(self.engine.module.config, result.width)
        self.step_log.log({
            "step": pos.step, "epoch": pos.epoch, "loss": result.loss, "lr": lr,
            "tokens": result.tokens, "tokens_per_s": tokens_per_s, "step_time_s": result.seconds,
            "mfu": mfu(tokens_per_s, flops, self.peak_tflops, self.world),
            "tokens_seen": pos.tokens_seen,
        }, echo=pos.step % self.cfg.log_every_steps == 0 or pos.step == self.schedule.total_steps)

    def save_checkpoint(self) -> None:
        """Every rank writes its shards to a local folder; the WorkerIO copies it to storage."""
        records = self.step_log.records
        metrics = {"step": self.position.step, "loss": records[-1]["loss"] if records else float("nan")}
        with tempfile.TemporaryDirectory(prefix="mmr-ckpt-") as tmp:
            ckpt.save_checkpoint(self.engine, Path(tmp), asdict(self.position), self.rank)
            self.io.report(metrics, Path(tmp), self.step_log if self.rank == 0 else None)
        self.last_saved = self.position.step

    # ------------------------------------------------------------ finish

    def finish(self) -> dict:
        """The summary, the realised pretraining mixture, and the exported model."""
        summary = self._summary()
        mixture = self.io.data_summary()  # a collective: every rank calls it
        if mixture:
            summary["mixture"] = mixture
            if self.rank == 0:
                _log_mixture(mixture)
        if self.cfg.export:
            model_uri = self._export()
            if model_uri:
                summary["model_uri"] = model_uri
        self._hf_ds_config = None
        return summary

    def _summary(self) -> dict:
        records = self.step_log.records
        return {
            "steps": self.position.step,
            "planned_steps": self.schedule.total_steps,
            "steps_per_epoch": self.schedule.steps_per_epoch,
            "epochs_planned_steps": self.schedule.epochs_total,
            "resumed_from_step": self.resumed_from,
            "attempts": self.attempts,
            "tokens_seen": self.position.tokens_seen,
            "tokens_per_s": self.run_tokens / self.run_time if self.run_time else 0.0,
            "final_loss": records[-1]["loss"] if records else None,
            "world_size": self.world,
        }

    def _export(self) -> str | None:
        """Gather the full weights (a collective under ZeRO-3), save a Hugging Face folder on rank 0
        and copy it into the run folder; returns its URI on rank 0."""
        state_dict = ckpt.gather_full_state_dict(self.engine, self.cfg.deepspeed.stage)
        model_uri = None
        if self.rank == 0:
            with tempfile.TemporaryDirectory(prefix="mmr-export-") as tmp:
                ckpt.export_hf_model(self.engine.module, state_dict, self.tokenizer, Path(tmp), cfg=self.cfg)
                model_uri = self.io.publish_model(Path(tmp))
            logger.info("exported the model to %s", model_uri)
        dist.barrier()
        return model_uri


def _log_mixture(mixture: dict) -> None:
    shares = ", ".join(
        f"{name} {s['realised_share']:.3f} (target {s['target_share']:.3f}, {s['passes']} pass)"
        for name, s in mixture["sources"].items()
    )
    logger.info("data mixture over %d tokens: %s", mixture["tokens"], shares)


def _disable_cpu_shm_comm() -> None:
    # DeepSpeed JIT-compiles a shared-memory allreduce kernel on first CPU use (~2 min); it only speeds
    # up CPU collectives, and gloo is enough for CPU runs.
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


def _all_min(flag: int) -> int:
    t = torch.tensor([flag], dtype=torch.int64)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())


def _all_sum(values: list[float]) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()
