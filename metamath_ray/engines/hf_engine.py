"""The transformers `generate` engine in a Ray Data actor pool: the CPU/GPU fallback."""

from __future__ import annotations

import hashlib
from typing import Callable

from metamath_ray.engines.chat import ChatPlan, plan_chat
from metamath_ray.engines.config import EngineConfig, SamplingConfig
from metamath_ray.engines.registry import ReplicaPlan
from metamath_ray.engines.scripted import truncate_at_stop
from metamath_ray.models import resolve_model


class HFGenerator:
    """One replica: a model on this actor's device, generating a batch of prompts at a time; a Ray
    Data UDF (`__call__`, with the sampling it was built with) or a long-lived replica (`generate`,
    with each call's sampling)."""

    def __init__(self, model_path: str, engine: EngineConfig, sampling: SamplingConfig | None = None,
                 chat: ChatPlan | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.sampling = sampling
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = {
            "auto": torch.bfloat16 if self.device == "cuda" else torch.float32,
            "bfloat16": torch.bfloat16,
            "float16": torch.float16,
            "float32": torch.float32,
        }[engine.dtype]
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.tokenizer.padding_side = "left"  # decoder-only: pad on the left so outputs line up
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.unk_token or self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(
            model_path, dtype=dtype, **engine.engine_kwargs
        ).to(self.device)
        self.model.eval()
        self.max_model_len = engine.max_model_len
        self.chat = chat

    def generate(self, rows: list[dict], sampling: SamplingConfig) -> list[dict]:
        keys = list(dict.fromkeys(k for r in rows for k in r))
        out = self._generate({k: [r.get(k) for r in rows] for k in keys}, sampling)
        added = ("generated_text", "num_input_tokens", "num_generated_tokens")
        return [{**row, **{k: out[k][i] for k in added}} for i, row in enumerate(rows)]

    def __call__(self, batch: dict) -> dict:
        return self._generate(batch, self.sampling)

    def _generate(self, batch: dict, sampling: SamplingConfig) -> dict:
        torch = self.torch
        prompts = [str(p) for p in batch["prompt"]]
        if self.chat is not None:  # the model sees the templated text; the row keeps its prompt
            prompts = [self.chat.render(self.tokenizer, p) for p in prompts]
        seeds = [int(s) for s in batch.get("sample_seed", [0] * len(prompts))]
        default = sampling.max_tokens
        # Rows without their own budget carry None/NaN here (mixed columns in one batch).
        limits = [
            default if v is None or v != v else int(v)
            for v in batch.get("max_tokens", [None] * len(prompts))
        ]
        max_new = max(limits)
        enc = self.tokenizer(
            prompts, return_tensors="pt", padding=True, truncation=True,
            max_length=max(1, self.max_model_len - max_new),
        ).to(self.device)
        # One generator per batch, seeded from the rows' seeds: reproducible for the same batch.
        digest = hashlib.sha256(",".join(map(str, seeds)).encode()).digest()
        torch.manual_seed(int.from_bytes(digest[:4], "big"))
        greedy = sampling.temperature == 0
        with torch.inference_mode():
            out = self.model.generate(
                **enc,
                max_new_tokens=max_new,
                do_sample=not greedy,
                temperature=None if greedy else sampling.temperature,
                top_p=None if greedy else sampling.top_p,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.tokenizer.eos_token_id,
            )
        new_tokens = out[:, enc["input_ids"].shape[1]:]
        texts, counts = [], []
        for i, row in enumerate(new_tokens):
            ids = row.tolist()
            ids = ids[: limits[i]]
            if self.tokenizer.eos_token_id in ids:
                ids = ids[: ids.index(self.tokenizer.eos_token_id) + 1]
            counts.append(len(ids))
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            texts.append(truncate_at_stop(text, sampling.stop))
        batch = dict(batch)
        batch["generated_text"] = texts
        batch["num_input_tokens"] = enc["attention_mask"].sum(dim=1).tolist()
        batch["num_generated_tokens"] = counts
        return batch


def hf_replica(engine: EngineConfig) -> ReplicaPlan:
    """A replica holding the model; on a GPU where the cluster has them, else on one CPU."""
    import ray

    model_path = resolve_model(engine.model)
    chat = plan_chat(engine, model_path)  # on the driver: a model without a template fails here
    has_gpus = ray.cluster_resources().get("GPU", 0) > 0
    gpus = engine.num_gpus_per_replica if has_gpus else 0
    return ReplicaPlan(HFGenerator, dict(model_path=model_path, engine=engine, chat=chat),
                       {"num_gpus": gpus, "num_cpus": 0 if gpus else 1})


def build_hf_stage(engine: EngineConfig, sampling: SamplingConfig) -> Callable:
    model_path = resolve_model(engine.model)
    chat = plan_chat(engine, model_path)  # on the driver: a model without a template fails here
    use_gpu = engine.num_gpus_per_replica > 0

    def stage(ds):
        import ray

        # Ask for GPUs only where the cluster has them (the driver may sit on a CPU-only head).
        has_gpus = ray.cluster_resources().get("GPU", 0) > 0
        # Fault tolerance comes from Ray Data's actor pool (Ray 2.60: max_restarts=-1 and
        # max_task_retries=-1 by default; map_batches' remote-args kwargs are deprecated): a
        # crashed engine actor is restarted and its in-flight batches re-run on the new process,
        # same rows and seeds, so the same text. tests/pipeline/test_faults.py kills one mid-run.
        return ds.map_batches(
            HFGenerator,
            fn_constructor_kwargs=dict(model_path=model_path, engine=engine, sampling=sampling, chat=chat),
            batch_size=engine.batch_size,
            batch_format="numpy",
            concurrency=engine.replicas,
            num_gpus=engine.num_gpus_per_replica if use_gpu and has_gpus else 0,
        )

    return stage
