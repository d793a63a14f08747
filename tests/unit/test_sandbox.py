"""The sandbox against real hostile programs. Each test checks the specific reason a run ended and
that this (parent) process is unharmed; limits are small so every test takes a few seconds at most."""

import os
import time

import pytest

from metamath_ray import sandbox, sandbox_runner
from metamath_ray.sandbox import SandboxLimits, run_python

FAST = SandboxLimits(wall_s=3, cpu_s=1, memory_mb=512, output_bytes=4096)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_exit_codes_match_runner():
    assert sandbox._EXIT_REASONS[sandbox_runner.EXIT_FORBIDDEN] == "forbidden"
    assert sandbox._EXIT_REASONS[sandbox_runner.EXIT_MEMORY] == "memory"
    assert sandbox._EXIT_REASONS[sandbox_runner.EXIT_NPROC] == "nproc"
    assert sandbox._EXIT_SETUP == sandbox_runner.EXIT_SETUP


def test_plain_program_prints_answer():
    r = run_python("from fractions import Fraction\nprint(Fraction(1, 3) + Fraction(1, 6))", FAST)
    assert r.ok and r.reason is None and r.stdout == "1/2\n"
    assert sandbox.last_line(r.stdout) == "1/2"


def test_sympy_program_and_startup_cost():
    r = run_python("import sympy\nx = sympy.symbols('x')\nprint(sympy.solve(x**2 - 4, x))", SandboxLimits())
    assert r.ok, r
    assert r.stdout.strip() == "[-2, 2]"
    assert r.startup_s is not None and r.startup_s <= r.wall_s


def test_infinite_loop_hits_cpu_limit():
    r = run_python("while True:\n    pass", SandboxLimits(wall_s=20, cpu_s=1))
    assert r.reason == "cpu" and not r.ok
    assert r.wall_s < 15


def test_sleeping_program_hits_wall_clock():
    r = run_python("import time\ntime.sleep(60)", SandboxLimits(wall_s=1, cpu_s=5))
    assert r.reason == "timeout"
    assert r.wall_s < 5


def test_huge_output_is_cut_and_killed():
    r = run_python("print('x' * 10**8)", FAST)
    assert r.reason == "output_limit"
    assert len(r.stdout) <= FAST.output_bytes
    assert r.wall_s < 3


def test_endless_printing_is_killed():
    r = run_python("while True:\n    print('y' * 1000)", SandboxLimits(wall_s=10, cpu_s=5, output_bytes=10_000))
    assert r.reason == "output_limit" and r.wall_s < 5


def test_memory_hog_single_allocation():
    r = run_python("b = bytearray(10**10)\nprint('allocated')", FAST)
    assert r.reason == "memory" and "allocated" not in r.stdout


def test_memory_hog_growing_list():
    r = run_python("x = []\nwhile True:\n    x.append(' ' * 10**6)", SandboxLimits(wall_s=10, cpu_s=5, memory_mb=256))
    assert r.reason == "memory"


@pytest.mark.parametrize("code,what", [
    ("import os\nprint(os.getcwd())", "import os"),
    ("import subprocess\nsubprocess.run(['id'])", "import subprocess"),
    ("import socket\nsocket.create_connection(('1.1.1.1', 80))", "import socket"),
    ("__import__('os').system('echo pwned')", "import os"),
    ("m = __builtins__['__import__']('posix')\nm.system('echo pwned')", "import posix"),
    ("import sys\nprint(sys.modules)", "import sys"),
    ("import ctypes", "import ctypes"),
])
def test_dangerous_imports_are_refused(code, what):
    r = run_python(code, FAST)
    assert r.reason == "forbidden", r
    assert r.detail == what
    assert "pwned" not in r.stdout


# Allowed modules keep references to `os` and `sys` (random._os, collections._sys): restricted
# builtins alone are escapable, so the tests below go through such references on purpose.
OS = "import random\nos = random._os\n"
SYS = "import collections\nsys = collections._sys\n"


def test_module_escape_to_os_system_is_refused():
    # The audit hook still refuses what the escaped module would do.
    r = run_python(OS + "os.system('echo pwned')", FAST)
    assert r.reason == "forbidden" and r.detail == "os.system"
    assert "pwned" not in r.stdout


def test_exec_through_posixsubprocess_is_refused():
    # _posixsubprocess.fork_exec raises no audit event; sympy loads it (via subprocess). The runner
    # replaces it, and seccomp (off here, to test this layer alone) refuses execve as well.
    code = (
        OS + SYS + "import sympy\n"
        "ps = sys.modules['_posixsubprocess']\n"
        "r, w = os.pipe()\n"
        "pid = ps.fork_exec([b'/bin/sh', b'-c', b'echo pwned'], [b'/bin/sh'], True, (w,), None, None,"
        " -1, -1, -1, -1, -1, -1, r, w, True, False, -1, None, None, None, -1, None, False)\n"
        "print('child said', os.read(r, 100))\n"
    )
    r = run_python(code, SandboxLimits(), seccomp=False)
    assert r.reason == "error" and "process creation is not allowed" in r.detail, r
    assert "pwned" not in r.stdout
    r = run_python(SYS + "sys.modules['builtins'].__import__('_posixsubprocess')", FAST)
    assert r.reason == "forbidden" and r.detail == "import _posixsubprocess"


SECCOMP_PROBE = """
import os, socket, sys
sys.path.insert(0, {folder!r})
import sandbox_runner
if not sandbox_runner._install_seccomp():
    print("unavailable"); sys.exit(0)
for name, call in (("socket", lambda: socket.socket()), ("setsid", os.setsid),
                   ("exec", lambda: os.execv("/bin/echo", ["echo", "pwned"]))):
    try:
        call()
        print(name, "allowed")
    except PermissionError:
        print(name, "refused")
"""


def test_seccomp_filter_refuses_exec_sockets_and_setsid():
    import subprocess
    import sys

    folder = os.path.dirname(sandbox_runner.__file__)
    out = subprocess.run([sys.executable, "-I", "-c", SECCOMP_PROBE.format(folder=folder)],
                         capture_output=True, text=True, timeout=60).stdout
    if out.strip() == "unavailable":
        pytest.skip("the kernel refuses seccomp filters here")
    assert out.split("\n")[:3] == ["socket refused", "setsid refused", "exec refused"], out


def test_socket_through_module_escape_is_refused():
    code = SYS + "sys.modules['builtins'].__import__('socket').socket()"
    r = run_python(code, FAST)
    assert r.reason == "forbidden"


def test_environment_secret_is_not_visible(monkeypatch):
    monkeypatch.setenv("MMR_PLANTED_SECRET", "s3cr3t-value")
    code = OS + "print(dict(os.environ), flush=True)\nprint(open('/proc/self/environ').read())\n"
    r = run_python(code, FAST)
    assert "MMR_PLANTED_SECRET" not in r.stdout + r.stderr
    assert "s3cr3t-value" not in r.stdout + r.stderr
    assert "HOME" in r.stdout  # the first print ran: the minimal environment only
    assert r.reason == "forbidden" and r.detail == "read /proc/self/environ"


def test_parent_environment_via_proc_is_refused(monkeypatch):
    monkeypatch.setenv("MMR_PLANTED_SECRET", "s3cr3t-value")
    r = run_python(f"print(open('/proc/{os.getpid()}/environ').read())", FAST)
    assert r.reason == "forbidden" and "s3cr3t-value" not in r.stdout


@pytest.mark.parametrize("code,detail", [
    ("open('/etc/passwd', 'w').write('x')", "write /etc/passwd"),
    ("open('../escape.txt', 'w').write('x')", None),
    ("open('/tmp/mmr-sandbox-escape.txt', 'a').write('x')", "write /tmp/mmr-sandbox-escape.txt"),
    (OS + "os.remove('/tmp/some-file')", "os.remove /tmp/some-file"),
    (OS + "os.mkdir('/tmp/mmr-sandbox-escape.txt')", "os.mkdir /tmp/mmr-sandbox-escape.txt"),
    ("print(open('/etc/passwd').read())", "read /etc/passwd"),
])
def test_file_system_outside_the_folder_is_refused(code, detail):
    r = run_python(code, FAST)
    assert r.reason == "forbidden", r
    if detail:
        assert r.detail == detail
    assert not os.path.exists("/tmp/mmr-sandbox-escape.txt")


def test_writes_inside_the_folder_work_and_are_removed():
    code = OS + "open('notes.txt', 'w').write('kept')\nprint(open('notes.txt').read())\nprint(os.getcwd())"
    r = run_python(code, FAST)
    assert r.ok and r.stdout.splitlines()[0] == "kept"
    folder = r.stdout.splitlines()[1]
    assert "mmr-sandbox-" in folder and not os.path.exists(folder)


def test_errors_and_syntax_errors_are_reported():
    r = run_python("print(1/0)", FAST)
    assert r.reason == "error" and "ZeroDivisionError" in r.detail
    r = run_python("print(", FAST)
    assert r.reason == "error" and "SyntaxError" in r.detail
    r = run_python("raise SystemExit(0)\n", FAST)
    assert r.ok
    assert run_python(None, FAST).reason == "error"  # type: ignore[arg-type]


def test_fork_is_refused_without_allow_os():
    r = run_python(OS + "os.fork()", FAST)
    assert r.reason == "forbidden" and r.detail == "os.fork"


def test_bounded_fork_loop_stops_at_process_limit():
    # Never an unbounded fork bomb: 200 forks at most, every child sleeps briefly then exits, so
    # without a limit this would create 200 processes; the limit stops it at `nproc`.
    if not sandbox.enforces_process_limit():
        pytest.skip("root without the right to switch uid: the kernel does not apply RLIMIT_NPROC")
    code = (
        "import os, time\n"
        "pids = []\n"
        "try:\n"
        "    for _ in range(200):\n"
        "        pid = os.fork()\n"
        "        if pid == 0:\n"
        "            time.sleep(1)\n"
        "            os._exit(0)\n"
        "        pids.append(pid)\n"
        "finally:\n"
        "    print(' '.join(map(str, pids)), flush=True)\n"
    )
    limits = SandboxLimits(wall_s=10, cpu_s=5, nproc=8)
    r = run_python(code, limits, allow_os=True)
    assert r.reason == "nproc", r
    pids = [int(p) for p in r.stdout.split()]
    assert 0 < len(pids) <= limits.nproc
    time.sleep(0.2)
    assert not any(_alive(p) for p in pids)  # the process group was killed


def test_background_children_are_killed_with_the_group():
    if not sandbox.enforces_process_limit():
        pytest.skip("needs fork under a private uid")
    code = (
        "import os, time\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os.close(1); os.close(2)\n"  # detached from our pipes: only the group kill ends it
        "    time.sleep(60)\n"
        "    os._exit(0)\n"
        "print(pid, flush=True)\n"
    )
    r = run_python(code, FAST, allow_os=True)
    assert r.ok
    pid = int(r.stdout)
    time.sleep(0.2)
    assert not _alive(pid)
