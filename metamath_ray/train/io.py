"""Training data: finding the records a run trains on and reading them as Arrow or a Ray Dataset.

Every byte goes through `metamath_ray.storage` (local paths and s3://, with AWS_ENDPOINT_URL).
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from metamath_ray import storage


def find_training_source(uri: str) -> tuple[str, str]:
    """(kind, uri) for a training input: kind is "parquet" (a folder or file) or "json".

    Accepted: an augment run folder (uses its data/ shards, else its metamathqa.json), a folder of
    Parquet shards, a .parquet file, or a MetaMathQA .json (array) / .jsonl file.
    """
    if not storage.exists(uri):
        raise FileNotFoundError(f"training data not found: {uri}")
    if not storage.is_dir(uri):
        if uri.endswith(".parquet"):
            return "parquet", uri
        if uri.endswith((".json", ".jsonl")):
            return "json", uri
        raise ValueError(f"training data must be .parquet, .json or .jsonl: {uri}")
    shards = storage.join(uri, "data")
    if storage.list_files(shards, ".parquet"):  # an augment run folder
        return "parquet", shards
    if storage.list_files(uri, ".parquet"):
        return "parquet", storage.join(uri)
    export = storage.join(uri, "metamathqa.json")
    if storage.exists(export) and not storage.is_dir(export):
        return "json", export
    raise FileNotFoundError(f"no Parquet shards or metamathqa.json under {uri}")


def _normalise(table: pa.Table) -> pa.Table:
    """query/response/id columns; rows explicitly marked not accepted are left out."""
    missing = {"query", "response"} - set(table.column_names)
    if missing:
        raise ValueError(f"training data lacks columns {sorted(missing)}; has {table.column_names}")
    if "accepted" in table.column_names:
        table = table.filter(pc.fill_null(table["accepted"], True))
    ids = table["id"] if "id" in table.column_names else pa.array([str(i) for i in range(table.num_rows)])
    return pa.table({"id": pc.cast(ids, pa.string()), "query": table["query"], "response": table["response"]})


def parse_json_rows(text: str) -> list[dict]:
    """Rows of a JSON array or of JSON lines (MetaMathQA ships the former, most tools write the latter)."""
    if text.lstrip().startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def read_json_records(uri: str) -> pa.Table:
    rows = parse_json_rows(storage.read_text(uri))
    if not rows:
        return _normalise(pa.table({"query": pa.array([], pa.string()), "response": pa.array([], pa.string())}))
    return _normalise(pa.Table.from_pylist(rows))


def read_records_table(uri: str) -> pa.Table:
    """All training records as one Arrow table (the one-process path)."""
    kind, src = find_training_source(uri)
    if kind == "json":
        return read_json_records(src)
    fs, path = storage.resolve_filesystem(src)
    return _normalise(storage.with_retries(lambda: pads.dataset(path, filesystem=fs, format="parquet").to_table()))


def read_records_dataset(uri: str):
    """Training records as a Ray Dataset; Parquet is streamed from storage, JSON read on the driver."""
    import ray.data

    kind, src = find_training_source(uri)
    if kind == "json":
        return ray.data.from_arrow(read_json_records(src))
    fs, path = storage.resolve_filesystem(src)
    ds = ray.data.read_parquet(path, filesystem=fs)
    return ds.map_batches(_normalise, batch_format="pyarrow")
