"""Verifier throughput (and accuracy) against math-verify on the same realistic pairs.

Pairs come from real gold answers (GSM8K test, MATH500) with rewritings that must stay
equal and near-misses that must not, in about 30 categories, plus four junk categories (soup
around the gold, the gold inside a word, binary noise, long soup ending in the gold) that
must never be equal. Both verifiers run in this one
process on one core (OMP_NUM_THREADS=1), each pair timed separately; per category we report
the median microseconds per pair, pairs/s, the speed ratio (ours / math-verify) and accuracy.

Run:  OMP_NUM_THREADS=1 python benchmarks/verifier_speed.py [--per-category 25] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import time
from collections import defaultdict
from fractions import Fraction
from pathlib import Path

DATA = Path(os.environ.get("METAMATH_SHARED_DATA", "/work/shared/data"))
DEFAULT_OUT = Path(__file__).parent / "results" / "verifier_speed.json"


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open()]


def _gsm8k_pairs(golds: list[int]) -> dict[str, list]:
    rng = random.Random(0)
    cats: dict[str, list] = defaultdict(list)
    for g in golds:
        s = str(g)
        cats["gsm_exact"].append((s, s, True))
        if g >= 1000:
            cats["gsm_thousands"].append((f"{g:,}", s, True))
        cats["gsm_decimal_zero"].append((s + ".00", s, True))
        cats["gsm_currency"].append(("\\$" + s, s, True))
        cats["gsm_units"].append((s + rng.choice([" dollars", " apples", "\\text{ miles}", " minutes"]), s, True))
        cats["gsm_boxed"].append(("$\\boxed{" + s + "}$", s, True))
        cats["gsm_answer_line"].append(("The answer is: " + s, s, True))
        cats["gsm_off_by_one"].append((str(g + rng.choice([-1, 1])), s, False))
        cats["gsm_times_ten"].append((str(g * 10), s, False))
        if g >= 10:
            cats["gsm_dropped_digit"].append((s[:-1], s, False))
    return cats


_FRAC = re.compile(r"^(-?)\\frac\{(\d+)\}\{(\d+)\}$")
_INT = re.compile(r"^-?\d+$")


def _terminating(q: int) -> bool:
    for p in (2, 5):
        while q % p == 0:
            q //= p
    return q == 1


def _math_pairs(answers: list[str]) -> dict[str, list]:
    rng = random.Random(1)
    cats: dict[str, list] = defaultdict(list)
    for a in answers:
        cats["math_exact"].append((a, a, True))
        m = _FRAC.match(a)
        if m:
            sign, p, q = m.group(1), int(m.group(2)), int(m.group(3))
            value = Fraction(p, q) * (-1 if sign else 1)
            cats["math_frac_style"].append((a.replace("\\frac", "\\dfrac"), a, True))
            cats["math_frac_slash"].append((f"{sign}{p}/{q}", a, True))
            cats["math_frac_unsimplified"].append((f"{sign}\\frac{{{2 * p}}}{{{2 * q}}}", a, True))
            cats["math_frac_wrong"].append((f"{sign}\\frac{{{p + 1}}}{{{q}}}", a, False))
            if _terminating(q):
                cats["math_frac_decimal"].append((str(float(value)), a, True))
            else:
                cats["math_frac_rounded"].append((f"{float(value):.{rng.choice([2, 3, 4])}f}", a, False))
        if _INT.match(a):
            cats["math_int_wrapped"].append((rng.choice(["$" + a + "$", "x = " + a, "\\boxed{" + a + "}"]), a, True))
            cats["math_int_wrong"].append((str(int(a) + rng.choice([-1, 1, 10])), a, False))
        if "\\sqrt" in a:
            cats["math_sqrt_style"].append((a.replace("\\sqrt{", "\\sqrt {").replace("\\frac", "\\dfrac"), a, True))
            m2 = re.fullmatch(r"(\d+)\\sqrt\{(\d+)\}", a)
            if m2:
                k, n = int(m2.group(1)), int(m2.group(2))
                cats["math_sqrt_unsimplified"].append((f"\\sqrt{{{k * k * n}}}", a, True))
                cats["math_sqrt_wrong"].append((f"{k}\\sqrt{{{n + 1}}}", a, False))
        if "\\pi" in a:
            cats["math_pi_wrong"].append((a.replace("\\pi", "\\pi^2", 1), a, False))
        if a.startswith(("(", "[")) and a.endswith((")", "]")) and "," in a:
            if "\\infty" in a or a[0] != a[-1].replace(")", "(").replace("]", "["):
                flipped = ("[" if a[0] == "(" else "(") + a[1:]
                if "\\infty" not in a[:8]:
                    cats["math_interval_bracket"].append((flipped, a, False))
                cats["math_interval_style"].append(("\\left" + a[0] + " " + a[1:-1].replace(",", ", ") + " \\right" + a[-1], a, True))
            elif a[0] == "(" and "\\cup" not in a:
                parts = [p.strip() for p in a[1:-1].split(",")]
                if len(parts) >= 2 and parts != parts[::-1] and "(" not in a[1:-1]:
                    cats["math_tuple_reordered"].append(("(" + ", ".join(parts[::-1]) + ")", a, False))
                    cats["math_tuple_style"].append(("(" + ", ".join(parts) + ")", a, True))
        if "\\cup" in a:
            pieces = [p.strip() for p in a.split("\\cup")]
            cats["math_union_reordered"].append((" \\cup ".join(pieces[::-1]), a, True))
        if "," in a and not re.search(r"[\\{}()\[\]]", a):
            parts = [p.strip() for p in a.split(",")]
            if len(parts) >= 2 and parts != parts[::-1]:
                cats["math_list_reordered"].append((", ".join(parts[::-1]), a, True))
                cats["math_list_missing"].append((", ".join(parts[1:]), a, False))
        if "pmatrix" in a:
            cats["math_matrix_style"].append((a.replace("pmatrix", "bmatrix"), a, True))
            cells = re.findall(r"-?\d+", a)
            if cells:
                bumped = re.sub(r"(\d+)(?!.*\d)", lambda mm: str(int(mm.group(1)) + 1), a, count=1, flags=re.S)
                cats["math_matrix_wrong"].append((bumped, a, False))
        if "\\text{" in a:
            stripped = re.sub(r"\\text\{[^}]*\}", "", a).strip()
            if stripped and stripped != a:
                cats["math_text_units"].append((stripped, a, True))
        if "^\\circ" in a:
            cats["math_degrees"].append((a.replace("^\\circ", ""), a, True))
        if "\\%" in a:
            cats["math_percent"].append((a.replace("\\%", ""), a, True))
        mb = re.fullmatch(r"(\w+)_\{?(\d+)\}?", a)
        if mb:
            cats["math_base"].append((f"{mb.group(1)}_{{{mb.group(2)}}}", a, True))
            last = mb.group(1)[-1]
            changed = "1" if last != "1" else "0"
            cats["math_base_wrong"].append((mb.group(1)[:-1] + changed + "_" + mb.group(2), a, False))
        if re.fullmatch(r"\\text\{\(?[A-E]\)?\}|\(?[A-E]\)?", a):
            letter = re.search(r"[A-E]", a).group(0)
            cats["math_choice"].append(("(" + letter + ")", a, True))
            cats["math_choice_wrong"].append(("ABCDE"[("ABCDE".index(letter) + 1) % 5], a, False))
        if re.fullmatch(r"[^=]*[a-z][^=]*\+[^=]*", a) and "\\" not in a and "," not in a and "(" not in a:
            terms = [t.strip() for t in a.split("+")]
            if len(terms) == 2:
                cats["math_expr_commuted"].append((terms[1] + " + " + terms[0], a, True))
    return cats


# Pieces of a random model's output (the `tiny` model: byte-level BPE trained on the seeds).
_SOUP_PIECES = ("whe", "ook", "disindraw", "perimeter", "will", "ThereidThe", "gravelve", "nowcils", "termediate",
                "ause", "anut", "swall", "birds", "row", "ravel", "palind", "itemsrger", "the", "of", "and")


def _junk_pairs(golds: list[str]) -> dict[str, list]:
    """Junk that holds the gold (issue 16): every verdict must be False."""
    rng = random.Random(3)
    cats: dict[str, list] = defaultdict(list)

    def soup(n: int) -> str:
        return " ".join(rng.choice(_SOUP_PIECES) for _ in range(n))

    for g in golds:
        cats["junk_soup_around_gold"].append((f"{soup(rng.randint(2, 5))} {g} {soup(rng.randint(1, 3))}", g, False))
        cats["junk_gold_in_word"].append((rng.choice(["row", "ook", "swall"]) + g + rng.choice(["", "ir", "ravel"]), g, False))
        noise = "".join(chr(rng.choice([0, 1, 2, 7, 27, 0xFFFD, 0x89])) for _ in range(rng.randint(2, 8)))
        cats["junk_binary_noise"].append((noise + g + noise, g, False))
        cats["junk_long_soup_ending_in_gold"].append((soup(rng.randint(20, 60)) + " " + g, g, False))
    return cats


def build_pairs(per_category: int) -> dict[str, list]:
    gsm = [int(r["answer"].split("####")[-1].strip().replace(",", "")) for r in _jsonl(DATA / "gsm8k/test.jsonl")]
    math = [r["answer"] for r in _jsonl(DATA / "math/test500.jsonl")]
    rng = random.Random(2)
    cats = {**_gsm8k_pairs(gsm), **_math_pairs(math), **_junk_pairs([str(g) for g in gsm] + math)}
    return {k: rng.sample(v, min(per_category, len(v))) for k, v in sorted(cats.items()) if v}


def _clear_caches() -> None:
    import math_verify.parser as mv_parser

    from metamath_ray.answers import symbolic

    symbolic._parse.cache_clear()
    for name in ("parse_latex_cached", "parse_expr_cached"):
        cached = getattr(mv_parser, name, None)
        if cached is not None and hasattr(cached, "cache_clear"):
            cached.cache_clear()


def _time_each(fn, pairs) -> tuple[list[float], list[bool]]:
    times, verdicts = [], []
    for pred, gold, _ in pairs:
        start = time.perf_counter()
        verdict = fn(pred, gold)
        times.append(time.perf_counter() - start)
        verdicts.append(bool(verdict))
    return times, verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-category", type=int, default=25)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core

    import logging

    logging.disable(logging.WARNING)
    from math_verify import parse, verify

    from metamath_ray.answers import is_equivalent, warm_up

    def math_verify(pred: str, gold: str) -> bool:
        # the best-scoring math-verify configuration: bare answers wrapped in $...$
        wrap = lambda s: s if "$" in s or "\\boxed" in s else f"${s}$"  # noqa: E731
        return verify(parse(wrap(gold)), parse(wrap(pred)))

    warm_up()
    math_verify("1", "1")
    cats = build_pairs(args.per_category)
    # Untimed pass over every pair, then clear both verifiers' parse caches: the ANTLR
    # parser's prediction cache (shared by both, as in a long-running worker) is warm, but
    # neither verifier can answer a timed pair from a cache filled by the other's run.
    for pairs in cats.values():
        _time_each(is_equivalent, pairs)
        _time_each(math_verify, pairs)
    _clear_caches()
    rows = []
    all_ours, all_mv = [], []
    for name, pairs in cats.items():
        labels = [label for _, _, label in pairs]
        t_ours, v_ours = _time_each(is_equivalent, pairs)
        t_mv, v_mv = _time_each(math_verify, pairs)
        all_ours += t_ours
        all_mv += t_mv
        rows.append({
            "category": name, "pairs": len(pairs),
            "ours_median_us": statistics.median(t_ours) * 1e6, "mv_median_us": statistics.median(t_mv) * 1e6,
            "ours_pairs_per_s": len(pairs) / sum(t_ours), "mv_pairs_per_s": len(pairs) / sum(t_mv),
            "ours_max_ms": max(t_ours) * 1e3, "mv_max_ms": max(t_mv) * 1e3,
            "ours_accuracy": sum(v == y for v, y in zip(v_ours, labels)) / len(pairs),
            "mv_accuracy": sum(v == y for v, y in zip(v_mv, labels)) / len(pairs),
            "ours_wrong": [(p, g, y) for (p, g, y), v in zip(pairs, v_ours) if v != y][:5],
        })
        rows[-1]["speedup"] = rows[-1]["ours_pairs_per_s"] / rows[-1]["mv_pairs_per_s"]
    total = sum(r["pairs"] for r in rows)
    overall = {
        "pairs": total,
        "ours_pairs_per_s": len(all_ours) / sum(all_ours), "mv_pairs_per_s": len(all_mv) / sum(all_mv),
        "ours_median_us": statistics.median(all_ours) * 1e6, "mv_median_us": statistics.median(all_mv) * 1e6,
        "ours_accuracy": sum(r["ours_accuracy"] * r["pairs"] for r in rows) / total,
        "mv_accuracy": sum(r["mv_accuracy"] * r["pairs"] for r in rows) / total,
        "ours_max_ms": max(all_ours) * 1e3, "mv_max_ms": max(all_mv) * 1e3,
    }
    overall["speedup"] = overall["ours_pairs_per_s"] / overall["mv_pairs_per_s"]
    header = f"{'category':26} {'n':>3} {'ours us':>9} {'mv us':>9} {'ours/s':>9} {'mv/s':>8} {'x':>6} {'acc':>5} {'mv acc':>6}"
    print(header)
    for r in rows + [{"category": "OVERALL", **overall}]:
        print(f"{r['category']:26} {r['pairs']:>3} {r['ours_median_us']:>9.1f} {r['mv_median_us']:>9.1f} "
              f"{r['ours_pairs_per_s']:>9.0f} {r['mv_pairs_per_s']:>8.0f} {r['speedup']:>6.1f} "
              f"{r['ours_accuracy']:>5.2f} {r['mv_accuracy']:>6.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "command": "OMP_NUM_THREADS=1 python " + " ".join(sys.argv),
        "python": sys.version.split()[0], "overall": overall, "categories": rows,
    }, indent=1, ensure_ascii=False))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
