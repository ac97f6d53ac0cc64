"""The engine's weight packing shares its process with other threads (issue 24, item 1): while
`botloom serve` packs the chat model's float16 weights, the embedding model loads and the event
loop's executor runs, each mapping and unmapping memory of its own. The packing must leave their
memory alone: no crash (the bot died with SIGSEGV in 1 start of 8 while another thread unmapped
pages the packer was reading) and no other thread's data changed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from models.engine.fp16_linear import fp16_available

ROOT = Path(__file__).resolve().parents[2]

# Run in a child process, so that a segfault is a failed test and not a dead test run.
# The churning thread maps anonymous memory, writes a pattern of its own into it and reads it
# back; every other mapping starts with the first bytes of the packed layout of a weight being
# packed (input 0's weights to outputs 0..15 in float16), as a copy of the same weights would,
# followed by zeros and then, a moment later, its pattern. The main thread meanwhile converts a
# model whose layers FBGEMM pads (576 inputs) to float16 weights, as the engine does at load.
CHILD = textwrap.dedent(
    """
    import mmap, sys, threading, time
    import numpy as np
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from models.engine.fp16_linear import fp16_copy

    config = LlamaConfig(
        vocab_size=4096, hidden_size=576, intermediate_size=1536, num_hidden_layers=2,
        num_attention_heads=9, num_key_value_heads=3,
    )
    torch.manual_seed(0)
    models = [LlamaForCausalLM(config).eval() for _ in range(2)]
    heads = [
        m.weight.detach()[:16, 0].half().numpy().tobytes()
        for model in models for m in model.modules() if isinstance(m, torch.nn.Linear)
    ]
    stop, problems, rounds = threading.Event(), [], [0]
    sys.setswitchinterval(1e-5)  # threads interleave as C code that lets go of the GIL would

    def churn():
        while not stop.is_set():
            index = rounds[0]
            region = mmap.mmap(-1, (4 << 20) if index % 2 else (32 << 20))
            view = np.frombuffer(region, dtype=np.uint8)
            pattern = np.uint8(index % 251 + 1)
            if index % 2:
                head = heads[index // 2 % len(heads)]
                region[:32] = head
                time.sleep(0.001)
                view[32:] = pattern
                ok = bytes(view[:32]) == head and bool((view[32:] == pattern).all())
            else:
                view[:] = pattern
                time.sleep(0.001)
                ok = bool((view == pattern).all())
            if not ok:
                problems.append(index)
            del view
            region.close()
            rounds[0] += 1

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        deadline = time.monotonic() + float(sys.argv[1])
        packed = 0
        while time.monotonic() < deadline:
            assert fp16_copy(models[packed % 2]) is not None
            packed += 1
    finally:
        stop.set()
        thread.join()
    print(f"packed {packed} models, {rounds[0]} mappings, {len(problems)} changed", flush=True)
    sys.exit(1 if problems else 0)
    """
)


@pytest.mark.skipif(not fp16_available(), reason="no FBGEMM in this build (not x86)")
@pytest.mark.skipif(sys.platform != "linux", reason="other threads' mappings: Linux")
def test_packing_leaves_other_threads_memory_alone() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, "20"],  # seconds of packing: old code died within 15
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr[-2000:]
    assert done.returncode >= 0, f"the child died of signal {-done.returncode}: {output}"
    assert done.returncode == 0, output
    assert "0 changed" in done.stdout, output
