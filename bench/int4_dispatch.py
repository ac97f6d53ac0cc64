"""What torchao's tensor subclass costs the int4 decode step: the same packed weights multiplied by
torch's int4 CPU op directly (models/engine/int4_linear.py, the engine's way) and through torchao's
`Int4OpaqueTensor` and `F.linear` (the engine's way until December 2026), a decode step of the
embedded default at 1 and 16 rows, the two ways taking turns.

    pip install 'torchao>=0.18,<0.19'   # only for this comparison: botloom does not need it
    PYTHONPATH=. python bench/int4_dispatch.py [--rounds 3] [--steps 30] [--context 300]

Both ways run the very same kernel on the very same packed weight, scales and zero points (one
layer's products are checked equal), so the difference is dispatch alone. Printed: median
milliseconds of the forward per way and row count (the median of the rounds' medians); the last
line is one JSON object.
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
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.engine_step import random_kv
from models.embedded import EMBEDDED_DEFAULT
from models.engine.cpu_model import prepare_model, use_cpu_threads
from models.engine.int4_linear import Int4Linear
from models.hf import load_model


def torchao_weight(layer: Int4Linear) -> Any:
    """The layer's packed weight as torchao's Int4OpaqueTensor (the same tensors, not a copy)."""
    from torchao.prototype.quantization.int4 import Int4OpaqueTensor

    shape = torch.Size((layer.out_features, layer.in_features))
    return Int4OpaqueTensor(layer.packed, layer.scale_and_zero, [1, layer.group_size], shape)


def step_ms(runner: Any, rows: int, steps: int, context: int) -> float:
    kv = random_kv(runner.model, rows, context, torch.float32)
    times = []
    for step in range(steps + 3):
        started = time.perf_counter()
        runner.decode(kv, [5] * rows, [context + step] * rows)
        times.append(time.perf_counter() - started)
    return 1e3 * statistics.median(times[3:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--context", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "botloom")
    args = parser.parse_args()
    threads = use_cpu_threads(args.threads)
    model, _, name = load_model(EMBEDDED_DEFAULT, cache_dir=args.cache_dir, device="cpu")
    with torch.inference_mode():
        runner = prepare_model(model, weights="auto", pack_weights=True, max_batch=16)
        layers = [m for m in runner.model.modules() if isinstance(m, Int4Linear)]
        wrapped: dict[int, Any] = {}  # by layer (the fused ones are not submodules): made once
        direct = Int4Linear.product

        def through_torchao(self: Int4Linear, flat: torch.Tensor) -> torch.Tensor:
            weight = wrapped.get(id(self))
            if weight is None:
                weight = wrapped[id(self)] = torchao_weight(self)
            return F.linear(flat.to(torch.bfloat16), weight).float()

        x = torch.randn(4, layers[0].in_features)
        assert torch.equal(direct(layers[0], x), through_torchao(layers[0], x))
        ways = {"op": direct, "torchao": through_torchao}
        figures: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            for way, product in ways.items():
                Int4Linear.product = product  # type: ignore[method-assign]
                for rows in (1, 16):
                    ms = step_ms(runner, rows, args.steps, args.context)
                    figures.setdefault(f"{way}_b{rows}", []).append(round(ms, 2))
        Int4Linear.product = direct  # type: ignore[method-assign]
    result: dict[str, Any] = {"model": name, "threads": threads, "context": args.context}
    result["rounds"] = figures
    result["median_ms"] = {key: round(statistics.median(v), 2) for key, v in figures.items()}
    for rows in (1, 16):
        ratio = result["median_ms"][f"torchao_b{rows}"] / result["median_ms"][f"op_b{rows}"]
        result[f"torchao_over_op_b{rows}"] = round(ratio, 2)
        print(f"rows {rows:>2}: op {result['median_ms'][f'op_b{rows}']} ms, torchao "
              f"{result['median_ms'][f'torchao_b{rows}']} ms ({ratio:.2f}x)")  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
