"""Evaluation sets: where they come from and how their rows become `EvalItem`s.

Sources, per dataset: the bundled slice (default, for the demo), a file (local path or `s3://`;
JSONL, a JSON array, or Parquet, in the public release's own field names, or MetaMath's
`query`/`response` and `instruction`/`output` copies), or a Hugging Face dataset written as
`hf://owner/name[/config][#split]` (needs the `datasets` package and hub access).
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any, Callable, Literal

from metamath_ray.evaluate import metamath_compat as mm

ScoringKind = Literal["numeric", "math"]


class EvalDataError(ValueError):
    """A benchmark file or source that cannot be read as the named dataset (one-line message)."""


@dataclass(frozen=True)
class EvalItem:
    """One benchmark question, normalised across datasets."""

    item_id: str
    dataset: str
    question: str
    gold: str  # gold answer for the strict scorer
    gold_metamath: str | None  # gold as MetaMath's scripts read it (None: they could not)
    type: str  # MATH subject / SVAMP operation type, "" when the set has none
    level: int  # MATH difficulty 1-5, 0 when unknown
    source_index: int

    def to_row(self) -> dict[str, Any]:
        return asdict(self)


def _gsm8k(row: dict, index: int, name: str) -> EvalItem:
    from metamath_ray.answers import extract_gsm8k_gold

    question = row.get("question", row.get("query"))
    solution = row.get("answer", row.get("response"))
    gold = extract_gsm8k_gold(solution)
    if question is None or gold is None:
        raise EvalDataError(f"{name} row {index}: needs 'question' and an 'answer' ending in '#### N'")
    return EvalItem(
        item_id=f"{name}/{row.get('source_index', index)}",
        dataset=name,
        question=question,
        gold=gold,
        gold_metamath=_number_text(mm.gsm8k_gold(solution)),
        type="",
        level=0,
        source_index=int(row.get("source_index", index)),
    )


def _level(value: Any) -> int:
    text = str(value).replace("Level", "").strip()
    return int(text) if text.isdigit() else 0


def _math(row: dict, index: int, name: str) -> EvalItem:
    from metamath_ray.answers import extract_boxed

    question = row.get("problem", row.get("instruction"))
    solution = row.get("solution", row.get("output"))
    if question is None or solution is None:
        raise EvalDataError(f"{name} row {index}: needs 'problem' and 'solution'")
    gold = row.get("answer") or extract_boxed(solution)
    if not gold:
        raise EvalDataError(f"{name} row {index}: no gold answer (no 'answer' and no \\boxed{{}} in the solution)")
    source_index = int(row.get("source_index", index))
    return EvalItem(
        item_id=str(row.get("unique_id") or f"{name}/{source_index}"),
        dataset=name,
        question=question,
        gold=str(gold),
        gold_metamath=mm.math_gold(solution),
        type=str(row.get("type") or row.get("subject") or ""),
        level=_level(row.get("level", "")),
        source_index=source_index,
    )


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _gsm8k_backward(row: dict, index: int, name: str) -> EvalItem:
    question, answer = row.get("question", row.get("query")), row.get("answer")
    if question is None or answer is None:
        raise EvalDataError(f"{name} row {index}: needs 'question' and 'answer'")
    source_index = int(row.get("source_index", index))
    return EvalItem(
        item_id=f"{name}/{source_index}",
        dataset=name,
        question=question,
        gold=str(answer).strip(),
        gold_metamath=str(answer).strip().replace(",", ""),
        type="",
        level=0,
        source_index=source_index,
    )


def svamp_question(body: str, question: str) -> str:
    """Body + question, with the period the body often lacks (the ToRA / Qwen-eval convention)."""
    body = body.strip()
    if not body.endswith("."):
        body += "."
    return f"{body} {question.strip()}"


def _svamp(row: dict, index: int, name: str) -> EvalItem:
    try:
        question = svamp_question(row["Body"], row["Question"])
        answer = float(row["Answer"])
    except (KeyError, TypeError, ValueError) as err:
        raise EvalDataError(f"{name} row {index}: needs 'Body', 'Question' and a numeric 'Answer'") from err
    source_index = int(row.get("source_index", index))
    return EvalItem(
        item_id=str(row.get("ID") or f"{name}/{source_index}"),
        dataset=name,
        question=question,
        gold=_number_text(answer),
        gold_metamath=_number_text(answer),
        type=str(row.get("Type", "")),
        level=0,
        source_index=source_index,
    )


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    kind: ScoringKind  # which MetaMath scorer applies
    bundled: str  # file under metamath_ray/data/eval
    full_size: int  # rows in the public test set
    max_tokens: int  # MetaMath's generation budget for this kind of problem
    hf_default: str | None  # `hf://` source used when the path is just "hf"
    parse: Callable[[dict, int, str], EvalItem]


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec("gsm8k", "numeric", "gsm8k_test_sample.jsonl", 1319, 512, "hf://openai/gsm8k/main#test", _gsm8k),
        DatasetSpec("math", "math", "math_test_sample.jsonl", 5000, 2048, None, _math),
        DatasetSpec("math500", "math", "math500_sample.jsonl", 500, 2048, "hf://HuggingFaceH4/MATH-500#test", _math),
        DatasetSpec(
            "gsm8k_backward", "numeric", "gsm8k_backward_sample.jsonl", 1270, 512,
            "hf://meta-math/GSM8K_Backward#test", _gsm8k_backward,
        ),
        DatasetSpec("svamp", "numeric", "svamp_sample.jsonl", 1000, 512, None, _svamp),
    )
}


def dataset_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise EvalDataError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}") from None


def parse_records(data: bytes, path: str) -> list[dict]:
    """Rows of a JSONL / JSON-array / Parquet file."""
    try:
        if path.endswith(".parquet"):
            import pyarrow.parquet as pq

            return pq.read_table(io.BytesIO(data)).to_pylist()
        text = data.decode("utf-8").lstrip("\ufeff")
        if text.lstrip().startswith("["):
            return json.loads(text)
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except Exception as err:  # noqa: BLE001 - any parse failure is a bad input file
        raise EvalDataError(f"{path}: not JSONL, a JSON array or Parquet ({type(err).__name__}: {err})") from err


def parse_hf_uri(uri: str) -> tuple[str, str | None, str]:
    """`hf://owner/name[/config][#split]` -> (repo id, config, split); split defaults to test."""
    body = uri.removeprefix("hf://")
    body, _, split = body.partition("#")
    parts = [p for p in body.split("/") if p]
    if len(parts) not in (2, 3):
        raise EvalDataError(f"bad Hugging Face source {uri!r}; expected hf://owner/name[/config][#split]")
    return "/".join(parts[:2]), parts[2] if len(parts) == 3 else None, split or "test"


def _read_hf(uri: str) -> list[dict]:
    try:
        import datasets as hf_datasets
    except ImportError as err:
        raise EvalDataError(f"{uri}: reading Hugging Face datasets needs `pip install datasets`") from err
    repo, config, split = parse_hf_uri(uri)
    return [dict(row) for row in hf_datasets.load_dataset(repo, config, split=split)]


def read_raw_rows(name: str, source: str | None = None) -> list[dict]:
    """Raw rows of dataset `name` from `source` (None: the bundled slice; "hf": its hub copy)."""
    spec = dataset_spec(name)
    if source is None:
        data = (resources.files("metamath_ray") / "data" / "eval" / spec.bundled).read_bytes()
        return parse_records(data, spec.bundled)
    if source == "hf":
        if spec.hf_default is None:
            raise EvalDataError(f"{name}: no default Hugging Face copy; give a file or hf://owner/name#split")
        source = spec.hf_default
    if source.startswith("hf://"):
        return _read_hf(source)
    from metamath_ray import storage

    return parse_records(storage.read_bytes(source), source)


def load_items(name: str, source: str | None = None, limit: int | None = None) -> list[EvalItem]:
    """Normalised questions of one dataset, the first `limit` of them when given."""
    spec = dataset_spec(name)
    rows = read_raw_rows(name, source)
    if limit is not None:
        rows = rows[:limit]
    return [spec.parse(row, index, name) for index, row in enumerate(rows)]
