"""The child side of `metamath_ray.sandbox`: runs one untrusted program, then exits.

Started as `python -I -S -B sandbox_runner.py CONFIG_JSON` with an empty environment, cwd set to a
fresh temporary folder and stdin on /dev/null, in its own session (process group). Standard library
only, and it never imports metamath_ray: it must be cheap to start and must not drag the parent's
modules (and their state) into the child.

Order matters, each step narrows what the next may do:
  1. sys.path from the parent; import the allowed modules the program names (before the uid drop,
     since the Python installation may not be readable by the sandbox uid);
  2. resource limits (CPU, address space, processes, file size, open files, no core dumps);
  3. drop to an unprivileged uid when started as root (kernel-enforced file permissions, and the
     process limit is not enforced for root at all);
  4. seccomp filter (x86_64 / aarch64): no execve, no sockets, no setsid/setpgid (nothing leaves
     the process group the parent kills), no kill, no ptrace/namespaces. Best effort: skipped where
     the kernel refuses it, the layers above and below still hold;
  5. an audit hook (PEP 578) that ends the process on any forbidden event: process creation,
     sockets, ctypes, writes or deletions outside the temporary folder, reads outside it and the
     Python installation, gc/frame introspection that could reach the hook's own state;
  6. the program runs with restricted builtins: `__import__` admits an allowlist of modules only.

Exit status tells the parent why the program ended (see EXIT_*); signals from the rlimits
(SIGXCPU, SIGXFSZ, SIGKILL) are read by the parent from the return code.
"""

import sys

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_FORBIDDEN = 3
EXIT_MEMORY = 4
EXIT_NPROC = 5
EXIT_SETUP = 6

# Modules a math program may import (top-level names; submodules follow their package).
SAFE_MODULES = frozenset({
    "math", "cmath", "fractions", "decimal", "numbers", "itertools", "functools", "collections",
    "statistics", "random", "re", "string", "operator", "heapq", "bisect", "datetime", "calendar",
    "typing", "dataclasses", "copy", "enum", "abc", "array", "textwrap", "json", "time", "pprint",
    "sympy", "numpy", "mpmath", "scipy",
})
# Imported up front when the program names them (cheap ones always): the sandbox uid may not be
# able to read the installation afterwards.
ALWAYS_PRELOAD = ("math", "cmath", "fractions", "decimal", "itertools", "functools", "collections",
                  "statistics", "random", "re", "string", "operator", "heapq", "bisect", "datetime", "copy")
HEAVY_PRELOAD = ("sympy", "numpy", "mpmath", "scipy")

# Syscalls the seccomp filter refuses with EPERM, per architecture.
_SECCOMP_DENY = {
    # x86_64: execve, execveat, socket, socketpair, connect, bind, listen, accept, accept4, ptrace,
    # setsid, setpgid, unshare, setns, mount, process_vm_readv/writev, bpf, userfaultfd, keyctl,
    # perf_event_open, kill, tkill, tgkill, chroot, pivot_root
    0xC000003E: (59, 322, 41, 53, 42, 49, 50, 43, 288, 101, 112, 109, 272, 308, 165, 310, 311, 321,
                 323, 250, 298, 62, 200, 234, 161, 155),
    # aarch64, same list
    0xC00000B7: (221, 281, 198, 199, 203, 200, 201, 202, 242, 117, 157, 154, 97, 268, 40, 270, 271, 280,
                 282, 219, 241, 129, 130, 131, 51, 41),
}
_MACHINE_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}


def _fail_setup(message):
    sys.stderr.write(f"sandbox setup failed: {message}\n")
    sys.stderr.flush()
    import os

    os._exit(EXIT_SETUP)


def _preload(code, allow_os):
    names = list(ALWAYS_PRELOAD) + [m for m in HEAVY_PRELOAD if m in code]
    if allow_os:
        names += ["os", "time", "signal"]
    names += ["traceback", "linecache"]  # the runner reports the program's exceptions with them
    for name in names:
        try:
            __import__(name)
        except Exception:  # an optional package that is not installed
            pass
    if "sympy" in sys.modules:
        # Submodules sympy imports lazily on first use (solvers, printing).
        for name in ("sympy.solvers.diophantine", "sympy.printing.str", "sympy.parsing.sympy_parser"):
            try:
                __import__(name)
            except Exception:
                pass


def _neuter_process_spawning():
    """_posixsubprocess.fork_exec (loaded by sympy via subprocess) raises no audit event, so a program
    that reaches it through a module reference could exec a shell. Replace every reference we know;
    the seccomp filter refuses execve as well."""

    def refused(*args, **kwargs):
        raise PermissionError("process creation is not allowed in the sandbox")

    for module, attr in (("_posixsubprocess", "fork_exec"), ("subprocess", "_fork_exec"),
                         ("multiprocessing.util", "_posixsubprocess")):
        mod = sys.modules.get(module)
        if mod is not None and hasattr(mod, attr):
            setattr(mod, attr, refused)


def _set_limits(cfg):
    import resource

    # RLIMIT_CPU counts the whole process: add what start-up and imports have used already.
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = int(usage.ru_utime + usage.ru_stime + 0.999) + int(cfg["cpu_s"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU at the soft limit, SIGKILL after
    mem = int(cfg["memory_mb"]) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(cfg["file_bytes"]), int(cfg["file_bytes"])))
    resource.setrlimit(resource.RLIMIT_NOFILE, (int(cfg["open_files"]), int(cfg["open_files"])))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # RLIMIT_NPROC counts every process (and thread) of the real uid: with a private uid that is the
    # sandbox alone; without one the parent passes the user's current count plus the budget.
    resource.setrlimit(resource.RLIMIT_NPROC, (int(cfg["nproc_rlimit"]), int(cfg["nproc_rlimit"])))


def _drop_privileges(uid):
    import os

    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid:
        _fail_setup("uid drop did not take effect")


def _install_seccomp():
    """A BPF filter returning EPERM for the denied syscalls; True when installed."""
    import ctypes
    import os
    import struct

    arch = _MACHINE_ARCH.get(os.uname().machine)
    if arch is None:
        return False
    deny = _SECCOMP_DENY[arch]
    ld_w_abs, jeq_k, ret_k = 0x20, 0x15, 0x06
    allow, errno_eperm, kill = 0x7FFF0000, 0x00050000 | 1, 0x80000000  # KILL_PROCESS on a wrong arch
    prog = [(ld_w_abs, 0, 0, 4), (jeq_k, 1, 0, arch), (ret_k, 0, 0, kill), (ld_w_abs, 0, 0, 0)]
    if arch == 0xC000003E:  # x32 ABI syscalls (nr | 0x40000000) would bypass the numbers below
        prog += [(0x35, 0, 1, 0x40000000), (ret_k, 0, 0, errno_eperm)]  # jge
    for nr in deny:
        prog += [(jeq_k, 0, 1, nr), (ret_k, 0, 0, errno_eperm)]
    prog.append((ret_k, 0, 0, allow))
    raw = b"".join(struct.pack("HBBI", *ins) for ins in prog)
    buf = ctypes.create_string_buffer(raw, len(raw))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(prog), ctypes.addressof(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        return False
    return libc.prctl(22, 2, ctypes.addressof(fprog), 0, 0) == 0  # PR_SET_SECCOMP, FILTER


def _install_audit_hook(tmp, read_roots, allow_os):
    """Everything the hook needs is captured here, so monkeypatching os/posixpath later changes
    nothing, and no module global refers to the hook or its policy."""
    import os

    _exit, _write = os._exit, os.write
    tmp = tmp.rstrip("/")
    readable = tuple(r.rstrip("/") for r in read_roots) + (tmp,)
    read_files = frozenset({"/dev/null", "/dev/urandom", "/dev/random"})
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    denied_events = {
        "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.forkpty", "os.startfile",
        "subprocess.Popen", "os.chdir", "os.chroot", "os.chmod", "os.chown", "os.chflags", "os.lchflags",
        "os.symlink", "os.link", "os.putenv", "os.unsetenv", "os.setxattr", "os.removexattr",
        "os.add_dll_directory", "os.truncate", "sys.addaudithook", "sys._current_frames",
        "gc.get_objects", "gc.get_referrers", "gc.get_referents", "code.__new__", "function.__new__",
        "resource.setrlimit", "resource.prlimit", "webbrowser.open", "urllib.Request", "pty.spawn",
        "sys.remote_exec", "mmap.__new__", "cpython.remove_remote_exec",
    }
    if not allow_os:
        denied_events |= {"os.fork", "os.kill", "os.killpg", "os.setsid", "os.setpgid"}
    denied_events = frozenset(denied_events)
    denied_prefixes = ("socket.", "ctypes.", "_ctypes.", "http.", "ftplib.", "smtplib.", "poplib.",
                       "imaplib.", "nntplib.", "telnetlib.", "winreg.", "msvcrt.", "_winapi.", "cpython.")
    path_events = frozenset({"os.remove", "os.rmdir", "os.rename", "os.mkdir", "os.utime", "shutil.rmtree",
                             "shutil.copyfile", "shutil.copymode", "shutil.copystat", "shutil.move",
                             "shutil.copytree", "shutil.make_archive", "shutil.unpack_archive"})
    read_events = frozenset({"os.listdir", "os.scandir", "glob.glob", "os.walk", "os.fwalk"})
    denied_imports = frozenset({"socket", "_socket", "ssl", "_ssl", "subprocess", "_posixsubprocess",
                                "ctypes", "_ctypes", "multiprocessing", "_multiprocessing", "pty",
                                "asyncio", "http", "urllib", "ftplib", "smtplib", "telnetlib", "webbrowser",
                                "select", "selectors", "mmap", "fcntl", "termios", "_xxsubinterpreters"})

    def normalize(path):
        # Pure string work: no os.path call an attacker could have monkeypatched.
        if isinstance(path, bytes):
            path = path.decode("utf-8", "surrogateescape")
        if not path.startswith("/"):
            path = tmp + "/" + path  # cwd is the temporary folder and os.chdir is refused
        parts = []
        for part in path.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if parts:
                    parts.pop()
            else:
                parts.append(part)
        return "/" + "/".join(parts)

    def inside(path, roots):
        return any(path == r or path.startswith(r + "/") for r in roots)

    def refuse(event, detail):
        try:
            _write(2, f"\nsandbox: forbidden: {event} {detail}"[:500].encode("utf-8", "replace") + b"\n")
        finally:
            _exit(EXIT_FORBIDDEN)

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            if isinstance(path, int) or path is None:
                return
            full = normalize(path)
            writing = (any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & write_flags))
            if writing:
                if not inside(full, (tmp,)):
                    refuse("write", full)
            elif not (full in read_files or inside(full, readable)):
                refuse("read", full)
        elif event == "import":
            name = str(args[0]).split(".")[0]
            filename = args[1]
            if name in denied_imports:
                refuse("import", args[0])
            if filename and not inside(normalize(filename), readable):
                refuse("import", f"{args[0]} from {filename}")
        elif event in denied_events or event.startswith(denied_prefixes):
            refuse(event, "")
        elif event in path_events:
            for a in args:
                if isinstance(a, (str, bytes)) and not inside(normalize(a), (tmp,)):
                    refuse(event, normalize(a))
        elif event in read_events:
            for a in args[:1]:
                if isinstance(a, (str, bytes)) and not inside(normalize(a), readable):
                    refuse(event, normalize(a))

    sys.addaudithook(hook)


def _restricted_builtins(allow_os):
    import builtins

    allowed = SAFE_MODULES | ({"os", "signal"} if allow_os else frozenset())
    real_import = builtins.__import__
    import os

    _exit, _write = os._exit, os.write

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level != 0 or name.split(".")[0] not in allowed:
            _write(2, f"\nsandbox: forbidden: import {name}\n".encode("utf-8", "replace"))
            _exit(EXIT_FORBIDDEN)
        return real_import(name, globals, locals, fromlist, level)

    table = dict(vars(builtins))
    # `open` stays: writes inside the temporary folder are allowed, the audit hook checks every path.
    for name in ("breakpoint", "help", "input", "exit", "quit", "copyright", "credits", "license"):
        table.pop(name, None)
    table["__import__"] = guarded_import
    return table


def main():
    import json
    import os

    cfg = json.loads(sys.argv[1])
    sys.path[:] = cfg["sys_path"]
    sys.argv[:] = ["program.py"]
    try:
        with open(cfg["program"], encoding="utf-8") as f:
            code = f.read()
    except OSError as e:
        _fail_setup(f"cannot read program: {e}")
    _preload(code, cfg["allow_os"])
    _neuter_process_spawning()
    try:
        _set_limits(cfg)
        if cfg.get("uid") is not None:
            _drop_privileges(int(cfg["uid"]))
    except OSError as e:
        _fail_setup(str(e))
    seccomp = False
    if cfg.get("seccomp", True):
        try:
            seccomp = _install_seccomp()
        except Exception:
            seccomp = False
    if cfg.get("require_seccomp") and not seccomp:
        _fail_setup("seccomp filter could not be installed")
    scope = {"__name__": "__main__", "__builtins__": _restricted_builtins(cfg["allow_os"])}
    try:
        compiled = compile(code, "program.py", "exec")
    except (SyntaxError, ValueError) as e:
        sys.stderr.write(f"{type(e).__name__}: {e}\n")
        sys.stderr.flush()
        os._exit(EXIT_ERROR)
    # Tell the parent the program starts now (its wall clock starts here), and close the channel.
    os.write(cfg["ready_fd"], b"R")
    os.close(cfg["ready_fd"])
    _install_audit_hook(cfg["tmp"], cfg["read_roots"], cfg["allow_os"])
    status = EXIT_OK
    try:
        exec(compiled, scope)
    except SystemExit as e:
        status = EXIT_OK if e.code in (None, 0) else EXIT_ERROR
    except MemoryError:
        status = EXIT_MEMORY
    except BaseException as e:  # noqa: BLE001 - the program's own failure, reported as such
        # fork() under RLIMIT_NPROC fails with EAGAIN (BlockingIOError); threads with RuntimeError.
        out_of_procs = isinstance(e, BlockingIOError) or (
            isinstance(e, RuntimeError) and "can't start new thread" in str(e))
        status = EXIT_NPROC if out_of_procs else EXIT_ERROR
        try:
            import traceback  # preloaded: no file is read here

            sys.stderr.write("".join(traceback.format_exception(type(e), e, e.__traceback__))[-4000:])
        except MemoryError:
            status = EXIT_MEMORY
        except BaseException:
            pass
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except MemoryError:
        status = EXIT_MEMORY
    except BaseException:
        pass
    os._exit(status)


if __name__ == "__main__":
    main()
