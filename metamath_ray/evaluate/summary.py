"""From scored samples to per-dataset numbers: greedy accuracy, maj@k, pass@k, per-category tables.

Input rows are the per-sample records (one per generated response) with at least: `dataset`,
`item_id`, `type`, `level`, `decoding` ("greedy" | "sample"), `sample_idx`, `extracted`,
`extracted_metamath`, `correct_<scorer>`, `vote_key_<...>`, `num_input_tokens`,
`num_generated_tokens`. Everything here is pure Python on lists of dicts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from metamath_ray.evaluate.metrics import (
    majority_correct,
    mean_interval,
    pass_at_k,
    pass_k_values,
    proportion,
)
from metamath_ray.evaluate.scoring import SCORERS

_VOTE_KEY = {"strict": "vote_key", "metamath": "vote_key_metamath"}
_EXTRACTED = {"strict": "extracted", "metamath": "extracted_metamath"}


def _by_item(rows: Iterable[dict]) -> dict[str, list[dict]]:
    items: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        items[row["item_id"]].append(row)
    for samples in items.values():
        samples.sort(key=lambda r: r["sample_idx"])
    return dict(items)


def question_outcomes(rows: list[dict]) -> dict[str, dict]:
    """Per question: greedy correctness and sampled (c correct of n) per scorer, plus its category."""
    greedy = _by_item(r for r in rows if r["decoding"] == "greedy")
    sampled = _by_item(r for r in rows if r["decoding"] == "sample")
    outcomes: dict[str, dict] = {}
    for item_id in sorted(set(greedy) | set(sampled)):
        first = (greedy.get(item_id) or sampled[item_id])[0]
        out: dict = {"type": first.get("type") or "", "level": int(first.get("level") or 0)}
        for scorer in SCORERS:
            flag = f"correct_{scorer}"
            if item_id in greedy:
                out[f"greedy_{scorer}"] = bool(greedy[item_id][0][flag])
            if item_id in sampled:
                samples = sampled[item_id]
                flags = [bool(s[flag]) for s in samples]
                out[f"n_{scorer}"] = len(flags)
                out[f"c_{scorer}"] = sum(flags)
                out[f"maj_{scorer}"] = majority_correct([s[_VOTE_KEY[scorer]] for s in samples], flags)
        outcomes[item_id] = out
    return outcomes


def _primary(outcome: dict, scorer: str) -> bool:
    """The per-question verdict used in category tables: greedy when run, else majority vote."""
    return outcome.get(f"greedy_{scorer}", outcome.get(f"maj_{scorer}", False))


def _category_table(outcomes: dict[str, dict], key) -> dict[str, dict]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for outcome in outcomes.values():
        groups[key(outcome)].append(outcome)
    return {
        name: {scorer: proportion(sum(_primary(o, scorer) for o in group), len(group)) for scorer in SCORERS}
        for name, group in sorted(groups.items())
    }


def summarize_dataset(rows: list[dict]) -> dict:
    """Everything report.json says about one dataset."""
    outcomes = question_outcomes(rows)
    n_questions = len(outcomes)
    summary: dict = {"questions": n_questions, "samples": len(rows)}
    greedy_done = any(r["decoding"] == "greedy" for r in rows)
    if greedy_done:
        summary["greedy"] = {
            scorer: proportion(sum(o.get(f"greedy_{scorer}", False) for o in outcomes.values()), n_questions)
            for scorer in SCORERS
        }
    sampled = [o for o in outcomes.values() if "n_strict" in o]
    if sampled:
        k = min(o["n_strict"] for o in sampled)
        summary["k"] = k
        summary[f"maj@{k}"] = {
            scorer: proportion(sum(o[f"maj_{scorer}"] for o in sampled), len(sampled)) for scorer in SCORERS
        }
        summary["pass@k"] = {
            scorer: {
                str(kk): mean_interval([pass_at_k(o[f"n_{scorer}"], o[f"c_{scorer}"], kk) for o in sampled])
                for kk in pass_k_values(k)
            }
            for scorer in SCORERS
        }
    summary["extraction_failure_rate"] = {
        scorer: (sum(r[_EXTRACTED[scorer]] is None for r in rows) / len(rows)) if rows else 0.0
        for scorer in SCORERS
    }
    generated = sum(int(r.get("num_generated_tokens") or 0) for r in rows)
    summary["tokens"] = {
        "input": sum(int(r.get("num_input_tokens") or 0) for r in rows),
        "generated": generated,
        "mean_generated": generated / len(rows) if rows else 0.0,
    }
    if any(o["type"] for o in outcomes.values()):
        summary["by_type"] = _category_table(outcomes, lambda o: o["type"] or "unknown")
    if any(o["level"] for o in outcomes.values()):
        summary["by_level"] = _category_table(outcomes, lambda o: str(o["level"]))
        summary["by_type_level"] = {
            type_name: _category_table(
                {i: o for i, o in outcomes.items() if (o["type"] or "unknown") == type_name},
                lambda o: str(o["level"]),
            )
            for type_name in summary.get("by_type", {})
        }
    return summary


def headline(summary: dict, scorer: str) -> dict | None:
    """The one number per dataset and scorer: greedy accuracy, or maj@k when only sampling ran."""
    if "greedy" in summary:
        return summary["greedy"][scorer]
    if "k" in summary:
        return summary[f"maj@{summary['k']}"][scorer]
    return None


def summarize(rows: list[dict]) -> dict[str, dict]:
    per_dataset: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        per_dataset[row["dataset"]].append(row)
    return {name: summarize_dataset(ds_rows) for name, ds_rows in per_dataset.items()}
