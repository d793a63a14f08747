"""The in-process vLLM engine's stepping thread (engines/vllm_inprocess.py) on a stand-in engine with
LLMEngine's three calls: requests added while others run join the next step (continuous batching),
each caller gets its own final output, an engine failure reaches every waiting caller and later ones,
and shutdown stops the thread. The real engine: tests/integration/test_engine_replicas.py."""

import asyncio
import threading
from types import SimpleNamespace

import pytest

from metamath_ray.engines.vllm_inprocess import InProcessEngine


class CountingEngine:
    """Each request finishes after `steps` engine steps; records which requests shared a step."""

    def __init__(self, steps: int = 3, fail_at_step: int | None = None):
        self.steps, self.fail_at_step = steps, fail_at_step
        self.running: dict[str, int] = {}
        self.batches: list[set[str]] = []
        self.thread_ids: set[int] = set()

    def add_request(self, request_id, prompt, params):
        self.thread_ids.add(threading.get_ident())
        self.running[request_id] = 0

    def has_unfinished_requests(self) -> bool:
        return bool(self.running)

    def step(self):
        self.thread_ids.add(threading.get_ident())
        if self.fail_at_step is not None and len(self.batches) == self.fail_at_step:
            raise RuntimeError("engine core died")
        self.batches.append(set(self.running))
        done = []
        for rid in list(self.running):
            self.running[rid] += 1
            if self.running[rid] == self.steps:
                del self.running[rid]
                done.append(SimpleNamespace(request_id=rid, finished=True, outputs=[SimpleNamespace(text=f"out-{rid}")]))
        return done


async def _ask(engine: InProcessEngine, rid: str):
    return (await engine.final_output(f"prompt {rid}", None, rid)).outputs[0].text


def test_each_caller_gets_its_own_output_and_late_requests_join_running_ones():
    fake = CountingEngine(steps=5)
    engine = InProcessEngine(fake)

    async def main():
        first = asyncio.create_task(_ask(engine, "a"))
        await asyncio.sleep(0.05)  # "a" is stepping alone (or done) by now; "b" and "c" arrive later
        return await asyncio.gather(first, _ask(engine, "b"), _ask(engine, "c"))

    assert asyncio.run(main()) == ["out-a", "out-b", "out-c"]
    engine.shutdown()
    assert len(fake.thread_ids) == 1, "the engine must only be touched by its stepping thread"
    assert any({"b", "c"} <= batch for batch in fake.batches), "requests added together share steps"


def test_a_failed_engine_fails_waiting_and_later_callers():
    engine = InProcessEngine(CountingEngine(steps=5, fail_at_step=2))

    async def main():
        return await asyncio.gather(_ask(engine, "a"), _ask(engine, "b"), return_exceptions=True)

    results = asyncio.run(main())
    assert all(isinstance(r, RuntimeError) and "engine core died" in str(r) for r in results)
    with pytest.raises(RuntimeError, match="in-process vLLM engine stopped"):
        asyncio.run(_ask(engine, "c"))


def test_shutdown_stops_an_idle_engine_thread():
    engine = InProcessEngine(CountingEngine())
    assert asyncio.run(_ask(engine, "a")) == "out-a"
    engine.shutdown()
    assert not engine._thread.is_alive()


class RefusingEngine(CountingEngine):
    def add_request(self, request_id, prompt, params):
        if prompt.endswith("long"):
            raise ValueError("prompt too long")
        super().add_request(request_id, prompt, params)


def test_a_refused_request_fails_alone():
    engine = InProcessEngine(RefusingEngine(steps=2))

    async def main():
        return await asyncio.gather(_ask(engine, "a"), _ask(engine, "long"), _ask(engine, "b"), return_exceptions=True)

    ok_a, refused, ok_b = asyncio.run(main())
    assert (ok_a, ok_b) == ("out-a", "out-b")
    assert isinstance(refused, ValueError)
    assert asyncio.run(_ask(engine, "c")) == "out-c", "the engine goes on after a refused request"
    engine.shutdown()
