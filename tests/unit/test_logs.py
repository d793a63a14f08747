"""The one log (metamath_ray/logs.py): what reaches the console, what only the run log keeps."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

import pytest

from metamath_ray import logs


@pytest.fixture(autouse=True)
def _unconfigured():
    logs.shutdown()
    yield
    logs.shutdown()


def _record(name: str, level: int) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, "message", (), None)


@pytest.mark.parametrize("name, stage", [
    ("metamath_ray.pipeline.augment", "augment"),
    ("metamath_ray.pipeline.finalize", "augment"),
    ("metamath_ray.pipeline.evaluate", "evaluate"),
    ("metamath_ray.pipeline.run", "run"),
    ("metamath_ray.train.loop", "train"),
    ("metamath_ray.demo", "demo"),
    ("metamath_ray", "metamath-ray"),
])
def test_console_prefix_names_the_stage(name, stage):
    assert logs.ConsoleFormatter().format(_record(name, logging.INFO)) == f"[{stage}] message"


def test_console_says_warning_and_names_other_libraries():
    formatter = logs.ConsoleFormatter()
    assert formatter.format(_record("metamath_ray.train.run", logging.WARNING)) == "[train] warning: message"
    assert formatter.format(_record("ray.data", logging.ERROR)) == "[ray.data] error: message"
    assert formatter.format(_record(logs.CAPTURED_LOGGER, logging.INFO)) == "message"  # a captured line as is


@pytest.mark.parametrize("name, level, verbosity, shown", [
    ("metamath_ray.pipeline.augment", logging.INFO, logs.NORMAL, True),
    ("metamath_ray.pipeline.augment", logging.DEBUG, logs.NORMAL, False),
    ("metamath_ray.pipeline.augment", logging.DEBUG, logs.VERBOSE, True),
    ("metamath_ray.pipeline.augment", logging.INFO, logs.QUIET, False),
    ("metamath_ray.pipeline.augment", logging.WARNING, logs.QUIET, True),
    ("ray.data", logging.WARNING, logs.NORMAL, False),  # library warnings: the run log only
    ("ray.data", logging.ERROR, logs.NORMAL, True),
    ("ray.data", logging.ERROR, logs.QUIET, True),
    ("ray.data", logging.INFO, logs.VERBOSE, True),
    ("ray.data", logging.DEBUG, logs.VERBOSE, False),
    (logs.CAPTURED_LOGGER, logging.INFO, logs.NORMAL, False),  # worker/engine output
    (logs.CAPTURED_LOGGER, logging.INFO, logs.VERBOSE, True),
    (logs.RESULT_LOGGER, logging.INFO, logs.NORMAL, False),  # results go to stdout instead
])
def test_console_thresholds(name, level, verbosity, shown):
    handler = logs.ConsoleHandler(sys.stderr, verbosity)
    assert bool(handler.filter(_record(name, level))) is shown


def _child_output() -> None:
    """Output the way Ray workers, vLLM and native code produce it: not through Python logging."""
    subprocess.run([sys.executable, "-c", "import sys; print('engine says hi'); "
                    "print('Traceback (most recent call last): resource_tracker', file=sys.stderr)"], check=True)
    os.write(2, b"[core_worker.cc] native noise\n")
    print("a stray print")


def test_run_log_keeps_worker_output_off_the_console(tmp_path, capfd):
    logs.configure(logs.NORMAL)
    log = logging.getLogger("metamath_ray.pipeline.augment")
    with logs.run_log(str(tmp_path / "run"), "augment") as where:
        log.info("45 seeds read")
        _child_output()
        logging.getLogger("a_library").warning("a library's own warning")
    logs.result("summary table")
    out, err = capfd.readouterr()
    text = open(where.path, encoding="utf-8").read()
    assert where.path == where.uri and where.path.startswith(str(tmp_path / "run" / "logs" / "augment-"))
    for line in ("45 seeds read", "engine says hi", "resource_tracker", "native noise", "a stray print",
                 "a library's own warning"):
        assert line in text
    assert err.splitlines() == [f"[augment] log: {where.uri}", "[augment] 45 seeds read"]
    assert out == "summary table\n"
    assert "summary table" not in text  # the result came after the run log closed


def test_verbose_shows_the_captured_output_too(tmp_path, capfd):
    logs.configure(logs.VERBOSE)
    with logs.run_log(str(tmp_path), "train"):
        _child_output()
    err = capfd.readouterr().err
    assert "engine says hi" in err and "native noise" in err and "a stray print" in err


def test_quiet_keeps_warnings_and_the_result(tmp_path, capfd):
    logs.configure(logs.QUIET)
    log = logging.getLogger("metamath_ray.train.run")
    with logs.run_log(str(tmp_path), "train"):
        log.info("step 1/6")
        log.warning("loss is nan")
    logs.result("train: 6 steps")
    out, err = capfd.readouterr()
    assert err.splitlines() == ["[train] warning: loss is nan"]
    assert out == "train: 6 steps\n"


def test_a_failure_is_in_the_run_log_and_still_raised(tmp_path, capfd):
    logs.configure(logs.NORMAL)
    with pytest.raises(ZeroDivisionError):
        with logs.run_log(str(tmp_path), "evaluate") as where:
            _ = 1 / 0
    text = open(where.path, encoding="utf-8").read()
    assert "Traceback" in text and "ZeroDivisionError" in text
    print("fds restored")  # the console works again after the failure
    assert "fds restored" in capfd.readouterr().out


def test_an_s3_run_logs_locally_and_publishes_a_copy(monkeypatch, capfd):
    import metamath_ray.storage as storage

    published = {}
    monkeypatch.setattr(storage, "write_bytes", lambda uri, data: published.update({uri: data}))
    logs.configure(logs.NORMAL)
    with logs.run_log("s3://bucket/runs/r1", "augment") as where:
        logging.getLogger("metamath_ray.pipeline.augment").info("generating")
    assert where.uri.startswith("s3://bucket/runs/r1/logs/augment-") and where.uri.endswith(".log")
    assert not where.path.startswith("s3://") and os.path.basename(where.path) == where.uri.rsplit("/", 1)[1]
    assert b"generating" in published[where.uri]


def test_records_from_ray_workers_reach_the_console(tmp_path, capfd):
    """A worker's record travels as a marked stderr line (Ray prefixes it) and is logged again."""
    logging.getLogger("metamath_ray").handlers.clear()
    logs.setup_worker()
    try:
        logging.getLogger("metamath_ray.train.loop").info("step %d/%d loss %.2f", 3, 6, 1.5)
        logging.getLogger("metamath_ray.train.loop").debug("not forwarded")
    finally:
        package = logging.getLogger("metamath_ray")
        package.handlers.clear()
        package.propagate, package.level = True, logging.NOTSET
    worker_err = capfd.readouterr().err
    assert worker_err.count(logs.WORKER_MARK) == 1
    logs.configure(logs.NORMAL)
    with logs.run_log(str(tmp_path), "train"):
        sys.stderr.write(f"\x1b[36m(RayTrainWorker pid=11881)\x1b[0m {worker_err}")
    assert "[train] step 3/6 loss 1.50" in capfd.readouterr().err.splitlines()


def test_workers_get_the_setup_hook_only_under_the_cli():
    assert logs.worker_runtime_env() == {}
    logs.configure(logs.NORMAL)
    assert logs.worker_runtime_env() == {"worker_process_setup_hook": "metamath_ray.logs.setup_worker"}


def test_without_configure_nothing_is_captured_or_written(tmp_path, capfd):
    with logs.run_log(str(tmp_path / "run"), "augment") as where:
        os.write(2, b"stays on stderr\n")
    assert where.path == "" and not (tmp_path / "run").exists()
    assert "stays on stderr" in capfd.readouterr().err


def test_progress_off_a_terminal_is_a_line_at_most_every_interval(monkeypatch, caplog):
    log = logging.getLogger("metamath_ray.pipeline.evaluate")
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(logs, "PROGRESS_EVERY_S", 3600.0)
    with logs.progress(log, "evaluate greedy", 10) as bar:
        for _ in range(9):
            bar.update(1, tokens=20)
    assert [r.getMessage() for r in caplog.records] == [caplog.records[0].getMessage()]  # the closing line only
    assert caplog.records[0].getMessage().startswith("evaluate greedy: 9/10 requests in ")


def test_progress_lines_come_from_a_timer_while_the_pass_runs(monkeypatch, caplog):
    log = logging.getLogger("metamath_ray.pipeline.augment")
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(logs, "PROGRESS_EVERY_S", 0.05)
    monkeypatch.setattr(logs, "STALLED_EVERY_S", 3600.0)

    def rows():
        time.sleep(0.3)  # the engine starting: nothing has come back yet (said once, not every tick)
        yield from range(3)
        time.sleep(0.3)
        yield 3

    assert list(logs.track(rows(), log, "solve round 0", 4, tokens=lambda row: 10)) == [0, 1, 2, 3]
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("solve round 0: 0/4 requests, waiting for the first results")
    assert sum("waiting" in m for m in messages) == 1
    running = [m for m in messages if m.startswith("solve round 0: 3/4 requests (75%), ")]
    assert len(running) == 1 and "generated tok/s, ETA " in running[0]
    assert messages[-1].startswith("solve round 0: 4/4 requests in ")
    assert all(r.name == log.name for r in caplog.records)  # the caller's stage, not logs'


def test_every_command_takes_verbose_and_quiet():
    import typer

    from metamath_ray.cli import app

    def commands(group, prefix=""):
        for name, cmd in group.commands.items():
            if hasattr(cmd, "commands"):
                yield from commands(cmd, f"{prefix}{name} ")
            else:
                yield f"{prefix}{name}", cmd

    found = dict(commands(typer.main.get_command(app)))
    assert {"augment", "train", "evaluate", "run", "demo", "report compare"} <= set(found)
    for name, cmd in found.items():
        flags = {flag for param in cmd.params for flag in getattr(param, "opts", [])}
        assert {"--verbose", "-v", "--quiet", "-q"} <= flags, name


def test_verbose_and_quiet_together_is_a_one_line_error(capsys):
    from metamath_ray.cli import main

    assert main(["demo", "--verbose", "--quiet"]) == 2
    assert capsys.readouterr().err == "error: --verbose and --quiet contradict each other\n"
