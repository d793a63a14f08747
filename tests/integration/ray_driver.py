"""Shared opening of the driver scripts the Ray Train tests run as subprocesses (a fresh driver per
run, so a test can kill it): a private local Ray on loopback."""

PRIVATE_LOCAL_RAY = r"""
import tempfile
import ray, ray.data
# A private session folder: other Ray instances on the machine must not be found by helper actors.
temp_dir = tempfile.mkdtemp(prefix="mmr", dir="/tmp")
# A loaded 2-core machine can miss Ray's fixed 30 s node start-up window; try again, then fail.
for attempt in range(4):
    try:
        ray.init(include_dashboard=False, _node_ip_address="127.0.0.1", num_cpus=2, _temp_dir=temp_dir)
        break
    except Exception as exc:
        if attempt == 3:
            raise
        print(f"ray.init failed ({exc}); retrying", flush=True)
        ray.shutdown()
ray.data.DataContext.get_current().enable_progress_bars = False
"""
