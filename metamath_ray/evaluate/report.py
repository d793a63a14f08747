"""report.json, report.md and PNG plots of one evaluation run."""

from __future__ import annotations

import io

from metamath_ray.evaluate.scoring import SCORERS
from metamath_ray.evaluate.summary import headline

REPORT_VERSION = 1


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _cell(entry: dict | None) -> str:
    if not entry:
        return "-"
    lo, hi = entry["ci95"]
    return f"{_pct(entry['accuracy'])} [{_pct(lo)}, {_pct(hi)}]"


def render_markdown(report: dict) -> str:
    """A human summary: headline table, sampling metrics, hybrid decoding, MATH per type x level,
    throughput."""
    datasets = report["datasets"]
    lines = [f"# Evaluation: {report['run_name']}", ""]
    lines += [f"- model: `{report['model']}`", f"- engine: `{report['engine']}`"]
    lines += [f"- prompt template: `{report['template']}`", ""]
    lines += _headline_lines(datasets) + _sampling_lines(datasets) + _hybrid_lines(datasets)
    lines += _type_level_lines(datasets) + _throughput_lines(report["throughput"])
    lines.append("")
    return "\n".join(lines)


def _headline_lines(datasets: dict) -> list[str]:
    lines = [
        "Accuracy in % with 95% confidence intervals (Wilson). *strict*: our extractor and symbolic",
        "equivalence; *metamath*: MetaMath's published scoring (integer rounding on GSM8K-style sets,",
        "normalised string match on MATH), for comparison with its tables.",
        "",
        "| dataset | questions | strict | metamath | extraction failures (strict) | mean tokens |",
        "|---|---|---|---|---|---|",
    ]
    for name, ds in datasets.items():
        lines.append(
            f"| {name} | {ds['questions']} | {_cell(headline(ds, 'strict'))} | {_cell(headline(ds, 'metamath'))} "
            f"| {_pct(ds['extraction_failure_rate']['strict'])}% | {ds['tokens']['mean_generated']:.0f} |"
        )
    return lines


def _sampling_lines(datasets: dict) -> list[str]:
    sampled = {n: ds for n, ds in datasets.items() if "k" in ds}
    if not sampled:
        return []
    lines = ["", "## Sampling", "", "| dataset | metric | strict | metamath |", "|---|---|---|---|"]
    for name, ds in sampled.items():
        k = ds["k"]
        lines.append(f"| {name} | maj@{k} | {_cell(ds[f'maj@{k}']['strict'])} | {_cell(ds[f'maj@{k}']['metamath'])} |")
        for kk in ds["pass@k"]["strict"]:
            lines.append(
                f"| {name} | pass@{kk} | {_cell(ds['pass@k']['strict'][kk])} "
                f"| {_cell(ds['pass@k']['metamath'][kk])} |"
            )
    return lines


def _hybrid_lines(datasets: dict) -> list[str]:
    hybrid = {n: ds["hybrid"] for n, ds in datasets.items() if "hybrid" in ds}
    if not hybrid:
        return []
    lines = [
        "", "## Hybrid decoding (program, chain-of-thought fallback)", "",
        "Greedy; a program runs in the sandbox, and when it fails (error, limit, no printed answer) the",
        "chain-of-thought answer is used. Accuracy in % (strict scorer; metamath in parentheses).", "",
        "| dataset | CoT only | PoT only | hybrid | fallback to CoT | program outcomes |", "|---|---|---|---|---|---|",
    ]
    for name, h in hybrid.items():
        cells = [
            f"{_pct(h['strict'][m]['accuracy'])} ({_pct(h['metamath'][m]['accuracy'])})" for m in ("cot", "pot", "hybrid")
        ]
        outcomes = ", ".join(f"{k}: {v}" for k, v in h["pot_status"].items())
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {_pct(h['fallback_rate'])}% | {outcomes} |")
    return lines


def _type_level_lines(datasets: dict) -> list[str]:
    lines: list[str] = []
    for name, ds in datasets.items():
        if "by_type_level" not in ds:
            continue
        levels = sorted(ds["by_level"], key=int)
        lines += ["", f"## {name}: strict accuracy by type x level (%)", ""]
        lines += ["| type | " + " | ".join(f"L{lv}" for lv in levels) + " | all |"]
        lines += ["|---" * (len(levels) + 2) + "|"]
        for type_name, by_level in ds["by_type_level"].items():
            cells = [
                _pct(by_level[lv]["strict"]["accuracy"]) if lv in by_level else "-" for lv in levels
            ]
            lines.append(f"| {type_name} | " + " | ".join(cells) + f" | {_pct(ds['by_type'][type_name]['strict']['accuracy'])} |")
    return lines


def _throughput_lines(tp: dict) -> list[str]:
    lines = [
        "",
        "## Throughput",
        "",
        f"{tp['samples']} samples in {tp['wall_s']:.1f} s: {tp['samples_per_s']:.2f} samples/s, "
        f"{tp['generated_tokens_per_s']:.1f} generated tokens/s (including engine start-up).",
    ]
    steady = {k: v for k, v in (tp.get("steady_samples_per_s") or {}).items() if v}
    if steady:
        lines.append("Once running (first to last scored batch): " + ", ".join(
            f"{decoding} {rate:.2f} samples/s" for decoding, rate in steady.items()) + ".")
    if tp.get("cost_usd") is not None:  # an API teacher with prices in the config
        from metamath_ray.engines.pricing import format_usd

        lines.append(f"Cost at the config's prices: {format_usd(tp['cost_usd'])} for {tp.get('input_tokens', 0):,} "
                     f"prompt and {tp['generated_tokens']:,} generated tokens.")
    return lines


def render_plots(report: dict) -> dict[str, bytes]:
    """PNG bytes by file name: accuracy per dataset (both scorers), MATH type x level heatmaps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots: dict[str, bytes] = {"accuracy.png": _png(accuracy_figure(report, plt), plt)}

    for name, ds in report["datasets"].items():
        if "by_type_level" not in ds:
            continue
        types = list(ds["by_type_level"])
        levels = sorted(ds["by_level"], key=int)
        if not types or not levels:  # e.g. rows with no type: nothing to draw, not a crash
            continue
        grid = [
            [100 * ds["by_type_level"][t][lv]["strict"]["accuracy"] if lv in ds["by_type_level"][t] else float("nan")
             for lv in levels]
            for t in types
        ]
        fig, ax = plt.subplots(figsize=(1.1 * len(levels) + 3, 0.45 * len(types) + 1.5))
        image = ax.imshow(grid, vmin=0, vmax=100, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(levels)), [f"L{lv}" for lv in levels])
        ax.set_yticks(range(len(types)), types)
        ax.set_title(f"{name}: strict accuracy (%) by type x level")
        fig.colorbar(image, ax=ax)
        fig.tight_layout()
        plots[f"{name}_type_level.png"] = _png(fig, plt)
    return plots


def accuracy_figure(report: dict, plt):
    """Accuracy per dataset under both scorers with 95% CIs; the legend sits beside the axes, so a
    bar reaching 100% is never hidden behind it."""
    names = list(report["datasets"])
    fig, ax = plt.subplots(figsize=(max(4, 1.6 * len(names)) + 1.2, 3.5))
    width = 0.38
    for offset, scorer in zip((-width / 2, width / 2), SCORERS):
        entries = [headline(report["datasets"][n], scorer) or {"accuracy": 0.0, "ci95": [0.0, 0.0]} for n in names]
        acc = [100 * e["accuracy"] for e in entries]
        err = [
            [100 * (e["accuracy"] - e["ci95"][0]) for e in entries],
            [100 * (e["ci95"][1] - e["accuracy"]) for e in entries],
        ]
        ax.bar([i + offset for i in range(len(names))], acc, width, yerr=err, capsize=3, label=scorer)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{report['run_name']}: accuracy with 95% CI")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    return fig


def _png(fig, plt) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def write_report(report: dict, run_uri: str) -> list[str]:
    """Write plots/, report.md and then report.json under the run folder; returns the URIs written.

    Every file is published atomically. report.json comes last because its presence marks a
    finished evaluation: a run that died while writing the report has none, so it is never taken
    for complete.
    """
    from metamath_ray import storage

    written = []
    for name, plot in render_plots(report).items():
        uri = storage.join(run_uri, "plots", name)
        storage.write_bytes(uri, plot)
        written.append(uri)
    md_uri = storage.join(run_uri, "report.md")
    storage.write_text(md_uri, render_markdown(report))
    json_uri = storage.join(run_uri, "report.json")
    storage.write_json(json_uri, report, sort_keys=False)  # keys in reading order, as built
    return written + [md_uri, json_uri]
