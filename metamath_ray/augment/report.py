"""Augmentation report: `report.md` plus PNG charts from the run's `stats.json`.

Input schema (produced by the augment pipeline; extra keys are ignored):

    {
      "run_name": str,                       # optional, used in the title
      "model": str,                          # optional
      "wall_time_s": float,                  # optional
      "by_dataset_aug": [                    # one entry per (dataset, aug)
        {"dataset": "gsm8k" | "math", "aug": "AnsAug" | "Rephrasing" | "FOBAR" | "SV",
         "prompts": int,                     # prompts sent (rewrite + solve)
         "candidates": int,                  # chains of thought generated
         "accepted": int, "rejected": int,
         "reject_reasons": {reason: int},    # rewrite rejections included (empty_rewrite, ...);
                                             # wrong_step: right final answer, wrong arithmetic step
         "tokens_in": int, "tokens_out": int,
         "cost_usd": float | None,           # optional: at the config's prices (API teachers)
         "dedup_dropped": int, "decontam_dropped": int}
      ],
      "by_math_level_type": [                # MATH only
        {"level": "Level 3", "type": "Algebra", "candidates": int, "accepted": int}
      ],
      "by_difficulty": {                     # optional: augment/budget.py difficulty_table
        "adaptive": str, "budget_per_variant": float | None, "extra_attempts": int,
        "table": [{"dataset": str, "difficulty": str, "variants": int, "round0_attempts": int,
                   "round0_accepted": int, "extra_attempts": int, "attempts": int, "accepted": int}]}
    }

`write_report(stats, out_dir)` writes report.md, acceptance.png, rejections.png, tokens.png and
(when MATH rows exist) math_level_type.png into the local folder `out_dir`, returning the paths.
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # files only, never a display
import matplotlib.pyplot as plt  # noqa: E402

from metamath_ray.engines.pricing import format_usd  # noqa: E402

AUG_ORDER = ["AnsAug", "Rephrasing", "FOBAR", "SV", "PoT"]


def acceptance_rate(accepted: int, candidates: int) -> float | None:
    return accepted / candidates if candidates else None


def _pct(rate: float | None) -> str:
    return "–" if rate is None else f"{100 * rate:.1f}%"


def _sorted_rows(stats: dict) -> list[dict]:
    rows = list(stats.get("by_dataset_aug") or [])
    return sorted(rows, key=lambda r: (r.get("dataset", ""), AUG_ORDER.index(r["aug"]) if r.get("aug") in AUG_ORDER else 99))


def _label(row: dict) -> str:
    return f"{row.get('dataset', '?')}/{row.get('aug', '?')}"


def _main_table(rows: list[dict]) -> list[str]:
    # An API teacher with prices in the config gets a cost column; a local engine's run has none.
    priced = any(r.get("cost_usd") is not None for r in rows)
    lines = ["| dataset | aug | prompts | candidates | accepted | rejected | acceptance | dedup dropped "
             "| decontam dropped | tokens in | tokens out |" + (" cost |" if priced else ""),
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if priced else "")]
    totals = {k: 0 for k in ("prompts", "candidates", "accepted", "rejected", "dedup_dropped",
                             "decontam_dropped", "tokens_in", "tokens_out", "cost_usd")}
    for r in rows:
        for k in totals:
            totals[k] += float(r.get(k) or 0) if k == "cost_usd" else int(r.get(k) or 0)
        lines.append(
            f"| {r.get('dataset')} | {r.get('aug')} | {r.get('prompts', 0):,} | {r.get('candidates', 0):,} "
            f"| {r.get('accepted', 0):,} | {r.get('rejected', 0):,} "
            f"| {_pct(acceptance_rate(r.get('accepted', 0), r.get('candidates', 0)))} "
            f"| {r.get('dedup_dropped', 0):,} | {r.get('decontam_dropped', 0):,} "
            f"| {r.get('tokens_in', 0):,} | {r.get('tokens_out', 0):,} |"
            + (f" {format_usd(r.get('cost_usd'))} |" if priced else ""))
    t = totals
    lines.append(f"| **all** | | {t['prompts']:,} | {t['candidates']:,} | {t['accepted']:,} | {t['rejected']:,} "
                 f"| {_pct(acceptance_rate(t['accepted'], t['candidates']))} | {t['dedup_dropped']:,} "
                 f"| {t['decontam_dropped']:,} | {t['tokens_in']:,} | {t['tokens_out']:,} |"
                 + (f" {format_usd(t['cost_usd'])} |" if priced else ""))
    return lines


def _reasons_table(rows: list[dict]) -> list[str]:
    reasons = sorted({k for r in rows for k in (r.get("reject_reasons") or {})})
    if not reasons:
        return ["No rejections were recorded."]
    lines = ["| dataset/aug | " + " | ".join(reasons) + " |", "|---|" + "---:|" * len(reasons)]
    for r in rows:
        counts = r.get("reject_reasons") or {}
        lines.append(f"| {_label(r)} | " + " | ".join(f"{counts.get(k, 0):,}" for k in reasons) + " |")
    return lines


def _level_type_table(cells: list[dict]) -> list[str]:
    levels = sorted({c["level"] for c in cells})
    types = sorted({c["type"] for c in cells})
    index = {(c["level"], c["type"]): c for c in cells}
    lines = ["| type | " + " | ".join(levels) + " |", "|---|" + "---:|" * len(levels)]
    for t in types:
        row = []
        for lv in levels:
            c = index.get((lv, t))
            row.append("–" if c is None else
                       f"{_pct(acceptance_rate(c.get('accepted', 0), c.get('candidates', 0)))} "
                       f"({c.get('accepted', 0)}/{c.get('candidates', 0)})")
        lines.append(f"| {t} | " + " | ".join(row) + " |")
    return lines


def _bar_chart(path: str, labels: list[str], series: dict[str, list[float]], title: str, ylabel: str,
               stacked: bool = False) -> str:
    fig = bar_chart_figure(labels, series, title, ylabel, stacked)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def bar_chart_figure(labels: list[str], series: dict[str, list[float]], title: str, ylabel: str,
                     stacked: bool = False):
    """Bars per label (side by side, or stacked); a legend beside the axes, never over a bar."""
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(labels) + 2), 4))
    width = 0.8 if stacked else 0.8 / max(1, len(series))
    bottom = [0.0] * len(labels)
    for i, (name, values) in enumerate(series.items()):
        xs = list(range(len(labels))) if stacked else [x + (i - (len(series) - 1) / 2) * width for x in range(len(labels))]
        ax.bar(xs, values, width, label=name, bottom=bottom if stacked else None)
        if stacked:
            bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=30, ha="right")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    if len(series) > 1:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()  # makes room for the legend outside the axes
    return fig


def _heatmap(path: str, cells: list[dict]) -> str:
    levels = sorted({c["level"] for c in cells})
    types = sorted({c["type"] for c in cells})
    index = {(c["level"], c["type"]): c for c in cells}
    grid = [[(acceptance_rate(index[(lv, t)].get("accepted", 0), index[(lv, t)].get("candidates", 0))
              if (lv, t) in index else None) for lv in levels] for t in types]
    values = [[float("nan") if v is None else v for v in row] for row in grid]
    fig, ax = plt.subplots(figsize=(1.2 * len(levels) + 3, 0.5 * len(types) + 2))
    image = ax.imshow(values, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(levels)))
    ax.set_xticklabels(levels, rotation=30, ha="right")
    ax.set_yticks(range(len(types)))
    ax.set_yticklabels(types)
    for y, row in enumerate(grid):
        for x, v in enumerate(row):
            if v is not None:
                ax.text(x, y, f"{100 * v:.0f}", ha="center", va="center", color="white" if v < 0.6 else "black",
                        fontsize=8)
    ax.set_title("MATH acceptance rate (%) by level and type")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _decontam_lines(by_reference: dict | None) -> list[str]:
    """Accepted rows dropped as contaminated, per evaluation set they matched."""
    if by_reference is None:
        return ["Decontamination was off."]
    if not by_reference:
        return ["No accepted row shares an n-gram with the evaluation sets."]
    return ["| reference set | rows dropped |", "|---|---|"] + [f"| {name} | {n} |" for name, n in sorted(by_reference.items())]


def _wrong_step_lines(rows: list[dict]) -> list[str]:
    """Right-answer chains of thought each augmentation lost to a wrong arithmetic step (verify.steps):
    a `wrong_step` rejection had the right final answer, so right answers = verified (accepted before
    dedup and decontamination) + wrong_step."""
    if not any((r.get("reject_reasons") or {}).get("wrong_step") for r in rows):
        return ["No right-answer candidate was rejected for a wrong arithmetic step (verify.steps off, "
                "or every checked step held)."]
    lines = ["| dataset/aug | right final answer | lost to a wrong step | share lost |", "|---|---:|---:|---:|"]
    for r in rows:
        lost = int((r.get("reject_reasons") or {}).get("wrong_step", 0))
        right = int(r.get("verified", r.get("accepted", 0)) or 0) + lost
        lines.append(f"| {_label(r)} | {right:,} | {lost:,} | {_pct(acceptance_rate(lost, right))} |")
    return lines


def _difficulty_lines(by_difficulty: dict | None) -> list[str]:
    """Requests and accepted chains of thought per difficulty: round 0, the extra requests after it
    (the adaptive allocation), and what they found."""
    if not by_difficulty or not by_difficulty.get("table"):
        return []
    mode, per_variant = by_difficulty.get("adaptive"), by_difficulty.get("budget_per_variant")
    lines = ["", "## Budget by difficulty (MATH: level; GSM8K: round-0 pass rate)", "",
             f"adaptive: {mode or '?'}" + (f", budget {per_variant:g} extra requests per variant" if per_variant is not None else "")
             + f"; {by_difficulty.get('extra_attempts', 0):,} requests after round 0.", "",
             "| dataset | difficulty | variants | round 0 accepted/requests | extra requests | accepted | accepted per variant |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for c in by_difficulty["table"]:
        per = c["accepted"] / c["variants"] if c["variants"] else 0
        lines.append(f"| {c['dataset']} | {c['difficulty']} | {c['variants']:,} | {c['round0_accepted']:,}/{c['round0_attempts']:,} "
                     f"| {c['extra_attempts']:,} | {c['accepted']:,} | {per:.2f} |")
    return lines


def write_report(stats: dict, out_dir: str) -> list[str]:
    os.makedirs(out_dir, exist_ok=True)
    rows = _sorted_rows(stats)
    cells = list(stats.get("by_math_level_type") or [])
    labels = [_label(r) for r in rows]
    written = []

    lines = [f"# Augmentation report{': ' + stats['run_name'] if stats.get('run_name') else ''}", ""]
    if stats.get("model"):
        lines.append(f"Model: `{stats['model']}`")
    if stats.get("wall_time_s") is not None:
        lines.append(f"Wall time: {float(stats['wall_time_s']):.1f} s")
    lines += ["", "Acceptance = accepted chains of thought / candidates generated, before dedup and "
              "decontamination, which drop further rows from the accepted ones.", "",
              "## Per dataset and augmentation", ""] + _main_table(rows)
    lines += ["", "## Rejection reasons", ""] + _reasons_table(rows)
    lines += ["", "## Right answers lost to a wrong step", ""] + _wrong_step_lines(rows)
    if cells:
        lines += ["", "## MATH by level and type (acceptance, accepted/candidates)", ""] + _level_type_table(cells)
    lines += _difficulty_lines(stats.get("by_difficulty"))
    lines += ["", "## Decontamination", ""] + _decontam_lines(stats.get("decontam_by_reference"))

    if rows:
        written.append(_bar_chart(os.path.join(out_dir, "acceptance.png"), labels,
                                  {"acceptance %": [100 * (acceptance_rate(r.get("accepted", 0), r.get("candidates", 0)) or 0)
                                                    for r in rows]},
                                  "Acceptance rate per dataset and augmentation", "%"))
        reasons = sorted({k for r in rows for k in (r.get("reject_reasons") or {})})
        if reasons:
            written.append(_bar_chart(os.path.join(out_dir, "rejections.png"), labels,
                                      {k: [(r.get("reject_reasons") or {}).get(k, 0) for r in rows] for k in reasons},
                                      "Rejections by reason", "candidates", stacked=True))
        written.append(_bar_chart(os.path.join(out_dir, "tokens.png"), labels,
                                  {"tokens in": [r.get("tokens_in", 0) for r in rows],
                                   "tokens out": [r.get("tokens_out", 0) for r in rows]},
                                  "Tokens per dataset and augmentation", "tokens"))
    if cells:
        written.append(_heatmap(os.path.join(out_dir, "math_level_type.png"), cells))

    if written:
        lines += ["", "## Charts", ""] + [f"![{os.path.basename(p)[:-4]}]({os.path.basename(p)})" for p in written]
    report_path = os.path.join(out_dir, "report.md")
    with open(report_path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return [report_path] + written
