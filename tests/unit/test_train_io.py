"""Training inputs and one-process checkpoint folders, on local storage (no Ray, no torch)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from metamath_ray.train.checkpoint import CheckpointFolder
from metamath_ray.train.io import find_training_source, read_records_table

ROWS = [
    {"id": "a", "query": "q1", "response": "r1", "accepted": True},
    {"id": "b", "query": "q2", "response": "r2", "accepted": False},
    {"id": "c", "query": "q3", "response": "r3", "accepted": None},
]


def test_an_augment_run_folder_trains_on_its_accepted_shards(tmp_path):
    (tmp_path / "data").mkdir()
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "data" / "part-00000.parquet")
    (tmp_path / "metamathqa.json").write_text("[]")
    assert find_training_source(str(tmp_path)) == ("parquet", str(tmp_path / "data"))
    table = read_records_table(str(tmp_path))
    assert table.column_names == ["id", "query", "response"]
    assert table["id"].to_pylist() == ["a", "c"]  # explicitly rejected rows are left out


def test_the_export_is_used_when_a_folder_has_no_shards(tmp_path):
    (tmp_path / "metamathqa.json").write_text(json.dumps([{"query": "q", "response": "r"}]))
    assert find_training_source(str(tmp_path) + "/") == ("json", str(tmp_path / "metamathqa.json"))
    assert read_records_table(str(tmp_path))["id"].to_pylist() == ["0"]


def test_json_lines_and_bad_inputs(tmp_path):
    lines = tmp_path / "x.jsonl"
    lines.write_text("".join(json.dumps({"query": f"q{i}", "response": "r"}) + "\n" for i in range(3)))
    assert read_records_table(str(lines)).num_rows == 3
    (tmp_path / "x.csv").write_text("query,response\n")
    with pytest.raises(ValueError, match="must be .parquet"):
        find_training_source(str(tmp_path / "x.csv"))
    with pytest.raises(FileNotFoundError, match="not found"):
        find_training_source(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no Parquet shards"):
        find_training_source(str(tmp_path / "empty"))


def _checkpoint(tmp_path: Path, step: int) -> Path:
    local = tmp_path / f"local-{step}"
    (local / "state").mkdir(parents=True)
    (local / "state" / "shard.pt").write_text(str(step))
    return local


def test_checkpoint_folder_keeps_the_newest_and_resumes_from_the_last(tmp_path):
    folder = CheckpointFolder(str(tmp_path / "run" / "checkpoints"), keep=2)
    with folder.latest() as nothing:
        assert nothing is None
    for step in (2, 4, 10):
        uri = folder.publish(_checkpoint(tmp_path, step), step)
    assert uri.endswith("step_00000010")
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["step_00000004", "step_00000010"]
    with folder.latest() as local:
        assert (local / "state" / "shard.pt").read_text() == "10"
