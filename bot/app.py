"""The composition root: settings in, a running bot out. The whole wiring is on this screen."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler
from botbuilder.core import ConversationState, Storage, UserState
from botbuilder.integration.aiohttp import ConfigurationBotFrameworkAuthentication
from botframework.connector.auth import ServiceClientCredentialsFactory

from bot.assistant_bot import AssistantBot
from bot.auth import CachingBotFrameworkAuthentication, install_async_metadata
from bot.directline import add_directline_routes
from bot.endpoint import MessagesEndpoint
from bot.errors import on_turn_error
from bot.inbox_turns import InboxTurns
from bot.outbound import RetryingCloudAdapter
from bot.service_urls import is_loopback_host
from bot.settings import Settings, SettingsError
from bot.storage import create_inbox, create_locks, create_storage, open_storage
from bot.transcripts import TranscriptMiddleware, check_mode
from bot.turn_middleware import RateLimitMiddleware, TurnLogMiddleware
from bot.turn_runner import RunnerLimits, TurnRunner
from dialogs.chat_dialog import ChatDialog, ChatOptions
from dialogs.feedback_dialog import FeedbackDialog
from dialogs.main_dialog import MainDialog
from dialogs.memory import ConversationMemory
from dialogs.streaming import StreamOptions
from models import ChatModel, GenerationParams
from models.deferred import DeferredChatModel
from models.fake import FAKE_SPEC, fake_from_spec
from models.guard import GuardedChatModel, GuardLimits

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    """Everything a turn needs, built once per process."""

    settings: Settings
    storage: Storage
    model: GuardedChatModel
    bot: AssistantBot

    async def aclose(self) -> None:
        """Close the model (its worker) and the storage (its connections)."""
        for resource in (self.model.inner, self.storage):
            close = getattr(resource, "close", None)
            if close is not None:
                result = close()
                if hasattr(result, "__await__"):
                    await result


RUNTIME = web.AppKey("runtime", Runtime)
ENDPOINT = web.AppKey("endpoint", MessagesEndpoint)


def build_model(settings: Settings) -> ChatModel:
    """The configured model: a remote server when BOTLOOM_MODEL_URL is set, else a local one."""
    if settings.model_url:
        return build_remote_model(settings)
    return build_local_model(settings)


def build_remote_model(settings: Settings) -> ChatModel:
    """The OpenAI-compatible server at BOTLOOM_MODEL_URL (`botloom model-server`, vLLM, TGI,
    Ollama)."""
    from models.remote import RemoteChatModel, RemoteOptions

    return RemoteChatModel(
        RemoteOptions(
            url=settings.model_url,
            api_key=settings.model_api_key,
            model="" if settings.model == "embedded" else settings.model,  # "": what it serves
            context_window=settings.context_tokens,
            connect_timeout_s=settings.model_connect_timeout_s,
            read_timeout_s=settings.model_read_timeout_s,
            max_retries=settings.model_max_retries,
        )
    )


def build_local_model(settings: Settings) -> ChatModel:
    """The model in this process, loaded in the background (see models.engine.load_engine_model:
    BOTLOOM_ENGINE picks the batching engine or serial generation).

    `BOTLOOM_MODEL=fake` (or `fake?delay=0.1`) is the deterministic echo model, for demos and tests.
    """
    if settings.model.split("?")[0] == FAKE_SPEC:
        return fake_from_spec(settings.model)
    # torch is imported only when a real model is used
    from models.engine import EngineConfig, load_engine_model

    engine = EngineConfig(
        max_batch=settings.max_batch,
        max_waiting=settings.max_waiting,
        retry_after_s=settings.busy_retry_after_s,
        prefix_cache_tokens=settings.prefix_cache_tokens,
        block_size=settings.kv_block_size,
    )
    loader = partial(
        load_engine_model,
        settings.model,
        cache_dir=settings.cache_dir,
        engine=settings.engine,
        config=engine,
        device=settings.model_device,
        dtype=settings.model_dtype,
        default_params=GenerationParams(temperature=settings.temperature, top_p=settings.top_p),
    )
    return DeferredChatModel(loader, name=settings.model)


def guard_limits(settings: Settings) -> GuardLimits:
    """How many generations may wait, and for how long one may run."""
    return GuardLimits(
        max_pending=settings.max_pending_requests,
        deadline_s=settings.generation_timeout_s,
        retry_after_s=settings.busy_retry_after_s,
    )


def reply_params(settings: Settings) -> GenerationParams:
    """The generation parameters of a reply."""
    return GenerationParams(
        max_new_tokens=settings.max_new_tokens,
        temperature=settings.temperature,
        top_p=settings.top_p,
        repetition_penalty=settings.repetition_penalty,
        stop=settings.stop,
    )


def build_runtime(
    settings: Settings, *, model: ChatModel | None = None, storage: Storage | None = None
) -> Runtime:
    """Storage, state, model, dialogs and the activity handler: shared by `serve` and `chat`."""
    if storage is None:
        storage = create_storage(
            settings.storage,
            namespace=settings.storage_namespace,
            pool_size=settings.storage_pool_size,
        )
    model = GuardedChatModel(
        model if model is not None else build_model(settings),
        guard_limits(settings),
    )
    conversation_state = ConversationState(storage)
    user_state = UserState(storage)
    memory = ConversationMemory(conversation_state)
    params = reply_params(settings)
    stream = StreamOptions(
        settings.stream_interval_teams_s,
        settings.stream_interval_directline_s,
        settings.stream_limit_teams_s,
    )
    options = ChatOptions(settings.system_prompt, settings.context_tokens, params, stream)
    chat = ChatDialog(model, memory, options)
    root = MainDialog(chat, FeedbackDialog(user_state), memory)
    bot = AssistantBot(
        root, conversation_state, user_state, typing_interval=settings.typing_interval_s
    )
    return Runtime(settings=settings, storage=storage, model=model, bot=bot)


def create_app(
    settings: Settings,
    *,
    model: ChatModel | None = None,
    storage: Storage | None = None,
    credentials_factory: ServiceClientCredentialsFactory | None = None,
) -> web.Application:
    """The aiohttp app: /api/messages, /healthz, /readyz. Raises SettingsError for unsafe settings.

    `model`, `storage` and `credentials_factory` replace what the settings would build (tests).
    """
    if (
        settings.anonymous
        and not is_loopback_host(settings.host)
        and not settings.allow_public_anonymous
    ):
        raise SettingsError(
            f"no MicrosoftAppId is set (anonymous mode) but BOTLOOM_HOST={settings.host} is not a "
            "loopback address; set an app id, or BOTLOOM_ALLOW_PUBLIC_ANONYMOUS=true if you must"
        )
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[plain_errors])
    runtime = build_runtime(settings, model=model, storage=storage)
    adapter = RetryingCloudAdapter(
        CachingBotFrameworkAuthentication(
            ConfigurationBotFrameworkAuthentication(
                settings.bot_framework_config(), credentials_factory=credentials_factory
            )
        )
    )
    adapter.on_turn_error = on_turn_error
    adapter.use(TurnLogMiddleware(log_messages=settings.log_messages))
    if check_mode(settings.transcripts) != "off":
        adapter.use(TranscriptMiddleware(runtime.storage, settings.transcripts))
    adapter.use(RateLimitMiddleware(settings.rate_limit_per_minute))
    limits = RunnerLimits(
        max_queued=settings.max_queued_turns,
        turn_timeout_s=settings.turn_timeout_s,
        lock_wait_s=settings.lock_wait_s,
        orphaned_after_s=settings.lock_lease_s,
        sweep_s=settings.lock_lease_s / 2,
    )
    runner = TurnRunner(
        create_locks(runtime.storage, lease_s=settings.lock_lease_s),
        create_inbox(runtime.storage),
        InboxTurns(adapter, runtime.bot),
        limits,
    )
    app[RUNTIME] = runtime
    app[ENDPOINT] = MessagesEndpoint(settings, adapter, runtime.bot, runner)
    app.cleanup_ctx.append(lifespan)
    app.router.add_post("/api/messages", app[ENDPOINT].handle)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    add_directline_routes(app, anonymous=settings.anonymous)  # /chat and its local Direct Line
    return app


async def lifespan(app: web.Application) -> AsyncIterator[None]:
    """Connect storage (StorageUnavailable stops the start), start loading the model and an HTTP
    session for signing keys; close everything after."""
    runtime, endpoint = app[RUNTIME], app[ENDPOINT]
    settings = runtime.settings
    await open_storage(runtime.storage)
    async with aiohttp.ClientSession() as session:
        install_async_metadata(
            session,
            channel_url=settings.openid_metadata_url or None,
            emulator_url=settings.emulator_openid_metadata_url or None,
        )
        start = getattr(runtime.model.inner, "start", None)
        if start is not None:
            start()
        # Turns acknowledged but never run (a dead replica, a crash) are taken up once loaded.
        wait_ready = getattr(runtime.model.inner, "wait_ready", None)
        endpoint.runner.start(after=wait_ready() if wait_ready is not None else None)
        yield
        await drain(app)  # a no-op when `botloom serve` has drained already
        await endpoint.runner.close()
        await endpoint.adapter.close()
        await runtime.aclose()


async def drain(app: web.Application) -> None:
    """Graceful shutdown: refuse new turns (503, /readyz 503), let turns in flight finish within
    BOTLOOM_DRAIN_S, then stop their generations so they end with an apology, and state is saved."""
    runtime, runner = app[RUNTIME], app[ENDPOINT].runner
    if await runner.drain(runtime.settings.drain_s):
        return
    logger.warning("drain window over: stopping generations in flight")
    runtime.model.abort_all()
    if not await runner.drain(5.0):
        await runner.cancel_all()


@web.middleware
async def plain_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A bug answers a short 500, never a traceback (aiohttp's debug mode would show one)."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        logger.exception("unhandled error in %s %s", request.method, request.path)
        return web.Response(status=500, text="internal error")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 once the model is loaded and storage answers; 503 while loading or draining."""
    runtime = request.app[RUNTIME]
    if request.app[ENDPOINT].runner.draining:
        return web.json_response({"status": "draining"}, status=503)
    if not runtime.model.ready:
        return web.json_response({"status": "loading model"}, status=503)
    try:
        await runtime.storage.read(["botloom/readyz"])
    except Exception:
        logger.warning("storage not reachable", exc_info=True)
        return web.json_response({"status": "storage unreachable"}, status=503)
    return web.json_response({"status": "ready", "model": runtime.model.name})
