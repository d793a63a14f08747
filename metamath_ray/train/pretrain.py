"""Continued pretraining data (LLEMMA-style): raw text sources, a weighted mixture, packing.

Each training sequence is exactly `max_length` tokens cut from one source's stream of documents,
each document followed by EOS (document boundaries are marked by EOS only, as LLEMMA/GPT-NeoX do;
no padding, no attention mask). Labels are the input ids: the loss covers every token.

The mixture is drawn sequence by sequence: every sequence holds `max_length` tokens, so the share
of sequences from a source is exactly its share of training tokens. A source whose weight asks for
more tokens than it has is repeated (a new pass, units in a new seeded order); `passes` in the
report says how often that happened.

Every worker reads its own share of each source straight from storage (local or s3:// through
`metamath_ray.storage`) rather than through Ray Data: row groups (Parquet) or files (JSON lines) are
dealt out by rank, or documents by index when a source has fewer units than workers. The stream is
then a pure function of (config, rank, world size), which gives two things a split Ray Dataset does
not: sources can be repeated by weight without cross-worker epoch barriers, and a resumed run
replays exactly the data order of the one it continues.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow.fs as pafs

from metamath_ray import storage
from metamath_ray.train.config import PretrainSource, TrainConfig
from metamath_ray.train.io import parse_json_rows

TEXT_SUFFIXES = (".parquet", ".jsonl", ".json")
TOKENIZE_BATCH = 256  # documents per tokenizer call
# Pretraining is one endless epoch: the loop's position is then simply the global step, so a run
# re-submitted with a larger max_steps continues the data stream where it stopped instead of
# starting a new "epoch" from the first sequence. max_steps ends the run.
ENDLESS_EPOCH_STEPS = 10**12


# ---------------------------------------------------------------- pure pieces

class Packer:
    """Concatenates documents and cuts the stream into sequences of exactly `seq_len` tokens.

    Nothing is dropped or padded: tokens past the last full sequence wait in `pending` for the next
    document (a source's next pass included); only what is pending when training stops goes unused.
    """

    def __init__(self, seq_len: int):
        self.seq_len = seq_len
        self.pending: list[int] = []
        self.tokens_in = 0
        self.sequences_out = 0

    def add(self, ids: list[int]) -> list[list[int]]:
        self.tokens_in += len(ids)
        self.pending.extend(ids)
        n = len(self.pending) // self.seq_len
        if not n:
            return []
        out = [self.pending[i * self.seq_len:(i + 1) * self.seq_len] for i in range(n)]
        del self.pending[: n * self.seq_len]
        self.sequences_out += n
        return out

    @property
    def remainder(self) -> int:
        return len(self.pending)


def pack_documents(docs: Iterable[list[int]], seq_len: int, eos_id: int) -> tuple[list[list[int]], int]:
    """All full sequences from these tokenized documents (EOS appended to each) and the number of
    tokens left over at the end (fewer than `seq_len`)."""
    packer = Packer(seq_len)
    out: list[list[int]] = []
    for doc in docs:
        out.extend(packer.add(list(doc) + [eos_id]))
    return out, packer.remainder


class MixtureSampler:
    """Deterministic weighted interleaving of sources.

    Source i's k-th turn is due at (k + u) / p_i, u drawn from a seeded uniform per turn; the next
    source is the one due first. Every prefix of the schedule then holds p_i * n (+/- 1) turns of
    source i, while the seed still varies the order.
    """

    def __init__(self, weights: list[float], seed: int):
        if not weights or any(w <= 0 for w in weights):
            raise ValueError(f"mixture weights must be positive, got {weights}")
        total = sum(weights)
        self.probs = [w / total for w in weights]
        self._rng = random.Random(seed)
        self.counts = [0] * len(weights)
        self._due = [(self._rng.random()) / p for p in self.probs]

    def next(self) -> int:
        i = min(range(len(self._due)), key=self._due.__getitem__)
        self.counts[i] += 1
        self._due[i] = (self.counts[i] + self._rng.random()) / self.probs[i]
        return i


def tokenize_documents(tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of each non-blank document followed by EOS (no BOS: EOS alone separates them)."""
    texts = [t for t in texts if t and t.strip()]
    if not texts:
        return []
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return [list(x) + [tokenizer.eos_token_id] for x in ids]


# ---------------------------------------------------------------- reading sources

def list_text_files(uri: str) -> list[str]:
    """The .parquet / .jsonl / .json files of a source (a file, or a folder searched recursively),
    as URIs in sorted order."""
    fs, path = storage.resolve_filesystem(uri)
    kind = storage.with_retries(lambda: fs.get_file_info(path).type)
    if kind == pafs.FileType.NotFound:
        raise FileNotFoundError(f"pretraining source not found: {uri}")
    if kind == pafs.FileType.File:
        if not path.endswith(TEXT_SUFFIXES):
            raise ValueError(f"pretraining source must be .parquet, .jsonl or .json: {uri}")
        return [uri]
    infos = storage.with_retries(lambda: fs.get_file_info(pafs.FileSelector(path, recursive=True)))
    rel = sorted(i.path[len(path):].lstrip("/") for i in infos
                 if i.type == pafs.FileType.File and i.path.endswith(TEXT_SUFFIXES))
    if not rel:
        raise FileNotFoundError(f"no .parquet, .jsonl or .json files under {uri}")
    return [storage.join(uri, r) for r in rel]


def _parquet_file(uri: str, read):
    """`read(pq.ParquetFile)` on the Parquet file at `uri`, retrying transient storage errors."""
    import pyarrow.parquet as pq

    fs, path = storage.resolve_filesystem(uri)

    def attempt():
        with fs.open_input_file(path) as fh:
            return read(pq.ParquetFile(fh))

    return storage.with_retries(attempt)


def read_units(uri: str) -> list[tuple[str, int | None]]:
    """Reading units of a source: (file, row group) for Parquet, (file, None) for JSON files."""
    units: list[tuple[str, int | None]] = []
    for f in list_text_files(uri):
        if f.endswith(".parquet"):
            n = _parquet_file(f, lambda pf: pf.metadata.num_row_groups)
            units += [(f, g) for g in range(n)]
        else:
            units.append((f, None))
    return units


def read_unit_texts(unit: tuple[str, int | None], column: str) -> list[str]:
    f, group = unit
    if group is not None:
        def read_group(pf) -> list:
            if column not in pf.schema_arrow.names:
                raise ValueError(f"{f}: no text column {column!r} (has {pf.schema_arrow.names})")
            return pf.read_row_group(group, columns=[column]).column(column).to_pylist()

        return [t or "" for t in _parquet_file(f, read_group)]
    rows = parse_json_rows(storage.read_text(f))
    if rows and column not in rows[0]:
        raise ValueError(f"{f}: no text column {column!r} (has {sorted(rows[0])})")
    return [r.get(column) or "" for r in rows]


class SourceStream:
    """One worker's endless stream of one source's tokenized documents, pass after pass."""

    def __init__(self, source: PretrainSource, tokenizer, *, rank: int, world: int, seed: int, shuffle: bool):
        self.source, self.tokenizer = source, tokenizer
        self.rank, self.world, self.seed, self.shuffle = rank, world, seed, shuffle
        self.units = read_units(source.path)
        # Enough units: each worker reads only its own. Too few: all read everything, keep every world-th doc.
        self.by_unit = len(self.units) >= world
        self.passes = 0
        self.documents = 0

    def _pass_units(self, n: int) -> list[tuple[str, int | None]]:
        units = list(self.units)
        if self.shuffle:
            random.Random(f"{self.seed}/{self.source.name}/{n}").shuffle(units)
        return units[self.rank::self.world] if self.by_unit else units

    def documents_iter(self) -> Iterator[list[int]]:
        while True:
            self.passes += 1
            produced = 0
            index = 0
            for unit in self._pass_units(self.passes - 1):
                texts = read_unit_texts(unit, self.source.text_column)
                if not self.by_unit:  # documents numbered across the pass, dealt out by rank
                    kept = [t for j, t in enumerate(texts, start=index) if j % self.world == self.rank]
                    index += len(texts)
                    texts = kept
                for b in range(0, len(texts), TOKENIZE_BATCH):
                    for doc in tokenize_documents(self.tokenizer, texts[b:b + TOKENIZE_BATCH]):
                        produced += 1
                        self.documents += 1
                        yield doc
            if not produced:  # an endless loop over nothing otherwise
                raise ValueError(
                    f"pretraining source {self.source.name!r} ({self.source.path}) has no text for worker "
                    f"{self.rank} of {self.world} in column {self.source.text_column!r}"
                )


# ---------------------------------------------------------------- the worker's training stream

class PretrainStream:
    """A worker's training examples for objective=pretrain: full sequences drawn from the weighted
    mixture, each labelled with itself. Deterministic in (config, rank, world size)."""

    def __init__(self, cfg: TrainConfig, rank: int, world: int, tokenizer=None):
        from metamath_ray.train.data import load_tokenizer

        self.cfg, self.rank, self.world = cfg, rank, world
        self.tokenizer = tokenizer or load_tokenizer(cfg.tokenizer or cfg.model)
        self.sources = cfg.pretrain.resolved_sources(cfg.data)
        self.streams: list[SourceStream] = []  # set up by examples(): listing sources reads storage

    def _reset(self) -> None:
        cfg = self.cfg
        self.streams = [
            SourceStream(s, self.tokenizer, rank=self.rank, world=self.world, seed=cfg.seed, shuffle=cfg.shuffle)
            for s in self.sources
        ]
        self.packers = [Packer(cfg.max_length) for _ in self.sources]
        self.sampler = MixtureSampler([s.weight for s in self.sources], seed=cfg.seed * 1009 + self.rank)
        self._docs = [st.documents_iter() for st in self.streams]
        self._ready: list[list[list[int]]] = [[] for _ in self.sources]

    def _next_sequence(self, i: int) -> list[int]:
        while not self._ready[i]:
            self._ready[i] = self.packers[i].add(next(self._docs[i]))
        return self._ready[i].pop(0)

    def examples(self, epoch: int) -> Iterator[dict[str, Any]]:
        """Endless: the loop stops at max_steps. Each call starts the stream afresh, so the resume
        path (which skips the micro-batches already trained on) replays the same order."""
        self._reset()
        while True:
            ids = self._next_sequence(self.sampler.next())
            yield {"input_ids": ids, "labels": ids}

    def summary(self) -> dict[str, Any] | None:
        """The realised mixture over all workers (a collective when torch.distributed is up); None
        when this attempt drew no data (it resumed at the end of the run)."""
        if not _reduce([int(bool(self.streams))], "max")[0]:
            return None
        if not self.streams:  # another rank drew data: take part in the collectives with zeros
            self._reset()
        # Sequences handed out = sampler counts; packed-but-unused ones count with the unused tokens.
        seqs = list(self.sampler.counts)
        docs = [st.documents for st in self.streams]
        unused = [p.remainder + len(r) * self.cfg.max_length for p, r in zip(self.packers, self._ready)]
        passes = [st.passes for st in self.streams]
        seqs, docs, unused = _reduce(seqs, "sum"), _reduce(docs, "sum"), _reduce(unused, "sum")
        passes = _reduce(passes, "max")
        total = sum(seqs)
        weight_sum = sum(s.weight for s in self.sources)
        return {
            "seq_len": self.cfg.max_length,
            "sequences": total,
            "tokens": total * self.cfg.max_length,
            "sources": {
                s.name: {
                    "path": s.path,
                    "target_share": s.weight / weight_sum,
                    "realised_share": seqs[i] / total if total else 0.0,
                    "sequences": seqs[i],
                    "tokens": seqs[i] * self.cfg.max_length,
                    "documents_read": docs[i],
                    "passes": passes[i],
                    "unused_tokens": unused[i],  # read and tokenized, not yet in a trained sequence
                }
                for i, s in enumerate(self.sources)
            },
        }


def _reduce(values: list[int], op: str) -> list[int]:
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.int64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
    return [int(x) for x in t.tolist()]


def with_absolute_sources(cfg: TrainConfig) -> TrainConfig:
    """Local source paths made absolute on the driver: Ray Train workers do not run in the
    driver's working directory, so a relative path there names nothing."""
    import os

    def fix(path: str | None) -> str | None:
        return path if path is None or "://" in path else os.path.abspath(path)

    sources = [s.model_copy(update={"path": fix(s.path)}) for s in cfg.pretrain.sources]
    return cfg.model_copy(update={
        "data": fix(cfg.data), "pretrain": cfg.pretrain.model_copy(update={"sources": sources}),
    })


def plan_pretrain(cfg: TrainConfig) -> dict[str, Any]:
    """Driver-side check and plan: every source has readable files; the length is max_steps."""
    sources = []
    weight_sum = sum(s.weight for s in cfg.pretrain.resolved_sources(cfg.data))
    for s in cfg.pretrain.resolved_sources(cfg.data):
        sources.append({"name": s.name, "path": s.path, "text_column": s.text_column,
                        "target_share": s.weight / weight_sum, "files": len(list_text_files(s.path))})
    sequences = cfg.max_steps * cfg.global_batch_size
    return {
        "objective": "pretrain",
        "steps_per_epoch": ENDLESS_EPOCH_STEPS,
        "epochs_planned_steps": None,  # no epochs: the mixture repeats sources as needed
        "planned_sequences": sequences,
        "planned_tokens": sequences * cfg.max_length,
        "mixture_plan": sources,
        "dropped_rows": [],
    }
