"""Rebuild metamath_ray/data/words/words.txt.gz: the words that `answers.wellformed` knows.

The list is every alphabetic word of 3+ letters that occurs at least MIN_COUNT times in the
GSM8K and MATH *training* sets (questions and worked solutions; MATH's [asy] figures, LaTeX
command names and GSM8K's <<calculator>> annotations left out), lower-cased, one per line. Only
training text is read, so the test sets stay a held-out check of the list (tests/unit).

Run:  python tools/build_wordlist.py [--data /work/shared/data]
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import re
from pathlib import Path

MIN_COUNT = 3
OUT = Path(__file__).parents[1] / "metamath_ray" / "data" / "words" / "words.txt.gz"
_NOT_PROSE = (re.compile(r"\[asy\].*?\[/asy\]", re.S), re.compile(r"\\[A-Za-z]+"), re.compile(r"<<[^>]*>>"))
# A whole word: no letter, digit or underscore glued to either side ("row13" is not "row").
_WORD = re.compile(r"(?<![A-Za-z0-9_])[A-Za-z]{3,}(?![A-Za-z0-9_])")


def training_texts(data: Path) -> list[str]:
    texts = []
    for line in (data / "gsm8k" / "train.jsonl").open(encoding="utf-8"):
        row = json.loads(line)
        texts += [row["question"], row["answer"]]
    for line in (data / "math" / "train.jsonl").open(encoding="utf-8"):
        row = json.loads(line)
        texts += [row["problem"], row["solution"]]
    return texts


def word_counts(texts: list[str]) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    for text in texts:
        for pattern in _NOT_PROSE:
            text = pattern.sub(" ", text)
        counts.update(w.lower() for w in _WORD.findall(text))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data"))
    args = parser.parse_args()
    counts = word_counts(training_texts(args.data))
    words = sorted(w for w, n in counts.items() if n >= MIN_COUNT)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0: the same data gives byte-identical output
    with OUT.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(("\n".join(words) + "\n").encode("utf-8"))
    print(f"{len(words)} words -> {OUT}")


if __name__ == "__main__":
    main()
