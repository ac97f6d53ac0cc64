"""Engine benchmark: the embedded default on the CPU, naive serialised `generate` against botloom's
batching engine, side by side in one run.

    PYTHONPATH=. python bench/engine.py [--quick] [--ks 1,4,16] [--repeat 1] [--with-paged]

For each K (concurrent conversations), K conversations of 3 turns each run in a closed loop
(bench/common.py): every turn re-sends the system prompt and the history, reply lengths are drawn
from 16-64 tokens (8-24 with --quick), conversations start within the first second, greedy
decoding (so every way of serving produces the same replies and histories), the model's own EOS
ends replies early. The same workload runs against:

- naive: HuggingFaceChatModel, one `generate` call per request, serialised in its worker thread
  (botloom's serial engine);
- engine: BatchedChatModel with its CPU backend (DynamicBatcher: continuous batching, KV-cache
  reuse across turns), default settings;
- paged (--with-paged): BatchedChatModel with transformers' ContinuousBatchingManager, the CUDA
  backend, here on the CPU: the other candidate for the CPU path.

Figures: aggregate generated tokens/s (all conversations, wall clock) and its ratio to naive's
(speedup), the same ratio in tokens per CPU-second of this process ("per CPU-s": the work a token
costs, which other processes on the machine disturb much less), p50/p95 reply latency (request
sent -> last piece, queueing included), time to the first piece, and the share of prompt tokens
whose prefill the engine skipped (KV cache reused) on turns 2-3. The machine is
shared and noisy: read the ratios measured in the same run; --repeat N reports medians of N runs.
Torch runs one thread on both sides (--threads): on an oversubscribed machine its multi-threaded
kernels stall. The last line is one JSON object (also saved to bench/results/engine-cpu.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    RecordingBatcher,
    RunResult,
    Workload,
    format_table,
    run_conversations,
)
from models.api import GenerationParams
from models.embedded import EMBEDDED_DEFAULT
from models.engine import BatchedChatModel, EngineConfig, create_batcher
from models.hf import HuggingFaceChatModel, load_model

RESULTS = Path(__file__).resolve().parent / "results" / "engine-cpu.json"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter replies (8-24 tokens)")
    parser.add_argument("--ks", default="1,4,16", help="concurrent conversations, comma-separated")
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=1, help="runs per K; medians are reported")
    parser.add_argument("--with-paged", action="store_true", help="also transformers' CB manager")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, both sides")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "botloom")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args()


async def serve(model: Any, tokenizer: Any, kind: str, workload: Workload) -> RunResult:
    """Run the workload against one way of serving, on a fresh instance of it."""
    if kind == "naive":
        serial = HuggingFaceChatModel(model, tokenizer, name=kind)
        try:
            return await run_conversations(
                serial, workload, name=kind, tokens_generated=lambda: serial.tokens_generated
            )
        finally:
            serial.close()
    config = EngineConfig(backend="paged" if kind == "paged" else "dynamic")
    greedy = GenerationParams(temperature=0.0)
    batcher = RecordingBatcher(create_batcher(model, config, greedy))
    engine = BatchedChatModel(model, tokenizer, name=kind, config=config, batcher=batcher)  # type: ignore[arg-type]
    try:
        result = await run_conversations(
            engine, workload, name=kind, tokens_generated=lambda: engine.tokens_generated
        )
    finally:
        engine.close()
    result.reused_tokens = batcher.reused_by_turn()
    stats = engine.stats
    print(
        f"  {kind} K={workload.conversations}: {stats.steps} decode steps, "
        f"{stats.batched_steps} with 2+ rows, at most {stats.max_rows} rows",
        file=sys.stderr,
    )
    return result


def summarise(kind: str, runs: list[RunResult], naive: list[RunResult]) -> dict[str, Any]:
    """Medians over repeated runs; ratios are taken run by run against the naive run beside it."""

    def median(values: list[float]) -> float:
        return float(statistics.median(values))

    saved = [r.prefill_saved(first_turn=1) for r in runs]
    return {
        "replies": len(runs[0].turns),
        "tokens": int(median([r.tokens for r in runs])),
        "tok_s": round(median([r.tok_s for r in runs]), 2),
        "p50_s": round(median([r.latency(0.5) for r in runs]), 2),
        "p95_s": round(median([r.latency(0.95) for r in runs]), 2),
        "ttft_p50_s": round(median([r.ttft(0.5) for r in runs]), 2),
        "speedup": round(median([r.tok_s / n.tok_s for r, n in zip(runs, naive, strict=True)]), 2),
        "tok_per_cpu_s": round(median([r.tok_per_cpu_s for r in runs]), 2),
        "speedup_cpu_time": round(
            median([r.tok_per_cpu_s / n.tok_per_cpu_s for r, n in zip(runs, naive, strict=True)]), 2
        ),
        "prefill_saved_fraction": round(median([a / b if b else 0.0 for a, b in saved]), 3),
        "same_replies": round(median([_same(r, n) for r, n in zip(runs, naive, strict=True)]), 3),
    }


def _same(run: RunResult, naive: RunResult) -> float:
    """The share of replies identical to naive's (greedy: batching should change none)."""
    pairs = list(zip(run.turns, naive.turns, strict=True))
    return sum(a.reply == b.reply for a, b in pairs) / len(pairs)


async def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    low, high = (8, 24) if args.quick else (16, 64)
    kinds = ["naive", "engine"] + (["paged"] if args.with_paged else [])
    model, tokenizer, name = load_model(EMBEDDED_DEFAULT, cache_dir=args.cache_dir, device="cpu")
    print(f"{name}: torch {torch.__version__}, {args.threads} thread(s)", file=sys.stderr)
    warm_up = Workload(conversations=2, turns=1, min_tokens=4, max_tokens=4, stagger_s=0.0)
    for kind in kinds:
        await serve(model, tokenizer, kind, warm_up)

    by_k: list[dict[str, Any]] = []
    rows: list[list[Any]] = []
    for k in [int(k) for k in args.ks.split(",")]:
        workload = Workload(conversations=k, turns=args.turns, min_tokens=low, max_tokens=high)
        runs: dict[str, list[RunResult]] = {kind: [] for kind in kinds}
        for _ in range(args.repeat):
            started = time.perf_counter()
            for kind in kinds:
                runs[kind].append(await serve(model, tokenizer, kind, workload))
            print(f"  K={k}: one round took {time.perf_counter() - started:.0f} s", file=sys.stderr)
        entry: dict[str, Any] = {"k": k}
        for kind in kinds:
            entry[kind] = summarise(kind, runs[kind], runs["naive"])
            f = entry[kind]
            saved, same = f"{f['prefill_saved_fraction']:.0%}", f"{f['same_replies']:.0%}"
            rows.append([k, kind, f["replies"], f["tokens"], f["tok_s"], f["p50_s"], f["p95_s"],
                         f["ttft_p50_s"], f"{f['speedup']:.2f}", f"{f['speedup_cpu_time']:.2f}",
                         saved, same])  # fmt: skip
        by_k.append(entry)

    print(
        f"\n{name} on the CPU ({os.cpu_count()} cores, shared with other work; torch "
        f"{args.threads} thread(s)); {args.turns} turns, replies of {low}-{high} tokens, greedy; "
        f"medians of {args.repeat} run(s)"
    )
    headers = ["K", "serving", "replies", "tokens", "tok/s", "p50 s", "p95 s", "ttft p50 s",
               "speedup", "per CPU-s", "prefill saved t2-3", "same replies"]  # fmt: skip
    print(format_table(headers, rows))
    last = by_k[-1]
    result = {
        "k": last["k"],
        "naive_tok_s": last["naive"]["tok_s"],
        "engine_tok_s": last["engine"]["tok_s"],
        "speedup": last["engine"]["speedup"],
        "speedup_cpu_time": last["engine"]["speedup_cpu_time"],
        "naive_p95_s": last["naive"]["p95_s"],
        "engine_p95_s": last["engine"]["p95_s"],
        "prefill_saved_fraction": last["engine"]["prefill_saved_fraction"],
        "prefill_saved_backend": "cpu: DynamicBatcher + PrefixCache (KV cache kept across turns)",
        "model": name,
        "device": f"cpu: {platform.machine()}, {os.cpu_count()} cores (shared)",
        "torch_threads": args.threads,
        "torch": torch.__version__,
        "reply_tokens": [low, high],
        "repeat": args.repeat,
        "by_k": by_k,
    }
    line = json.dumps(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(line + "\n")
    print(line)


if __name__ == "__main__":
    asyncio.run(main())
