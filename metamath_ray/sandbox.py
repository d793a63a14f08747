"""Run untrusted Python (model-written programs) in a separate, limited process. No Ray.

    result = run_python("import sympy\\nprint(sympy.Rational(3, 2) + 1)")
    result.ok, result.stdout, result.reason   # True, "5/2\\n", None

Layers, outermost first (each one holds if an inner one is bypassed):
- a new process in its own session (process group), killed as a group at the end, whatever happens;
- a wall-clock deadline enforced here, and stdout/stderr read here with a byte cap (the program is
  killed as soon as it exceeds it, so it can never block on a full pipe or fill memory here);
- an empty environment (nothing of ours, no credentials) and cwd = a fresh temporary folder that is
  deleted afterwards;
- in the child (`sandbox_runner`): rlimits (CPU, address space, processes, file size, open files),
  a private unprivileged uid when started as root, a seccomp filter (no exec, no sockets, nothing
  leaves the process group), an audit hook (no process creation, sockets, ctypes, writes outside the
  temporary folder, reads outside it and the Python installation), and restricted builtins whose
  `__import__` admits math/number-crunching modules only.

`run_python` never raises on hostile input; the reason a run failed is one of REASONS.
Start-up cost: a bare interpreter is tens of milliseconds; a program that imports sympy pays its
import (about 1 s of CPU) because every run is a fresh process (no state leaks between programs).
"""

from __future__ import annotations

import itertools
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REASONS = ("timeout", "cpu", "memory", "nproc", "forbidden", "error", "output_limit")

# Exit statuses of sandbox_runner (kept in sync by test_sandbox).
_EXIT_REASONS = {1: "error", 3: "forbidden", 4: "memory", 5: "nproc", 6: "error"}
_EXIT_SETUP = 6
_RUNNER = str(Path(__file__).with_name("sandbox_runner.py"))
# Private uids for sandboxed programs when we run as root: one per run, so RLIMIT_NPROC counts that
# run's processes only. Within 0..65535 so that containers with the usual uid mapping accept them.
_UID_BASE, _UID_SPAN = 40000, 20000
_uid_counter = itertools.count()
_uid_drop_works: bool | None = None  # learned on first use: some containers refuse setuid


@dataclass(frozen=True)
class SandboxLimits:
    wall_s: float = 10.0  # wall clock of the program, from the end of the sandbox's set-up
    startup_s: float = 30.0  # wall clock for set-up: interpreter start, imports (sympy: ~1-3 s)
    cpu_s: int = 5  # CPU seconds (RLIMIT_CPU)
    memory_mb: int = 1024  # address space (RLIMIT_AS); sympy + numpy alone map ~180 MB
    nproc: int = 8  # processes and threads the program may add
    output_bytes: int = 64 * 1024  # stdout kept; more kills the program (reason output_limit)
    stderr_bytes: int = 64 * 1024  # stderr read at most (its tail is kept)
    file_bytes: int = 16 * 1024 * 1024  # largest file the program may write in its folder
    open_files: int = 64


@dataclass(frozen=True)
class SandboxResult:
    ok: bool  # the program ran to completion (exit status 0) within every limit
    stdout: str  # at most output_bytes, decoded with replacement
    stderr: str  # the last 4000 characters
    reason: str | None  # None when ok, else one of REASONS
    returncode: int | None
    wall_s: float  # the whole run, start-up included
    detail: str = ""  # e.g. the forbidden operation, the signal that ended the program
    startup_s: float | None = None  # until the program started (None: it never did)


def _read_roots() -> list[str]:
    """What the child may read: the Python installation and the import path (incl. site-packages)."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    roots.update(p for p in sys.path if p and os.path.isdir(p))
    out = set()
    for r in roots:
        out.add(os.path.abspath(r))
        out.add(os.path.realpath(r))
    return sorted(out)


def _child_sys_path() -> list[str]:
    return [p for p in sys.path if p and os.path.isdir(p)]


def _user_tasks(uid: int) -> int:
    """Processes + threads of `uid` now (RLIMIT_NPROC counts them all)."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", encoding="ascii", errors="replace") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            if int(fields["Uid"].split()[0]) == uid:
                total += int(fields.get("Threads", "1"))
        except (OSError, KeyError, ValueError):
            continue
    return total


def _pick_uid() -> int:
    return _UID_BASE + (os.getpid() * 7919 + next(_uid_counter)) % _UID_SPAN


def _minimal_env(tmp: str) -> dict[str, str]:
    # Nothing inherited: a secret in our environment must not be readable by the program.
    return {
        "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": tmp, "TMPDIR": tmp,
        "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
    }


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_python(code: str, limits: SandboxLimits | None = None, *, allow_os: bool = False,
               drop_privileges: bool | None = None, seccomp: bool = True) -> SandboxResult:
    """Run `code` in a sandboxed child process; never raises on hostile input.

    allow_os: let the program import `os` and fork (tests of the process limit only).
    drop_privileges: run as a private uid (default: when we are root and the kernel allows it).
    """
    global _uid_drop_works
    limits = limits or SandboxLimits()
    if not isinstance(code, str):
        return SandboxResult(False, "", "", "error", None, 0.0, "program is not a string")
    want_drop = (os.geteuid() == 0) if drop_privileges is None else drop_privileges
    if want_drop and drop_privileges is None and _uid_drop_works is False:
        want_drop = False
    result = _run_once(code, limits, allow_os, want_drop, seccomp)
    if want_drop and drop_privileges is None and _uid_drop_works is None:
        failed = result.returncode == _EXIT_SETUP and ("uid" in result.stderr or "Operation not permitted" in result.stderr)
        _uid_drop_works = not failed
        if failed:
            result = _run_once(code, limits, allow_os, False, seccomp)
    return result


def _run_once(code: str, limits: SandboxLimits, allow_os: bool, drop: bool, seccomp: bool) -> SandboxResult:
    started = time.monotonic()
    tmp = None
    ready_r = ready_w = -1
    try:
        ready_r, ready_w = os.pipe()
        tmp = tempfile.mkdtemp(prefix="mmr-sandbox-")
        program = os.path.join(tmp, "program.py")
        with open(program, "w", encoding="utf-8", errors="surrogatepass") as f:
            f.write(code)
        uid = None
        if drop:
            uid = _pick_uid()
            os.chown(tmp, uid, uid)
            nproc_rlimit = limits.nproc + 1  # the private uid owns nothing else
        else:
            nproc_rlimit = _user_tasks(os.getuid()) + limits.nproc + 1
        cfg = {
            "program": program, "tmp": tmp, "sys_path": _child_sys_path(), "read_roots": _read_roots(),
            "allow_os": allow_os, "uid": uid, "seccomp": seccomp, "cpu_s": limits.cpu_s,
            "memory_mb": limits.memory_mb, "file_bytes": limits.file_bytes, "open_files": limits.open_files,
            "nproc_rlimit": nproc_rlimit, "ready_fd": ready_w,
        }
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-B", _RUNNER, json.dumps(cfg)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=tmp, env=_minimal_env(tmp), close_fds=True, start_new_session=True, pass_fds=(ready_w,),
        )
    except (OSError, ValueError, subprocess.SubprocessError) as e:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        for fd in (ready_r, ready_w):
            if fd >= 0:
                os.close(fd)
        return SandboxResult(False, "", "", "error", None, time.monotonic() - started, f"sandbox did not start: {e}")
    os.close(ready_w)
    try:
        return _supervise(proc, ready_r, limits, started)
    finally:
        os.close(ready_r)
        _kill_group(proc)  # stragglers: background children of a program that has exited
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _supervise(proc: subprocess.Popen, ready_fd: int, limits: SandboxLimits, started: float) -> SandboxResult:
    # Until the child reports ready, the set-up allowance runs; then the program's own wall clock.
    deadline = started + limits.startup_s
    ready_at: float | None = None
    out, err = bytearray(), bytearray()
    err_seen = 0
    killed_for: str | None = None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, "out")
    sel.register(proc.stderr, selectors.EVENT_READ, "err")
    sel.register(ready_fd, selectors.EVENT_READ, "ready")
    open_streams = 2
    while open_streams:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            killed_for = "timeout"
            break
        for key, _ in sel.select(timeout=min(remaining, 0.5)):
            chunk = os.read(key.fd, 65536)
            if key.data == "ready":
                sel.unregister(key.fileobj)
                if chunk and ready_at is None:
                    ready_at = time.monotonic()
                    deadline = ready_at + limits.wall_s
                continue
            if not chunk:
                sel.unregister(key.fileobj)
                open_streams -= 1
                continue
            if key.data == "out":
                out += chunk
                if len(out) > limits.output_bytes:
                    killed_for = "output_limit"
            else:
                err_seen += len(chunk)
                err = (err + chunk)[-8192:]
                if err_seen > limits.stderr_bytes:
                    killed_for = "output_limit"
        if killed_for:
            break
    sel.close()
    if killed_for:
        _kill_group(proc)
    try:
        # Output closed: the program is exiting; give it the rest of the deadline (at least a moment).
        returncode = proc.wait(timeout=max(deadline - time.monotonic(), 0.05))
    except subprocess.TimeoutExpired:
        killed_for = killed_for or "timeout"
        _kill_group(proc)
        returncode = proc.wait()
    wall = time.monotonic() - started
    stdout = bytes(out[: limits.output_bytes]).decode("utf-8", "replace")
    stderr = bytes(err).decode("utf-8", "replace")[-4000:]
    reason, detail = _classify(returncode, killed_for, stderr, limits)
    if killed_for == "timeout" and ready_at is None:
        detail = f"set-up (interpreter start, imports) over {limits.startup_s:g} s"
    return SandboxResult(reason is None, stdout, stderr, reason, returncode, wall, detail,
                         None if ready_at is None else ready_at - started)


def _classify(returncode: int, killed_for: str | None, stderr: str, limits: SandboxLimits) -> tuple[str | None, str]:
    if killed_for == "output_limit":
        return "output_limit", f"more than {limits.output_bytes} bytes of output"
    if killed_for == "timeout":
        return "timeout", f"wall clock over {limits.wall_s:g} s"
    if returncode == 0:
        return None, ""
    if returncode < 0:
        sig = -returncode
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        if sig in (signal.SIGXCPU, signal.SIGKILL):  # RLIMIT_CPU: SIGXCPU at soft, SIGKILL at hard
            return "cpu", f"CPU time over {limits.cpu_s} s ({name})"
        if sig == signal.SIGXFSZ:
            return "output_limit", f"file larger than {limits.file_bytes} bytes"
        return "error", f"killed by {name}"
    reason = _EXIT_REASONS.get(returncode, "error")
    detail = ""
    if reason == "forbidden":
        detail = next((line.split("forbidden:", 1)[1].strip() for line in reversed(stderr.splitlines())
                       if "sandbox: forbidden:" in line), "")
    elif reason == "memory":
        detail = f"MemoryError (address space limit {limits.memory_mb} MB)"
    elif reason == "nproc":
        detail = f"process limit ({limits.nproc} processes/threads) reached"
    elif returncode == _EXIT_SETUP:
        detail = stderr.strip().splitlines()[-1] if stderr.strip() else "sandbox setup failed"
    else:
        lines = [line for line in stderr.strip().splitlines() if line.strip()]
        detail = lines[-1][:300] if lines else f"exit status {returncode}"
    return reason, detail


def enforces_process_limit() -> bool:
    """RLIMIT_NPROC binds unless we are root without the right to switch to a private uid (the kernel
    exempts root). Learned from a trial run the first time it is asked."""
    if os.geteuid() != 0:
        return True
    if _uid_drop_works is None:
        run_python("pass")
    return bool(_uid_drop_works)


def last_line(stdout: str) -> str | None:
    """The printed answer: the last non-empty line of a program's output."""
    lines = [line.strip() for line in (stdout or "").splitlines() if line.strip()]
    return lines[-1] if lines else None


__all__ = ["REASONS", "SandboxLimits", "SandboxResult", "enforces_process_limit", "last_line", "run_python"]
