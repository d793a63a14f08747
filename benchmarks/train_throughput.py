"""Training throughput (tokens/s) and MFU of the one-process loop (no Ray), for regression tracking.

CPU (tiny model, the default):
    OMP_NUM_THREADS=2 unshare -n sh -c 'ip link set lo up && python benchmarks/train_throughput.py'
GPU (~1.2B LLaMA-shaped random model, bf16, ZeRO-3, packing, sequences of 2048):
    python benchmarks/train_throughput.py --model llama-1b --gpu --seq 2048 --micro-batch 4 --steps 30 \
        --tokenizer-dir /path/to/llama-2-tokenizer

Data: the bundled GSM8K/MATH seed solutions as MetaMathQA records, repeated to fill the steps.
Figures are medians over steps after `--warmup` steps. MFU's peak is the GPU's data-sheet bf16
figure, or on CPU a measured fp32 matmul peak of the same threads.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from importlib import resources
from pathlib import Path

DEFAULT_OUT = Path(__file__).parent / "results" / "train_throughput.json"
SHAPES = {"tiny": None, "llama-1b": {"hidden_size": 2048, "num_layers": 22}}


def seed_records() -> list[dict]:
    seeds = resources.files("metamath_ray") / "data" / "seeds"
    records = []
    for line in (seeds / "gsm8k_train_sample.jsonl").read_text().splitlines():
        row = json.loads(line)
        records.append({"query": row["question"], "response": row["answer"]})
    for line in (seeds / "math_train_sample.jsonl").read_text().splitlines():
        row = json.loads(line)
        records.append({"query": row["problem"], "response": row["solution"]})
    return records


def build_model(name: str, work: Path, tokenizer_dir: str | None) -> str:
    from metamath_ray.models import build_tiny_llama

    if SHAPES[name] is None and tokenizer_dir is None:
        return "tiny"
    shape = SHAPES[name] or {}
    return str(build_tiny_llama(work / name, tokenizer_dir=tokenizer_dir, **shape))


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=sorted(SHAPES), default="tiny")
    p.add_argument("--tokenizer-dir", default=None, help="e.g. a LLaMA-2 tokenizer folder (vocab 32000)")
    p.add_argument("--gpu", action="store_true")
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp32", "fp16"])
    p.add_argument("--stage", type=int, default=3, choices=[0, 1, 2, 3])
    p.add_argument("--seq", type=int, default=512, help="max_length; with packing, the packed width")
    p.add_argument("--micro-batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--no-packing", action="store_true")
    p.add_argument("--no-grad-ckpt", action="store_true")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)

    from metamath_ray.train.config import TrainConfig
    from metamath_ray.train.run import train_single_process

    with tempfile.TemporaryDirectory(prefix="mmr-bench-") as tmp:
        work = Path(tmp)
        model = build_model(args.model, work, args.tokenizer_dir)
        records = seed_records()
        # Enough records for every step even without packing.
        need = args.micro_batch * (args.steps + 1) * (1 if args.no_packing else 16)
        data = work / "metamathqa.json"
        data.write_text(json.dumps((records * (need // len(records) + 1))[:need]))
        cfg = TrainConfig(
            model=model, data=str(data), output=str(work / "out"), run_name="bench", use_gpu=args.gpu,
            dtype=args.dtype, deepspeed={"stage": args.stage}, max_length=args.seq,
            packing=not args.no_packing, micro_batch_size=args.micro_batch, global_batch_size=args.micro_batch,
            epochs=1, max_steps=args.steps, lr=1e-4, gradient_checkpointing=not args.no_grad_ckpt,
            checkpoint_every_steps=10**9, export=False, shuffle=False,
        )
        summary = train_single_process(cfg)
        log = [json.loads(l) for l in (work / "out" / "bench" / "train_log.jsonl").read_text().splitlines()]

    timed = log[args.warmup :] or log
    result = {
        "model": args.model, "device": "cuda" if args.gpu else "cpu", "dtype": args.dtype,
        "zero_stage": args.stage, "seq": args.seq, "micro_batch": args.micro_batch,
        "packing": not args.no_packing, "grad_ckpt": not args.no_grad_ckpt,
        "steps_timed": len(timed),
        "tokens_per_s": statistics.median(r["tokens_per_s"] for r in timed),
        "mfu": statistics.median(r["mfu"] for r in timed),
        "step_time_s": statistics.median(r["step_time_s"] for r in timed),
        "tokens_per_step": statistics.median(r["tokens"] for r in timed),
        "loss_first": log[0]["loss"], "loss_last": log[-1]["loss"],
        "dropped_too_long": summary["dropped"],
    }
    rows = [("tokens/s", f"{result['tokens_per_s']:.1f}"), ("MFU", f"{result['mfu']:.2%}"),
            ("step time (s)", f"{result['step_time_s']:.3f}"), ("tokens/step", f"{result['tokens_per_step']:.0f}"),
            ("loss first -> last", f"{result['loss_first']:.3f} -> {result['loss_last']:.3f}")]
    print(f"train throughput: {args.model} {result['device']} {args.dtype} ZeRO-{args.stage} seq {args.seq} "
          f"micro {args.micro_batch} packing={result['packing']} ({len(timed)} timed steps)")
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
