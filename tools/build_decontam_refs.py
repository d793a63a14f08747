"""Rebuild metamath_ray/data/decontam/*.jsonl.gz from the public test sets (maintainers only).

    python tools/build_decontam_refs.py ../shared/data

Keeps only what decontamination compares (the question text) plus each row's id, so the package
carries the full evaluation sets in about a megabyte. Sources, commits and licenses:
metamath_ray/data/decontam/NOTICE.md.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "metamath_ray" / "data" / "decontam"


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _write(name: str, rows: list[dict]) -> None:
    # mtime=0: the same input gives byte-identical files
    with gzip.GzipFile(OUT / name, "wb", mtime=0) as f:
        f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode())
    print(f"{name}: {len(rows)} rows, {(OUT / name).stat().st_size} bytes")


def main(shared: Path) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    _write("gsm8k_test.jsonl.gz", [{"question": r["question"], "source_index": i}
                                   for i, r in enumerate(_jsonl(shared / "gsm8k" / "test.jsonl"))])
    _write("math_test.jsonl.gz", [{"problem": r["problem"], "unique_id": r["unique_id"]}
                                  for r in _jsonl(shared / "math" / "test.jsonl")])
    _write("gsm8k_backward_test.jsonl.gz", [{"question": r["question"], "source_index": i}
                                            for i, r in enumerate(_jsonl(shared / "gsm8k_backward" / "test.jsonl"))])
    svamp = json.loads((shared / "svamp" / "SVAMP.json").read_text(encoding="utf-8"))
    _write("svamp.jsonl.gz", [{"Body": r["Body"], "Question": r["Question"], "source_index": i}
                              for i, r in enumerate(svamp)])


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data"))
