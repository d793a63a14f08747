"""One log for every command: stdlib `logging`, configured once by the CLI.

Code only ever writes `logging.getLogger(__name__).info(...)`, or wraps a generation pass in
`progress(...)`. Where those messages go is decided here, once, by `configure()`:

- the console (stderr): this package's messages as `[stage] text`, warnings and errors, and one
  progress bar per pass on a terminal (off a terminal, a short progress line every 30 s).
  `--quiet` keeps warnings and errors; `--verbose` adds debug messages and everything below;
- results (stdout): the summary table and output locations a command ends with (`result()`);
- the run log, `<run folder>/logs/<command>-<time>-<pid>.log` (`run_log()`): everything. While a command
  runs, the process's stdout and stderr file descriptors point into this log, so the output of
  Ray workers and engines (vLLM warnings, resource-tracker tracebacks, Ray's C++ core, DeepSpeed)
  lands there whichever library prints it; `--verbose` echoes it to the console as well.

Inside Ray workers a process setup hook (`setup_worker`) turns this package's records into marked
lines on the worker's stderr, which Ray already ships to the driver; the driver turns them back into
records, so a training step logged by rank 0 reaches the console like a driver message.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import IO, Callable, Iterable, Iterator, TypeVar

QUIET, NORMAL, VERBOSE = -1, 0, 1
PROGRESS_EVERY_S = 30.0  # off a terminal: one progress line per running pass this often
STALLED_EVERY_S = 120.0  # ... but while nothing comes back (an engine loading), only this often
PACKAGE = "metamath_ray"
RESULT_LOGGER = f"{PACKAGE}.result"  # the command's result: stdout, shown even with --quiet
CAPTURED_LOGGER = "output"  # lines written to the process's stdout/stderr by anything
WORKER_MARK = "\x1emetamath-ray-record\x1e"  # prefixes a record a Ray worker sends to the driver
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
T = TypeVar("T")

logger = logging.getLogger(__name__)


@dataclass
class _State:
    verbosity: int = NORMAL
    console: IO[str] | None = None  # stderr as it was when configured (kept while fds are captured)
    results: IO[str] | None = None  # stdout, likewise
    owned: list[IO[str]] = field(default_factory=list)  # duplicated descriptors we must close
    handlers: list[logging.Handler] = field(default_factory=list)
    levels: dict[str, int] = field(default_factory=dict)  # logger levels to restore on shutdown
    bars: int = 0  # progress bars open on the console


_state: _State | None = None


def _ours(name: str) -> bool:
    return name == PACKAGE or name.startswith(PACKAGE + ".")


# ---------------------------------------------------------------------------------------------
# Console


def _stage_of(name: str) -> str:
    """`metamath_ray.pipeline.finalize` -> `augment`; `metamath_ray.train.loop` -> `train`."""
    parts = name.split(".")[1:] or ["metamath-ray"]
    if parts[0] == "pipeline" and len(parts) > 1:
        return {"finalize": "augment", "run": "run"}.get(parts[1], parts[1])
    return parts[0]


class ConsoleFormatter(logging.Formatter):
    """`[augment] 45 seeds read`; warnings say so; other libraries' records name their logger."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.name == CAPTURED_LOGGER:
            return text
        where = _stage_of(record.name) if _ours(record.name) else record.name
        level = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        line = f"[{where}] {level}{text}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _console_threshold(record: logging.LogRecord, verbosity: int) -> int:
    ours = _ours(record.name)
    if verbosity >= VERBOSE:
        return logging.DEBUG if ours else logging.INFO
    if verbosity <= QUIET:
        return logging.WARNING if ours else logging.ERROR
    return logging.INFO if ours else logging.ERROR


class ConsoleHandler(logging.StreamHandler):
    """Writes above the open progress bars instead of through them."""

    def __init__(self, stream: IO[str], verbosity: int):
        super().__init__(stream)
        self.verbosity = verbosity
        self.setFormatter(ConsoleFormatter())
        self.addFilter(lambda r: r.name != RESULT_LOGGER and r.levelno >= _console_threshold(r, self.verbosity))

    def emit(self, record: logging.LogRecord) -> None:
        if _state is not None and _state.bars:
            try:
                from tqdm import tqdm

                tqdm.write(self.format(record), file=self.stream)
                return
            except Exception:  # noqa: BLE001 - a bar problem must never lose the message
                pass
        super().emit(record)


def _keep_stream(stream: IO[str], fd: int, owned: list) -> IO[str]:
    """A stream that still reaches the user's terminal after `run_log` points `fd` elsewhere."""
    try:
        if stream.fileno() != fd:
            return stream
    except (AttributeError, OSError, ValueError):  # io.StringIO in tests: not a descriptor at all
        return stream
    dup = os.fdopen(os.dup(fd), "w", buffering=1, encoding="utf-8", errors="replace")
    owned.append(dup)
    return dup


def configure(verbosity: int = NORMAL) -> None:
    """Set up logging for a command (again, when called again: tests run many commands)."""
    global _state
    shutdown()
    state = _State(verbosity=verbosity)
    state.console = _keep_stream(sys.stderr, 2, state.owned)
    state.results = _keep_stream(sys.stdout, 1, state.owned)
    root = logging.getLogger()
    state.levels = {"": root.level, PACKAGE: logging.getLogger(PACKAGE).level}
    # Our debug messages are kept (run log); other libraries from INFO: botocore, for one, does
    # expensive work when its debug level is on.
    root.setLevel(logging.INFO)
    logging.getLogger(PACKAGE).setLevel(logging.DEBUG)
    console = ConsoleHandler(state.console, verbosity)
    results = logging.StreamHandler(state.results)
    results.addFilter(lambda r: r.name == RESULT_LOGGER)
    results.setFormatter(logging.Formatter("%(message)s"))
    for handler in (console, results):
        root.addHandler(handler)
        state.handlers.append(handler)
    logging.captureWarnings(True)  # library warnings go to the run log, not the console
    # Ray would fold repeated worker lines into one before they reach the driver, progress included.
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    if verbosity < VERBOSE:  # our own progress bars replace Ray Data's
        os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    _state = state


def shutdown() -> None:
    """Remove what `configure` installed (the CLI calls this when a command ends)."""
    global _state
    if _state is None:
        return
    root = logging.getLogger()
    for handler in _state.handlers:
        root.removeHandler(handler)
        handler.close()
    for name, level in _state.levels.items():
        logging.getLogger(name or None).setLevel(level)
    for stream in _state.owned:
        with contextlib.suppress(OSError, ValueError):
            stream.close()
    logging.captureWarnings(False)
    _state = None


def result(text: str) -> None:
    """A command's result (summary table, where the outputs are): stdout, even with --quiet (and the
    run log, when one is open)."""
    if _state is None:  # not configured by the CLI (a library caller): plain stdout
        sys.stdout.write(text + "\n")
        return
    for line in text.splitlines() or [""]:
        logging.getLogger(RESULT_LOGGER).info("%s", line)


# ---------------------------------------------------------------------------------------------
# The run log and the captured stdout/stderr


class _RunLogFilter(logging.Filter):
    """Everything of ours; other libraries from INFO (Ray Data's DEBUG stream is enormous)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return _ours(record.name) or record.name == CAPTURED_LOGGER or record.levelno >= logging.INFO


class _FdCapture:
    """Points descriptors 1 and 2 into a pipe read by a thread that logs every line.

    Ray prints worker output on the driver's stdout/stderr, and native code (Ray's C++ core,
    torch, vLLM) writes to the descriptors directly, so capturing at the descriptor level is the
    only way to keep all of it off the console. The reader keeps draining for the life of the
    process: processes started meanwhile (a local Ray's) may hold the pipe and must never block.
    """

    FLUSHED = "\x1emetamath-ray-flushed\x1e"

    def __init__(self) -> None:
        self.saved: dict[int, int] = {}
        self.saved_streams = (sys.stdout, sys.stderr)
        self.active = False
        self.flushed = threading.Event()

    def start(self) -> None:
        read_fd, write_fd = os.pipe()
        self.saved_streams = (sys.stdout, sys.stderr)
        for stream in self.saved_streams:
            with contextlib.suppress(Exception):
                stream.flush()
        for fd in (1, 2):
            self.saved[fd] = os.dup(fd)
            os.dup2(write_fd, fd)
        os.close(write_fd)
        # sys.stdout/stderr may not write to descriptors 1 and 2 (a test runner's capture does not);
        # while capturing they do, so Python-level prints are captured like everything else.
        sys.stdout, sys.stderr = _fd_stream(1), _fd_stream(2)
        self.active = True
        threading.Thread(target=self._drain, args=(read_fd,), name="metamath-ray-output", daemon=True).start()

    def stop(self) -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        # Everything written before this marker is logged once the reader has seen it.
        os.write(2, f"{self.FLUSHED}\n".encode())
        self.flushed.wait(timeout=5)
        sys.stdout, sys.stderr = self.saved_streams
        for fd, saved in self.saved.items():
            os.dup2(saved, fd)
            os.close(saved)
        self.saved.clear()
        self.active = False

    def _drain(self, read_fd: int) -> None:
        pending = b""
        with open(read_fd, "rb", buffering=0) as pipe:
            while True:
                chunk = pipe.read(65536)
                if not chunk:
                    return
                pending += chunk
                *lines, pending = re.split(rb"[\r\n]", pending)
                for raw in lines:
                    text = raw.decode("utf-8", errors="replace")
                    if text == self.FLUSHED:
                        self.flushed.set()
                    elif self.active:
                        _route_output_line(text)


def _fd_stream(fd: int) -> IO[str]:
    return open(fd, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)


def _route_output_line(line: str) -> None:
    line = _ANSI.sub("", line).rstrip()
    if not line.strip():
        return
    if WORKER_MARK in line:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            fields = json.loads(line.split(WORKER_MARK, 1)[1])
            logging.getLogger(fields["name"]).log(int(fields["level"]), "%s", fields["message"])
            return
    logging.getLogger(CAPTURED_LOGGER).info("%s", line)


@dataclass
class RunLog:
    path: str  # the log file on this machine, written while the command runs
    uri: str  # where it is kept: the same file for a local run, a copy in s3:// otherwise


def _log_location(run_uri: str, command: str) -> RunLog:
    from metamath_ray import storage

    name = f"{command}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{os.getpid()}.log"
    uri = storage.join(run_uri, "logs", name)
    if storage.is_s3(run_uri):
        local_dir = os.path.join(tempfile.gettempdir(), "metamath-ray-logs")
        os.makedirs(local_dir, exist_ok=True)
        return RunLog(os.path.join(local_dir, name), uri)
    os.makedirs(os.path.dirname(uri), exist_ok=True)
    return RunLog(uri, uri)


@contextlib.contextmanager
def run_log(run_uri: str, command: str) -> Iterator[RunLog]:
    """Log everything of a command to `<run_uri>/logs/` and capture the process's stdout/stderr.

    Without `configure()` (a library caller, a test) it does nothing and yields an empty `RunLog`:
    nothing is redirected or written that the caller did not ask for.
    """
    location = _log_location(run_uri, command) if _state is not None else RunLog("", "")
    if _state is None:
        yield location
        return
    handler = logging.FileHandler(location.path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(_RunLogFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    ray_was_up = _ray_initialized()
    capture = _FdCapture()
    capture.start()
    logging.getLogger(f"{PACKAGE}.{command}").info("log: %s", location.uri)
    try:
        yield location
    except BaseException as err:
        # The traceback goes to the log file here; the console gets it from the CLI in full.
        handler.handle(logger.makeRecord(logger.name, logging.ERROR, __file__, 0, "failed: %r", (err,),
                                         sys.exc_info()))
        raise
    finally:
        if not ray_was_up and _ray_initialized():
            _shutdown_ray()  # workers print until Ray stops (vLLM's exit noise): capture that too
        capture.stop()
        root.removeHandler(handler)
        handler.close()
        _publish(location)


def _ray_initialized() -> bool:
    ray = sys.modules.get("ray")
    return bool(ray is not None and ray.is_initialized())


def _shutdown_ray() -> None:
    import ray

    try:
        ray.shutdown()
    except Exception:  # noqa: BLE001 - the command's work is done; say so and carry on
        logger.warning("ray.shutdown() failed", exc_info=True)


def _publish(location: RunLog) -> None:
    if location.uri == location.path:
        return
    from metamath_ray import storage

    try:
        with open(location.path, "rb") as f:
            storage.write_bytes(location.uri, f.read())
    except Exception as err:  # noqa: BLE001 - losing the copy must not fail a finished run
        logger.warning("could not copy the log to %s (%s); it stays at %s", location.uri, err, location.path)


# ---------------------------------------------------------------------------------------------
# Progress


class Progress:
    """Done / total requests of one pass, generated tokens/s and ETA.

    A tqdm bar on a terminal. Off a terminal (a job log, CI) a line every `PROGRESS_EVERY_S` from
    a timer, so a pass still waiting for its engine says so instead of staying silent, and results
    that arrive in large batches do not decide when a line appears. Either way one closing line
    with the totals.
    """

    def __init__(self, desc: str, total: int, unit: str, log: logging.Logger):
        self.desc, self.total, self.unit = desc, total, unit
        self.log = log
        self.done = self.tokens = 0
        self.started = time.monotonic()
        self._closed = threading.Event()
        self._bar = self._open_bar()
        self._ticker = None
        if self._bar is None:
            self._ticker = threading.Thread(target=self._tick, name=f"progress {desc}", daemon=True)
            self._ticker.start()

    def _open_bar(self):
        if _state is None or _state.verbosity <= QUIET or not _is_terminal(_state.console):
            return None
        from tqdm import tqdm

        _state.bars += 1
        return tqdm(total=self.total, desc=self.desc, unit=f" {self.unit}", file=_state.console,
                    dynamic_ncols=True, leave=False, smoothing=0.1)

    def _tick(self) -> None:
        reported, last_line = -1, 0.0
        while not self._closed.wait(PROGRESS_EVERY_S):
            stalled = self.done == reported
            if stalled and time.monotonic() - last_line < STALLED_EVERY_S:
                continue
            reported, last_line = self.done, time.monotonic()
            self.log.info("%s: %s", self.desc, self.line())

    def update(self, n: int = 1, tokens: int = 0) -> None:
        self.done += n
        self.tokens += tokens
        if self._bar is not None:
            self._bar.set_postfix_str(f"{self._rate():.0f} tok/s", refresh=False)
            self._bar.update(n)

    def _rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.tokens / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        if not self.done:
            return f"0/{self.total} {self.unit}, waiting for the first results ({_duration(elapsed)}: engine start-up)"
        pct = f" ({self.done / self.total:.0%})" if self.total else ""
        eta = f", ETA {_duration(elapsed / self.done * (self.total - self.done))}" if self.done < self.total else ""
        return f"{self.done}/{self.total} {self.unit}{pct}, {self._rate():.0f} generated tok/s{eta}"

    def close(self) -> None:
        self._closed.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            if _state is not None:
                _state.bars -= 1
        elapsed = time.monotonic() - self.started
        self.log.info("%s: %d/%d %s in %s, %.0f generated tok/s",
                      self.desc, self.done, self.total, self.unit, _duration(elapsed), self._rate())


@contextlib.contextmanager
def progress(log: logging.Logger, desc: str, total: int, unit: str = "requests") -> Iterator[Progress]:
    """`with progress(log, "solve round 0", len(rows)) as bar: ... bar.update(1, tokens=n)`; lines
    go out through `log`, so they carry the caller's stage."""
    bar = Progress(desc, total, unit, log)
    try:
        yield bar
    finally:
        bar.close()


def track(rows: Iterable[T], log: logging.Logger, desc: str, total: int,
          tokens: Callable[[T], int] = lambda _row: 0, unit: str = "requests") -> Iterator[T]:
    """`rows`, passed through `progress`: one step per row, `tokens(row)` generated tokens each."""
    with progress(log, desc, total, unit) as bar:
        for row in rows:
            bar.update(1, tokens=tokens(row))
            yield row


def _is_terminal(stream: IO[str] | None) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):
        return False


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


# ---------------------------------------------------------------------------------------------
# Ray workers


class _WorkerForwarder(logging.Handler):
    """In a Ray worker: a record of ours as one marked line on stderr, for the driver to re-log."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            for i, part in enumerate(message.splitlines() or [""]):  # the driver reads line by line
                fields = {"name": record.name, "level": record.levelno, "message": part if i == 0 else "  " + part}
                sys.stderr.write(WORKER_MARK + json.dumps(fields) + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging must never break a worker
            self.handleError(record)


def setup_worker() -> None:
    """Ray's `worker_process_setup_hook`: forward this package's INFO+ records to the driver."""
    package = logging.getLogger(PACKAGE)
    if any(isinstance(h, _WorkerForwarder) for h in package.handlers):
        return
    forwarder = _WorkerForwarder(logging.INFO)
    package.addHandler(forwarder)
    package.setLevel(logging.INFO)
    package.propagate = False  # Ray's own worker logging would print each record a second time


def worker_runtime_env() -> dict:
    """The runtime env a CLI command gives Ray so worker records reach the driver; none otherwise."""
    if _state is None:
        return {}
    return {"worker_process_setup_hook": f"{__name__}.setup_worker"}


__all__ = [
    "NORMAL", "QUIET", "VERBOSE", "Progress", "RunLog", "configure", "progress", "result",
    "run_log", "setup_worker", "shutdown", "track", "worker_runtime_env",
]
