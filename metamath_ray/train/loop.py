"""The training loop, shared by Ray Train workers and the one-process run.

Where data comes from, where checkpoints go and how results are reported differ between the two;
`WorkerIO` is that difference. Everything else (DeepSpeed engine, schedule, resume position, step
metrics, export) is here once.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist

from metamath_ray.train import checkpoint as ckpt
from metamath_ray.train.config import TrainConfig
from metamath_ray.train.data import batch_token_count, load_tokenizer, micro_batches
from metamath_ray.train.metrics import (
    StepLog,
    device_peak_tflops,
    flops_per_token,
    lr_multiplier,
    mfu,
    warmup_steps_for,
)


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


def run_worker(cfg: TrainConfig, io: WorkerIO, *, steps_per_epoch: int) -> dict:
    """Train on this rank until the planned steps are done or data runs out; returns the summary
    (rank 0's is the one that counts)."""
    import deepspeed
    from transformers.integrations import HfDeepSpeedConfig

    from metamath_ray.models import resolve_model
    from metamath_ray.train.model import deepspeed_config, load_model

    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    if not cfg.use_gpu:
        _disable_cpu_shm_comm()
    device = torch.device("cpu")
    if cfg.use_gpu:
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    deepspeed.init_distributed(dist_backend="nccl" if cfg.use_gpu else "gloo")

    rank, world = io.rank, io.world_size
    ds_config = deepspeed_config(cfg, world)
    # Must outlive from_pretrained (and stay alive during training) for ZeRO-3 partitioned loading.
    hf_ds_config = HfDeepSpeedConfig(ds_config) if cfg.deepspeed.stage == 3 else None
    model_path = resolve_model(cfg.model)
    tokenizer = load_tokenizer(cfg.tokenizer or cfg.model)
    model = load_model(cfg, model_path)

    total_steps = epochs_total = cfg.epochs * steps_per_epoch
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    warmup = warmup_steps_for(total_steps, cfg.warmup_ratio, cfg.warmup_steps)

    def scheduler(optimizer):
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_multiplier(s, total_steps, warmup, cfg.lr_scheduler, cfg.lr_min_ratio)
        )

    engine, _, _, _ = deepspeed.initialize(
        model=model,
        model_parameters=[p for p in model.parameters() if p.requires_grad],
        config=ds_config,
        lr_scheduler=scheduler,
    )

    state = {"step": 0, "epoch": 0, "step_in_epoch": 0, "tokens_seen": 0}
    with io.latest_checkpoint() as resume_dir:
        if resume_dir is not None:
            state = ckpt.load_checkpoint(engine, resume_dir)
    resumed_from = state["step"]
    if rank == 0 and resumed_from:
        print(f"[train] resumed from step {resumed_from} (epoch {state['epoch']})", flush=True)
    # Every start of the loop (first run, re-submit, worker-failure restart) is kept in attempts.jsonl,
    # so restarts are visible in the run's own data, not only in logs.
    attempts = io.record_attempt(resumed_from) if rank == 0 else []

    accum = ds_config["gradient_accumulation_steps"]
    pad_id = tokenizer.pad_token_id
    peak = device_peak_tflops(cfg.use_gpu, cfg.peak_tflops_per_worker)
    log = StepLog(total_steps, io.previous_log(resumed_from) if rank == 0 else [])
    step, tokens_seen = state["step"], state["tokens_seen"]
    last_saved = resumed_from
    run_tokens, run_time = 0, 0.0

    def save(epoch: int, step_in_epoch: int) -> None:
        nonlocal last_saved
        trainer_state = {"step": step, "epoch": epoch, "step_in_epoch": step_in_epoch, "tokens_seen": tokens_seen}
        with tempfile.TemporaryDirectory(prefix="mmr-ckpt-") as tmp:
            ckpt.save_checkpoint(engine, Path(tmp), trainer_state, rank)
            io.report({"step": step, "loss": log.records[-1]["loss"] if log.records else float("nan")},
                      Path(tmp), log if rank == 0 else None)
        last_saved = step

    engine.train()
    epoch, step_in_epoch = state["epoch"], state["step_in_epoch"]
    while epoch < cfg.epochs and step < total_steps:
        batches: Iterator[dict] = micro_batches(
            # Pretraining examples are already full packed sequences (see train/pretrain.py).
            io.examples(epoch), micro_batch_size=cfg.micro_batch_size,
            packing=cfg.packing and cfg.objective == "sft",
            max_length=cfg.max_length, pad_id=pad_id,
        )
        # Resume mid-epoch: pass over the micro-batches the saved run already trained on.
        for _ in range(step_in_epoch * accum):
            next(batches, None)
        exhausted = False
        while step_in_epoch < steps_per_epoch and step < total_steps:
            t0 = time.perf_counter()
            losses, tokens, width = [], 0, 0
            for _ in range(accum):
                batch = next(batches, None)
                # Every rank must take the same number of steps: stop together when any rank runs dry.
                if not _all_min(int(batch is not None)):
                    exhausted = True
                    break
                batch = {k: v.to(device) for k, v in batch.items()}
                # No KV cache: with one, transformers would not derive the packed-sequence mask.
                out = engine(**batch, use_cache=False)
                engine.backward(out.loss)
                engine.step()
                losses.append(float(out.loss.detach()))
                tokens += batch_token_count(batch, pad_id)
                width = max(width, batch["input_ids"].shape[1])
            if exhausted:
                break
            lr = lr_multiplier(step, total_steps, warmup, cfg.lr_scheduler, cfg.lr_min_ratio) * cfg.lr
            loss_sum, tok_sum, n_losses = _all_sum([sum(losses), float(tokens), float(len(losses))])
            step += 1
            step_in_epoch += 1
            dt = time.perf_counter() - t0
            tokens_seen += int(tok_sum)
            run_tokens += int(tok_sum)
            run_time += dt
            if rank == 0:
                tps = tok_sum / dt
                log.log({
                    "step": step, "epoch": epoch, "loss": loss_sum / n_losses, "lr": lr,
                    "tokens": int(tok_sum), "tokens_per_s": tps, "step_time_s": dt,
                    "mfu": mfu(tps, flops_per_token(engine.module.config, width), peak, world),
                    "tokens_seen": tokens_seen,
                }, echo=step % cfg.log_every_steps == 0 or step == total_steps)
            if step % cfg.checkpoint_every_steps == 0 and step < total_steps:
                save(epoch, step_in_epoch)
        if exhausted and rank == 0:
            print(f"[train] epoch {epoch} ran out of data after {step_in_epoch} steps", flush=True)
        if not exhausted and step_in_epoch < steps_per_epoch:
            break  # stopped by max_steps mid-epoch: a later run with more steps continues this epoch
        epoch, step_in_epoch = epoch + 1, 0

    if step > last_saved:
        save(epoch, step_in_epoch)

    summary = {
        "steps": step,
        "planned_steps": total_steps,
        "steps_per_epoch": steps_per_epoch,
        "epochs_planned_steps": epochs_total,
        "resumed_from_step": resumed_from,
        "attempts": attempts,
        "tokens_seen": tokens_seen,
        "tokens_per_s": run_tokens / run_time if run_time else 0.0,
        "final_loss": log.records[-1]["loss"] if log.records else None,
        "world_size": world,
    }
    # objective=pretrain: the realised data mixture (a collective: every rank calls it).
    mixture = io.data_summary() if hasattr(io, "data_summary") else None
    if mixture:
        summary["mixture"] = mixture
        if rank == 0:
            shares = ", ".join(f"{k} {v['realised_share']:.3f} (target {v['target_share']:.3f}, {v['passes']} pass)"
                               for k, v in mixture["sources"].items())
            print(f"[train] data mixture over {mixture['tokens']} tokens: {shares}", flush=True)
    if cfg.export:
        state_dict = ckpt.gather_full_state_dict(engine, cfg.deepspeed.stage)
        if rank == 0:
            with tempfile.TemporaryDirectory(prefix="mmr-export-") as tmp:
                ckpt.export_hf_model(engine.module, state_dict, tokenizer, Path(tmp), cfg=cfg)
                summary["model_uri"] = io.publish_model(Path(tmp))
        dist.barrier()
    del hf_ds_config
    return summary
