"""Seed loading: GSM8K and MATH from JSONL/JSON/Parquet (local or s3://), HF datasets, or the
bundled samples, normalised to the seed contract. Bad rows become quarantine rows with a reason;
they never stop a run.

Seed row: seed_id, dataset, question, solution, answer, level, type.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Iterable

from metamath_ray.answers import extract_boxed, extract_gsm8k_gold
from metamath_ray.answers.gold import gold_problem

SEED_FIELDS = ("seed_id", "dataset", "question", "solution", "answer", "level", "type")
BUNDLED = {
    "bundled:gsm8k": ("gsm8k_train_sample.jsonl", "gsm8k"),
    "bundled:math": ("math_train_sample.jsonl", "math"),
}
MAX_SOLUTION_CHARS = 20_000
MAX_ANSWER_CHARS = 500


class SeedSourceError(ValueError):
    """The source itself cannot be read (missing file, unknown format): a one-line user error."""


@dataclass
class LoadedSeeds:
    seeds: list[dict] = field(default_factory=list)
    quarantine: list[dict] = field(default_factory=list)
    rows_read: int = 0


def _quarantine(source: str, index: int, reason: str, row: Any, detail: str = "") -> dict:
    try:
        raw = json.dumps(row, ensure_ascii=False, default=repr)
    except (TypeError, ValueError, RecursionError):
        try:
            raw = repr(row)
        except RecursionError:  # nested too deeply to print: say so
            raw = f"<{type(row).__name__} nested too deeply to show>"
    # Lone surrogates (JSON "\\ud800") cannot be encoded as UTF-8 for the quarantine Parquet.
    raw = raw[:2000].encode("utf-8", "backslashreplace").decode("utf-8")
    source = str(source).encode("utf-8", "backslashreplace").decode("utf-8")
    detail = detail[:500].encode("utf-8", "backslashreplace").decode("utf-8")
    return {"source": source, "row_index": index, "reason": reason, "raw": raw, "detail": detail}


def _clean_text(value: Any, name: str) -> tuple[str | None, str | None]:
    """Return (text, None) or (None, reason)."""
    if value is None:
        return None, f"missing_{name}"
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return None, f"invalid_utf8_{name}"
    if not isinstance(value, str):
        return None, f"wrong_type_{name}"
    if "\ufffd" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        return None, f"invalid_utf8_{name}"
    if "\x00" in value:
        return None, f"control_chars_{name}"
    text = value.strip()
    if not text:
        return None, f"empty_{name}"
    return text, None


def infer_dataset(row: dict) -> str | None:
    # By present values, not keys: a Parquet file mixing GSM8K and MATH rows has every column
    # in every row (null where the row's dataset lacks it).
    if row.get("problem") is not None or row.get("level") is not None:
        return "math"
    if "question" in row and "answer" in row:
        ans = row.get("answer")
        return "gsm8k" if isinstance(ans, str) and "####" in ans else None
    return None


def _math_type_slug(type_name: str) -> str:
    return type_name.strip().lower().replace(" & ", "_and_").replace(" ", "_") or "unknown"


def normalize_row(
    row: Any, *, index: int, source: str, dataset: str | None, split: str, max_question_chars: int
) -> tuple[dict | None, dict | None]:
    """One raw row -> (seed, None) or (None, quarantine row)."""
    if not isinstance(row, dict):
        return None, _quarantine(source, index, "not_an_object", row)
    ds = dataset or infer_dataset(row)
    if ds not in ("gsm8k", "math"):
        return None, _quarantine(source, index, "unknown_dataset", row)
    q_key = "question" if ds == "gsm8k" else ("problem" if row.get("problem") is not None or "question" not in row else "question")
    s_key = "answer" if ds == "gsm8k" else "solution"
    question, why = _clean_text(row.get(q_key), "question")
    if why:
        return None, _quarantine(source, index, why, row)
    solution, why = _clean_text(row.get(s_key), "solution")
    if why:
        return None, _quarantine(source, index, why, row)
    if len(question) > max_question_chars:
        return None, _quarantine(source, index, "question_too_long", row)
    if len(solution) > MAX_SOLUTION_CHARS:
        return None, _quarantine(source, index, "solution_too_long", row)
    if ds == "gsm8k":
        gold = extract_gsm8k_gold(solution)
        level, type_name = "", "gsm8k"
        seed_id = f"gsm8k/{split}/{row.get('source_index', index)}"
    else:
        gold = extract_boxed(solution)
        level_v, type_v = row.get("level", ""), row.get("type", row.get("subject", ""))
        level = f"Level {level_v}" if isinstance(level_v, int) else str(level_v or "")
        type_name = str(type_v or "")
        uid = row.get("unique_id")
        if isinstance(uid, str) and uid.endswith(".json") and uid.count("/") == 2:
            # prm800k/MATH500 convention "train/algebra/123.json"
            sp, subject, num = uid[:-5].split("/")
            seed_id = f"math/{sp}/{subject}/{num}"
        else:
            seed_id = f"math/{split}/{_math_type_slug(type_name)}/{index}"
    if gold is not None and len(gold) > MAX_ANSWER_CHARS:
        return None, _quarantine(source, index, "answer_too_long", row)
    problem = gold_problem(gold, ds)
    if problem:  # never generate for a seed the verifier cannot check against
        return None, _quarantine(source, index, "bad_gold", row, detail=problem)
    return {
        "seed_id": seed_id, "dataset": ds, "question": question, "solution": solution,
        "answer": gold.strip(), "level": level, "type": type_name,
    }, None


def read_records(path: str) -> Iterable[Any]:
    """Raw records of a file (local or s3://) or an HF dataset (`hf://owner/name[#split]`)."""
    if path in BUNDLED:
        name, _ = BUNDLED[path]
        data = (resources.files("metamath_ray") / "data" / "seeds" / name).read_bytes()
        return _parse_bytes(data, name, path)
    if path.startswith("hf://"):
        return _read_hf(path)
    from metamath_ray.storage import StorageError, read_bytes

    try:
        data = read_bytes(path)
    except FileNotFoundError:
        raise SeedSourceError(f"seed file not found: {path}") from None
    except (OSError, StorageError) as e:
        raise SeedSourceError(f"cannot read seeds from {path}: {str(e).splitlines()[0]}") from None
    return _parse_bytes(data, path, path)


def _parse_bytes(data: bytes, name: str, source: str) -> list[Any]:
    lower = name.lower()
    if lower.endswith(".parquet"):
        import pyarrow.parquet as pq

        try:
            return pq.read_table(io.BytesIO(data)).to_pylist()
        except Exception as e:  # noqa: BLE001 - any Arrow error means "not readable Parquet"
            raise SeedSourceError(f"cannot read Parquet {source}: {e}") from None
    if lower.endswith(".json"):
        try:
            obj = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SeedSourceError(f"invalid JSON in {source}: {e}") from None
        except RecursionError:
            raise SeedSourceError(f"invalid JSON in {source}: nested too deeply") from None
        if not isinstance(obj, list):
            raise SeedSourceError(f"{source}: a .json seed file must hold a list of objects")
        return obj
    if lower.endswith((".jsonl", ".ndjson")):
        rows: list[Any] = []
        for line in data.split(b"\n"):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line.decode("utf-8")))
            except UnicodeDecodeError:
                rows.append({"__invalid__": "invalid_utf8"})
            except json.JSONDecodeError:
                rows.append({"__invalid__": "invalid_json"})
            except RecursionError:  # "[[[[..." 10^5 deep: a bad row, not a crash
                rows.append({"__invalid__": "json_too_deep"})
        return rows
    raise SeedSourceError(f"unsupported seed file type: {source} (use .jsonl, .json or .parquet)")


def _read_hf(uri: str) -> list[Any]:
    try:
        import datasets  # type: ignore
    except ImportError:
        raise SeedSourceError(f"{uri}: the `datasets` package is not installed (pip install datasets)") from None
    name, _, split = uri[len("hf://"):].partition("#")
    parts = name.split("/")
    repo, config = "/".join(parts[:2]), (parts[2] if len(parts) > 2 else None)
    try:
        return list(datasets.load_dataset(repo, config, split=split or "train"))
    except Exception as e:  # noqa: BLE001 - network, auth, missing dataset: one-line error
        raise SeedSourceError(f"cannot load {uri}: {str(e).splitlines()[0]}") from None


def load_seeds(sources: list, *, limit: int | None = None, max_question_chars: int = 4000) -> LoadedSeeds:
    """Load every source (SeedSource models or dicts with path/dataset/split)."""
    out = LoadedSeeds()
    seen: set[str] = set()
    for src in sources:
        path = src["path"] if isinstance(src, dict) else src.path
        dataset = (src.get("dataset") if isinstance(src, dict) else src.dataset) or (
            BUNDLED[path][1] if path in BUNDLED else None
        )
        split = (src.get("split") if isinstance(src, dict) else src.split) or "train"
        for i, row in enumerate(read_records(path)):
            if limit is not None and i >= limit:
                break
            out.rows_read += 1
            if isinstance(row, dict) and "__invalid__" in row:
                out.quarantine.append(_quarantine(path, i, row["__invalid__"], None))
                continue
            seed, bad = normalize_row(
                row, index=i, source=path, dataset=dataset, split=split,
                max_question_chars=max_question_chars,
            )
            if bad is not None:
                out.quarantine.append(bad)
            elif seed["seed_id"] in seen:
                out.quarantine.append(_quarantine(path, i, "duplicate_seed_id", row))
            else:
                seen.add(seed["seed_id"])
                out.seeds.append(seed)
    return out
