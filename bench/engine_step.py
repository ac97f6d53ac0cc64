"""One decode step of the CPU engine, timed and broken down: the embedded default, rows x context.

    PYTHONPATH=. python bench/engine_step.py [--rows 1,16] [--context 300] [--steps 40]
        [--weights float32,int8,bf16] [--rounds 1] [--threads 2] [--profile]

For each weight format (models/engine/cpu_model.prepare_model) and each batch size, a BatchKV of
`rows` rows of `context` tokens (random keys and values, in the runner's KV dtype) is decoded
`steps` times, greedy with the repetition penalty over `context` seen tokens, each row's token
pushed through a ReplyText (detokenisation and the stop check), as the DynamicBatcher does.
Printed: median milliseconds per step of the forward (decode), choosing the tokens (sampling +
penalty), and the text, and tok/s of the whole step. With --rounds N every format is prepared
once and the formats take turns N times (format A, B, A, B, ...), each figure the median of its
rounds, so a noisy minute falls on all of them alike. --profile adds torch.profiler's top
operators of the forward, by self CPU time.
`int4-fp16-output` is int4 with the float16 output layer it had before the int8 one
(models/engine/int8_output.py), for a before/after in one run.
The machine is shared: compare the figures of one run. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.api import GenerationParams
from models.decoding import ReplyText
from models.embedded import EMBEDDED_DEFAULT
from models.engine.compact import compact_decoder
from models.engine.cpu_model import EngineModel, prepare_model, use_cpu_threads
from models.engine.int4_linear import int4_copy
from models.engine.kv import BatchKV
from models.engine.sampling import SeenTokens, choose_tokens
from models.hf import load_model


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="1,16")
    parser.add_argument("--context", type=int, default=300)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=1, help="formats take turns this often")
    parser.add_argument("--weights", default="float32,int8,bf16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "botloom")
    return parser.parse_args()


def random_kv(model: Any, rows: int, context: int, dtype: torch.dtype) -> BatchKV:
    config = model.config
    heads = int(config.num_attention_heads)
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
    kv = BatchKV(config, model.device, max_rows=rows, dtype=dtype)
    generator = torch.Generator().manual_seed(0)
    layers = int(config.num_hidden_layers)
    one = [
        (
            torch.randn(1, kv_heads, context, dim, generator=generator),
            torch.randn(1, kv_heads, context, dim, generator=generator),
        )
        for _ in range(layers)
    ]
    kv.add([one] * rows, [context] * rows)
    return kv


def measure(runner: Any, tokenizer: Any, rows: int, args: argparse.Namespace) -> dict[str, Any]:
    kv = random_kv(runner.model, rows, args.context, getattr(runner, "kv_dtype", torch.float32))
    params = [GenerationParams(temperature=0.0, repetition_penalty=1.1)] * rows
    seen = SeenTokens()
    generator = torch.Generator().manual_seed(1)
    vocab = int(runner.model.config.vocab_size)
    prompt = torch.randint(0, vocab, (args.context,), generator=generator).tolist()
    seen.add_rows([prompt] * rows)
    texts = [ReplyText(tokenizer, (), (), lambda piece: None) for _ in range(rows)]
    tokens, positions = [prompt[-1]] * rows, [args.context] * rows
    phases: dict[str, list[float]] = {"forward": [], "choose": [], "text": []}
    for step in range(args.steps + 3):
        t0 = time.perf_counter()
        logits = runner.decode(kv, tokens, positions)
        t1 = time.perf_counter()
        tokens = choose_tokens(logits, params, seen)
        seen.add(tokens)
        t2 = time.perf_counter()
        for text, token in zip(texts, tokens, strict=True):
            text.push(token)
        t3 = time.perf_counter()
        positions = [p + 1 for p in positions]
        if step >= 3:  # warm-up steps are not counted
            phases["forward"].append(t1 - t0)
            phases["choose"].append(t2 - t1)
            phases["text"].append(t3 - t2)
    ms = {name: 1e3 * statistics.median(values) for name, values in phases.items()}
    total = sum(ms.values())
    result: dict[str, Any] = {k: round(v, 2) for k, v in ms.items()}
    result["step_ms"] = round(total, 2)
    result["tok_s"] = round(rows * 1e3 / total, 1)
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(5):
                runner.decode(kv, tokens, positions)
                positions = [p + 1 for p in positions]
        table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14)
        print(table, file=sys.stderr)
    return result


def prepare(model: Any, weights: str) -> EngineModel:
    """The batcher's model in `weights` (a BOTLOOM_ENGINE_WEIGHTS value or int4-fp16-output)."""
    if weights == "int4-fp16-output":
        converted = int4_copy(model, 32, int8_output=False)
        if converted is None:
            raise SystemExit("int4 weights are unavailable here")
        return EngineModel(converted, "int4, float16 output layer", compact_decoder(converted))
    return prepare_model(model, weights=weights, pack_weights=True, max_batch=16)  # type: ignore[arg-type]


def main() -> None:
    args = parse_args()
    threads = use_cpu_threads(args.threads)
    model, tokenizer, name = load_model(EMBEDDED_DEFAULT, cache_dir=args.cache_dir, device="cpu")
    results: dict[str, Any] = {"model": name, "threads": threads, "context": args.context}
    if args.rounds > 1:
        results["rounds"] = args.rounds
    rows_list = [int(r) for r in args.rows.split(",")]
    with torch.inference_mode():
        runners: dict[str, tuple[Any, str, float]] = {}
        for weights in args.weights.split(","):
            started = time.perf_counter()
            runner = prepare(model, weights)
            load_s = time.perf_counter() - started
            path = getattr(runner, "path", "compact" if runner.compact else "forward")
            runners[weights] = (runner, f"{weights} ({runner.weights}, {path})", load_s)
        rounds: dict[str, list[dict[str, Any]]] = {}
        for round_number in range(args.rounds):
            for weights, (runner, label, load_s) in runners.items():
                for rows in rows_list:
                    figures = measure(runner, tokenizer, rows, args)
                    figures["prepare_s"] = round(load_s, 1)
                    rounds.setdefault(f"{weights}_b{rows}", []).append(figures)
                    where = f" round {round_number + 1}" if args.rounds > 1 else ""
                    line = f"{label:<40} rows {rows:>2}{where}: {figures}"
                    print(line, file=sys.stderr, flush=True)
        for key, measured in rounds.items():
            results[key] = {
                name: measured[0][name] if name == "prepare_s" else
                round(statistics.median(m[name] for m in measured), 2)
                for name in measured[0]
            }  # fmt: skip
    print(json.dumps(results))


if __name__ == "__main__":
    main()
