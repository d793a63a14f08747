"""Model folders from object storage: copied once into a local cache.

The S3 cases run a moto S3 server on loopback, so they are marked integration."""

import socket

import pytest

from metamath_ray.evaluate.model_source import download_model_folder, materialize_model


@pytest.fixture()
def s3_server(monkeypatch):
    boto3 = pytest.importorskip("boto3")
    moto_server = pytest.importorskip("moto.server")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for key, value in {
        "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="ckpts")
    yield client
    server.stop()


@pytest.mark.integration
@pytest.mark.parametrize("prefix, inner", [("runs/a/export", ""), ("runs/b/checkpoint_000002", "model/")])
def test_download_model_folder(s3_server, tmp_path, prefix, inner):
    s3_server.put_object(Bucket="ckpts", Key=f"{prefix}/{inner}config.json", Body=b'{"model_type": "llama"}')
    s3_server.put_object(Bucket="ckpts", Key=f"{prefix}/{inner}model.safetensors", Body=b"weights")
    folder = download_model_folder(f"s3://ckpts/{prefix}", tmp_path)
    assert (folder / "config.json").read_bytes() == b'{"model_type": "llama"}'
    assert (folder / "model.safetensors").read_bytes() == b"weights"
    # cached: a second call does not need the bucket
    s3_server.delete_object(Bucket="ckpts", Key=f"{prefix}/{inner}config.json")
    assert download_model_folder(f"s3://ckpts/{prefix}", tmp_path) == folder
    assert materialize_model(f"s3://ckpts/{prefix}", tmp_path) == str(folder)


@pytest.mark.integration
def test_folder_without_config_is_refused(s3_server, tmp_path):
    s3_server.put_object(Bucket="ckpts", Key="junk/readme.txt", Body=b"x")
    with pytest.raises(FileNotFoundError, match="no Hugging Face model folder"):
        download_model_folder("s3://ckpts/junk", tmp_path)
    assert not any(p.name.startswith(".download-") for p in tmp_path.iterdir())


@pytest.mark.integration
def test_missing_prefix(s3_server, tmp_path):
    with pytest.raises(FileNotFoundError):
        download_model_folder("s3://ckpts/nothing/here", tmp_path)


@pytest.mark.parametrize("model", ["meta-llama/Llama-2-7b-hf", "/models/llama"])
def test_other_references_pass_through(model):
    assert materialize_model(model) == model


def test_unsupported_scheme():
    with pytest.raises(ValueError, match="unsupported model location"):
        materialize_model("gs://bucket/model")
