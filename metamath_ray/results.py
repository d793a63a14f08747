"""What a command prints when it ends: a few tables a person can read, and where the outputs are.

Pure functions from a stage's own records (augment `stats.json`, the training summary, the
evaluation report) to lines of text; the CLI prints them with `logs.result`.
"""

from __future__ import annotations

from typing import Any


def augment_lines(stats: dict, uri: str) -> list[str]:
    """Seeds, then candidates per dataset x augmentation with their acceptance, then the outputs."""
    seeds, totals = stats["seeds"], stats["totals"]
    lines = [
        f"augment: {seeds['rows_read']} seed rows = {seeds['processed']} processed + {seeds['quarantined']} quarantined",
        f"  {'dataset':8} {'aug':11} {'generated':>9} {'accepted':>8} {'rate':>6} {'rewrites refused':>16}",
    ]
    for row in stats["by_dataset_aug"]:
        rate = "-" if row["acceptance_rate"] is None else f"{row['acceptance_rate']:.0%}"
        lines.append(f"  {row['dataset']:8} {row['aug']:11} {row['candidates']:>9} {row['accepted']:>8} {rate:>6} "
                     f"{row['rewrites_rejected']:>16}")
    lines.append(f"  {'total':8} {'':11} {totals['candidates']:>9} {totals['accepted']:>8}")
    if totals.get("cost_usd") is not None:  # an API teacher with prices in the config: what the run cost
        from metamath_ray.engines.pricing import format_usd

        lines.append(f"  cost: {format_usd(totals['cost_usd'])} for {totals['tokens_in']:,} prompt and "
                     f"{totals['tokens_out']:,} generated tokens (at the config's prices)")
    exported = stats.get("export", {}).get("records")
    lines.append(f"  data: {uri}" + (f" ({exported} records in metamathqa.json)" if exported is not None else ""))
    return lines


def train_lines(summary: dict) -> list[str]:
    """Steps, the last loss, speed, and where the model and checkpoints went."""
    loss = summary.get("final_loss")
    loss_text = f", final loss {loss:.4f}" if isinstance(loss, (int, float)) else ""
    speed = summary.get("tokens_per_s")
    speed_text = f", {speed:.0f} tokens/s" if isinstance(speed, (int, float)) else ""
    lines = [f"train: {summary.get('steps', '?')} steps{loss_text}{speed_text}"]
    if summary.get("model_uri"):
        lines.append(f"  model: {summary['model_uri']}")
    lines.append(f"  run: {summary.get('run_uri', '?')}")
    return lines


def evaluate_lines(report: dict) -> list[str]:
    """Accuracy per dataset under both scorers (greedy, or maj@k when only sampling ran)."""
    from metamath_ray.evaluate.summary import headline

    lines = [f"evaluate: {report.get('model', '?')}",
             f"  {'dataset':16} {'questions':>9} {'strict':>8} {'metamath':>9}"]
    for name, entry in report.get("datasets", {}).items():
        cells = [_percent(headline(entry, scorer)) for scorer in ("strict", "metamath")]
        lines.append(f"  {name:16} {entry.get('questions', 0):>9} {cells[0]:>8} {cells[1]:>9}")
    lines.append(f"  report: {report.get('outputs', {}).get('run', '?')}/report.md")
    return lines


def _percent(cell: dict | None) -> str:
    if not cell or cell.get("accuracy") is None:
        return "-"
    return f"{100 * cell['accuracy']:.1f}%"


def pipeline_lines(summary: dict[str, Any]) -> list[str]:
    """`run` (and the demo): every stage that ran, then the run's wall time."""
    lines: list[str] = []
    if "augment" in summary:
        lines += augment_lines(summary["augment"]["stats"], summary["augment"]["uri"])
    if "train" in summary:
        lines += train_lines(summary["train"])
    if "evaluate" in summary:
        lines += evaluate_lines(summary["evaluate"]["report"])
    lines.append(f"done in {summary.get('wall_time_s', 0):.0f} s; outputs under {summary['root']}")
    return lines


__all__ = ["augment_lines", "evaluate_lines", "pipeline_lines", "train_lines"]
