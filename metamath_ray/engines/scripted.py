"""The scripted engine: deterministic text from a Python function, registered like the others.

`engine.script` names a function `row -> str` as "module:function" (or a built-in script name).
It runs inside Ray Data workers exactly where a real engine would, so a pipeline test exercises the
whole graph (batching, streaming, judging, commits) with answers it chose in advance. Stop strings
are applied as vLLM applies them; token counts are whitespace-separated words.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any, Callable

from ray import cloudpickle

from metamath_ray.engines.registry import ReplicaPlan

if TYPE_CHECKING:
    from metamath_ray.engines.config import EngineConfig, SamplingConfig

Script = Callable[[dict[str, Any]], str]


def _gold(row: dict[str, Any]) -> str:
    """A correct-looking chain of thought for the row's expected (augment) or gold (evaluate) answer;
    rewrite requests (no answer in the row) get an empty text."""
    answer = row.get("expected") if row.get("expected") is not None else row.get("gold")
    return "" if answer is None else f"We work it out step by step.\nThe answer is: {answer}"


BUILTIN_SCRIPTS: dict[str, Script] = {"gold": _gold}


def truncate_at_stop(text: str, stop: list[str]) -> str:
    """Cut `text` at the first stop string (vLLM's semantics: the stop string is not kept)."""
    cut = len(text)
    for s in stop:
        if s:
            i = text.find(s)
            if 0 <= i < cut:
                cut = i
    return text[:cut]


def load_script(name: str) -> Script:
    if name in BUILTIN_SCRIPTS:
        return BUILTIN_SCRIPTS[name]
    module, sep, attr = name.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"engine.script {name!r}: use 'module:function' or one of {sorted(BUILTIN_SCRIPTS)}")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"engine.script {name!r} cannot be loaded: {e}") from None


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


class ScriptedGenerator:
    """A Ray Data UDF (`__call__`, one pass) and a long-lived replica (`generate`, any pass)."""

    def __init__(self, script: Script, stop: list[str] | None = None):
        self.script = script
        self.stop = stop or []

    def __call__(self, batch: dict) -> dict:
        n = len(batch["prompt"])
        rows = [{k: _plain(v[i]) for k, v in batch.items()} for i in range(n)]
        generated = self.generate(rows, stop=self.stop)
        out = dict(batch)
        for key in ("generated_text", "num_input_tokens", "num_generated_tokens"):
            out[key] = [g[key] for g in generated]
        return out

    def generate(self, rows: list[dict], sampling: SamplingConfig | None = None,
                 stop: list[str] | None = None) -> list[dict]:
        stop = list(sampling.stop) if sampling is not None else (stop or [])
        out = []
        for row in rows:
            text = truncate_at_stop(self.script(row), stop)
            out.append({**row, "generated_text": text, "num_input_tokens": len(str(row["prompt"]).split()),
                        "num_generated_tokens": len(text.split())})
        return out


def _loaded_script(engine: EngineConfig) -> Script:
    if not engine.script:
        raise ValueError("engine.kind=scripted needs engine.script ('module:function' or 'gold')")
    script = load_script(engine.script)  # a bad name fails here, on the driver, in one line
    # Workers need not import the script's module (a test file, a user's file next to the job):
    # ship its code with the function.
    module = sys.modules.get(script.__module__)
    if module is not None and not script.__module__.startswith("metamath_ray."):
        cloudpickle.register_pickle_by_value(module)
    return script


def scripted_replica(engine: EngineConfig) -> ReplicaPlan:
    """A replica holding the script. It reserves engine.num_gpus_per_replica where the cluster has
    GPUs, as a local engine would, so tests can watch GPU reservations come and go."""
    import ray

    gpus = engine.num_gpus_per_replica if ray.cluster_resources().get("GPU", 0) > 0 else 0
    return ReplicaPlan(ScriptedGenerator, {"script": _loaded_script(engine)}, {"num_cpus": 0, "num_gpus": gpus})


def build_scripted_stage(engine: EngineConfig, sampling: SamplingConfig) -> Callable:
    script = _loaded_script(engine)

    def stage(ds):
        return ds.map_batches(
            ScriptedGenerator, fn_constructor_kwargs={"script": script, "stop": list(sampling.stop)},
            batch_size=engine.batch_size, batch_format="numpy", concurrency=1,
        )

    return stage
