"""The composition root: settings in, a running bot out. The whole wiring is on this screen."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial

from aiohttp import web
from botbuilder.core import ConversationState, Storage, UserState, serializer_helper
from botbuilder.integration.aiohttp import (
    CloudAdapter,
    ConfigurationBotFrameworkAuthentication,
)

from bot.assistant_bot import AssistantBot
from bot.errors import on_turn_error
from bot.inbound import read_activity
from bot.settings import Settings
from bot.storage import create_storage
from dialogs.chat_dialog import ChatDialog, ChatOptions
from dialogs.feedback_dialog import FeedbackDialog
from dialogs.main_dialog import MainDialog
from dialogs.memory import ConversationMemory
from models import ChatModel, GenerationParams
from models.deferred import DeferredChatModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    """Everything a turn needs, built once per process."""

    settings: Settings
    storage: Storage
    model: ChatModel
    bot: AssistantBot

    async def aclose(self) -> None:
        """Close the model (its worker) and the storage (its connections)."""
        for resource in (self.model, self.storage):
            close = getattr(resource, "close", None)
            if close is not None:
                result = close()
                if hasattr(result, "__await__"):
                    await result


RUNTIME = web.AppKey("runtime", Runtime)
ADAPTER = web.AppKey("adapter", CloudAdapter)


def build_model(settings: Settings) -> DeferredChatModel:
    """The configured model, loaded in the background (see models.hf.load_chat_model)."""
    from models.hf import load_chat_model  # torch is imported only when a real model is used

    loader = partial(
        load_chat_model,
        settings.model,
        cache_dir=settings.cache_dir,
        device=settings.model_device,
        dtype=settings.model_dtype,
    )
    return DeferredChatModel(loader, name=settings.model)


def build_runtime(
    settings: Settings, *, model: ChatModel | None = None, storage: Storage | None = None
) -> Runtime:
    """Storage, state, model, dialogs and the activity handler: shared by `serve` and `chat`."""
    storage = storage if storage is not None else create_storage(settings.storage)
    model = model if model is not None else build_model(settings)
    conversation_state = ConversationState(storage)
    user_state = UserState(storage)
    memory = ConversationMemory(conversation_state)
    params = GenerationParams(
        max_new_tokens=settings.max_new_tokens,
        temperature=settings.temperature,
        top_p=settings.top_p,
        repetition_penalty=settings.repetition_penalty,
        stop=settings.stop,
    )
    chat = ChatDialog(model, memory, ChatOptions(settings.system_prompt, settings.context_tokens, params))
    root = MainDialog(chat, FeedbackDialog(user_state), memory)
    bot = AssistantBot(root, conversation_state, user_state, typing_interval=settings.typing_interval_s)
    return Runtime(settings=settings, storage=storage, model=model, bot=bot)


def create_app(
    settings: Settings, *, model: ChatModel | None = None, storage: Storage | None = None
) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app[RUNTIME] = build_runtime(settings, model=model, storage=storage)
    adapter = CloudAdapter(ConfigurationBotFrameworkAuthentication(settings.bot_framework_config()))
    adapter.on_turn_error = on_turn_error
    app[ADAPTER] = adapter
    app.cleanup_ctx.append(lifespan)
    app.router.add_post("/api/messages", messages)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def lifespan(app: web.Application) -> AsyncIterator[None]:
    """Start loading the model with the server; close model and storage on shutdown."""
    runtime = app[RUNTIME]
    start = getattr(runtime.model, "start", None)
    if start is not None:
        start()
    yield
    await runtime.aclose()


async def messages(request: web.Request) -> web.StreamResponse:
    """POST /api/messages: validate, authenticate (401 on any token failure), run the turn."""
    activity = await read_activity(request)
    adapter = request.app[ADAPTER]
    auth_header = request.headers.get("Authorization", "")
    try:
        auth = await adapter.bot_framework_authentication.authenticate_request(activity, auth_header)
    except Exception as error:  # botbuilder raises many types for bad tokens; all mean 401
        logger.info("rejected activity: %s", type(error).__name__)
        raise web.HTTPUnauthorized(text="invalid or missing token") from None
    invoke_response = await adapter.process_activity(auth, activity, request.app[RUNTIME].bot.on_turn)
    if invoke_response:
        return web.json_response(
            serializer_helper(invoke_response.body), status=invoke_response.status
        )
    return web.Response(status=201)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 once the model is loaded (and storage answers), else 503."""
    runtime = request.app[RUNTIME]
    if not getattr(runtime.model, "ready", True):
        return web.json_response({"status": "loading model"}, status=503)
    try:
        await runtime.storage.read(["botloom/readyz"])
    except Exception:
        logger.warning("storage not reachable", exc_info=True)
        return web.json_response({"status": "storage unreachable"}, status=503)
    return web.json_response({"status": "ready", "model": runtime.model.name})
