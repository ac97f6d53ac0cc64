"""Endpoint benchmark: turns/s and p50/p95 through the full HTTP pipeline, botloom against a plain
botbuilder echo bot, in the same run.

    PYTHONPATH=. python bench/endpoint.py [--clients 16] [--turns 10] [--rounds 3]

Each bot is its own server process on a loopback port, so that the load below does not share
its event loop:

- echo: the Bot Framework SDK's standard Python sample (02.echo-bot) reduced to its essentials: a
  CloudAdapter with ConfigurationBotFrameworkAuthentication, ``ADAPTER.process(req, BOT)``, and an
  ActivityHandler that sends "Echo: <text>"; anonymous.
- botloom: ``botloom serve`` itself (python -m bot.cli serve): anonymous, BOTLOOM_MODEL=fake (the
  echo model, no delay, so the model costs nothing), SQLite state in a temp dir (the default, and
  what a one-machine deployment uses), rate limit off, default logging (a turn log line each).
  Also measured: the typing indicator repeated every hour instead of every 3 s, and memory://
  state. (botloom reuses the SDK's per-turn ConnectorClient/UserTokenClient, see
  bot/http/auth.py CachingBotFrameworkAuthentication; without that it ran at ~0.8-1.0x echo.)

This process plays the channel: N clients in a closed loop, each posting M message activities
(over 4 conversations per client, so histories grow as in real chats) and waiting for the reply,
and a connector sink on loopback that receives what the bots send to their serviceUrl. A turn is
timed from its POST to the arrival of its reply message at the sink. The channel id is "slack", a
channel that gets one plain message (Teams and Web Chat stream replies; the Emulator also gets
a state-snapshot trace activity from botbuilder-dialogs each turn).

Fairness: both bots get the same activities and send one visible reply each. botloom does more
per turn, as a real assistant must: a typing activity before the reply, conversation state read
and written, the conversation lock, dialogs, the model call, a turn log line. Rounds alternate
between the bots; each figure is the median over rounds. The bots' CPU time per turn (user +
system, all threads, from /proc) is shown too: it depends less on how busy the machine is.
The last line is one JSON object (also written to bench/results/endpoint.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "endpoint.json"
CHANNEL = "slack"
CONVERSATIONS_PER_CLIENT = 4
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# Not botloom's code: what botloom would gain by reusing botbuilder's per-turn clients. For every
# turn, botbuilder's CloudAdapter builds a new ConnectorClient and a new UserTokenClient, and each
# builds msrest's ClientRetryPolicy, whose constructor scans a 500-item list 999 times. botloom
# sends replies with its own pooled session and uses no sign-in, so both clients are dead weight.


# --- the plain botbuilder echo bot (a child process: --echo-bot PORT) -------------------------


def run_echo_bot(port: int) -> None:
    """The SDK sample's app.py and bots/echo_bot.py, anonymous."""
    from botbuilder.core import ActivityHandler, MessageFactory, TurnContext
    from botbuilder.core.integration import aiohttp_error_middleware
    from botbuilder.integration.aiohttp import (
        CloudAdapter,
        ConfigurationBotFrameworkAuthentication,
    )

    class DefaultConfig:
        PORT = port
        APP_ID = ""
        APP_PASSWORD = ""
        APP_TYPE = "MultiTenant"
        APP_TENANTID = ""

    class EchoBot(ActivityHandler):
        async def on_message_activity(self, turn_context: TurnContext) -> None:
            text = f"Echo: {turn_context.activity.text}"
            await turn_context.send_activity(MessageFactory.text(text, text))

    adapter = CloudAdapter(ConfigurationBotFrameworkAuthentication(DefaultConfig()))
    bot = EchoBot()

    async def messages(request: web.Request) -> web.Response:
        return await adapter.process(request, bot)

    app = web.Application(middlewares=[aiohttp_error_middleware])
    app.router.add_post("/api/messages", messages)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


# --- the channel: a connector sink and closed-loop clients ------------------------------------


class ReplySink:
    """A fake Bot Connector: resolves the waiter of each reply message (by replyToId)."""

    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future[float]] = {}
        self.reply_characters = 0  # of every reply message received: how much was generated
        app = web.Application()
        app.router.add_post("/v3/conversations/{conversation}/activities", self._receive)
        app.router.add_post("/v3/conversations/{conversation}/activities/{reply}", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        self.url = ""

    async def start(self) -> None:
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def close(self) -> None:
        await self._runner.cleanup()

    async def _receive(self, request: web.Request) -> web.Response:
        activity = await request.json()
        if activity.get("type") == "message":
            self.reply_characters += len(activity.get("text") or "")
            waiter = self.waiting.pop(activity.get("replyToId", ""), None)
            if waiter is not None and not waiter.done():
                waiter.set_result(time.perf_counter())
        return web.json_response({"id": uuid.uuid4().hex})


def message(text: str, conversation: str, service_url: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": uuid.uuid4().hex,
        "channelId": CHANNEL,
        "serviceUrl": service_url,
        "from": {"id": f"user-{conversation}", "name": "User", "role": "user"},
        "recipient": {"id": "bot", "name": "bot", "role": "bot"},
        "conversation": {"id": conversation},
        "text": text,
        "locale": "en-US",
    }


async def closed_loop(
    session: aiohttp.ClientSession, sink: ReplySink, url: str, clients: int, turns: int, tag: str
) -> tuple[list[float], float]:
    """`clients` clients each post `turns` messages, one at a time, each waiting for its reply.
    Returns the turns' latencies and the wall time, in seconds."""
    latencies: list[float] = []
    loop = asyncio.get_running_loop()

    async def client(index: int) -> None:
        for turn in range(turns):
            conversation = f"{tag}-{index}-{turn % CONVERSATIONS_PER_CLIENT}"
            body = message(f"question {turn} of client {index}", conversation, sink.url)
            arrived = sink.waiting[body["id"]] = loop.create_future()
            started = time.perf_counter()
            async with session.post(f"{url}/api/messages", json=body) as response:
                if response.status >= 300:
                    raise RuntimeError(f"{url} answered {response.status}: {await response.text()}")
            latencies.append(await asyncio.wait_for(arrived, 30) - started)

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    return latencies, time.perf_counter() - started


# --- the bots under test ----------------------------------------------------------------------


@dataclass
class BotServer:
    name: str
    process: subprocess.Popen[bytes]
    url: str

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process, all its threads (Linux /proc)."""
        stat = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(stat[11]) + int(stat[12])) / CLOCK_TICKS


def start_bots(folder: Path) -> list[BotServer]:
    serve = [sys.executable, "-m", "bot.cli", "serve", "--port"]
    botloom = {
        "BOTLOOM_MODEL": "fake",
        "BOTLOOM_RATE_LIMIT_PER_MINUTE": "0",
        "BOTLOOM_MAX_PENDING_REQUESTS": "10000",
        "BOTLOOM_MAX_QUEUED_TURNS": "10000",
    }
    variants: list[tuple[str, list[str], dict[str, str]]] = [
        ("echo", [sys.executable, __file__, "--echo-bot"], {}),
        ("botloom", serve, {**botloom, "BOTLOOM_STORAGE": f"sqlite:///{folder}/a.db"}),
        (
            "botloom typing 1 h",
            serve,
            {
                **botloom,
                "BOTLOOM_STORAGE": f"sqlite:///{folder}/b.db",
                "BOTLOOM_TYPING_INTERVAL_S": "3600",
            },
        ),
        ("botloom memory://", serve, {**botloom, "BOTLOOM_STORAGE": "memory://"}),
    ]
    bots: list[BotServer] = []
    for name, command, env in variants:
        port = free_port()
        log = (folder / f"{len(bots)}.log").open("wb")
        process = subprocess.Popen(
            [*command, str(port)],
            cwd=folder,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        bots.append(BotServer(name, process, f"http://127.0.0.1:{port}"))
    return bots


async def warm_up(session: aiohttp.ClientSession, sink: ReplySink, bot: BotServer) -> None:
    """Wait until the bot answers, then warm it (imports, connections, the state file)."""
    deadline = time.monotonic() + 60
    while True:
        if bot.process.poll() is not None:
            raise RuntimeError(f"{bot.name} exited with {bot.process.returncode}")
        try:
            await closed_loop(session, sink, bot.url, 4, 5, f"warm-{uuid.uuid4().hex[:6]}")
            return
        except (aiohttp.ClientError, RuntimeError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Round:
    bot: str
    latencies: list[float]
    seconds: float
    cpu_seconds: float

    def percentile_ms(self, q: int) -> float:
        return statistics.quantiles(self.latencies, n=100)[q - 1] * 1000


async def benchmark(clients: int, turns: int, rounds: int) -> list[Round]:
    results: list[Round] = []
    with tempfile.TemporaryDirectory(prefix="botloom-bench-") as temp:
        bots = start_bots(Path(temp))
        sink = ReplySink()
        await sink.start()
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
                for bot in bots:
                    await warm_up(session, sink, bot)
                for number in range(rounds):
                    for bot in bots if number % 2 == 0 else bots[::-1]:
                        cpu = bot.cpu_seconds()
                        tag = f"r{number}-{uuid.uuid4().hex[:6]}"
                        latencies, seconds = await closed_loop(
                            session, sink, bot.url, clients, turns, tag
                        )
                        results.append(Round(bot.name, latencies, seconds, bot.cpu_seconds() - cpu))
                        rate = len(latencies) / seconds
                        print(
                            f"  round {number + 1}  {bot.name:<20} {rate:7.1f} turns/s", flush=True
                        )
        finally:
            await sink.close()
            for bot in bots:
                bot.process.terminate()
            for bot in bots:
                try:
                    bot.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    bot.process.kill()
    return results


def summarise(results: list[Round]) -> dict[str, dict[str, float]]:
    """Per bot, the median over its rounds of each figure."""
    summary = {}
    for name in dict.fromkeys(r.bot for r in results):
        mine = [r for r in results if r.bot == name]
        summary[name] = {
            "turns_s": statistics.median(len(r.latencies) / r.seconds for r in mine),
            "p50_ms": statistics.median(r.percentile_ms(50) for r in mine),
            "p95_ms": statistics.median(r.percentile_ms(95) for r in mine),
            "cpu_ms_per_turn": statistics.median(
                r.cpu_seconds / len(r.latencies) * 1000 for r in mine
            ),
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (16)")
    parser.add_argument("--turns", type=int, default=10, help="turns per client per round (10)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per bot; medians (3)")
    parser.add_argument(
        "--runs",
        type=int,
        default=1,
        help="whole runs, fresh processes each; medians of all rounds",
    )
    parser.add_argument("--no-save", action="store_true", help="do not write the JSON file")
    parser.add_argument("--echo-bot", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo_bot:
        run_echo_bot(args.echo_bot)
        return
    print(
        f"{args.clients} clients x {args.turns} turns per round, {args.rounds} rounds per bot,"
        f" {args.runs} run(s)"
    )
    results: list[Round] = []
    ratios: list[float] = []
    for _ in range(args.runs):
        run = summarise(rounds := asyncio.run(benchmark(args.clients, args.turns, args.rounds)))
        results.extend(rounds)
        ratios.append(round(run["botloom"]["turns_s"] / run["echo"]["turns_s"], 2))
    summary = summarise(results)
    print()
    print(f"{'bot':<20} {'turns/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'CPU ms/turn':>12}")
    for name, row in summary.items():
        print(
            f"{name:<20} {row['turns_s']:8.1f} {row['p50_ms']:8.1f} {row['p95_ms']:8.1f}"
            f" {row['cpu_ms_per_turn']:12.2f}"
        )
    botloom, echo = summary["botloom"], summary["echo"]
    line = {
        "botloom_turns_s": round(botloom["turns_s"], 1),
        "echo_turns_s": round(echo["turns_s"], 1),
        "ratio": round(botloom["turns_s"] / echo["turns_s"], 2),
        "botloom_p50_ms": round(botloom["p50_ms"], 1),
        "botloom_p95_ms": round(botloom["p95_ms"], 1),
        "echo_p50_ms": round(echo["p50_ms"], 1),
        "echo_p95_ms": round(echo["p95_ms"], 1),
        "cpu_ratio": round(echo["cpu_ms_per_turn"] / botloom["cpu_ms_per_turn"], 2),
        "variants": {
            name: {k: round(v, 2) for k, v in row.items()} for name, row in summary.items()
        },
        "clients": args.clients,
        "turns_per_client_per_round": args.turns,
        "rounds": args.rounds,
        "runs": args.runs,
        "ratio_per_run": ratios,
        "channel": CHANNEL,
    }
    if not args.no_save:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(line, indent=2) + "\n")
    print(json.dumps(line))


if __name__ == "__main__":
    main()
