"""n-gram decontamination against evaluation sets (GSM8K test, MATH test, GSM8K-Backward, ...).

Texts are normalised (lower case, punctuation dropped, numbers kept) and cut into word n-grams.
With several sizes (e.g. 8 and 13), each text has its own size: the largest configured size
that fits its word count (13 for a long question, 8 for a 10-word one), and a pair of texts is
compared at the smaller of their two sizes. A row is contaminated when one of its fields shares
an n-gram with a reference at that size, or equals a reference outright (for texts shorter than
every size); `match` returns that reference's id, `match_detail` also the size.

Measured on the shared data (index: GSM8K test + MATH test + GSM8K-Backward; candidates: the
train questions, which share no problem text with test): sizes (8, 13) flag 4/7473 GSM8K and
783/7500 MATH train questions, all templated twins ("Points $A(3,5)$ and $B(7,10)$ are the
endpoints of a diameter ..."); a single size 8 would flag 106 and 2624 (mostly LaTeX and
phrasing boilerplate), a single size 20 flags 1 and 297.

Two kinds of n-grams are not evidence of contamination and are left out of the index:
  * the fixed sentences our own augmentations add ("If we know the answer to the above question
    is ...", "What is the value of unknown variable x?"), which every GSM8K-Backward reference
    also holds; they are cut from reference and candidate texts alike;
  * boilerplate shared by many reference texts ("Express your answer as a common fraction."
    runs to 8+ words with its neighbours): n-grams found in more than `max_ref_df` distinct
    reference texts.
The index is two sorted numpy arrays per size (64-bit n-gram hashes, reference numbers), so it
pickles small and fast to Ray workers and looks up a whole text with one `searchsorted`.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from collections.abc import Iterable, Sequence

import numpy as np

from metamath_ray.augment.dedup import ngram_hashes, normalize_text

# Our own template sentences (and MetaMath's "answer of" wording of them), cut before n-gramming.
TEMPLATE_PATTERNS = [
    re.compile(r"if we know the answer (to|of) the above question is .*?, what is the value of unknown variable \w\?",
               re.IGNORECASE | re.DOTALL),
    re.compile(r"what is the value of unknown variable \w\?", re.IGNORECASE),
    re.compile(r"the answer is:?", re.IGNORECASE),
]


def strip_templates(text: str) -> str:
    for pattern in TEMPLATE_PATTERNS:
        text = pattern.sub(" ", text)
    return text


def _words(text: str) -> list[str]:
    return normalize_text(strip_templates(text or "")).split()


def _gram_hashes(words: list[str], n: int) -> np.ndarray:
    """64-bit hashes of the word n-grams of one text (vectorised; see dedup.ngram_hashes)."""
    return ngram_hashes([words], n, whole_if_short=False)[0]


class NgramIndex:
    """Word n-gram index of reference texts: `NgramIndex([(ref_id, text), ...], sizes=(8, 13))`."""

    def __init__(self, references: Iterable[tuple[str, str] | str], sizes: Sequence[int] = (8, 13),
                 max_ref_df: int = 10):
        if not sizes or min(sizes) < 1:
            raise ValueError("sizes must be positive n-gram lengths")
        self.sizes = tuple(sorted(set(sizes)))
        self.ref_ids: list[str] = []
        per_size: dict[int, list[np.ndarray]] = {n: [] for n in self.sizes}
        owners: dict[int, list[np.ndarray]] = {n: [] for n in self.sizes}
        seen_texts: set[str] = set()
        self._whole: dict[str, str] = {}
        own_sizes: list[int] = []
        for i, ref in enumerate(references):
            ref_id, text = (str(i), ref) if isinstance(ref, str) else (str(ref[0]), ref[1])
            words = _words(text)
            norm = " ".join(words)
            if norm in seen_texts:
                continue  # the same question listed twice must not count twice toward max_ref_df
            seen_texts.add(norm)
            number = len(self.ref_ids)
            self.ref_ids.append(ref_id)
            self._whole.setdefault(norm, ref_id)
            own_sizes.append(self.own_size(len(words)))
            for n in self.sizes:
                hashes = _gram_hashes(words, n)
                per_size[n].append(hashes)
                owners[n].append(np.full(len(hashes), number, dtype=np.int64))
        self._keys: dict[int, np.ndarray] = {}
        self._owners: dict[int, np.ndarray] = {}
        self.dropped_boilerplate: dict[int, int] = {}
        self._own_size = np.asarray(own_sizes, dtype=np.int64)
        for n in self.sizes:
            keys = np.concatenate(per_size[n]) if per_size[n] else np.zeros(0, np.uint64)
            own = np.concatenate(owners[n]) if owners[n] else np.zeros(0, np.int64)
            order = np.argsort(keys, kind="stable")
            keys, own = keys[order], own[order]
            uniq, first, counts = np.unique(keys, return_index=True, return_counts=True)
            common = counts > max_ref_df  # each text contributes a gram once, so count = df
            self.dropped_boilerplate[n] = int(common.sum())
            self._keys[n] = uniq[~common]
            self._owners[n] = own[first[~common]]

    def __len__(self) -> int:
        return len(self.ref_ids)

    def own_size(self, word_count: int) -> int:
        """The largest configured size that fits `word_count` words (0 when none does)."""
        return max((n for n in self.sizes if n <= word_count), default=0)

    def match_detail(self, text: str) -> tuple[str, int] | None:
        """(reference id, n-gram size) of a shared n-gram; size 0 for a whole-text match."""
        words = _words(text)
        norm = " ".join(words)
        if norm in self._whole:
            return self._whole[norm], 0
        mine = self.own_size(len(words))
        for n in self.sizes:
            if n > mine:
                break
            keys = self._keys[n]
            hashes = _gram_hashes(words, n)
            if len(keys) == 0 or len(hashes) == 0:
                continue
            pos = np.searchsorted(keys, hashes)
            pos[pos >= len(keys)] = 0
            owners = self._owners[n][pos[keys[pos] == hashes]]
            # Compared at the smaller of the two texts' sizes: n must be ours or the reference's.
            owners = owners if n == mine else owners[self._own_size[owners] == n]
            if len(owners):
                return self.ref_ids[int(owners.min())], n
        return None

    def match_details(self, texts: Sequence[str]) -> list[tuple[str, int] | None]:
        """`match_detail` of many texts at once: one vectorised lookup per size for the whole batch."""
        words = [_words(t) for t in texts]
        found: list[tuple[str, int] | None] = [None] * len(texts)
        for i, w in enumerate(words):
            ref = self._whole.get(" ".join(w))
            if ref is not None:
                found[i] = (ref, 0)
        mine = np.array([self.own_size(len(w)) for w in words], dtype=np.int64)
        big = np.iinfo(np.int64).max
        for n in self.sizes:
            todo = [i for i in range(len(texts)) if found[i] is None and mine[i] >= n]
            keys = self._keys[n]
            if not todo or len(keys) == 0:
                continue
            hashes, counts = ngram_hashes([words[i] for i in todo], n, whole_if_short=False)
            pos = np.searchsorted(keys, hashes)
            pos[pos >= len(keys)] = 0
            owner = np.where(keys[pos] == hashes, self._owners[n][pos], -1)
            # Compared at the smaller of the two texts' sizes: n must be ours or the reference's.
            text_of = np.repeat(np.arange(len(todo)), counts)
            ok = (owner >= 0) & ((mine[todo][text_of] == n) | (self._own_size[np.maximum(owner, 0)] == n))
            first = np.full(len(todo), big, dtype=np.int64)
            np.minimum.at(first, text_of[ok], owner[ok])
            for j in np.flatnonzero(first < big):
                found[todo[j]] = (self.ref_ids[int(first[j])], n)
        return found

    def match(self, text: str) -> str | None:
        found = self.match_detail(text)
        return found[0] if found else None


def decontaminate(rows: Iterable[dict], index: NgramIndex,
                  fields: Sequence[str] = ("query", "response")) -> tuple[list[dict], list[dict]]:
    """(kept, dropped); dropped rows get reject_reason "contaminated" and the matched reference."""
    rows = list(rows)
    hits: list[tuple[str, tuple[str, int]] | None] = [None] * len(rows)
    for field in fields:  # the first field that matches names the reason
        todo = [i for i in range(len(rows)) if hits[i] is None]
        for i, hit in zip(todo, index.match_details([str(rows[i].get(field) or "") for i in todo])):
            if hit:
                hits[i] = (field, hit)
    kept, dropped = [], []
    for row, hit in zip(rows, hits):
        if hit is None:
            kept.append(row)
            continue
        field, (ref_id, n) = hit
        dropped.append({**row, "accepted": False, "reject_reason": "contaminated",
                        "reject_detail": f"{field} shares a {n}-gram with {ref_id}" if n else f"{field} equals {ref_id}"})
    return kept, dropped


def _text_of(record: dict) -> str | None:
    if "problem" in record:
        return record["problem"]
    if "question" in record:
        return record["question"]
    if "Body" in record and "Question" in record:  # SVAMP
        return f"{record['Body']} {record['Question']}"
    return None


def load_reference_texts(paths: Iterable[str]) -> list[tuple[str, str]]:
    """(ref id, text) from GSM8K / MATH / GSM8K-Backward jsonl files (or a SVAMP-style JSON array).

    The id is "<file name>:<unique_id>" where a row has one, else "<file name>:<line number>".
    """
    out: list[tuple[str, str]] = []
    for path in paths:
        name = reference_set_name(path)
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as f:
            if path.removesuffix(".gz").endswith(".json"):
                records = json.load(f)
            else:
                records = [json.loads(line) for line in f if line.strip()]
        for number, record in enumerate(records):
            text = _text_of(record)
            if text:
                out.append((f"{name}:{record.get('unique_id', record.get('source_index', number))}", text))
    return out


def reference_set_name(path: str) -> str:
    """The name a reference file's ids carry: "<folder>/<file>" (e.g. "decontam/gsm8k_test.jsonl.gz")."""
    return os.path.basename(os.path.dirname(path)) + "/" + os.path.basename(path)


_MATCHED_REFERENCE = re.compile(r"(?:shares a \d+-gram with|equals) (\S+?):[^:\s]*$")


def matched_reference_set(reject_detail: str | None) -> str | None:
    """The reference set named in a "contaminated" row's reject_detail."""
    found = _MATCHED_REFERENCE.search(reject_detail or "")
    return found.group(1) if found else None
