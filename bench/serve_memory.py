"""`botloom serve`'s resident memory with the embedded default: once ready, after a dozen turns
of one conversation, after four more conversations (issue 16: at most 0.8 GB; 0.90 GB once
ready since issue 24 keeps FBGEMM's zero padding, 0.74 before: serve-memory-cpu-before.json).

    PYTHONPATH=. python bench/serve_memory.py [--port 3991]

Starts `botloom serve` as a user would, its SQLite state in a temporary folder, waits for
/readyz and talks to it the way the Bot Framework Emulator does (tests/emulator_smoke.py).
Printed at each point: VmRSS, its anonymous and file-backed parts, and VmHWM (the peak, while
loading), in MB (10^6 bytes). The last line is one JSON object (also saved to
bench/results/serve-memory-cpu.json).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.peer_servers import memory_mb
from tests.emulator_smoke import main as talk

RESULTS = Path(__file__).resolve().parent / "results" / "serve-memory-cpu.json"
TURNS = [
    "Hi, my name is Ingrid and I work at Contoso.",
    "What is the capital of France?",
    "Write one sentence about lighthouses.",
    "Tell me a short story about a cat.",
    "What are three tips for a good meeting?",
    "Explain what a CPU does in two sentences.",
    "Give me a haiku about autumn.",
    "What is 17 times 3?",
    "Suggest a name for a bakery.",
    "How do I boil an egg?",
    "Do you know my name?",
    "Which company do I work for?",
]
SHORT = ["Tell me about the ocean.", "And about mountains?", "Which is older?"]


def memory(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon, RssFile and VmHWM of `pid`, in MB (10^6 bytes)."""
    fields = {"rss": "VmRSS:", "anon": "RssAnon:", "file": "RssFile:", "peak": "VmHWM:"}
    return {name: round(memory_mb(pid, "status", key) * 1.048576) for name, key in fields.items()}


async def wait_ready(url: str, timeout_s: float = 300.0) -> float:
    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        while time.perf_counter() - started < timeout_s:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{url}/readyz") as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            await asyncio.sleep(0.2)
    raise TimeoutError("botloom serve did not become ready")


async def conversation(url: str, turns: list[str]) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        await talk(url, turns)
    await asyncio.sleep(1.0)  # the engine gives memory back when its batch empties


async def measure(url: str, pid: int) -> dict[str, object]:
    ready_s = await wait_ready(url)
    points = {"ready": memory(pid)}
    await conversation(url, TURNS)
    points["after_12_turns"] = memory(pid)
    for _ in range(4):
        await conversation(url, SHORT)
    points["after_4_more_conversations"] = memory(pid)
    return {"ready_s": round(ready_s, 1), "mb": points}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=3991)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as state, Path(state, "serve.log").open("w") as log:
        env = {**os.environ, "BOTLOOM_STORAGE": f"sqlite:///{state}/botloom.db"}
        command = [sys.executable, "-m", "bot.cli", "serve", "--port", str(args.port)]
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            result = asyncio.run(measure(f"http://127.0.0.1:{args.port}", server.pid))
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"ready in {result['ready_s']} s")
    for point, figures in result["mb"].items():  # type: ignore[union-attr]
        print(f"{point:>28}: " + "  ".join(f"{k} {v} MB" for k, v in figures.items()))
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
