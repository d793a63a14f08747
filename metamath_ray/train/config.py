"""Training configuration. Defaults are MetaMath's full fine-tuning recipe (run.sh / the paper):
lr 2e-5, 3 epochs, global batch 128, cosine with 3% warm-up, weight decay 0, bf16, checkpoint every
1000 steps keeping 2, and MetaMath's prompt and tokenisation (template=metamath). Two deliberate
changes: max_length defaults to 1024 (MetaMath's 512 silently cut long MATH answers) and over-long
examples are dropped and counted instead of truncated (truncate=true, max_length=512 restores both).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from metamath_ray.config import RayConfig
from metamath_ray.storage import RunName, join
from metamath_ray.templates import TemplateVariant

DEFAULT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class DeepSpeedSettings(BaseModel):
    """How DeepSpeed shards and offloads the model and optimizer across the training workers."""

    model_config = ConfigDict(extra="forbid")

    stage: Literal[0, 1, 2, 3] = Field(
        3, description="ZeRO stage: 0 none, 1 optimizer states, 2 + gradients, 3 + parameters sharded across workers"
    )
    offload_optimizer: bool = Field(False, description="keep optimizer states (and the optimizer step) on CPU")
    offload_params: bool = Field(False, description="ZeRO-3 only: keep parameters on CPU between uses")
    overlap_comm: bool = Field(True, description="overlap gradient communication with the backward pass")
    torch_adam: bool | None = Field(
        None,
        description="plain torch AdamW instead of DeepSpeed's compiled CPU Adam (no C++ build); "
        "null: true when not on GPU",
    )

    @model_validator(mode="after")
    def _offload_params_needs_stage3(self):
        if self.offload_params and self.stage != 3:
            raise ValueError("deepspeed.offload_params needs deepspeed.stage=3")
        return self


class LoraSettings(BaseModel):
    """LoRA / QLoRA through peft. MetaMath-70B used QLoRA with r=96, alpha=16."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="train LoRA adapters instead of every weight")
    r: int = Field(96, ge=1, description="rank of the LoRA update matrices")
    alpha: int = Field(16, ge=1, description="LoRA scaling numerator (the update is scaled by alpha / r)")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="dropout on the LoRA input")
    target_modules: list[str] = Field(
        default_factory=lambda: list(DEFAULT_LORA_TARGETS),
        description="names of the linear layers that get adapters (default: every attention and MLP projection)",
    )
    quantize_4bit: bool = Field(False, description="QLoRA: NF4 base weights via bitsandbytes (CUDA only)")
    merge_on_export: bool = Field(
        True,
        description="export a merged full model (what vLLM serves) as the main folder; "
        "the adapter is always saved in adapter/ next to it",
    )


class PretrainSource(BaseModel):
    """One raw-text source of a continued-pretraining mixture."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(..., description="a .parquet / .jsonl / .json file or a folder of them, local or s3://")
    weight: float = Field(1.0, gt=0, description="relative share of training tokens (normalised over the sources)")
    text_column: str | None = Field(None, description="column holding the text; null: pretrain.text_column")
    name: str | None = Field(None, description="label in the mixture report; null: the path's last part")


class PretrainSettings(BaseModel):
    """objective=pretrain: raw text from `sources` (or `data` as one source), mixed by weight, packed."""

    model_config = ConfigDict(extra="forbid")

    sources: list[PretrainSource] = Field(
        default_factory=list, description="the mixture's sources; empty: `data` is the single source"
    )
    text_column: str = Field("text", description="text column of every source that names none")

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
    """`metamath-ray train`: fine-tune (or continue pretraining) a causal LM with Ray Train + DeepSpeed."""

    model_config = ConfigDict(extra="forbid")

    # What to train on
    objective: Literal["sft", "pretrain"] = Field(
        "sft",
        description="sft: prompt/response records, loss on the responses; pretrain: raw text, loss on every "
        "token, documents packed into full max_length sequences (LLEMMA-style continued pretraining)",
    )
    pretrain: PretrainSettings = Field(default_factory=PretrainSettings, description="objective=pretrain only")
    model: str = Field("tiny", description="local Hugging Face folder, hub id, or 'tiny' (a tiny random LLaMA)")
    tokenizer: str | None = Field(None, description="tokenizer folder or hub id; null: the model's own")
    data: str | None = Field(
        None,
        description="sft: augment run folder, Parquet folder/file, or MetaMathQA .json/.jsonl; pretrain: one "
        "text source (when pretrain.sources is empty). Local or s3://",
    )
    output: str = Field(..., description="local folder or s3://bucket/prefix; the run lives in <output>/<run_name>/")
    run_name: RunName = Field("train", description="re-running the same name resumes from its latest checkpoint")

    # Cluster
    ray: RayConfig = Field(default_factory=RayConfig, description="where the job runs (local Ray on loopback by default)")
    num_workers: int = Field(1, ge=1, description="Ray Train workers (one per GPU on a GPU cluster)")
    use_gpu: bool = Field(False, description="one GPU per worker; false trains on CPU (gloo, fp32/bf16)")
    cpus_per_worker: int = Field(1, ge=1, description="CPUs each worker reserves (also its OMP_NUM_THREADS)")

    # Sharding and numerics
    deepspeed: DeepSpeedSettings = Field(default_factory=DeepSpeedSettings, description="ZeRO stage and offload")
    dtype: Literal["bf16", "fp16", "fp32"] = Field("bf16", description="training precision (fp16 needs GPUs)")
    gradient_checkpointing: bool = Field(True, description="recompute activations in the backward pass to save memory")
    attn_implementation: str = Field("sdpa", description="transformers attention kernel: sdpa, eager, flash_attention_2")

    # Optimisation (MetaMath run.sh)
    lr: float = Field(2e-5, gt=0, description="peak learning rate")
    epochs: int = Field(3, ge=1, description="passes over the kept training examples (sft)")
    max_steps: int | None = Field(
        None, ge=1, description="caps the optimizer steps after the epochs are planned; required for pretrain"
    )
    global_batch_size: int = Field(
        128, ge=1, description="examples per optimizer step over all workers (a multiple of micro_batch_size * num_workers)"
    )
    micro_batch_size: int = Field(4, ge=1, description="examples (or packed sequences) per worker per forward pass")
    warmup_ratio: float = Field(0.03, ge=0.0, le=1.0, description="linear warm-up as a fraction of the planned steps")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay")
    lr_scheduler: Literal["cosine", "linear", "constant"] = Field("cosine", description="decay after the warm-up")
    lr_min_ratio: float = Field(
        0.0, ge=0.0, lt=1.0, description="decay floor as a fraction of lr (MetaMath 0; LLEMMA 1/30)"
    )
    warmup_steps: int | None = Field(
        None, ge=0, description="warm-up in optimizer steps; overrides warmup_ratio when set (LLEMMA: 500)"
    )
    adam_beta1: float = Field(0.9, description="AdamW beta1")
    adam_beta2: float = Field(0.999, description="AdamW beta2")
    adam_eps: float = Field(1e-8, description="AdamW epsilon")
    max_grad_norm: float = Field(1.0, ge=0.0, description="gradient clipping norm; 0 disables clipping")
    seed: int = Field(42, description="seeds model init, shuffling and the pretraining mixture")

    # Data
    max_length: int = Field(
        1024, ge=8, description="tokens per example; longer sft examples are dropped and counted (see truncate)"
    )
    truncate: bool = Field(
        False,
        description="sft: cut examples longer than max_length instead of dropping them, as MetaMath's "
        "train_math.py did (max_length 512 there; the end of the response and the EOS are lost)",
    )
    packing: bool = Field(False, description="sft: pack several examples into one max_length sequence")
    template: TemplateVariant = Field(
        "metamath",
        description="metamath: MetaMath's train_math.py (a multi-line query's first line is the Alpaca "
        "instruction, the rest its input; prompt+response tokenised as one string); train: the Alpaca "
        "no-input prompt around the whole query, prompt tokenised as evaluation tokenises it",
    )
    shuffle: bool = Field(True, description="shuffle the examples (seeded, per epoch)")

    # Checkpoints, recovery, export, logging
    checkpoint_every_steps: int = Field(1000, ge=1, description="save a sharded checkpoint every N optimizer steps")
    keep_checkpoints: int = Field(2, ge=1, description="newest checkpoints kept in storage")
    max_failures: int = Field(
        3, ge=-1, description="worker failures Ray Train recovers from (restarting at the latest checkpoint); -1: forever"
    )
    export: bool = Field(True, description="write a consolidated Hugging Face model folder (model/) at the end")
    log_every_steps: int = Field(1, ge=1, description="log a progress line every N steps (every step is in train_log.jsonl)")
    peak_tflops_per_worker: float | None = Field(
        None, description="MFU denominator; null: the known GPU's data-sheet peak, or a measured CPU matmul peak"
    )

    lora: LoraSettings = Field(default_factory=LoraSettings, description="LoRA / QLoRA instead of full fine-tuning")

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
        return join(self.output, self.run_name)
