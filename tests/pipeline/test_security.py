"""Security: loopback-only local Ray, no leaked secrets, no path escapes, no eval/exec of model output.

(a) Local mode (`ray_setup.init_ray`, as every stage starts it) listens on 127.0.0.1 only: after a
    real augment run, every listening TCP socket and every bound UDP socket of the driver and all
    processes of its Ray session is on 127.0.0.1 / ::1, and no dashboard process runs.
(b) A planted secret in the environment (AWS secret key, HF token), inherited by the driver, the
    raylet and every worker, never appears in any output file of a local run or an S3 run (every
    object read back), in Ray's session logs, or in the captured stdout/stderr.
(c) Run names and output paths cannot escape the output root (unit level, no Ray).
(d) The package never calls eval/exec (static check; the sandbox module is the one exception).
"""

from __future__ import annotations

import ast
import ipaddress
import os
from pathlib import Path

import pytest

import metamath_ray
from metamath_ray.augment.config import AugmentConfig
from metamath_ray.config import ConfigError, load_config
from metamath_ray.storage import RunStore, StorageError, validate_run_name

SECRET = "planted-secret-XYZ-7f3a9c"
HF_SECRET = "hf_plantedTOKENqwerty0123456789"
PLANTED = {
    "AWS_SECRET_ACCESS_KEY": SECRET,
    "AWS_ACCESS_KEY_ID": "AKIAPLANTEDKEYID0001",
    "HF_TOKEN": HF_SECRET,
    "HUGGING_FACE_HUB_TOKEN": HF_SECRET,
    "OPENAI_API_KEY": f"sk-{SECRET}",
}
NEEDLES = [SECRET.encode(), HF_SECRET.encode(), b"AKIAPLANTEDKEYID0001"]

OVERRIDES = [
    "engine.kind=hf", "engine.model=tiny", "engine.num_gpus_per_replica=0", "engine.batch_size=16",
    "sampling.max_tokens=12", "rewrite_sampling.max_tokens=12", "limit=2", "chunk_seeds=2",
    "aug.AnsAug.k=1", "aug.AnsAug.max_attempts=1", "aug.Rephrasing.k=1", "aug.Rephrasing.max_attempts=1",
    "aug.Rephrasing.rewrites=1", "aug.FOBAR.k=1", "aug.FOBAR.max_attempts=1", "aug.FOBAR.max_variants=1",
    "aug.SV.k=1", "aug.SV.max_attempts=1", "aug.SV.max_variants=1", "adaptive=false",
]


# ---------------------------------------------------------------------------------------------
# (c) run names and output paths: unit level


@pytest.mark.parametrize("name", [
    "..", "../x", "a/../../b", "/etc", "/", "a/b", "a\\b", "..\\x", "%2e%2e", "%2e%2e%2fetc", "a%2f..",
    "a\x00b", "\x00", "", " ", ".hidden", "-rf", "~", "~root", "a b", "a\nb", "é", "a" * 129, "..a", "a..",
    "C:\\x", "file:..", "s3://b/k", ".", "./x", "x/.",
])
def test_hostile_run_names_are_refused(name):
    with pytest.raises(StorageError):
        validate_run_name(name)
    with pytest.raises(StorageError):
        RunStore("/tmp/out", name)
    with pytest.raises(ConfigError):
        load_config(AugmentConfig, None, [], base={"run_name": name})


@pytest.mark.parametrize("name", ["augment", "r1", "run-2024.01_a", "A" * 128, "0"])
def test_ordinary_run_names_stay_inside_the_output_root(tmp_path, name):
    validate_run_name(name)
    store = RunStore(str(tmp_path), name)
    root = Path(store.root).resolve()
    assert root.parent == tmp_path.resolve()
    for rel in ["data/part-00000.parquet", "manifest.json", "quarantine/part-00000.parquet"]:
        assert Path(store.path(rel)).resolve().is_relative_to(root)


def test_other_stages_refuse_escaping_run_names():
    from metamath_ray.evaluate.config import EvaluateConfig
    from metamath_ray.train.config import TrainConfig

    for model, base in [(TrainConfig, {"output": "/tmp/o", "data": "x.json"}), (EvaluateConfig, {"output": "/tmp/o"})]:
        for name in ["..", "../x", "/etc", "a/b", "%2e%2e"]:
            with pytest.raises(ConfigError):
                load_config(model, None, [], base={**base, "run_name": name})


def test_a_symlinked_run_folder_is_not_followed_out_of_the_root(tmp_path):
    """A run folder that is a symlink to elsewhere is refused instead of written through."""
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "evil").symlink_to(outside, target_is_directory=True)
    with pytest.raises(StorageError, match="symlink"):
        RunStore(str(root), "evil").write_json("manifest.json", {"x": 1})
    assert not any(outside.iterdir())


# ---------------------------------------------------------------------------------------------
# (d) no eval/exec of model output

# sandbox.py starts sandbox_runner.py: model-written programs run there, in a separate limited process
SANDBOX_MODULES = {"sandbox.py", "sandbox_runner.py"}


def test_package_never_calls_eval_or_exec():
    """Static: no call to eval/exec/compile (or builtins.eval, __import__('builtins')...) outside the sandbox."""
    offenders = []
    pkg = Path(metamath_ray.__file__).parent
    for path in sorted(pkg.rglob("*.py")):
        if path.name in SANDBOX_MODULES:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _is_builtin_code_exec(node.func):
                offenders.append(f"{path.relative_to(pkg)}:{node.lineno} call")
            if isinstance(node, ast.Name) and node.id in ("eval", "exec") and isinstance(node.ctx, ast.Load):
                offenders.append(f"{path.relative_to(pkg)}:{node.lineno} reference to {node.id}")
            if (isinstance(node, ast.Constant) and node.value in ("eval", "exec")
                    and _parent_is_getattr(tree, node)):
                offenders.append(f"{path.relative_to(pkg)}:{node.lineno} getattr(..., {node.value!r})")
        text = path.read_text(encoding="utf-8")
        for needle in ("pickle.loads(", "marshal.loads(", "os.system(", "shell=True"):
            if needle in text:
                offenders.append(f"{path.relative_to(pkg)}: {needle}")
    assert not offenders, offenders


CODE_EXEC = ("eval", "exec", "execfile", "compile")


def _is_builtin_code_exec(func) -> bool:
    """eval(...), exec(...), compile(...), builtins.eval(...), __builtins__.exec(...).

    Methods of the same name are other things: torch's `model.eval()`, `re.compile(...)`."""
    if isinstance(func, ast.Name):
        return func.id in CODE_EXEC
    return (isinstance(func, ast.Attribute) and func.attr in CODE_EXEC and isinstance(func.value, ast.Name)
            and func.value.id in ("builtins", "__builtins__"))


def _parent_is_getattr(tree, const) -> bool:
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "getattr" and const in n.args
        for n in ast.walk(tree)
    )


def test_the_static_check_catches_what_it_should():
    """The checker itself: these must be flagged (else the test above proves nothing)."""
    for code in ["eval(x)", "exec(x)", "builtins.eval(x)", "compile(x, 'f', 'exec')", "f = eval"]:
        tree = ast.parse(code)
        assert any(
            (isinstance(n, ast.Call) and _is_builtin_code_exec(n.func))
            or (isinstance(n, ast.Name) and n.id in ("eval", "exec") and isinstance(n.ctx, ast.Load))
            for n in ast.walk(tree)
        ), code
    for code in ["model.eval()", "re.compile('x')", "self.eval()"]:
        assert not any(isinstance(n, ast.Call) and _is_builtin_code_exec(n.func) for n in ast.walk(ast.parse(code)))


def test_sympy_parsing_of_answers_does_not_evaluate_python():
    """Answers reach sympy only through the LaTeX/str parsers; Python code in an answer is inert."""
    from metamath_ray.answers import is_equivalent, normalize_answer

    marker = Path(os.environ.get("TMPDIR", "/tmp")) / f"mm-eval-marker-{os.getpid()}"
    payloads = [
        f"__import__('os').system('touch {marker}')",
        f"\\boxed{{__import__('pathlib').Path('{marker}').touch()}}",
        f"(lambda: open('{marker}', 'w'))()",
        f"The answer is: exec(\"open('{marker}','w')\")",
    ]
    for p in payloads:
        is_equivalent(p, "1")
        is_equivalent("1", p)
        is_equivalent(p, p + " ")
        normalize_answer(p)
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------
# (a) + (b): a real local Ray session with planted secrets


@pytest.fixture(scope="module")
def secret_ray(s3_server, tmp_path_factory):
    """Local Ray started the product's way, with planted secrets (and S3 settings) in the env."""
    import ray

    from metamath_ray.ray_setup import init_ray

    # what this (pytest) process already listened on before Ray: not the product's local mode
    _PRE_RAY_LISTENERS.update(_listeners(_session_processes()[:1]))
    saved = {k: os.environ.get(k) for k in [*PLANTED, "AWS_ENDPOINT_URL", "AWS_REGION"]}
    os.environ.update(PLANTED)
    os.environ.update({"AWS_ENDPOINT_URL": s3_server, "AWS_REGION": "us-east-1"})
    if ray.is_initialized():
        ray.shutdown()
    init_ray(num_cpus=2)
    session_dir = Path(ray._private.worker._global_node.get_session_dir_path())
    yield session_dir
    ray.shutdown()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _cfg(output: str, *extra: str) -> AugmentConfig:
    return load_config(AugmentConfig, None, OVERRIDES + list(extra), base={"output": output, "run_name": "sec"})


def _grep_tree(root: Path) -> list[str]:
    hits = []
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink():
            try:
                data = p.read_bytes()
            except OSError:
                continue
            hits += [f"{p}: {n.decode()}" for n in NEEDLES if n in data]
    return hits


@pytest.mark.pipeline
def test_planted_secret_never_reaches_outputs_or_logs(secret_ray, tmp_path, capfd, caplog):
    import boto3

    from metamath_ray.pipeline.augment import run_augment

    caplog.set_level("DEBUG")
    # a local run
    run_augment(_cfg(str(tmp_path / "out")))
    local_files = [p for p in (tmp_path / "out" / "sec").rglob("*") if p.is_file()]
    assert any(p.name == "manifest.json" for p in local_files) and len(local_files) >= 5
    # an S3 run, authenticated with the planted credentials
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")
    s3.create_bucket(Bucket="secbucket")
    run_augment(_cfg("s3://secbucket/runs", "augmentations=[AnsAug, FOBAR]"))
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="secbucket")["Contents"]]
    assert "runs/sec/manifest.json" in keys
    s3_hits = []
    for k in keys:
        body = s3.get_object(Bucket="secbucket", Key=k)["Body"].read()
        s3_hits += [f"s3://secbucket/{k}: {n.decode()}" for n in NEEDLES if n in body]
    out, err = capfd.readouterr()
    captured = (out + err + caplog.text).encode()

    assert _grep_tree(tmp_path / "out") == []
    assert s3_hits == []
    assert [n for n in NEEDLES if n in captured] == []
    # Ray's own logs of this session (driver, raylet, GCS, every worker's stdout/stderr)
    assert (secret_ray / "logs").is_dir() and any((secret_ray / "logs").iterdir())
    assert _grep_tree(secret_ray / "logs") == []
    # the planted values really were in the workers' environment (else the test proves nothing)
    import ray

    assert ray.get(ray.remote(lambda: os.environ.get("AWS_SECRET_ACCESS_KEY")).remote()) == SECRET


def _session_processes():
    import psutil

    me = psutil.Process()
    procs = [me, *me.children(recursive=True)]
    return [p for p in procs if p.is_running()]


_PRE_RAY_LISTENERS: set = set()


def _listeners(procs) -> set:
    """(pid, ip, port) of every listening TCP socket and bound UDP socket of `procs`."""
    import psutil

    out = set()
    for p in procs:
        try:
            conns = p.net_connections(kind="inet") if hasattr(p, "net_connections") else p.connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        for c in conns:
            if c.status == psutil.CONN_LISTEN or (c.type == 2 and c.laddr):
                out.add((p.pid, c.laddr.ip, c.laddr.port))
    return out


def _is_loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%")[0])
    # gRPC binds IPv6 sockets with IPv4-mapped addresses: ::ffff:127.0.0.1 is loopback too
    mapped = getattr(addr, "ipv4_mapped", None)
    return (mapped or addr).is_loopback


def test_loopback_check_itself():
    assert all(map(_is_loopback, ["127.0.0.1", "::1", "::ffff:127.0.0.1", "127.0.0.53"]))
    assert not any(map(_is_loopback, ["0.0.0.0", "::", "::ffff:0.0.0.0", "10.0.0.5", "::ffff:10.0.0.5", "fe80::1%eth0"]))


@pytest.mark.pipeline
def test_local_ray_listens_on_loopback_only(secret_ray, tmp_path):
    import ray

    from metamath_ray.pipeline.augment import run_augment

    # exercise the session: an augment step with the hf engine, plus a Ray Data job and an actor
    run_augment(_cfg(str(tmp_path), "augmentations=[AnsAug]", "limit=1"))
    assert ray.data.range(8).map(lambda r: {"id": r["id"] * 2}).sum("id") == 56

    @ray.remote
    class Probe:
        def ping(self):
            return "ok"

    probe = Probe.remote()
    assert ray.get(probe.ping.remote()) == "ok"

    procs = _session_processes()
    names = " ".join(" ".join(p.cmdline()) for p in procs)
    assert "gcs_server" in names and "raylet" in names, "not looking at the Ray session's processes"
    # sockets the pytest process opened before Ray (earlier in-process tests) are not local mode's
    found = sorted(_listeners(procs) - _PRE_RAY_LISTENERS)
    listening = [f"pid {pid} {ip}:{port}" for pid, ip, port in found]
    exposed = [entry for entry, (_, ip, _) in zip(listening, found) if not _is_loopback(ip)]
    assert len(listening) >= 3, listening  # GCS, raylet, object manager at least
    assert exposed == [], f"listening beyond loopback: {exposed}"
    # No dashboard HTTP server and no job API on any port (they execute code for whoever reaches
    # them). Ray may still run its dashboard process for internal modules, without HTTP.
    import socket

    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", 8265)) != 0, "something answers on the dashboard port"
    answering = [entry for entry in listening if " " in entry and _answers_http(entry.rsplit(":", 1)[1])]
    assert answering == [], f"HTTP served by the local Ray session: {answering}"
    ray.kill(probe)


def _answers_http(port: str) -> bool:
    """True when Ray's dashboard HTTP server (and so its job API) answers on 127.0.0.1:port."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=3)
    try:
        conn.request("GET", "/api/version")
        resp = conn.getresponse()
        # the dashboard's answer; a Prometheus metrics exporter (read-only) answers 404 here
        return resp.status == 200 and b"ray_version" in resp.read(4096)
    except (OSError, http.client.HTTPException):
        return False  # gRPC and object-manager ports do not speak HTTP/1.1
    finally:
        conn.close()
