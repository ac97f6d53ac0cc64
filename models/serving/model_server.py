"""`botloom model-server`: one ChatModel served over an OpenAI-compatible HTTP API.

Several bot replicas can share one GPU host this way (the bots use models.serving.remote). Routes:

- ``POST /v1/chat/completions``: with ``"stream": true``, server-sent events
  (``data: {chunk}`` lines whose ``choices[0].delta.content`` carry the reply, then
  ``data: [DONE]``); otherwise one ``chat.completion`` with token ``usage``. With ``tools``
  (and ``tool_choice`` "auto"), a model that can call tools (models/tool_calling.py) answers
  ``message.tool_calls`` with ``finish_reason: "tool_calls"``, or its text (streamed: the whole
  reply in one delta, since calls are read whole); a model that cannot call tools answers 400.
- ``GET /v1/models``: the one model served.
- ``GET /health``: 200 once the model is loaded; 503 while it loads or the server drains.
- ``GET /metrics``: Prometheus metrics (models/serving/telemetry.py); spans continue the
  caller's trace (``traceparent``) when a tracer is given.

Every model call goes through GuardedChatModel, so admission is bounded: an overloaded model
answers 429 with Retry-After, a loading or unavailable one 503, a reply past its deadline 504.
Those statuses are only possible before the first piece of a reply; the response starts once the
model has produced its first piece, and a later failure ends the stream with an error event
(``data: {"error": {...}}``, no ``[DONE]``). A client that disconnects stops its generation.

With an API key configured, every /v1/ route needs ``Authorization: Bearer <key>``; /health
never does (load balancers probe it).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, cast

from aiohttp import web
from aiohttp.typedefs import Handler

from models.api import (
    ChatModel,
    GenerationParams,
    ModelError,
    ModelUnavailable,
    close_model,
)
from models.guard import GuardedChatModel, GuardLimits
from models.serving import tool_wire
from models.serving.answers import finish_and_usage, model_error_response
from models.serving.openai_wire import (
    BadRequest,
    ChatRequest,
    chunk,
    completion,
    completion_id,
    error_body,
    model_error_body,
    parse_chat_request,
)
from models.serving.signals import stop_signal
from models.serving.telemetry import ServerTelemetry, metrics_route, server_spans
from models.tool_calling import ToolsUnsupported, supports_tools

logger = logging.getLogger(__name__)
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


@dataclass(frozen=True)
class ServerOptions:
    """`api_key`: empty means no authentication. `defaults`: the generation parameters a request
    leaves out. `drain_s`: on shutdown, how long replies in flight may take to finish."""

    api_key: str = field(default="", repr=False)
    limits: GuardLimits = field(default_factory=GuardLimits)
    defaults: GenerationParams = field(default_factory=GenerationParams)
    max_body_bytes: int = 1024 * 1024
    drain_s: float = 10.0


@dataclass
class ServerState:
    draining: bool = False


MODEL = web.AppKey("model", GuardedChatModel)
OPTIONS = web.AppKey("options", ServerOptions)
STATE = web.AppKey("state", ServerState)
TELEMETRY = web.AppKey("telemetry", ServerTelemetry)


def create_model_server(
    model: ChatModel,
    options: ServerOptions | None = None,
    telemetry: ServerTelemetry | None = None,
) -> web.Application:
    """The model server's aiohttp app. It starts the model's loading (a `start()` method, as
    DeferredChatModel has) on startup and closes the model on cleanup.

    Run it with ``handler_cancellation=True`` (as `run_model_server` does), so that a client
    that disconnects while waiting for the first piece stops its generation at once; otherwise
    that is noticed at the next piece written.
    """
    options = options or ServerOptions()
    telemetry = telemetry or ServerTelemetry()  # spans (continuing the bot's trace), /metrics
    middlewares = [server_spans(telemetry.tracer), telemetry.count_requests, _require_api_key]
    app = web.Application(client_max_size=options.max_body_bytes, middlewares=middlewares)
    app[TELEMETRY] = telemetry
    app[MODEL] = GuardedChatModel(model, options.limits)
    app[OPTIONS] = options
    app[STATE] = ServerState()
    app.cleanup_ctx.append(_lifespan)
    app.on_shutdown.append(_start_draining)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics_route(telemetry.registry, telemetry.metrics_token))
    return app


async def run_model_server(
    model: ChatModel,
    *,
    host: str,
    port: int,
    options: ServerOptions | None = None,
    telemetry: ServerTelemetry | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT; then /health answers 503 and replies in flight get
    `drain_s` to finish before their connections are closed."""
    options = options or ServerOptions()
    app = create_model_server(model, options, telemetry)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        handler_cancellation=True,
        shutdown_timeout=options.drain_s,
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        logger.info("model server listening on http://%s:%d/v1 (model %s)", host, port, model.name)
        await stop_signal()
        logger.info("stop signal received: draining")
    finally:
        await runner.cleanup()


async def _lifespan(app: web.Application) -> AsyncIterator[None]:
    model = app[MODEL]
    model.start()
    watching = asyncio.create_task(app[TELEMETRY].engine.watch(model))
    yield
    watching.cancel()
    model.abort_all()
    await close_model(model)


async def _start_draining(app: web.Application) -> None:
    app[STATE].draining = True


@web.middleware
async def _require_api_key(request: web.Request, handler: Handler) -> web.StreamResponse:
    key = request.app[OPTIONS].api_key
    if key and request.path.startswith("/v1/"):
        given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(given, f"Bearer {key}".encode()):
            body = error_body("invalid or missing API key", code="invalid_api_key")
            return web.json_response(body, status=401, headers={"WWW-Authenticate": "Bearer"})
    return await handler(request)


async def health(request: web.Request) -> web.Response:
    model = request.app[MODEL]
    if request.app[STATE].draining:
        return web.json_response({"status": "draining"}, status=503)
    if not model.ready:
        return web.json_response({"status": "loading"}, status=503)
    return web.json_response({"status": "ok", "model": model.name})


async def list_models(request: web.Request) -> web.Response:
    model = request.app[MODEL]
    entry = {"id": model.name, "object": "model", "created": 0, "owned_by": "botloom"}
    return web.json_response({"object": "list", "data": [entry]})


async def chat_completions(request: web.Request) -> web.StreamResponse:
    try:
        body = await _read_json(request)
        chat = parse_chat_request(body, request.app[OPTIONS].defaults)
        tools = tool_wire.parse_tools(body)
    except BadRequest as error:
        return web.json_response(error_body(str(error), param=error.param), status=400)
    if request.app[STATE].draining:
        return model_error_response(ModelUnavailable("the model server is shutting down"))
    if tools:
        return await _tool_call(request, chat, tools)
    model, telemetry, started = request.app[MODEL], request.app[TELEMETRY], time.monotonic()
    # GuardedChatModel.stream is an async generator: closing it stops the generation.
    reply = cast(AsyncGenerator[str, None], model.stream(chat.messages, chat.params))
    async with aclosing(reply) as pieces:
        try:
            first = await anext(pieces, None)  # statuses are possible until the first piece
            telemetry.first_piece(model.name, started)
            if not chat.stream:
                text = "".join([first or "", *[piece async for piece in pieces]])
                finish, counts = await asyncio.to_thread(finish_and_usage, model, chat, text)
                telemetry.finished(model.name, counts)
                return web.json_response(completion(model.name, text, finish, counts))
        except ModelError as error:
            return model_error_response(error)
        return await _stream(request, model, chat, first, pieces)


async def _tool_call(
    request: web.Request, chat: ChatRequest, tools: Sequence[dict[str, Any]]
) -> web.StreamResponse:
    """A request with tools: the model's tool calls, or its text, in one completion or one
    stream."""
    model, telemetry, started = request.app[MODEL], request.app[TELEMETRY], time.monotonic()
    if not model.ready:  # whether it can call tools is known once it is loaded
        return model_error_response(ModelUnavailable("the model is still loading"))
    if not supports_tools(model):
        return web.json_response(tool_wire.tools_unsupported_body(model.name), status=400)
    try:
        reply = await model.call_tools(chat.messages, tools, chat.params)
    except ToolsUnsupported:
        return web.json_response(tool_wire.tools_unsupported_body(model.name), status=400)
    except ModelError as error:
        return model_error_response(error)
    telemetry.first_piece(model.name, started)
    written = reply.text or json.dumps([[c.name, c.arguments] for c in reply.calls])
    finish, counts = await asyncio.to_thread(finish_and_usage, model, chat, written)
    telemetry.finished(model.name, counts)
    if chat.stream:
        events = tool_wire.tool_chunks(
            model.name, reply.calls, reply.text, finish, counts if chat.include_usage else None
        )
        response = web.StreamResponse(headers=SSE_HEADERS)
        with contextlib.suppress(ConnectionResetError):  # the client left: nothing to stop
            await response.prepare(request)
            for event in events:
                await _event(response, event)
            await response.write(b"data: [DONE]\n\n")
        return response
    if reply.calls:
        return web.json_response(tool_wire.tool_completion(model.name, reply.calls, counts))
    return web.json_response(completion(model.name, reply.text, finish, counts))


async def _stream(
    request: web.Request,
    model: ChatModel,
    chat: ChatRequest,
    first: str | None,
    pieces: AsyncIterator[str],
) -> web.StreamResponse:
    """Send the reply as server-sent events, starting with the piece already generated."""
    response = web.StreamResponse(headers=SSE_HEADERS)
    ident, created, name = completion_id(), int(time.time()), model.name
    text = first or ""
    try:
        await response.prepare(request)
        await _event(response, chunk(ident, name, created, {"role": "assistant", "content": text}))
        try:
            async for piece in pieces:
                text += piece
                await _event(response, chunk(ident, name, created, {"content": piece}))
        except ModelError as error:
            logger.warning("generation failed mid-stream: %s", type(error).__name__)
            await _event(response, model_error_body(error))
            return response
        finish, counts = await asyncio.to_thread(finish_and_usage, model, chat, text)
        request.app[TELEMETRY].finished(name, counts)
        await _event(response, chunk(ident, name, created, {}, finish))
        if chat.include_usage:
            last = chunk(ident, name, created, {})
            await _event(response, {**last, "choices": [], "usage": counts})
        await response.write(b"data: [DONE]\n\n")
    except ConnectionResetError:  # the client left; leaving the block closes the model's stream
        logger.debug("client disconnected mid-stream")
    return response


async def _event(response: web.StreamResponse, payload: object) -> None:
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    await response.write(b"data: " + data.encode() + b"\n\n")


async def _read_json(request: web.Request) -> object:
    try:
        return json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):  # JSONDecodeError is a ValueError
        raise BadRequest("the request body is not valid JSON") from None
