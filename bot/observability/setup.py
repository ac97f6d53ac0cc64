"""Telemetry: the tracer and the metrics of one app, built from the settings once (bot/app.py,
bot/cli.py), and the pieces bot/app.py wires in with it.

Tracing is on when OTEL_EXPORTER_OTLP_ENDPOINT or BOTLOOM_TRACES is set: spans are batched to an
OTLP/HTTP exporter that the OpenTelemetry SDK configures from the standard OTEL_* variables
(OTEL_EXPORTER_OTLP_ENDPOINT, _HEADERS, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_BSP_*;
without an endpoint it sends to http://localhost:4318). Off, the tracer is the API's no-op one.
No process-wide provider is set: the tracer is handed to what makes spans, and the remote model
client propagates the current span's `traceparent` (models/serving/telemetry.py).

Metrics live in a CollectorRegistry of the app's own (GET /metrics), so tests and several apps
in one process never share counters.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Middleware
from botbuilder.core import Middleware as TurnMiddleware
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.trace import Tracer
from prometheus_client import CollectorRegistry

from bot.observability.answers import TelemetryObserver
from bot.observability.connector import connector_tracing
from bot.observability.metrics import BotMetrics
from bot.observability.turn_middleware import QuotaMiddleware, TurnTelemetryMiddleware
from bot.observability.turns import ObservedInbox, ObservedLocks, ObservedTurns, TurnTimes
from bot.observability.usage import UsageStore
from bot.settings import Settings
from bot.storage import ConversationLocks, Inbox
from bot.turns.runner import TurnRunner
from bot.turns.runner_terms import EntryTurns
from models import ChatModel
from models.api import ModelLifecycle
from models.serving.telemetry import ServerTelemetry, metrics_route, server_spans

INSTRUMENTATION = "botloom"


def tracing_wanted(settings: Settings) -> bool:
    return bool(settings.traces or settings.otel_endpoint)


def tracer_provider(service: str, processor: SpanProcessor | None = None) -> TracerProvider:
    """An SDK provider whose resource comes from OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES
    (`service` when they name none), exporting through `processor` (default: batched OTLP/HTTP
    as the OTEL_* variables say)."""
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service}))
    provider = TracerProvider(resource=resource)
    if processor is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        processor = BatchSpanProcessor(OTLPSpanExporter())
    provider.add_span_processor(processor)
    return provider


def model_server_telemetry(settings: Settings) -> tuple[ServerTelemetry, TracerProvider | None]:
    """`botloom model-server`'s spans (with the same switches as the bot's) and /metrics; the
    provider to shut down at exit, if tracing."""
    provider = tracer_provider("botloom-model-server") if tracing_wanted(settings) else None
    tracer = provider.get_tracer(INSTRUMENTATION) if provider is not None else trace.NoOpTracer()
    return ServerTelemetry(tracer=tracer, metrics_token=settings.metrics_token), provider


@dataclass
class Telemetry:
    """One app's tracer (a no-op one unless `provider` is set) and metrics."""

    provider: TracerProvider | None = None
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    metrics_token: str = field(default="", repr=False)
    log_messages: bool = False
    tokens_per_user_per_day: int = 0

    def __post_init__(self) -> None:
        self.metrics = BotMetrics(self.registry)
        self.tracer: Tracer = (
            self.provider.get_tracer(INSTRUMENTATION)
            if self.provider is not None
            else trace.NoOpTracer()
        )

    @classmethod
    def from_settings(cls, settings: Settings, service: str = "botloom") -> Telemetry:
        return cls(
            provider=tracer_provider(service) if tracing_wanted(settings) else None,
            metrics_token=settings.metrics_token,
            log_messages=settings.log_messages,
            tokens_per_user_per_day=settings.tokens_per_user_per_day,
        )

    @property
    def tracing(self) -> bool:
        return self.provider is not None

    def http_middlewares(self) -> list[Middleware]:
        """A SERVER span per request (continuing a caller's `traceparent`), when tracing."""
        return [server_spans(self.tracer)] if self.tracing else []

    def connector_traces(self) -> list[aiohttp.TraceConfig]:
        return [connector_tracing(self.tracer, self.metrics)]

    def runner_parts(
        self, locks: ConversationLocks, inbox: Inbox, turns: EntryTurns, max_queued: int
    ) -> tuple[ConversationLocks, Inbox, EntryTurns]:
        """The runner's lock store, inbox and turns, observed."""
        times = TurnTimes(max_queued)
        self.metrics.inbox_oldest_age.set_function(times.oldest_age_s)
        return (
            ObservedLocks(locks, times, self.metrics),
            ObservedInbox(inbox, times),
            ObservedTurns(turns, times, self.tracer, self.metrics),
        )

    def turn_middlewares(self, usage: UsageStore | None) -> list[TurnMiddleware]:
        """The dialog's span and turn counter; the daily quota where one is set."""
        found: list[TurnMiddleware] = [
            TurnTelemetryMiddleware(self.tracer, self.metrics, log_messages=self.log_messages)
        ]
        if self.tokens_per_user_per_day > 0 and usage is not None:
            limit = self.tokens_per_user_per_day
            found.append(QuotaMiddleware(usage, limit, self.metrics))
        return found

    def answer_observer(self, model: ChatModel, usage: UsageStore) -> TelemetryObserver:
        return TelemetryObserver(
            model, self.tracer, self.metrics, usage, log_messages=self.log_messages
        )

    def serve_metrics(self, app: web.Application, runner: TurnRunner) -> None:
        """GET /metrics (behind the metrics token, when set), with the runner's queue depth."""
        self.metrics.inbox_depth.set_function(lambda: runner.queued)
        app.router.add_get("/metrics", metrics_route(self.registry, self.metrics_token))

    def lifespan(self, model: ModelLifecycle) -> Callable[[web.Application], AsyncIterator[None]]:
        """A cleanup context: watch the model's engine once loaded; flush spans at the end."""

        async def observing(app: web.Application) -> AsyncIterator[None]:
            watching = asyncio.create_task(self.metrics.engine.watch(model))
            yield
            watching.cancel()
            await asyncio.gather(watching, return_exceptions=True)
            self.shutdown()

        return observing

    def shutdown(self) -> None:
        """Flush and stop the span exporter."""
        if self.provider is not None:
            self.provider.shutdown()
