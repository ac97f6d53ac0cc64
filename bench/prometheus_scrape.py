"""One real scrape: Prometheus (the `prometheus` binary, e.g. Debian's package) scraping
`botloom serve` and `botloom model-server` during a short load, then PromQL through its HTTP API.

    PYTHONPATH=. python bench/prometheus_scrape.py [--seconds 40] [--clients 6]

The model server runs the batching engine on the tiny random model of tests/tiny_model.py (built
into a temp folder), so the engine's gauges move; the bot (anonymous, SQLite) calls it over HTTP.
Closed-loop clients post messages (bench/endpoint.py's load and connector sink). Prometheus
scrapes both /metrics every second; the queries and their results are printed, then one JSON line
(also bench/results/prometheus_scrape.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from endpoint import ReplySink, closed_loop, free_port  # bench/ is not a package

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "prometheus_scrape.json"
QUERIES = {
    "targets up": "up",
    "turns in the last minute by outcome": ("sum by (outcome) (increase(botloom_turns_total[1m]))"),
    "time to first token p95 (s), bot": (
        "histogram_quantile(0.95, sum by (le) "
        "(rate(botloom_time_to_first_token_seconds_bucket[1m])))"
    ),
    "turn latency p95 (s)": (
        "histogram_quantile(0.95, sum by (le) (rate(botloom_turn_duration_seconds_bucket[1m])))"
    ),
    "output tokens per second by model": "sum by (model) (rate(botloom_output_tokens_total[1m]))",
    "model server requests by status": "sum by (status) (botloom_model_server_requests_total)",
    "engine batch occupancy, max over the load": (
        "max_over_time(botloom_engine_batch_occupancy_ratio[1m])"
    ),
    "engine running, max over the load": "max_over_time(botloom_engine_running_requests[1m])",
    "prefix-cache hit ratio": "botloom_engine_prefix_cache_hit_ratio",
    "connector requests by status": "sum by (status) (botloom_connector_requests_total)",
}


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("BOTLOOM_", "OTEL_"))}
    return subprocess.Popen(
        args,
        env={**base, "PYTHONPATH": str(ROOT), **env},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


async def wait_for(session: aiohttp.ClientSession, url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            async with session.get(url) as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not ready")
        await asyncio.sleep(0.5)


async def query(session: aiohttp.ClientSession, prometheus: str, expr: str) -> list[dict]:
    async with session.get(f"{prometheus}/api/v1/query", params={"query": expr}) as response:
        body = await response.json()
    return [
        {
            "labels": {k: v for k, v in r["metric"].items() if k != "__name__"},
            "value": r["value"][1],
        }
        for r in body["data"]["result"]
    ]


async def run(seconds: float, clients: int, prometheus_binary: str) -> dict[str, list[dict]]:
    from tests.tiny_model import build_tiny_model

    with tempfile.TemporaryDirectory(prefix="botloom-scrape-") as temp:
        folder = Path(temp)
        model_dir = build_tiny_model(folder / "tiny")
        model_port, bot_port, prom_port = free_port(), free_port(), free_port()
        sink = ReplySink()
        await sink.start()
        python = [sys.executable, "-m", "bot.cli"]
        processes = [
            spawn(
                [*python, "model-server", "--port", str(model_port)],
                {"BOTLOOM_MODEL": str(model_dir), "BOTLOOM_MAX_NEW_TOKENS": "24"},
                folder / "model-server.log",
            ),
            spawn(
                [*python, "serve", "--port", str(bot_port)],
                {
                    "BOTLOOM_MODEL_URL": f"http://127.0.0.1:{model_port}/v1",
                    "BOTLOOM_STORAGE": f"sqlite:///{folder}/state.db",
                    "BOTLOOM_RATE_LIMIT_PER_MINUTE": "0",
                },
                folder / "bot.log",
            ),
        ]
        config = folder / "prometheus.yml"
        config.write_text(
            json.dumps(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "scrape_configs": [
                        {
                            "job_name": "botloom-bot",
                            "static_configs": [{"targets": [f"127.0.0.1:{bot_port}"]}],
                        },
                        {
                            "job_name": "botloom-model-server",
                            "static_configs": [{"targets": [f"127.0.0.1:{model_port}"]}],
                        },
                    ],
                }
            )
        )
        processes.append(
            spawn(
                [
                    prometheus_binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={folder}/tsdb",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                ],
                {},
                folder / "prometheus.log",
            )
        )
        prometheus = f"http://127.0.0.1:{prom_port}"
        try:
            async with aiohttp.ClientSession() as session:
                await wait_for(session, f"http://127.0.0.1:{model_port}/health", 120)
                await wait_for(session, f"http://127.0.0.1:{bot_port}/readyz", 120)
                await wait_for(session, f"{prometheus}/-/ready", 60)
                started = time.monotonic()
                turns = 0
                while time.monotonic() - started < seconds:
                    tag = f"load-{uuid.uuid4().hex[:6]}"
                    latencies, _ = await closed_loop(
                        session, sink, f"http://127.0.0.1:{bot_port}", clients, 3, tag
                    )
                    turns += len(latencies)
                print(f"{turns} turns in {time.monotonic() - started:.0f} s; waiting for a scrape")
                await asyncio.sleep(3)
                return {
                    name: await query(session, prometheus, expr) for name, expr in QUERIES.items()
                }
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
            await sink.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=40, help="length of the load (40)")
    parser.add_argument("--clients", type=int, default=6, help="concurrent clients (6)")
    parser.add_argument("--no-save", action="store_true", help="do not write the JSON file")
    args = parser.parse_args()
    binary = shutil.which("prometheus")
    if binary is None:
        sys.exit("prometheus is not installed (apt-get install prometheus)")
    results = asyncio.run(run(args.seconds, args.clients, binary))
    for name, rows in results.items():
        print(f"{name}: {QUERIES[name]}")
        for row in rows:
            print(f"    {row['labels']} -> {row['value']}")
    line = json.dumps({"bench": "prometheus_scrape", "queries": QUERIES, "results": results})
    if not args.no_save:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
