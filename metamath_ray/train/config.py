"""Training configuration. Defaults are MetaMath's full fine-tuning recipe (run.sh / the paper):
lr 2e-5, 3 epochs, global batch 128, cosine with 3% warm-up, weight decay 0, bf16, checkpoint every
1000 steps keeping 2. Two deliberate changes: max_length defaults to 1024 (MetaMath's 512 silently
cut long MATH answers) and over-long examples are dropped and counted instead of truncated.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from metamath_ray.templates import TemplateVariant

DEFAULT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class DeepSpeedSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage: Literal[0, 1, 2, 3] = 3
    offload_optimizer: bool = False  # optimizer states (and the step) on CPU
    offload_params: bool = False  # ZeRO-3 only: parameters on CPU between uses
    overlap_comm: bool = True
    # CPU-only runs: plain torch AdamW instead of DeepSpeed's compiled CPU Adam (no C++ build).
    torch_adam: bool | None = None  # None: True when not on GPU

    @model_validator(mode="after")
    def _offload_params_needs_stage3(self):
        if self.offload_params and self.stage != 3:
            raise ValueError("deepspeed.offload_params needs deepspeed.stage=3")
        return self


class LoraSettings(BaseModel):
    """LoRA / QLoRA through peft. MetaMath-70B used QLoRA with r=96, alpha=16."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    r: int = Field(96, ge=1)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(default_factory=lambda: list(DEFAULT_LORA_TARGETS))
    quantize_4bit: bool = False  # QLoRA: NF4 base weights via bitsandbytes (CUDA only)
    # Export a merged full model (what vLLM serves); the adapter is always saved next to it.
    merge_on_export: bool = True


class PretrainSource(BaseModel):
    """One raw-text source of a continued-pretraining mixture."""

    model_config = ConfigDict(extra="forbid")

    path: str  # a .parquet / .jsonl / .json file or a folder of them, local or s3://
    weight: float = Field(1.0, gt=0)  # relative share of training tokens (normalised over sources)
    text_column: str | None = None  # None: pretrain.text_column
    name: str | None = None  # label in the mixture report; None: the path's last part


class PretrainSettings(BaseModel):
    """objective=pretrain: raw text from `sources` (or `data` as one source), mixed by weight, packed."""

    model_config = ConfigDict(extra="forbid")

    sources: list[PretrainSource] = Field(default_factory=list)
    text_column: str = "text"

    def resolved_sources(self, data: str | None) -> list[PretrainSource]:
        """Sources with names and text columns filled in; `data` alone is a one-source mixture."""
        sources = self.sources or ([PretrainSource(path=data)] if data else [])
        return [
            s.model_copy(update={
                "name": s.name or s.path.rstrip("/").rsplit("/", 1)[-1],
                "text_column": s.text_column or self.text_column,
            })
            for s in sources
        ]


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # sft: prompt/response records, loss on responses. pretrain: raw text, loss on every token,
    # documents packed into full max_length sequences (LLEMMA-style continued pretraining).
    objective: Literal["sft", "pretrain"] = "sft"
    pretrain: PretrainSettings = Field(default_factory=PretrainSettings)

    # What and where
    model: str = "tiny"  # local HF folder, hub id, or "tiny"
    tokenizer: str | None = None  # defaults to the model's own
    # sft: augment run dir, Parquet dir/file, or MetaMathQA .json/.jsonl; pretrain: one text source
    # (when pretrain.sources is empty). Local or s3://.
    data: str | None = None
    output: str  # local path or s3:// URI; the run lives in <output>/<run_name>/
    run_name: str = "train"

    @field_validator("run_name")
    @classmethod
    def _safe_run_name(cls, value: str) -> str:
        from metamath_ray.storage import check_run_name

        return check_run_name(value)

    # Cluster
    num_workers: int = Field(1, ge=1)
    use_gpu: bool = False
    cpus_per_worker: int = Field(1, ge=1)

    # Sharding and numerics
    deepspeed: DeepSpeedSettings = Field(default_factory=DeepSpeedSettings)
    dtype: Literal["bf16", "fp16", "fp32"] = "bf16"
    gradient_checkpointing: bool = True
    attn_implementation: str = "sdpa"

    # Optimisation (MetaMath run.sh)
    lr: float = Field(2e-5, gt=0)
    epochs: int = Field(3, ge=1)
    max_steps: int | None = Field(None, ge=1)  # caps the optimizer steps (after epochs are planned)
    global_batch_size: int = Field(128, ge=1)
    micro_batch_size: int = Field(4, ge=1)
    warmup_ratio: float = Field(0.03, ge=0.0, le=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    lr_scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    lr_min_ratio: float = Field(0.0, ge=0.0, lt=1.0)  # decay floor as a fraction of lr (LLEMMA: 1/30)
    warmup_steps: int | None = Field(None, ge=0)  # overrides warmup_ratio when set (LLEMMA: 500)
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    max_grad_norm: float = Field(1.0, ge=0.0)  # 0 disables clipping
    seed: int = 42

    # Data
    max_length: int = Field(1024, ge=8)
    packing: bool = False
    template: TemplateVariant = "train"
    shuffle: bool = True

    # Checkpoints, recovery, export, logging
    checkpoint_every_steps: int = Field(1000, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    max_failures: int = Field(3, ge=-1)  # Ray Train FailureConfig; -1 retries forever
    export: bool = True
    log_every_steps: int = Field(1, ge=1)
    peak_tflops_per_worker: float | None = None  # for MFU; None: known GPU table, or a measured CPU matmul peak

    lora: LoraSettings = Field(default_factory=LoraSettings)

    @model_validator(mode="after")
    def _check(self):
        per_step = self.micro_batch_size * self.num_workers
        if self.global_batch_size % per_step:
            raise ValueError(
                f"global_batch_size={self.global_batch_size} is not a multiple of "
                f"micro_batch_size*num_workers={per_step}"
            )
        if self.lora.quantize_4bit and not self.lora.enabled:
            raise ValueError("lora.quantize_4bit (QLoRA) needs lora.enabled=true")
        if self.lora.quantize_4bit and not self.use_gpu:
            raise ValueError("lora.quantize_4bit (QLoRA) needs use_gpu=true: bitsandbytes 4-bit is CUDA only")
        if self.dtype == "fp16" and not self.use_gpu:
            raise ValueError("dtype=fp16 needs use_gpu=true; use bf16 or fp32 on CPU")
        if self.objective == "sft":
            if not self.data:
                raise ValueError("data is required (training records: augment run, Parquet or MetaMathQA JSON)")
            if self.pretrain.sources:
                raise ValueError("pretrain.sources is only used with objective=pretrain")
        else:
            if not self.pretrain.sources and not self.data:
                raise ValueError("objective=pretrain needs pretrain.sources (or data as a single source)")
            if self.pretrain.sources and self.data:
                raise ValueError("objective=pretrain: give either data or pretrain.sources, not both")
            if self.max_steps is None:
                # The mixture repeats sources as their weights ask, so the data never sets the length.
                raise ValueError("objective=pretrain needs max_steps (tokens = max_steps * global_batch_size * max_length)")
            names = [s.name for s in self.pretrain.resolved_sources(self.data)]
            if len(set(names)) != len(names):
                raise ValueError(f"pretrain.sources: names must be unique, got {names}; set name: for each")
        return self

    @property
    def grad_accum_steps(self) -> int:
        return self.global_batch_size // (self.micro_batch_size * self.num_workers)

    @property
    def run_uri(self) -> str:
        return join_uri(self.output, self.run_name)


def join_uri(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])
