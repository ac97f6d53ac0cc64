"""The `botloom` command: serve, chat, test, model-server, knowledge."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
from pathlib import Path
from typing import Any

from bot.redaction import install_secrets_filter
from bot.settings import Settings, SettingsError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="botloom", description="A self-hosted LLM assistant for Bot Framework channels."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the bot's HTTP endpoint (POST /api/messages)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1, BOTLOOM_HOST)")
    serve.add_argument(
        "--port", type=port_number, help="port to listen on (default 3978, BOTLOOM_PORT)"
    )
    chat_command = commands.add_parser(
        "chat", help="talk to the bot in this terminal (same dialogs, model and state)"
    )
    chat_command.add_argument(
        "--record",
        type=Path,
        metavar="FILE.transcript",
        help="save the conversation for `botloom test` (the model's replies go to FILE.replies)",
    )
    model_server = commands.add_parser(
        "model-server",
        help="serve BOTLOOM_MODEL over an OpenAI-compatible HTTP API (/v1/chat/completions)",
    )
    model_server.add_argument(
        "--host", help="address to listen on (default 127.0.0.1, BOTLOOM_MODEL_SERVER_HOST)"
    )
    model_server.add_argument(
        "--port",
        type=port_number,
        help="port to listen on (default 8000, BOTLOOM_MODEL_SERVER_PORT)",
    )
    test = commands.add_parser("test", help="replay scripted conversations (.chat, .transcript)")
    test.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="scripts or folders")
    test.add_argument(
        "--model",
        choices=("fake", "replies", "real"),
        default="fake",
        help="fake: answers 'fake: <message>' (default); replies: NAME.replies beside each "
        "script; real: the configured model (BOTLOOM_MODEL)",
    )
    test.add_argument("--junit-xml", type=Path, metavar="FILE", help="also write a JUnit report")
    add_teams_commands(commands)  # Teams: feedback export, notify
    from bot.knowledge.command import add_knowledge_parser

    add_knowledge_parser(commands)
    from bot.observability.usage_command import add_usage_parser

    add_usage_parser(commands)  # botloom usage --since
    from bot.tools.command import add_tools_parser

    add_tools_parser(commands)
    args = parser.parse_args(argv)

    try:
        settings = Settings.from_env()
    except SettingsError as error:
        return refuse(error)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    install_secrets_filter(settings)  # no credential in any log line
    try:
        return run_command(settings, args)
    except config_errors() as error:
        return refuse(error)


def config_errors() -> tuple[type[Exception], ...]:
    """What bad configuration raises (settings, storage URL or namespace, unreachable store, MCP
    config): the commands answer them with one line, never a traceback."""
    from bot.storage.errors import StorageUnavailable, StorageURLError
    from bot.tools.config import McpConfigError

    return (SettingsError, StorageURLError, StorageUnavailable, McpConfigError)


def refuse(error: Exception) -> int:
    """`botloom: <message>` on stderr (credentials masked), exit status 2."""
    from bot.redaction import redact

    print(f"botloom: {redact(str(error))}", file=sys.stderr)
    return 2


def run_command(settings: Settings, args: argparse.Namespace) -> int:
    """Run the parsed command; its exit status."""
    if args.command == "serve":
        overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
        return serve_forever(dataclasses.replace(settings, **overrides))
    if args.command == "model-server":
        address = (("model_server_host", args.host), ("model_server_port", args.port))
        overrides = {k: v for k, v in address if v is not None}
        return serve_model(dataclasses.replace(settings, **overrides))
    if args.command in ("feedback", "notify"):
        from bot.ops_commands import run_ops_command

        return asyncio.run(run_ops_command(settings, args))
    if args.command == "knowledge":
        from bot.knowledge.command import run_knowledge

        return asyncio.run(run_knowledge(settings, args))
    if args.command == "usage":
        from bot.observability.usage_command import run_usage

        return asyncio.run(run_usage(settings, args))
    if args.command == "tools":
        from bot.tools.command import list_tools, print_audit

        if args.verb == "list":
            return asyncio.run(list_tools(settings, args.wait))
        return print_audit(settings, args.since)
    if args.command == "test":
        from bot.scripted.command import run_tests

        report = args.junit_xml
        return asyncio.run(run_tests(settings, args.paths, model=args.model, junit_xml=report))
    return asyncio.run(chat(settings, record=args.record))


def port_number(text: str) -> int:
    """A TCP port for --port: 1 to 65535."""
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1 to 65535)")
    return port


def add_teams_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    feedback = commands.add_parser("feedback", help="the feedback users gave on replies")
    feedback_commands = feedback.add_subparsers(dest="feedback_command", required=True)
    export = feedback_commands.add_parser("export", help="write the feedback as JSON Lines")
    export.add_argument("--since", help="only feedback at or after this ISO 8601 date or time")
    export.add_argument("--out", type=Path, help="write to this file (default: standard output)")
    notify = commands.add_parser("notify", help="send a message into a conversation the bot saw")
    notify.add_argument("--conversation", required=True, metavar="ID", help="its conversation id")
    notify.add_argument("text", help="the message")


def serve_forever(settings: Settings) -> int:
    from bot.server import run_server

    try:
        asyncio.run(run_server(settings))
    except config_errors() as error:
        return refuse(error)
    return 0


def serve_model(settings: Settings) -> int:
    """`botloom model-server`: the model this process would load (BOTLOOM_MODEL; never a remote
    one) behind the OpenAI-compatible API of models.serving.model_server, until SIGTERM or
    SIGINT."""
    from bot.model_setup import build_local_model, guard_limits, reply_params
    from bot.security.service_urls import is_loopback_host
    from models.serving.model_server import ServerOptions, run_model_server

    host, port = settings.model_server_host, settings.model_server_port
    if not settings.model_api_key and not is_loopback_host(host):
        logging.getLogger(__name__).warning(
            "the model server listens on %s without BOTLOOM_MODEL_API_KEY: anyone who can reach "
            "it can use the model",
            host,
        )
    options = ServerOptions(
        api_key=settings.model_api_key,
        limits=guard_limits(settings),
        defaults=reply_params(settings),
        max_body_bytes=settings.max_body_bytes,
        drain_s=settings.drain_s,
    )
    from bot.observability.setup import model_server_telemetry

    model = build_local_model(settings)
    telemetry, provider = model_server_telemetry(settings)  # spans (when on) and /metrics
    try:
        asyncio.run(
            run_model_server(model, host=host, port=port, options=options, telemetry=telemetry)
        )
    finally:
        if provider is not None:
            provider.shutdown()
    return 0


async def chat(settings: Settings, record: Path | None = None, **streams: Any) -> int:
    """`botloom chat`; `streams`: the console's `input_stream` and `output` (the terminal's)."""
    from bot.app import build_runtime
    from bot.console import chat as console_chat

    if record is not None:
        from bot.scripted.record import recorded_chat

        return await recorded_chat(settings, record)
    from contextlib import nullcontext

    from bot.knowledge.setup import indexing

    runtime = build_runtime(settings)
    knowledge = runtime.knowledge  # BOTLOOM_KNOWLEDGE, indexed while the user talks, as in serve
    try:
        async with indexing(knowledge, settings.knowledge) if knowledge else nullcontext():
            await console_chat(runtime, **streams)
    finally:
        await runtime.aclose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
