"""Model construction and the DeepSpeed config derived from a TrainConfig."""

from __future__ import annotations

import torch

from metamath_ray.train.config import LoraSettings, TrainConfig

TORCH_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def deepspeed_config(cfg: TrainConfig, world_size: int) -> dict:
    ds = cfg.deepspeed
    torch_adam = ds.torch_adam if ds.torch_adam is not None else not cfg.use_gpu
    zero: dict = {"stage": ds.stage, "overlap_comm": ds.overlap_comm}
    if ds.stage == 3:
        # Lets the export gather full weights shard by shard onto rank 0.
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    if ds.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": cfg.use_gpu}
    if ds.offload_params:
        zero["offload_param"] = {"device": "cpu", "pin_memory": cfg.use_gpu}
    accum = cfg.global_batch_size // (cfg.micro_batch_size * world_size)
    return {
        "train_micro_batch_size_per_gpu": cfg.micro_batch_size,
        "gradient_accumulation_steps": accum,
        "train_batch_size": cfg.micro_batch_size * accum * world_size,
        "zero_optimization": zero,
        "bf16": {"enabled": cfg.dtype == "bf16"},
        "fp16": {"enabled": cfg.dtype == "fp16"},
        "gradient_clipping": cfg.max_grad_norm,
        "optimizer": {
            "type": "AdamW",
            "params": {
                "lr": cfg.lr,
                "betas": [cfg.adam_beta1, cfg.adam_beta2],
                "eps": cfg.adam_eps,
                "weight_decay": cfg.weight_decay,
                "torch_adam": torch_adam,
            },
        },
        "steps_per_print": 10**9,  # our own step log reports progress
        "wall_clock_breakdown": False,
    }


def lora_config(lora: LoraSettings):
    from peft import LoraConfig

    return LoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules), task_type="CAUSAL_LM",
    )


def load_model(cfg: TrainConfig, model_path: str):
    """The causal LM to train. Under ZeRO-3 an `HfDeepSpeedConfig` must already be alive, so that
    `from_pretrained` builds the model partitioned across ranks instead of whole on each one."""
    from transformers import AutoModelForCausalLM

    kwargs = {"dtype": TORCH_DTYPES[cfg.dtype], "attn_implementation": cfg.attn_implementation}
    if cfg.lora.quantize_4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=TORCH_DTYPES[cfg.dtype],
            # Stored in the training dtype so ZeRO-3 can shard the quantized weights like any other.
            bnb_4bit_quant_storage=TORCH_DTYPES[cfg.dtype],
        )
    model = AutoModelForCausalLM.from_pretrained(model_path, **kwargs)
    model.config.use_cache = False  # no KV cache while training
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.lora.enabled:
        from peft import get_peft_model, prepare_model_for_kbit_training

        if cfg.lora.quantize_4bit:
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
        elif cfg.gradient_checkpointing:
            model.enable_input_require_grads()  # checkpointed blocks need an input that requires grad
        model = get_peft_model(model, lora_config(cfg.lora))
    return model
