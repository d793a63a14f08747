"""Exact and near-duplicate removal over candidate rows (MinHash with banded LSH, numpy only).

Rows are visited in `id` order, so the kept row of every duplicate group is the one with the
smallest id whatever order the rows came in (reruns and shard orders give the same result).
A row is dropped as
  duplicate_exact  when its normalised text equals a kept row's, or
  duplicate_near   when the MinHash estimate of the Jaccard similarity of its word n-gram sets
                   with a kept row reaches `threshold` (candidates come from LSH buckets).
Dropped rows carry `reject_reason`, `reject_detail` (the id of the row they duplicate) and
`accepted=False`. Memory is `num_perm` 4-byte values per kept row plus the buckets, so 400K
rows fit on one node; time is linear in the number of rows.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Sequence

import numpy as np

_MASK32 = np.uint64(0xFFFFFFFF)


def normalize_text(text: str) -> str:
    """Lower case, unicode-folded, punctuation dropped, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text or "").lower()
    return " ".join(re.findall(r"[^\W_]+", text))


def _row_text(row: dict, key: str | Sequence[str]) -> str:
    fields = (key,) if isinstance(key, str) else tuple(key)
    return "\n".join(str(row.get(f) or "") for f in fields)


def _shingle_hashes(normalized: str, ngram: int) -> np.ndarray:
    words = normalized.split()
    if len(words) <= ngram:
        grams = [" ".join(words)]
    else:
        grams = [" ".join(words[i:i + ngram]) for i in range(len(words) - ngram + 1)]
    digests = [hashlib.blake2b(g.encode(), digest_size=4).digest() for g in set(grams)]
    return np.frombuffer(b"".join(digests), dtype=np.uint32).astype(np.uint64)


class MinHasher:
    """`num_perm` multiply-shift hash functions of 32-bit shingle hashes; deterministic by seed."""

    def __init__(self, num_perm: int, seed: int = 1):
        rng = np.random.default_rng(seed)
        self.a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) | np.uint64(1)
        self.b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)

    def signature(self, hashes: np.ndarray) -> np.ndarray:
        # (a*h + b) mod 2^64, top 32 bits: a universal family, vectorised over shingles x perms.
        with np.errstate(over="ignore"):
            mixed = hashes[:, None] * self.a[None, :] + self.b[None, :]
        return (mixed >> np.uint64(32)).min(axis=0).astype(np.uint32)


def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) minimising false positives + false negatives around `threshold`."""
    xs = np.linspace(0.0, 1.0, 201)
    best, best_cost = (num_perm, 1), float("inf")
    for rows in range(1, num_perm + 1):
        bands = num_perm // rows
        if bands == 0:
            break
        p = 1.0 - (1.0 - xs ** rows) ** bands
        below, above = xs < threshold, xs >= threshold
        cost = np.trapezoid(p[below], xs[below]) + np.trapezoid(1.0 - p[above], xs[above])
        if cost < best_cost:
            best, best_cost = (bands, rows), cost
    return best


def _dropped(row: dict, reason: str, dup_of: str) -> dict:
    return {**row, "accepted": False, "reject_reason": reason, "reject_detail": f"duplicate of {dup_of}"}


Siblings = Callable[[dict], "tuple[object, object] | None"]


def _distinct(siblings_of: list, k: int, mine) -> bool:
    """Kept row `k` and a row with sibling tag `mine` are different members of one family."""
    theirs = siblings_of[k]
    return mine is not None and theirs is not None and theirs[0] == mine[0] and theirs[1] != mine[1]


def dedup_rows(rows: list[dict], *, key: str | Sequence[str] = "query", threshold: float = 0.85,
               num_perm: int = 128, ngram: int = 3, seed: int = 1,
               siblings: Siblings | None = None) -> tuple[list[dict], list[dict]]:
    """(kept, dropped): exact then near duplicates on `key` (a field or a tuple of fields).

    `siblings(row)` -> (family, member) or None: two rows of one family with different members are
    never duplicates of each other (FOBAR questions of one seed masking different numbers read
    alike but ask different things); rows of the same member, or of other families, still are."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError("threshold must be in (0, 1]")
    ordered = sorted(rows, key=lambda r: str(r.get("id", "")))
    hasher = MinHasher(num_perm, seed)
    bands, band_rows = lsh_params(threshold, num_perm)
    buckets: list[dict[bytes, list[int]]] = [{} for _ in range(bands)]
    exact: dict[str, list[int]] = {}  # normalised text -> kept rows with it (siblings may share it)
    signatures: list[np.ndarray] = []
    kept_ids: list[str] = []
    siblings_of: list = []
    kept, dropped = [], []
    for row in ordered:
        rid = str(row.get("id", ""))
        mine = siblings(row) if siblings else None
        norm = normalize_text(_row_text(row, key))
        digest = hashlib.sha1(norm.encode()).hexdigest()
        same = next((k for k in exact.get(digest, ()) if not _distinct(siblings_of, k, mine)), None)
        if same is not None:
            dropped.append(_dropped(row, "duplicate_exact", kept_ids[same]))
            continue
        sig = hasher.signature(_shingle_hashes(norm, ngram))
        band_keys = [sig[b * band_rows:(b + 1) * band_rows].tobytes() for b in range(bands)]
        candidates = {k for b, bk in enumerate(band_keys) for k in buckets[b].get(bk, ())}
        match = next((k for k in sorted(candidates)
                      if not _distinct(siblings_of, k, mine) and np.mean(signatures[k] == sig) >= threshold), None)
        if match is not None:
            dropped.append(_dropped(row, "duplicate_near", kept_ids[match]))
            continue
        index = len(signatures)
        exact.setdefault(digest, []).append(index)
        signatures.append(sig)
        kept_ids.append(rid)
        siblings_of.append(mine)
        for b, bk in enumerate(band_keys):
            buckets[b].setdefault(bk, []).append(index)
        kept.append(row)
    return kept, dropped
