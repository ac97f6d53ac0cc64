"""The `botloom` command: serve, chat."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys

from bot.settings import Settings, SettingsError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="botloom", description="A self-hosted LLM assistant for Bot Framework channels.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the bot's HTTP endpoint (POST /api/messages)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1, BOTLOOM_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (default 3978, BOTLOOM_PORT)")
    commands.add_parser("chat", help="talk to the bot in this terminal (same dialogs, model and state)")
    args = parser.parse_args(argv)

    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"botloom: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    if args.command == "serve":
        overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
        return serve_forever(dataclasses.replace(settings, **overrides))
    return asyncio.run(chat(settings))


def serve_forever(settings: Settings) -> int:
    from bot.server import run_server

    try:
        asyncio.run(run_server(settings))
    except SettingsError as error:
        print(f"botloom: {error}", file=sys.stderr)
        return 2
    return 0


async def chat(settings: Settings) -> int:
    from bot.app import build_runtime
    from bot.console import chat as console_chat

    runtime = build_runtime(settings)
    try:
        await console_chat(runtime)
    finally:
        await runtime.aclose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
