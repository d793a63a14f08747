"""Step metrics: learning-rate schedule, FLOPs per token, MFU, and the JSON-lines step log."""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from metamath_ray.train.config import TrainConfig

logger = logging.getLogger(__name__)

# Dense bf16 peak TFLOPS per device (vendor data sheets), matched on a substring of the device name.
GPU_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10G": 70.0}


def lr_multiplier(step: int, total_steps: int, warmup_steps: int, kind: str, min_ratio: float = 0.0) -> float:
    """Multiplier for optimizer step `step` (0-based), as transformers' schedulers define it:
    linear warm-up from 0, then cosine/linear decay to `min_ratio` at `total_steps`; clamped past
    the end. min_ratio 0 is MetaMath's (and transformers') decay to 0; LLEMMA decays to 1/30."""
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    if kind == "constant":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if kind == "cosine":
        decay = 0.5 * (1.0 + math.cos(math.pi * progress))
    elif kind == "linear":
        decay = 1.0 - progress
    else:
        raise ValueError(f"unknown lr_scheduler {kind!r}")
    return min_ratio + (1.0 - min_ratio) * decay


def warmup_steps_for(total_steps: int, warmup_ratio: float, warmup_steps: int | None = None) -> int:
    if warmup_steps is not None:  # an absolute count wins, as in transformers' TrainingArguments
        return min(warmup_steps, total_steps)
    return math.ceil(total_steps * warmup_ratio)  # transformers' TrainingArguments.get_warmup_steps


@dataclass
class Schedule:
    """How many optimizer steps this run takes and the learning rate of each."""

    cfg: TrainConfig
    steps_per_epoch: int

    def __post_init__(self) -> None:
        self.epochs_total = self.cfg.epochs * self.steps_per_epoch
        self.total_steps = min(self.epochs_total, self.cfg.max_steps or self.epochs_total)
        self.warmup = warmup_steps_for(self.total_steps, self.cfg.warmup_ratio, self.cfg.warmup_steps)

    def multiplier(self, step: int) -> float:
        """Learning-rate multiplier for optimizer step `step` (0-based)."""
        return lr_multiplier(step, self.total_steps, self.warmup, self.cfg.lr_scheduler, self.cfg.lr_min_ratio)


def flops_per_token(model_config, seq_len: int) -> float:
    """Training FLOPs per token: 6 x (parameters doing matmuls) + attention (PaLM appendix B):
    12 * layers * hidden * seq_len. The input embedding is a lookup, not a matmul, so it is left out.
    Gradient-checkpointing recomputation is not counted (MFU, not hardware utilisation)."""
    h = model_config.hidden_size
    layers = model_config.num_hidden_layers
    inter = model_config.intermediate_size
    heads = model_config.num_attention_heads
    kv_heads = getattr(model_config, "num_key_value_heads", None) or heads
    head_dim = getattr(model_config, "head_dim", None) or h // heads
    attn = h * heads * head_dim * 2 + h * kv_heads * head_dim * 2  # q, o + k, v
    mlp = 3 * h * inter  # gate, up, down
    matmul_params = layers * (attn + mlp) + h * model_config.vocab_size  # + lm_head
    return 6.0 * matmul_params + 12.0 * layers * heads * head_dim * seq_len


_cpu_peak_cache: dict[int, float] = {}


def measured_cpu_peak_tflops(size: int = 512, seconds: float = 0.3) -> float:
    """Achievable fp32 matmul TFLOPS of this process's CPU threads: the MFU denominator on CPU,
    where no data-sheet peak applies. Measured once per thread count."""
    threads = torch.get_num_threads()
    if threads not in _cpu_peak_cache:
        a, b = torch.randn(size, size), torch.randn(size, size)
        torch.mm(a, b)
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            torch.mm(a, b)
            n += 1
        _cpu_peak_cache[threads] = 2 * size**3 * n / (time.perf_counter() - start) / 1e12
    return _cpu_peak_cache[threads]


def device_peak_tflops(use_gpu: bool, override: float | None = None) -> float:
    if override:
        return override
    if use_gpu and torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        for key, tflops in GPU_PEAK_TFLOPS.items():
            if key in name:
                return tflops
        return float("nan")  # unknown device: report MFU as NaN rather than a made-up figure
    return measured_cpu_peak_tflops()


def mfu(tokens_per_s: float, flops_per_tok: float, peak_tflops_per_device: float, num_devices: int) -> float:
    return tokens_per_s * flops_per_tok / (peak_tflops_per_device * 1e12 * num_devices)


class StepLog:
    """Rank-0 step log: logs a progress line and keeps JSON-lines records for the run output."""

    def __init__(self, total_steps: int, previous: list[dict] | None = None):
        self.total_steps = total_steps
        self.records: list[dict] = list(previous or [])

    def log(self, record: dict, echo: bool = True) -> None:
        self.records.append(record)
        if echo:
            logger.info(
                "step %d/%d loss %.4f lr %.3g tok/s %.0f mfu %.2f%%",
                record["step"], self.total_steps, record["loss"], record["lr"], record["tokens_per_s"],
                100 * record["mfu"],
            )

    def to_jsonl(self) -> str:
        return "".join(json.dumps(r) + "\n" for r in self.records)

    @staticmethod
    def from_jsonl(text: str, up_to_step: int) -> list[dict]:
        """Records of an earlier attempt, cut at the step a resumed run restarts from."""
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        return [r for r in rows if r.get("step", 0) <= up_to_step]
