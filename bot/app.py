"""The composition root: settings in, a running bot out.

It is over 300 lines because it is the one place where every part is wired (channels, storage,
knowledge, files, tools, memory, telemetry): each part is built in its own module, and only the
calls that connect them are here.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from botbuilder.core import ConversationState, Storage, UserState
from botbuilder.integration.aiohttp import ConfigurationBotFrameworkAuthentication
from botframework.connector.auth import ServiceClientCredentialsFactory

from bot.channels.connector_client import RetryingCloudAdapter
from bot.channels.directline import add_directline_routes
from bot.channels.replies import ChannelReplies
from bot.channels.streaming import StreamOptions
from bot.files.service import ChatFiles
from bot.files.setup import build_files, sweeping
from bot.http.auth import CachingBotFrameworkAuthentication, install_async_metadata
from bot.http.health import Health
from bot.http.messages import MessagesEndpoint
from bot.http.model_health import ModelServerProbe
from bot.http.plain_errors import plain_errors
from bot.http.rate_limit import UserRateLimit
from bot.knowledge.setup import Knowledge, build_knowledge, indexing_at_start
from bot.model_setup import build_model, guard_limits, reply_params
from bot.observability import Telemetry, UsageStore
from bot.proactive import ConversationReferences
from bot.redaction import register_settings
from bot.security.local_secret import LocalSecret
from bot.security.origin_guard import OriginGuard
from bot.security.service_urls import is_loopback_host
from bot.settings import Settings, SettingsError
from bot.storage import Backend, StorageConflictError, backend_of, create_backend
from bot.tools.setup import Tools, build_tools
from bot.turns.activity_handler import AssistantBot
from bot.turns.error_handler import on_turn_error
from bot.turns.feedback_store import FeedbackStore
from bot.turns.inbox_entries import InboxTurns
from bot.turns.middleware import TurnLogMiddleware
from bot.turns.prompt_starters import parse_prompt_starters
from bot.turns.runner import RunnerLimits, TurnRunner
from bot.turns.transcripts import TranscriptMiddleware, check_mode
from dialogs.chat_dialog import ChatDialog, ChatOptions
from dialogs.feedback_dialog import FeedbackDialog
from dialogs.knowledge.cited import CitedPassages
from dialogs.main_dialog import MainDialog
from dialogs.memory.commands import MemoryCommands
from dialogs.memory.history import ConversationMemory
from dialogs.memory.meaning import FactMeaning
from dialogs.memory.model_facts import ModelFacts
from dialogs.memory.user_store import UserMemory
from models import ChatModel
from models.api import close_resource
from models.embeddings import EmbeddingModel
from models.guard import GuardedChatModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    """Everything a turn needs, built once per process."""

    settings: Settings
    backend: Backend  # the state's storage, and its locks, inbox and rate counts
    model: GuardedChatModel
    bot: AssistantBot
    knowledge: Knowledge | None = None
    usage: UsageStore | None = None  # token usage (bot/observability), written before closing
    tools: Tools | None = None  # BOTLOOM_MCP_CONFIG's servers
    files: ChatFiles | None = None  # files in chat (BOTLOOM_FILES), swept hourly

    @property
    def storage(self) -> Storage:
        return self.backend.storage

    async def aclose(self, *, close_model: bool = True) -> None:
        """Close the model (its worker; not with `close_model=False`, for a model the caller
        lent and closes), the storage, the knowledge index (connections) and the tool servers."""
        model = self.model.inner if close_model else None
        for resource in (model, self.usage, self.storage, self.knowledge):
            await close_resource(resource)
        if self.tools is not None:
            await self.tools.close()


RUNTIME = web.AppKey("runtime", Runtime)
ENDPOINT = web.AppKey("endpoint", MessagesEndpoint)
MODEL_PROBE = web.AppKey("model_probe", ModelServerProbe)
TELEMETRY = web.AppKey("telemetry", Telemetry)


def build_runtime(
    settings: Settings,
    *,
    model: ChatModel | None = None,
    storage: Storage | None = None,
    embedding_model: EmbeddingModel | None = None,
    telemetry: Telemetry | None = None,
) -> Runtime:
    """Storage, state, model, dialogs and the activity handler: shared by `serve` and `chat`."""
    if storage is None:
        backend = create_backend(
            settings.storage,
            namespace=settings.storage_namespace,
            pool_size=settings.storage_pool_size,
        )
    else:
        backend = backend_of(storage)
    storage = backend.storage
    # Answers from documents quote them with the embedded 135M default (BOTLOOM_KNOWLEDGE_ANSWER
    # "auto"; a model handed in is not the default).
    answer = settings.knowledge_answer
    embedded_default = model is None and settings.model == "embedded"
    quotes = answer == "quote" or (answer == "auto" and embedded_default)
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
    knowledge = build_knowledge(settings, embedding_model=embedding_model)
    options = ChatOptions(
        settings.system_prompt,
        settings.context_tokens,
        params,
        knowledge=dataclasses.replace(knowledge.prompt, quote=quotes),
        grace_tokens=settings.reply_grace_tokens,
    )
    replies = ChannelReplies(stream, feedback_buttons=settings.feedback_buttons)
    on_record = telemetry.metrics.count_feedback if telemetry else None
    usage = UsageStore(storage) if telemetry else None
    feedback = FeedbackStore(storage, transcripts=settings.transcripts, on_record=on_record)
    files = build_files(settings, storage, knowledge, stream) if settings.files else None
    tools = build_tools(
        settings, storage, conversation_state, model=model, embedding_model=knowledge.embedder.model
    )  # one embedding model for knowledge, memory and tools; the model's own tool calls
    user_memory = (
        UserMemory(storage, conflicts=(StorageConflictError, KeyError)) if settings.memory else None
    )
    chat = ChatDialog(
        model,
        memory,
        options,
        replies,
        retriever=knowledge.retriever,
        user_memory=user_memory,
        model_facts=ModelFacts(model) if settings.memory_extraction == "model" else None,
        observer=telemetry.answer_observer(model, usage) if telemetry and usage else None,
        files=files,
        tool_stage=tools.stage if tools else None,
        # Memory by meaning with knowledge's embedder: one model, loaded on first use, off the loop.
        meaning=FactMeaning(knowledge.embedder.embed) if settings.memory else None,
        ranker=knowledge.ranker,
        cited=CitedPassages(conversation_state),
    )
    feedback_flow = FeedbackDialog(user_state, feedback.record_rating)
    root = MainDialog(
        chat,
        feedback_flow,
        memory,
        MemoryCommands(user_memory),
        files=files,
        tool_commands=tools.commands if tools else None,
        tool_stage=tools.stage if tools else None,
    )
    bot = AssistantBot(
        root,
        conversation_state,
        user_state,
        typing_interval=settings.typing_interval_s,
        feedback=feedback,
        starters=parse_prompt_starters(settings.prompt_starters),
        references=ConversationReferences(storage),
        tool_clicks=tools.clicks if tools else None,
    )
    return Runtime(
        settings=settings,
        backend=backend,
        model=model,
        bot=bot,
        knowledge=knowledge,
        usage=usage,
        tools=tools,
        files=files,
    )


def create_app(
    settings: Settings,
    *,
    model: ChatModel | None = None,
    storage: Storage | None = None,
    credentials_factory: ServiceClientCredentialsFactory | None = None,
    embedding_model: EmbeddingModel | None = None,
    telemetry: Telemetry | None = None,
) -> web.Application:
    """The aiohttp app: /api/messages, /healthz, /readyz. Raises SettingsError for unsafe settings.

    `model`, `storage`, `credentials_factory` and `embedding_model` replace what the settings
    would build (tests); so does `telemetry` (traces, metrics, quota: bot/observability).
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
    register_settings(settings)  # its credentials out of logs, /healthz, traces and responses
    telemetry = telemetry or Telemetry.from_settings(settings)
    middlewares = [*telemetry.http_middlewares(), plain_errors]
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=middlewares)
    runtime = build_runtime(
        settings, model=model, storage=storage, embedding_model=embedding_model, telemetry=telemetry
    )
    # The local Direct Line and this bot know each other's requests by a secret of the process.
    local_secret = LocalSecret()
    adapter = RetryingCloudAdapter(
        CachingBotFrameworkAuthentication(
            ConfigurationBotFrameworkAuthentication(
                settings.bot_framework_config(), credentials_factory=credentials_factory
            )
        ),
        local_secret=local_secret,
        trace_configs=telemetry.connector_traces(),
    )
    adapter.on_turn_error = on_turn_error
    adapter.use(TurnLogMiddleware(log_messages=settings.log_messages))
    for middleware in telemetry.turn_middlewares(runtime.usage):  # the dialog's span, quota
        adapter.use(middleware)
    if check_mode(settings.transcripts) != "off":
        adapter.use(TranscriptMiddleware(runtime.storage, settings.transcripts))
    limits = RunnerLimits(
        max_queued=settings.max_queued_turns,
        max_queued_per_conversation=settings.max_queued_turns_per_conversation,
        turn_timeout_s=settings.turn_timeout_s,
        lock_wait_s=settings.lock_wait_s,
        orphaned_after_s=settings.lock_lease_s,
        sweep_s=settings.lock_lease_s / 2,
    )
    runner = TurnRunner(
        *telemetry.runner_parts(  # spans and metrics around the lock, inbox and turn
            runtime.backend.locks(lease_s=settings.lock_lease_s),
            runtime.backend.inbox(),
            InboxTurns(adapter, runtime.bot),
            settings.max_queued_turns,
        ),
        limits,
    )
    app[RUNTIME] = runtime
    app[TELEMETRY] = telemetry
    # The rate limit before the inbox write, shared through the store; Host, Origin and JSON
    # checks where no token protects the server (the local Direct Line, anonymous mode).
    guard = OriginGuard(settings.allowed_hosts, settings.allowed_origins)
    rate_limit = UserRateLimit(runtime.backend.rate_counts(), settings.rate_limit_per_minute)
    app[ENDPOINT] = MessagesEndpoint(
        settings,
        adapter,
        runtime.bot,
        runner,
        rate_limit=rate_limit,
        guard=guard if settings.anonymous else None,
        local_secret=local_secret if settings.anonymous else None,
    )
    app.cleanup_ctx.append(telemetry.lifespan(runtime.model))  # closed last: spans flushed
    app.cleanup_ctx.append(lifespan)
    if runtime.files is not None:  # the expired files of conversations that did not come back
        app.cleanup_ctx.append(sweeping(runtime.files))
    if runtime.knowledge is not None:  # BOTLOOM_KNOWLEDGE, indexed while the bot serves
        app.cleanup_ctx.append(indexing_at_start(runtime.knowledge, settings.knowledge))
    app.router.add_post("/api/messages", app[ENDPOINT].handle)
    # A remote model server's state on /healthz (it never makes /readyz fail).
    probe = None
    if settings.model_url and model is None:
        probe = ModelServerProbe(
            settings.model_url,
            api_key=settings.model_api_key,
            interval_s=settings.model_probe_interval_s,
            timeout_s=settings.model_connect_timeout_s + settings.model_read_timeout_s,
        )
        app[MODEL_PROBE] = probe
    tools_down = runtime.tools.servers.down if runtime.tools else None
    health = Health(runtime.model, runtime.storage, runner, probe, tools_down=tools_down)
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    telemetry.serve_metrics(app, runner)  # GET /metrics
    # /chat and its local Direct Line
    add_directline_routes(
        app,
        anonymous=settings.anonymous,
        guard=guard,
        secret=local_secret,
        max_upload_bytes=int(settings.max_upload_mb * 1024 * 1024),
        max_body_bytes=settings.max_body_bytes,
    )
    return app


async def lifespan(app: web.Application) -> AsyncIterator[None]:
    """Connect storage (StorageUnavailable stops the start), start loading the model and an HTTP
    session for signing keys; close everything after."""
    runtime, endpoint = app[RUNTIME], app[ENDPOINT]
    settings = runtime.settings
    await runtime.backend.open()
    async with aiohttp.ClientSession() as session:
        key_sources = install_async_metadata(
            session,
            channel_url=settings.openid_metadata_url or None,
            emulator_url=settings.emulator_openid_metadata_url or None,
        )
        runtime.model.start()
        if runtime.tools is not None:  # a server that is down does not stop the start
            runtime.tools.start()
        # Turns acknowledged but never run (a dead replica, a crash) are taken up once loaded.
        endpoint.runner.start(after=runtime.model.wait_ready())
        probe = app.get(MODEL_PROBE)
        if probe is not None:
            probe.start(session)
        yield
        if probe is not None:
            await probe.stop()
        await drain(app)  # a no-op when `botloom serve` has drained already
        await endpoint.runner.close()
        if endpoint.rate_limit is not None:
            await endpoint.rate_limit.close()
        await endpoint.adapter.close()
        for source in key_sources.values():  # a background key refresh, before its session closes
            await source.close()
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
