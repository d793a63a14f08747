"""`report compare RUN_A RUN_B`: per-dataset and per-category accuracy deltas (B minus A)."""

from __future__ import annotations

from metamath_ray.evaluate.scoring import SCORERS
from metamath_ray.evaluate.summary import headline


def load_report(run: str) -> dict:
    """A run's report.json; `run` is the run folder (local or s3://) or the report.json itself."""
    from metamath_ray import storage

    uri = run if run.endswith(".json") else storage.join(run, "report.json")
    try:
        return storage.read_json(uri)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"no evaluation report at {uri}") from err


def _delta(a: dict | None, b: dict | None) -> dict | None:
    if not a or not b:
        return None
    return {"a": a["accuracy"], "b": b["accuracy"], "delta": b["accuracy"] - a["accuracy"], "n_a": a["n"], "n_b": b["n"]}


def _category_deltas(a: dict, b: dict) -> dict:
    return {
        name: {scorer: _delta(a[name][scorer], b[name][scorer]) for scorer in SCORERS}
        for name in sorted(set(a) & set(b))
    }


def compare_reports(a: dict, b: dict) -> dict:
    """Deltas for every dataset both runs evaluated; datasets in only one run are listed."""
    datasets = {}
    for name in [n for n in a["datasets"] if n in b["datasets"]]:
        da, db = a["datasets"][name], b["datasets"][name]
        entry: dict = {"headline": {scorer: _delta(headline(da, scorer), headline(db, scorer)) for scorer in SCORERS}}
        for table in ("by_type", "by_level"):
            if table in da and table in db:
                entry[table] = _category_deltas(da[table], db[table])
        datasets[name] = entry
    return {
        "a": a["run_name"],
        "b": b["run_name"],
        "datasets": datasets,
        "only_in_a": sorted(set(a["datasets"]) - set(b["datasets"])),
        "only_in_b": sorted(set(b["datasets"]) - set(a["datasets"])),
    }


def _row(label: str, deltas: dict) -> str:
    cells = []
    for scorer in SCORERS:
        d = deltas[scorer]
        cells.append("-" if d is None else f"{100 * d['a']:.1f} -> {100 * d['b']:.1f} ({100 * d['delta']:+.1f})")
    return f"| {label} | " + " | ".join(cells) + " |"


def render_comparison(diff: dict) -> str:
    lines = [f"# {diff['b']} vs {diff['a']}", "", "Accuracy in %, A -> B (B minus A).", ""]
    lines += ["| dataset | strict | metamath |", "|---|---|---|"]
    lines += [_row(name, entry["headline"]) for name, entry in diff["datasets"].items()]
    for name, entry in diff["datasets"].items():
        for table, label in (("by_type", "type"), ("by_level", "level")):
            if entry.get(table):
                lines += ["", f"## {name} by {label}", "", f"| {label} | strict | metamath |", "|---|---|---|"]
                lines += [_row(cat, deltas) for cat, deltas in entry[table].items()]
    for side in ("only_in_a", "only_in_b"):
        if diff[side]:
            lines += ["", f"Evaluated only in {diff[side[-1]]}: {', '.join(diff[side])}"]
    return "\n".join(lines) + "\n"


def compare_runs(run_a: str, run_b: str) -> str:
    """Markdown comparison of two run folders (what the CLI prints)."""
    return render_comparison(compare_reports(load_report(run_a), load_report(run_b)))
