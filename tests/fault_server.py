"""A small OpenAI-compatible server that injects faults, for the openai engine's tests and benchmark.

It serves `POST /v1/chat/completions` and `POST /v1/completions` on 127.0.0.1 (aiohttp, in a
thread of its own) and answers each request with `answer(question, body)`, where `question` is the
last "Question: ..." of the prompt. Faults are decided per *request* (a hash of its body, so a
retry of the same request is recognised) and per attempt:

- `faults(key) -> fault name or None` chooses the first attempt's fault: "429" (with Retry-After),
  "500", "slow" (sleeps past the client's timeout), "drop" (headers and half a body, then the
  connection is closed);
- `doomed(body) -> bool` marks requests answered 503 on every attempt while `server.doom` is True
  (so they exhaust their retries; a rerun with `doom=False` answers them).

Every request is counted (`stats`), with its arrival time, so a test can check what the client did.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
import time
from collections import Counter
from typing import Callable

from aiohttp import web

FAULTS = ("429", "500", "slow", "drop")
_QUESTION = re.compile(r"Question:\s*(.*?)\s*(?:\nAnswer:|\nRephrased:|$)", re.S)


def request_key(body: dict) -> str:
    """Identifies a request across retries: everything but transport details."""
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def prompt_of(body: dict) -> str:
    if "messages" in body:
        return "\n".join(m["content"] for m in body["messages"] if m["role"] == "user")
    return str(body.get("prompt", ""))


def last_question(prompt: str) -> str:
    found = _QUESTION.findall(prompt)
    return found[-1].strip() if found else ""


def hashed_faults(rate: float, seed: str = "") -> Callable[[str], str | None]:
    """A fault for about `rate` of requests, spread evenly over FAULTS, chosen by the request key."""
    def choose(key: str) -> str | None:
        h = int(hashlib.sha256((seed + key).encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        return FAULTS[min(int(h / rate * len(FAULTS)), len(FAULTS) - 1)] if h < rate else None
    return choose


class FaultServer:
    def __init__(self, answer: Callable[[str, dict], str], *, faults: Callable[[str], str | None] = lambda k: None,
                 doomed: Callable[[dict], bool] = lambda b: False, api_key: str | None = None,
                 slow_s: float = 3.0, retry_after_s: str = "1", tokens_per_word: int = 1):
        self.answer, self.faults, self.doomed = answer, faults, doomed
        self.api_key, self.slow_s, self.retry_after_s = api_key, slow_s, retry_after_s
        self.tokens_per_word = tokens_per_word
        self.doom = True
        self.stats: Counter = Counter()
        self.arrivals: list[float] = []
        self.attempts: Counter = Counter()  # request key -> attempts seen
        self.lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> "FaultServer":
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fault server did not start")
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        app.router.add_post("/v1/completions", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        ready.set()
        self._loop.run_forever()

    # -- one request -----------------------------------------------------------------------------
    def _count(self, what: str) -> None:
        with self.lock:
            self.stats[what] += 1

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        with self.lock:
            self.arrivals.append(time.monotonic())
        self._count("requests")
        if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            self._count("401")
            return web.json_response({"error": {"message": "Incorrect API key provided"}}, status=401)
        body = await request.json()
        key = request_key(body)
        with self.lock:
            self.attempts[key] += 1
            first = self.attempts[key] == 1
        if self.doom and self.doomed(body):
            self._count("503_doomed")
            return web.json_response({"error": {"message": "overloaded (doomed request)"}}, status=503)
        fault = self.faults(key) if first else None
        if fault:
            self._count(fault)
            return await self._fault(fault, request)
        self._count("answered")
        return web.json_response(self._completion(body))

    async def _fault(self, fault: str, request: web.Request) -> web.StreamResponse:
        if fault == "429":
            return web.json_response({"error": {"message": "rate limited"}}, status=429,
                                     headers={"Retry-After": self.retry_after_s})
        if fault == "500":
            return web.json_response({"error": {"message": "internal error"}}, status=500)
        if fault == "slow":
            await asyncio.sleep(self.slow_s)
            return web.json_response({"error": {"message": "too late"}}, status=500)
        # drop: promise a long body, send part of it, cut the connection
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        resp.content_length = 4096
        await resp.prepare(request)
        await resp.write(b'{"id": "cmpl-dropped", "choices": [{"index": 0, "te')
        request.transport.close()
        return resp

    def _completion(self, body: dict) -> dict:
        prompt = prompt_of(body)
        text = self.answer(last_question(prompt), body)
        usage = {"prompt_tokens": len(prompt.split()) * self.tokens_per_word,
                 "completion_tokens": len(text.split()) * self.tokens_per_word}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if "messages" in body:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            return {"id": "chatcmpl-x", "object": "chat.completion", "model": body.get("model"),
                    "choices": [choice], "usage": usage}
        return {"id": "cmpl-x", "object": "text_completion", "model": body.get("model"),
                "choices": [{"index": 0, "text": text, "finish_reason": "stop"}], "usage": usage}
