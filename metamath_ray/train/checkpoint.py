"""DeepSpeed checkpoints (sharded, resumable), where one-process runs keep them, and the
consolidated Hugging Face export.

A checkpoint is first written to a local folder by DeepSpeed (every rank its own ZeRO shards), then
copied to the run's storage: by Ray Train for Ray runs, by `CheckpointFolder` for one-process runs.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from metamath_ray import storage

TAG = "state"  # one DeepSpeed tag per checkpoint folder: each Ray checkpoint is self-contained
TRAINER_STATE = "trainer_state.json"
STEP_PREFIX = "step_"


def save_checkpoint(engine, local_dir: Path, trainer_state: dict, rank: int) -> None:
    """Every rank writes its own ZeRO shards; rank 0 adds the loop position in plain JSON."""
    engine.save_checkpoint(str(local_dir), tag=TAG, client_state={"trainer_state": trainer_state})
    if rank == 0:
        storage.write_json(str(local_dir / TRAINER_STATE), trainer_state, sort_keys=False)


def load_checkpoint(engine, local_dir: Path) -> dict:
    """Restore model, optimizer and scheduler state; returns the saved loop position."""
    _, client_state = engine.load_checkpoint(str(local_dir), tag=TAG)
    if client_state is None:
        raise RuntimeError(f"no DeepSpeed checkpoint under {local_dir}")
    return client_state["trainer_state"]


class CheckpointFolder:
    """`<run>/checkpoints/step_<8 digits>/` in storage (local or s3://): the one-process run's
    checkpoints. Zero-padded steps sort by name; only the newest `keep` are kept."""

    def __init__(self, root_uri: str, keep: int):
        self.root_uri, self.keep = root_uri, keep

    def _steps(self) -> list[str]:
        return [name for name in storage.list_dirs(self.root_uri) if name.startswith(STEP_PREFIX)]

    @contextlib.contextmanager
    def latest(self) -> Iterator[Path | None]:
        """The newest checkpoint copied into a temporary local folder (None when there is none)."""
        names = self._steps()
        if not names:
            yield None
            return
        with tempfile.TemporaryDirectory(prefix="mmr-resume-") as tmp:
            storage.download_dir(storage.join(self.root_uri, names[-1]), tmp)
            yield Path(tmp)

    def publish(self, local_dir: Path, step: int) -> str:
        """Copy a checkpoint written locally into storage, then drop all but the newest `keep`."""
        uri = storage.join(self.root_uri, f"{STEP_PREFIX}{step:08d}")
        storage.upload_dir(local_dir, uri)
        for old in self._steps()[: -self.keep]:
            storage.delete_dir(storage.join(self.root_uri, old))
        return uri


def gather_full_state_dict(engine, stage: int) -> dict | None:
    """The full (unsharded) state dict on rank 0, None elsewhere. Collective under ZeRO-3."""
    if stage == 3:
        return engine._zero3_consolidated_16bit_state_dict()  # gathers shard by shard, in training dtype
    import torch.distributed as dist

    if not dist.is_initialized() or dist.get_rank() == 0:
        return {k: v.detach().cpu() for k, v in engine.module.state_dict().items()}
    return None


def export_hf_model(model, state_dict: dict, tokenizer, out_dir: Path, *, cfg) -> Path:
    """Save a folder that transformers and vLLM load directly (safetensors + config + tokenizer).
    Runs on rank 0 with the gathered `state_dict`.

    With LoRA the adapter goes to adapter/ and, when `lora.merge_on_export` (not QLoRA), the merged
    full model is the main folder, so vLLM serves it without adapter support."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if not cfg.lora.enabled:
        model.save_pretrained(str(out_dir), state_dict=state_dict, safe_serialization=True)
        tokenizer.save_pretrained(str(out_dir))
        return out_dir

    from metamath_ray.models import resolve_model
    from metamath_ray.train.model import TORCH_DTYPES

    # A plain CPU copy of base + adapter: the training module's ZeRO-3 parameters are empty shells.
    peft_model = _cpu_peft_model(resolve_model(cfg.model), state_dict, cfg.lora)
    peft_model.save_pretrained(str(out_dir / "adapter"))
    tokenizer.save_pretrained(str(out_dir / "adapter"))
    if cfg.lora.merge_on_export and not cfg.lora.quantize_4bit:
        # Merged in fp32, saved in the training dtype (as a full fine-tune's export is).
        merged = peft_model.merge_and_unload().to(TORCH_DTYPES[cfg.dtype])
        merged.save_pretrained(str(out_dir), safe_serialization=True)
        tokenizer.save_pretrained(str(out_dir))
    return out_dir


def _cpu_peft_model(base_path: str, state_dict: dict, lora):
    """Base model (from its folder, fp32) + the trained adapter tensors of the gathered training state
    dict, on CPU. Only the adapter is taken from training: the base weights never changed, and under
    QLoRA the gathered ones are packed 4-bit. Fails loudly when an adapter tensor does not land: a
    silent miss would export the base model."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    from metamath_ray.train.model import lora_config

    unset_hf_deepspeed_config()
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32), lora_config(lora))
    adapter = {k: v.float() for k, v in state_dict.items() if "lora_" in k}
    result = peft_model.load_state_dict(adapter, strict=False)
    missing_lora = [k for k in result.missing_keys if "lora_" in k]
    if not adapter or result.unexpected_keys or missing_lora:
        raise RuntimeError(
            f"LoRA export: the trained state does not match the adapter model (unexpected "
            f"{result.unexpected_keys[:3]}, missing adapter weights {missing_lora[:3]})"
        )
    return peft_model


def consolidate_checkpoint(checkpoint_dir: Path, out_dir: Path, *, base_model: str) -> Path:
    """Offline export of a saved ZeRO checkpoint (e.g. of a crashed run) to a Hugging Face folder,
    through DeepSpeed's zero_to_fp32 (no GPUs, no process group needed)."""
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
    from transformers import AutoConfig, AutoModelForCausalLM

    from metamath_ray.models import resolve_model
    from metamath_ray.train.data import load_tokenizer

    state_dict = get_fp32_state_dict_from_zero_checkpoint(str(checkpoint_dir), tag=TAG)
    config = AutoConfig.from_pretrained(resolve_model(base_model))
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(state_dict, strict=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    load_tokenizer(base_model).save_pretrained(str(out_dir))
    return out_dir
