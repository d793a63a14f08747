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


# Shingle hashing, vectorised: each distinct word is hashed once (blake2b, cached per process), and
# an n-gram's hash is a multiply-add of its words' hashes finished by a 64-bit mixer, computed for
# every n-gram of a batch of texts at once with numpy. (Hashing every n-gram string with blake2b
# was the hot spot of finalize: ~100 Python calls per row.)
# One odd 64-bit multiplier per position in the n-gram (n up to 64), fixed by a seeded generator.
_GRAM_MULTIPLIERS = np.random.default_rng(20261201).integers(1, 2**63, size=64, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
_word_cache: dict[str, int] = {}


def _word_hashes(words: Sequence[str]) -> np.ndarray:
    if len(_word_cache) > 2_000_000:  # bounded: a long-lived worker sees many vocabularies
        _word_cache.clear()
    get = _word_cache.get
    out = np.empty(len(words), dtype=np.uint64)
    for i, w in enumerate(words):
        h = get(w)
        if h is None:
            h = _word_cache[w] = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little")
        out[i] = h
    return out


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit affects every output bit."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def ngram_hashes(word_lists: Sequence[Sequence[str]], n: int, *, whole_if_short: bool) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of every word n-gram of every text, and the number of n-grams per text.

    A text shorter than `n` words has no n-gram, or (`whole_if_short`) one: all its words."""
    if not 1 <= n <= len(_GRAM_MULTIPLIERS):
        raise ValueError(f"n-gram size must be 1..{len(_GRAM_MULTIPLIERS)}")
    lengths = np.fromiter((len(w) for w in word_lists), dtype=np.int64, count=len(word_lists))
    flat = _word_hashes([w for words in word_lists for w in words])
    ends = np.cumsum(lengths)
    starts = ends - lengths
    end_of = np.repeat(ends, lengths)  # for every word: where its text ends
    positions = np.arange(len(flat), dtype=np.int64)
    padded = np.concatenate([flat, np.zeros(n, dtype=np.uint64)])
    acc = np.zeros(len(flat), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(n):  # words past the text's end count as 0 (short texts)
            acc += np.where(positions + j < end_of, padded[positions + j], np.uint64(0)) * _GRAM_MULTIPLIERS[j]
    full = positions + n <= end_of
    short = (lengths < n) & whole_if_short & (lengths > 0)
    keep = full.copy()
    keep[starts[short]] = True
    counts = np.maximum(lengths - n + 1, 0)
    counts[short] = 1
    hashes = _mix64(acc[keep] + np.uint64(n))
    empty = (lengths == 0) & whole_if_short  # "" is one shingle too (the empty text)
    if empty.any():
        hashes = np.insert(hashes, np.repeat(np.cumsum(counts)[empty], 1), _mix64(np.full(int(empty.sum()), n, np.uint64)))
        counts[empty] = 1
    return hashes, counts


def _shingle_hashes(normalized: str, ngram: int) -> np.ndarray:
    """32-bit hashes of the word n-grams of one normalised text (all of it when shorter than n)."""
    hashes, _ = ngram_hashes([normalized.split()], ngram, whole_if_short=True)
    return hashes >> np.uint64(32)


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

    def signatures(self, normalized: Sequence[str], ngram: int, max_cells: int = 4_000_000) -> np.ndarray:
        """(len(normalized), num_perm) signatures of a batch of normalised texts, equal to
        `signature(_shingle_hashes(text, ngram))` for each, in slices of at most ~max_cells products."""
        hashes, counts = ngram_hashes([t.split() for t in normalized], ngram, whole_if_short=True)
        hashes = hashes >> np.uint64(32)
        out = np.empty((len(normalized), len(self.a)), dtype=np.uint32)
        bounds = np.concatenate([[0], np.cumsum(counts)])
        row = 0
        while row < len(normalized):
            stop = int(np.searchsorted(bounds, bounds[row] + max(1, max_cells // len(self.a)), side="right")) - 1
            stop = max(stop, row + 1)
            lo, hi = bounds[row], bounds[stop]
            with np.errstate(over="ignore"):
                mixed = np.multiply(hashes[lo:hi, None], self.a[None, :])
                mixed += self.b[None, :]
            # x -> x >> 32 is monotonic, so the min may be taken before the shift (on far fewer values).
            out[row:stop] = np.minimum.reduceat(mixed, bounds[row:stop] - lo, axis=0) >> np.uint64(32)
            row = stop
        return out


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
    norms = [normalize_text(_row_text(row, key)) for row in ordered]
    all_signatures = hasher.signatures(norms, ngram) if ordered else []
    for row, norm, sig in zip(ordered, norms, all_signatures):
        rid = str(row.get("id", ""))
        mine = siblings(row) if siblings else None
        digest = hashlib.sha1(norm.encode()).hexdigest()
        same = next((k for k in exact.get(digest, ()) if not _distinct(siblings_of, k, mine)), None)
        if same is not None:
            dropped.append(_dropped(row, "duplicate_exact", kept_ids[same]))
            continue
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


# -- the same decisions, computed at scale (pipeline/finalize_passes.py) --------------------------
# `dedup_rows` compares a row only with kept rows that share an LSH bucket with it. So its result is
# fixed by the graph of "would match" edges (pairs sharing a bucket whose signatures agree on at least
# `threshold` of their values, siblings excepted), resolved greedily in id order: a row is dropped iff
# it has an edge to an earlier row that was kept. Edges are found in parallel (one task per band);
# only rows that have edges reach the resolution, so its memory grows with the duplicates, not the run.

def band_keys(signatures: np.ndarray, threshold: float) -> np.ndarray:
    """(rows, bands) 64-bit keys of the LSH bands of `signatures` (two rows share a bucket of band b
    iff their keys in column b are equal; a rare 64-bit collision only adds a pair to verify)."""
    bands, band_rows = lsh_params(threshold, signatures.shape[1])
    out = np.empty((len(signatures), bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for b in range(bands):
            part = signatures[:, b * band_rows:(b + 1) * band_rows].astype(np.uint64)
            out[:, b] = _mix64((part * _GRAM_MULTIPLIERS[:band_rows]).sum(axis=1, dtype=np.uint64) + np.uint64(b))
    return out


def bucket_pairs(keys: np.ndarray, groups: np.ndarray, max_bucket: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """Every pair (i, j), i < j, of positions with equal (group, key): the pairs one band's buckets hold."""
    order = np.lexsort((keys, groups))
    k, g = keys[order], groups[order]
    boundary = np.flatnonzero(np.r_[True, (k[1:] != k[:-1]) | (g[1:] != g[:-1]), True])
    firsts, sizes = boundary[:-1], np.diff(boundary)
    left, right = [], []
    for start, size in zip(firsts[sizes > 1], sizes[sizes > 1]):
        members = np.sort(order[start:start + min(size, max_bucket)])
        i, j = np.triu_indices(len(members), k=1)
        left.append(members[i])
        right.append(members[j])
    if not left:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(left), np.concatenate(right)


def resolve_duplicates(edges: Sequence[tuple[str, str, bool]], excluded: Callable[[str], bool] = lambda _: False
                       ) -> dict[str, tuple[str, str]]:
    """Greedy resolution of match edges (earlier, later, exact) in id order, as `dedup_rows` does:
    later -> (reason, earlier kept row it duplicates). `excluded` rows are neither kept nor compared
    (rows an earlier pass dropped)."""
    earlier_of: dict[str, list[tuple[str, bool]]] = {}
    for a, b, exact in edges:
        earlier_of.setdefault(b, []).append((a, exact))
    dropped: dict[str, tuple[str, str]] = {}
    for row in sorted(earlier_of):
        if excluded(row):
            continue
        kept = [(a, exact) for a, exact in earlier_of[row] if a not in dropped and not excluded(a)]
        same = sorted(a for a, exact in kept if exact)
        if same:
            dropped[row] = ("duplicate_exact", same[0])
        elif kept:
            dropped[row] = ("duplicate_near", min(a for a, _ in kept))
    return dropped
