"""The one-process loop (no Ray) with checkpoints and export in S3 (moto on 127.0.0.1), resume on re-run,
and packing. Run inside `unshare -n`, as CI does."""

from __future__ import annotations

import json

import pytest

from metamath_ray.train.config import TrainConfig

pytestmark = pytest.mark.integration

EXAMPLES = [
    ("What is 2 + 3?", "2 + 3 = 5.\nThe answer is: 5"),
    ("What is 6 times 7?", "6 * 7 = 42.\nThe answer is: 42"),
    ("Half of 18 is what?", "18 / 2 = 9.\nThe answer is: 9"),
    ("Tom has 4 apples and eats 1. How many are left?", "4 - 1 = 3.\nThe answer is: 3"),
]


@pytest.fixture()
def s3(monkeypatch):
    boto3 = pytest.importorskip("boto3")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for key, value in {
        "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="runs")
    yield client
    server.stop()


def test_s3_checkpoints_export_and_resume(s3, tmp_path):
    from metamath_ray.train.run import train_single_process

    data = tmp_path / "metamathqa.jsonl"  # JSON-lines works as well as a JSON array
    data.write_text("".join(json.dumps({"query": q, "response": r}) + "\n" for q, r in EXAMPLES))
    cfg = TrainConfig(
        model="tiny", data=str(data), output="s3://runs/exp", run_name="one", num_workers=1,
        micro_batch_size=2, global_batch_size=2, epochs=3, lr=3e-3, max_length=256,
        checkpoint_every_steps=2, keep_checkpoints=2, packing=True, dtype="bf16",
    )
    first = train_single_process(cfg)
    assert first["steps"] == first["planned_steps"] == 3 * first["steps_per_epoch"]
    assert first["resumed_from_step"] == 0
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="runs", Prefix="exp/one/")["Contents"]}
    assert "exp/one/model/model.safetensors" in keys and "exp/one/model/config.json" in keys
    assert "exp/one/train_log.jsonl" in keys and "exp/one/train_summary.json" in keys
    steps_saved = sorted({k.split("/")[3] for k in keys if k.startswith("exp/one/checkpoints/step_")})
    assert len(steps_saved) <= 2 and steps_saved[-1] == f"step_{first['steps']:08d}"

    second = train_single_process(cfg)  # the same run again: resumes at its end, trains no more
    assert second["resumed_from_step"] == first["steps"] and second["steps"] == first["steps"]
    log = s3.get_object(Bucket="runs", Key="exp/one/train_log.jsonl")["Body"].read().decode().splitlines()
    assert [json.loads(l)["step"] for l in log] == list(range(1, first["steps"] + 1))
