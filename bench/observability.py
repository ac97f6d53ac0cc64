"""Observability overhead: turn throughput and CPU per turn with tracing and metrics on, off, and
without the observability code at all, in one run.

    PYTHONPATH=. python bench/observability.py [--clients 16] [--turns 10] [--rounds 4]
        [--model fake|embedded] [--before REV] [--after REV]

Four `botloom serve` processes (anonymous, BOTLOOM_MODEL=--model, SQLite state, rate limit off), the
load and the fake connector of bench/endpoint.py (closed-loop clients, a turn timed from its POST
to its reply at the sink):

- before: the code before issue 29 (`--before`, exported with `git archive`): no spans, no
  metrics, no usage records.
- off: this code (or `--after`'s, exported the same way) with tracing off (the default): metrics
  counted, token usage written to storage, /metrics scraped every second.
- on: tracing on as well (BOTLOOM_TRACES=true): every span batched and exported over OTLP/HTTP to
  a collector stand-in in this process (it answers 200 and counts the requests), /metrics
  scraped every second.
- on 10%: the same, sampling one trace in ten (OTEL_TRACES_SAMPLER=parentbased_traceidratio,
  OTEL_TRACES_SAMPLER_ARG=0.1), as a busy deployment would.

Rounds alternate the order of the bots; each figure is the median over rounds. CPU ms per turn
(user + system of the bot process, from /proc) depends less on how busy the machine is than
turns/s. The last line is one JSON object (also bench/results/observability.json,
or observability-MODEL.json for another --model).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import uuid
from io import BytesIO
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
from endpoint import (  # bench/ is not a package: its folder is on the path
    BotServer,
    ReplySink,
    Round,
    closed_loop,
    free_port,
    summarise,
    warm_up,
)

ROOT = Path(__file__).resolve().parents[1]
BEFORE_REV = "79861ee"  # main just before issue 29 merged: no spans, metrics or usage
RESULTS = ROOT / "bench" / "results" / "observability.json"


class CollectorStandIn:
    """Accepts OTLP/HTTP trace exports (POST /v1/traces) and counts them."""

    def __init__(self) -> None:
        self.exports = 0
        self.bytes = 0
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/traces", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        self.url = ""

    async def start(self) -> None:
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def close(self) -> None:
        await self._runner.cleanup()

    async def _receive(self, request: web.Request) -> web.Response:
        self.bytes += len(await request.read())
        self.exports += 1
        return web.Response(status=200, content_type="application/x-protobuf", body=b"")


def export_tree(folder: Path, rev: str, name: str) -> Path:
    """The tree of `rev`, exported (git archive) into `folder`/`name`."""
    commit = subprocess.run(
        ["git", "rev-parse", rev], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, capture_output=True, check=True)
    target = folder / name
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(target, filter="data")
    print(f"{name}: {commit[:10]} ({rev})")
    return target


def start_bots(
    folder: Path, collector: str, model: str, before_rev: str, after_rev: str | None
) -> list[BotServer]:
    before = export_tree(folder, before_rev, "before")
    after = export_tree(folder, after_rev, "after") if after_rev else ROOT
    common = {
        "BOTLOOM_MODEL": model,
        "BOTLOOM_RATE_LIMIT_PER_MINUTE": "0",
        "BOTLOOM_MAX_PENDING_REQUESTS": "10000",
        "BOTLOOM_MAX_QUEUED_TURNS": "10000",
        # Greedy replies: every variant generates the same tokens for the same messages (sampled
        # replies of random length made CPU per turn differ by 20 % between identical bots).
        "BOTLOOM_TEMPERATURE": "0",
    }
    variants = [
        ("before", before, {}),
        ("off", after, {}),
        ("on", after, {"BOTLOOM_TRACES": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": collector}),
        (
            "on 10%",
            after,
            {
                "BOTLOOM_TRACES": "true",
                "OTEL_EXPORTER_OTLP_ENDPOINT": collector,
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": "0.1",
            },
        ),
    ]
    bots = []
    for index, (name, code, extra) in enumerate(variants):
        port = free_port()
        log = (folder / f"bot-{index}.log").open("wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BOTLOOM_", "OTEL_"))}
        env.update({**common, **extra, "PYTHONPATH": str(code)})
        env["BOTLOOM_STORAGE"] = f"sqlite:///{folder}/{index}.db"
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve", "--port", str(port)],
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        bots.append(BotServer(name, process, f"http://127.0.0.1:{port}"))
    return bots


async def wait_ready(
    session: aiohttp.ClientSession, bot: BotServer, timeout_s: float = 600
) -> None:
    """Until the bot's /readyz answers 200 (its model loaded), so no turn gets a warming apology."""
    for _ in range(int(timeout_s / 0.5)):
        if bot.process.poll() is not None:
            raise RuntimeError(f"{bot.name} exited with {bot.process.returncode}")
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(f"{bot.url}/readyz") as response:
                if response.status == 200:
                    return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"{bot.name} was not ready after {timeout_s:.0f} s")


async def scrape_forever(session: aiohttp.ClientSession, bots: list[BotServer]) -> None:
    """What Prometheus does: GET /metrics of the bots that have it, every second."""
    while True:
        for bot in bots[1:]:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{bot.url}/metrics") as response:
                    await response.read()
        await asyncio.sleep(1.0)


async def benchmark(
    clients: int, turns: int, rounds: int, model: str, before_rev: str, after_rev: str | None
) -> tuple[list[Round], int, dict[str, list[float]]]:
    results: list[Round] = []
    replied: dict[str, list[float]] = {}  # reply characters per turn, per bot and round
    with tempfile.TemporaryDirectory(prefix="botloom-bench-observe-") as temp:
        sink, collector = ReplySink(), CollectorStandIn()
        await sink.start()
        await collector.start()
        bots = start_bots(Path(temp), collector.url, model, before_rev, after_rev)
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
                for bot in bots:
                    await wait_ready(session, bot)  # a real model loads first (/readyz 200)
                    await warm_up(session, sink, bot)
                scraper = asyncio.create_task(scrape_forever(session, bots))
                for number in range(rounds):
                    for bot in bots if number % 2 == 0 else bots[::-1]:
                        cpu, characters = bot.cpu_seconds(), sink.reply_characters
                        tag = f"r{number}-{uuid.uuid4().hex[:6]}"
                        latencies, seconds = await closed_loop(
                            session, sink, bot.url, clients, turns, tag
                        )
                        results.append(Round(bot.name, latencies, seconds, bot.cpu_seconds() - cpu))
                        written = (sink.reply_characters - characters) / len(latencies)
                        replied.setdefault(bot.name, []).append(written)
                        print(
                            f"  round {number + 1}  {bot.name:<7} {len(latencies) / seconds:7.1f}"
                            f" turns/s, {written:6.1f} reply characters per turn",
                            flush=True,
                        )
                scraper.cancel()
                await asyncio.gather(scraper, return_exceptions=True)
        finally:
            for bot in bots:
                bot.process.terminate()
            for bot in bots:
                try:
                    bot.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    bot.process.kill()
            await sink.close()
            await collector.close()
    return results, collector.exports, replied


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (16)")
    parser.add_argument("--turns", type=int, default=10, help="turns per client per round (10)")
    parser.add_argument("--rounds", type=int, default=4, help="rounds per bot; medians (4)")
    parser.add_argument("--model", default="fake", help="BOTLOOM_MODEL of every bot (fake)")
    parser.add_argument(
        "--before", default=BEFORE_REV, help=f"the code without observability ({BEFORE_REV})"
    )
    parser.add_argument(
        "--after",
        default=None,
        help="the code with observability, exported like --before (default: this working tree)",
    )
    parser.add_argument("--no-save", action="store_true", help="do not write the JSON file")
    args = parser.parse_args()
    print(f"{args.clients} clients x {args.turns} turns per round, {args.rounds} rounds per bot")
    rounds, exports, replied = asyncio.run(
        benchmark(args.clients, args.turns, args.rounds, args.model, args.before, args.after)
    )
    summary = summarise(rounds)
    for name, row in summary.items():
        row["reply_characters_per_turn"] = statistics.median(replied[name])
    print()
    print(f"{'bot':<8} {'turns/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'CPU ms/turn':>12}")
    for name, row in summary.items():
        print(
            f"{name:<8} {row['turns_s']:8.1f} {row['p50_ms']:8.1f} {row['p95_ms']:8.1f}"
            f" {row['cpu_ms_per_turn']:12.2f}"
        )
    before, off, on, sampled = (summary[n] for n in ("before", "off", "on", "on 10%"))
    result = {
        "bench": "observability",
        "clients": args.clients,
        "turns": args.turns,
        "rounds": args.rounds,
        "model": args.model,
        "before": args.before,
        "after": args.after or "working tree",
        "otlp_exports": exports,
        "throughput_on_vs_before": round(on["turns_s"] / before["turns_s"], 3),
        "throughput_on_vs_off": round(on["turns_s"] / off["turns_s"], 3),
        "throughput_off_vs_before": round(off["turns_s"] / before["turns_s"], 3),
        "cpu_per_turn_on_vs_before": round(on["cpu_ms_per_turn"] / before["cpu_ms_per_turn"], 3),
        "cpu_per_turn_on_vs_off": round(on["cpu_ms_per_turn"] / off["cpu_ms_per_turn"], 3),
        "cpu_per_turn_off_vs_before": round(off["cpu_ms_per_turn"] / before["cpu_ms_per_turn"], 3),
        "throughput_sampled_vs_before": round(sampled["turns_s"] / before["turns_s"], 3),
        "cpu_per_turn_sampled_vs_before": round(
            sampled["cpu_ms_per_turn"] / before["cpu_ms_per_turn"], 3
        ),
        "bots": summary,
    }
    print()
    print(
        f"throughput on/before {result['throughput_on_vs_before']:.3f}, on/off "
        f"{result['throughput_on_vs_off']:.3f}; CPU per turn on/before "
        f"{result['cpu_per_turn_on_vs_before']:.3f}, on/off {result['cpu_per_turn_on_vs_off']:.3f}"
        f", off/before {result['cpu_per_turn_off_vs_before']:.3f}, on 10%/before "
        f"{result['cpu_per_turn_sampled_vs_before']:.3f}; {exports} OTLP exports received"
    )
    line = json.dumps(result)
    if not args.no_save:
        path = RESULTS if args.model == "fake" else RESULTS.with_stem(f"observability-{args.model}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
