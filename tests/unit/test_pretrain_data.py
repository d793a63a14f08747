"""Continued-pretraining data: packing, the weighted mixture, reading sources, the worker stream."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from metamath_ray.train.config import PretrainSettings, PretrainSource, TrainConfig
from metamath_ray.train.pretrain import (
    MixtureSampler,
    Packer,
    PretrainStream,
    list_text_files,
    pack_documents,
    plan_pretrain,
    read_units,
    tokenize_documents,
)

EOS = 0


class CharTokenizer:
    """One token per character (ids >= 1), EOS 0: token counts are easy to predict."""

    eos_token_id = EOS

    def __call__(self, texts, add_special_tokens=True):
        assert add_special_tokens is False  # pretraining text gets EOS only, appended by us
        return {"input_ids": [[1 + (ord(c) % 200) for c in t] for t in texts]}


# ---------------------------------------------------------------- packing

def test_pack_gives_exact_sequences_and_counts_the_remainder():
    docs = [list(range(1, n + 1)) for n in (3, 17, 1, 40, 8, 2)]
    seqs, rest = pack_documents(docs, 16, EOS)
    stream = [t for d in docs for t in d + [EOS]]
    assert all(len(s) == 16 for s in seqs)
    assert len(seqs) * 16 + rest == len(stream)  # nothing lost but the counted tail
    assert 0 <= rest < 16
    assert [t for s in seqs for t in s] == stream[: len(seqs) * 16]  # order kept, EOS between documents


def test_packer_splits_long_documents_and_carries_over():
    p = Packer(5)
    assert p.add([1, 2, 3]) == []
    assert p.add([4, 5, 6, 7, 8, 9, 10, 11, 12]) == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]]
    assert p.remainder == 2 and p.tokens_in == 12 and p.sequences_out == 2


def test_tokenize_documents_appends_eos_and_skips_blank():
    out = tokenize_documents(CharTokenizer(), ["ab", "   ", "", "c"])
    assert out == [[1 + ord("a") % 200, 1 + ord("b") % 200, EOS], [1 + ord("c") % 200, EOS]]


# ---------------------------------------------------------------- mixture

def test_mixture_realises_weights_in_every_prefix():
    weights = [2.0, 4.0, 1.0]
    probs = [w / sum(weights) for w in weights]
    m = MixtureSampler(weights, seed=7)
    counts = [0, 0, 0]
    for n in range(1, 7001):
        counts[m.next()] += 1
        # jittered due times keep every prefix within 2 turns of its target
        assert all(abs(c - p * n) <= 2 for c, p in zip(counts, probs)), (n, counts)
    assert counts == m.counts


def test_mixture_is_deterministic_by_seed():
    draw = lambda seed: [m.next() for m in [MixtureSampler([1, 1, 3], seed)] for _ in range(500)]
    assert draw(3) == draw(3)
    assert draw(3) != draw(4)


def test_mixture_rejects_bad_weights():
    with pytest.raises(ValueError, match="positive"):
        MixtureSampler([1.0, 0.0], 0)


# ---------------------------------------------------------------- sources and the worker stream

def _docs(prefix: str, n: int) -> list[str]:
    return [f"{prefix} document {i}: " + "x" * (5 + i % 11) for i in range(n)]


@pytest.fixture()
def sources(tmp_path):
    """A folder of two Parquet files (several row groups each), a JSONL file and a JSON array."""
    pq_dir = tmp_path / "arxiv"
    pq_dir.mkdir()
    docs_a = _docs("arxiv", 60)
    for k in range(2):
        pq.write_table(pa.table({"text": docs_a[k * 30:(k + 1) * 30], "meta": list(range(30))}),
                       pq_dir / f"part-{k}.parquet", row_group_size=10)
    (pq_dir / "README.txt").write_text("not data")
    web = tmp_path / "web.jsonl"
    web.write_text("".join(json.dumps({"content": t}) + "\n" for t in _docs("web", 80)))
    code = tmp_path / "code.json"
    code.write_text(json.dumps([{"text": t} for t in _docs("code", 5)]))
    return {"arxiv": str(pq_dir), "web": str(web), "code": str(code), "docs_a": docs_a}


def _cfg(tmp_path, sources, **kw) -> TrainConfig:
    base = dict(
        objective="pretrain", output=str(tmp_path / "out"), max_steps=10, max_length=32,
        micro_batch_size=1, global_batch_size=1,
        pretrain=PretrainSettings(sources=[
            PretrainSource(path=sources["arxiv"], weight=2),
            PretrainSource(path=sources["web"], weight=4, text_column="content", name="web"),
            PretrainSource(path=sources["code"], weight=1, name="code"),
        ]),
    )
    base.update(kw)
    return TrainConfig(**base)


def test_source_listing_and_units(sources):
    files = list_text_files(sources["arxiv"])
    assert [f.rsplit("/", 1)[-1] for f in files] == ["part-0.parquet", "part-1.parquet"]  # README ignored
    assert len(read_units(sources["arxiv"])) == 6  # 2 files x 3 row groups
    assert read_units(sources["web"]) == [(sources["web"], None)]
    with pytest.raises(FileNotFoundError, match="not found"):
        list_text_files(sources["arxiv"] + "/nope")


def test_stream_sequences_are_full_labelled_and_mixed(tmp_path, sources):
    cfg = _cfg(tmp_path, sources)
    stream = PretrainStream(cfg, 0, 1, tokenizer=CharTokenizer())
    it = stream.examples(0)
    got = [next(it) for _ in range(700)]
    assert all(len(x["input_ids"]) == 32 and x["labels"] == x["input_ids"] for x in got)
    mix = stream.summary()
    shares = {k: v["realised_share"] for k, v in mix["sources"].items()}
    assert shares == pytest.approx({"arxiv": 2 / 7, "web": 4 / 7, "code": 1 / 7}, abs=0.01)
    assert mix["sequences"] == 700 and mix["tokens"] == 700 * 32
    # code has 5 short documents: its weight forces many passes over it; web fits in fewer
    assert mix["sources"]["code"]["passes"] > mix["sources"]["web"]["passes"] >= 1
    # a fresh stream with the same config replays the same sequences (what resume relies on)
    again = PretrainStream(cfg, 0, 1, tokenizer=CharTokenizer()).examples(0)
    assert [next(again)["input_ids"] for _ in range(50)] == [x["input_ids"] for x in got[:50]]
    other = PretrainStream(_cfg(tmp_path, sources, seed=1), 0, 1, tokenizer=CharTokenizer()).examples(0)
    assert [next(other)["input_ids"] for _ in range(50)] != [x["input_ids"] for x in got[:50]]


def test_one_pass_is_every_token_of_the_source(tmp_path, sources):
    """A single source, read once: the sequences are exactly its token stream, cut at seq_len."""
    cfg = TrainConfig(objective="pretrain", data=sources["arxiv"], output=str(tmp_path / "o"), max_steps=1,
                      max_length=32, micro_batch_size=1, global_batch_size=1, shuffle=False)
    tok = CharTokenizer()
    expected, rest = pack_documents(tok(sources["docs_a"], add_special_tokens=False)["input_ids"], 32, EOS)
    stream = PretrainStream(cfg, 0, 1, tokenizer=tok)
    it = stream.examples(0)
    assert [next(it)["input_ids"] for _ in range(len(expected))] == expected
    assert stream.streams[0].passes == 1 and stream.summary()["sources"]["arxiv"]["unused_tokens"] == rest


@pytest.mark.parametrize("world", [2, 8])
def test_workers_read_disjoint_shares(tmp_path, sources, world):
    """6 row groups: 2 workers split by row group; 8 workers split documents by index."""
    cfg = TrainConfig(objective="pretrain", data=sources["arxiv"], output=str(tmp_path / "o"), max_steps=1,
                      max_length=32, micro_batch_size=1, global_batch_size=world, num_workers=world)
    tok = CharTokenizer()
    seen = []
    for rank in range(world):
        stream = PretrainStream(cfg, rank, world, tokenizer=tok)
        stream._reset()
        docs = stream.streams[0].documents_iter()
        mine = []
        while True:
            doc = next(docs)
            if stream.streams[0].passes > 1:  # the first document of the second pass
                break
            mine.append(doc)
        assert mine, rank
        seen.append(mine)
    flat = sorted(map(tuple, (d for part in seen for d in part)))
    assert flat == sorted(map(tuple, tokenize_documents(tok, sources["docs_a"])))  # each document once


def test_missing_text_column_is_one_line(tmp_path, sources):
    cfg = TrainConfig(objective="pretrain", data=sources["web"], output=str(tmp_path / "o"), max_steps=1,
                      max_length=32, micro_batch_size=1, global_batch_size=1)
    with pytest.raises(ValueError, match="no text column 'text'") as e:
        next(PretrainStream(cfg, 0, 1, tokenizer=CharTokenizer()).examples(0))
    assert "\n" not in str(e.value)


def test_empty_source_fails_instead_of_looping(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"text": "   "}) + "\n")
    cfg = TrainConfig(objective="pretrain", data=str(empty), output=str(tmp_path / "o"), max_steps=1,
                      max_length=32, micro_batch_size=1, global_batch_size=1)
    with pytest.raises(ValueError, match="has no text"):
        next(PretrainStream(cfg, 0, 1, tokenizer=CharTokenizer()).examples(0))


def test_plan_pretrain(tmp_path, sources):
    planned = plan_pretrain(_cfg(tmp_path, sources, max_steps=20, global_batch_size=4, micro_batch_size=2))
    assert planned["steps_per_epoch"] > 10**9  # one endless epoch; max_steps ends the run
    assert planned["planned_tokens"] == 20 * 4 * 32
    assert [(s["name"], s["files"]) for s in planned["mixture_plan"]] == [("arxiv", 2), ("web", 1), ("code", 1)]
    assert sum(s["target_share"] for s in planned["mixture_plan"]) == pytest.approx(1.0)
