"""Export accepted rows as MetaMathQA: a JSON array of {type, query, original_question, response}.

`mix` maps public type names (GSM_AnsAug, ..., MATH_SV) to either
  * target counts (all ints): take up to that many rows of the type, or
  * weights (any float): the largest export whose per-type shares follow the weights and that the
    available rows can fill; e.g. `METAMATHQA_WEIGHTS` reproduces MetaMathQA-395K's proportions.
Types absent from `mix` are left out; `mix=None` exports every exportable row.
Sampling is deterministic: rows of a type are ranked by a hash of (seed, id) and the first ones
taken, so growing a target only adds rows. Records come out grouped by type, in the
EXPORT_TYPES order, each group sorted by id.
Rows that MetaMathQA could not hold are skipped: an empty query, or a response that does not
end with "The answer is: X".
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
from collections.abc import Iterable
from typing import IO

from metamath_ray.augment.base import ANSWER_PREFIX, EXPORT_TYPES

# MetaMathQA-395K (Yu et al. 2023, Table 1): 80K/80K/40K/40K GSM8K, 75K/50K/15K/15K MATH.
METAMATHQA_MIX = {
    "GSM_AnsAug": 80_000, "GSM_Rephrased": 80_000, "GSM_SV": 40_000, "GSM_FOBAR": 40_000,
    "MATH_AnsAug": 75_000, "MATH_Rephrased": 50_000, "MATH_SV": 15_000, "MATH_FOBAR": 15_000,
}
METAMATHQA_WEIGHTS = {t: n / sum(METAMATHQA_MIX.values()) for t, n in METAMATHQA_MIX.items()}
_TYPE_ORDER = list(EXPORT_TYPES.values())


def export_type(row: dict) -> str | None:
    return EXPORT_TYPES.get((row.get("dataset"), row.get("aug")))


def is_exportable(row: dict) -> bool:
    query, response = str(row.get("query") or "").strip(), str(row.get("response") or "").rstrip()
    last_line = response.splitlines()[-1] if response else ""
    return (bool(query) and export_type(row) is not None
            and last_line.startswith(ANSWER_PREFIX) and bool(last_line[len(ANSWER_PREFIX):].strip()))


def _rank(seed: int, row: dict) -> str:
    return rank_of(seed, str(row.get("id", "")))


def rank_of(seed: int, row_id: str) -> str:
    """The sampling rank of a row: a type's first `target` rows by rank are exported."""
    return hashlib.sha256(f"{seed}:{row_id}".encode()).hexdigest()


def targets(mix: dict[str, int | float] | None, available: dict[str, int]) -> dict[str, int]:
    """Rows to export per type, given the exportable rows available per type."""
    return dict(available) if mix is None else _targets(mix, available)


def record_of(row: dict) -> dict:
    """The MetaMathQA record of an exportable row."""
    return {
        "type": export_type(row),
        "query": str(row["query"]).strip(),
        "original_question": str(row.get("original_question") or row["query"]).strip(),
        "response": str(row["response"]).rstrip(),
    }


def record_json(record: dict) -> str:
    """One record as written in metamathqa.json (one line)."""
    return json.dumps(record, ensure_ascii=False)


def _targets(mix: dict[str, int | float], available: dict[str, int]) -> dict[str, int]:
    unknown = set(mix) - set(_TYPE_ORDER)
    if unknown:
        raise ValueError(f"unknown MetaMathQA types in mix: {sorted(unknown)}")
    if any(v < 0 for v in mix.values()):
        raise ValueError("mix values must be non-negative")
    if all(isinstance(v, int) for v in mix.values()):
        return {t: min(int(n), available.get(t, 0)) for t, n in mix.items()}
    total_weight = sum(mix.values())
    if total_weight <= 0:
        return {t: 0 for t in mix}
    shares = {t: w / total_weight for t, w in mix.items() if w > 0}
    # The largest total N with N * share <= available for every weighted type.
    n_total = min(available.get(t, 0) / s for t, s in shares.items())
    return {t: math.floor(n_total * shares[t] + 1e-9) if t in shares else 0 for t in mix}


def to_metamathqa(rows: list[dict], mix: dict[str, int | float] | None = None, seed: int = 0) -> list[dict]:
    by_type: dict[str, list[dict]] = {}
    for row in rows:
        if is_exportable(row):
            by_type.setdefault(export_type(row), []).append(row)
    wanted = targets(mix, {t: len(v) for t, v in by_type.items()})
    records = []
    for type_name in _TYPE_ORDER:
        chosen = sorted(by_type.get(type_name, []), key=lambda r: _rank(seed, r))[: wanted.get(type_name, 0)]
        records.extend(record_of(row) for row in sorted(chosen, key=lambda r: str(r.get("id", ""))))
    return records


def seed_solution_records(seeds: list[dict]) -> list[dict]:
    """The seeds' own reference solutions as MetaMathQA AnsAug records (GSM8K calculator
    annotations `<<48/2=24>>` and the `####` line removed, MetaMath's answer line appended)."""
    out = []
    for seed in seeds:
        body = seed["solution"]
        if seed["dataset"] == "gsm8k":
            body = re.sub(r"<<[^>]*>>", "", body.split("####")[0]).strip()
        out.append({
            "type": EXPORT_TYPES[(seed["dataset"], "AnsAug")], "query": seed["question"],
            "original_question": seed["question"], "response": f"{body}\n{ANSWER_PREFIX}{seed['answer']}",
        })
    return out


def write_json(records: list[dict], fileobj: IO) -> None:
    """A JSON array, one record per line, UTF-8; works on text and binary file objects."""
    write_json_lines((record_json(r) for r in records), fileobj)


def write_json_lines(lines: Iterable[str], fileobj: IO) -> int:
    """`write_json` from records already serialised by `record_json` (streamed); returns the count."""
    text_mode = isinstance(fileobj, io.TextIOBase)

    def put(s: str) -> None:
        fileobj.write(s if text_mode else s.encode("utf-8"))

    count = 0
    put("[")
    for line in lines:
        put(("\n" if count == 0 else ",\n") + line)
        count += 1
    put("\n]\n")
    return count
