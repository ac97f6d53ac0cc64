"""Traces and Prometheus metrics for an aiohttp server: the model server's, and the bot's.

- `server_spans(tracer)`: middleware giving each request a SERVER span that continues the
  caller's trace (W3C `traceparent`), named `POST /v1/chat/completions` and so on.
- `metrics_route(registry, token)`: `GET /metrics` in Prometheus' text format, behind
  `Authorization: Bearer <token>` when a token is set.
- `EngineCollector`: the batching engine's load at scrape time (running and waiting requests,
  batch occupancy, prefix-cache hit ratio, token counters).
- `ServerTelemetry`: the model server's tracer, registry and metrics (time to first token,
  tokens in and out, requests by status).

Nothing here touches a process-wide registry or tracer provider: each app gets its own.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from models.api import ModelError, ModelLifecycle

if TYPE_CHECKING:
    from models.engine.request import EngineStats

NOT_TRACED = frozenset({"/metrics", "/healthz", "/readyz", "/health"})  # probes and scrapes
# Latency buckets (seconds) from a token on a GPU to a long reply on a small CPU.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)


def trace_headers(headers: dict[str, str]) -> dict[str, str]:
    """`headers` with the current span's `traceparent` (nothing added outside a span)."""
    TraceContextTextMapPropagator().inject(headers)
    return headers


def server_spans(tracer: Tracer) -> Middleware:
    """A SERVER span per request (not for probes and scrapes), child of the caller's span."""
    propagator = TraceContextTextMapPropagator()

    @web.middleware
    async def traced(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in NOT_TRACED:
            return await handler(request)
        route = request.match_info.route.resource
        name = f"{request.method} {route.canonical if route is not None else request.path}"
        with tracer.start_as_current_span(
            name,
            context=propagator.extract(request.headers),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": request.method, "url.path": request.path},
        ) as span:
            try:
                response = await handler(request)
            except web.HTTPException as error:
                span.set_attribute("http.response.status_code", error.status)
                raise
            span.set_attribute("http.response.status_code", response.status)
            if response.status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            return response

    return traced


def metrics_route(registry: CollectorRegistry, token: str = "") -> Handler:
    """GET /metrics: the registry in Prometheus' text format; 401 without the bearer token."""
    expected = f"Bearer {token}".encode()

    async def metrics(request: web.Request) -> web.StreamResponse:
        if token:
            given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
            if not hmac.compare_digest(given, expected):
                return web.Response(status=401, text="invalid or missing metrics token")
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return metrics


@runtime_checkable
class EngineView(Protocol):
    """What the batching engine (models/engine/chat_model.py) shows of its load."""

    @property
    def stats(self) -> EngineStats: ...

    @property
    def running(self) -> int: ...

    @property
    def admitted(self) -> int: ...

    @property
    def max_batch(self) -> int: ...


class EngineCollector(Collector):
    """The engine's gauges and counters, read at each scrape; nothing until `engine` is set."""

    def __init__(self) -> None:
        self.engine: EngineView | None = None

    def find(self, *candidates: object) -> None:
        """Watch the first candidate that is a batching engine (a loaded model, its wrapper)."""
        for candidate in candidates:
            if isinstance(candidate, EngineView):
                self.engine = candidate
                return

    async def watch(self, model: ModelLifecycle) -> None:
        """Once `model` has loaded, watch its engine if it has one (a model that fails to load
        has none). `model` is a wrapper (GuardedChatModel) around a deferred or loaded model."""
        try:
            loaded = await model.wait_ready()
        except ModelError:
            return
        self.find(loaded, getattr(model, "inner", None), model)

    def collect(self) -> Iterator[Metric]:
        engine = self.engine
        if engine is None:
            return
        stats, running = engine.stats, engine.running
        yield GaugeMetricFamily(
            "botloom_engine_running_requests", "Replies the engine is decoding now.", running
        )
        yield GaugeMetricFamily(
            "botloom_engine_waiting_requests",
            "Replies admitted and waiting for a place in the batch.",
            max(engine.admitted - running, 0),
        )
        yield GaugeMetricFamily(
            "botloom_engine_batch_occupancy_ratio",
            "Running replies over the batch's places (max_batch).",
            running / max(engine.max_batch, 1),
        )
        yield GaugeMetricFamily(
            "botloom_engine_prefix_cache_hit_ratio",
            "Prompt tokens reused from the prefix cache over all prompt tokens, since start.",
            stats.reused_tokens / stats.prompt_tokens if stats.prompt_tokens else 0.0,
        )
        for name, text, value in (
            ("botloom_engine_requests", "Requests the engine started.", stats.requests),
            (
                "botloom_engine_prompt_tokens",
                "Prompt tokens, prefilled or reused.",
                stats.prompt_tokens,
            ),
            (
                "botloom_engine_prefix_reused_tokens",
                "Prompt tokens reused from the cache.",
                stats.reused_tokens,
            ),
            ("botloom_engine_generated_tokens", "Tokens generated.", stats.tokens_generated),
            (
                "botloom_engine_decode_steps",
                "Decode steps (a token for each running reply).",
                stats.steps,
            ),
        ):
            yield CounterMetricFamily(name, text, value)


@dataclass
class ServerTelemetry:
    """The model server's spans and metrics; by default spans go nowhere (no-op tracer)."""

    tracer: Tracer = field(default_factory=trace.NoOpTracer)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    metrics_token: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        r = self.registry
        self.engine = EngineCollector()
        r.register(self.engine)
        self.requests = Counter(
            "botloom_model_server_requests",
            "Chat completions by HTTP status.",
            ["status"],
            registry=r,
        )
        self.ttft = Histogram(
            "botloom_model_server_time_to_first_token_seconds",
            "From the request to the reply's first piece.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.input_tokens = Counter(
            "botloom_model_server_input_tokens", "Prompt tokens served.", ["model"], registry=r
        )
        self.output_tokens = Counter(
            "botloom_model_server_output_tokens", "Reply tokens served.", ["model"], registry=r
        )

    def first_piece(self, model: str, started: float) -> None:
        """The reply's first piece arrived (`started`: time.monotonic() at the request)."""
        seconds = time.monotonic() - started
        self.ttft.labels(model).observe(seconds)
        span = trace.get_current_span()
        span.set_attribute("gen_ai.request.model", model)
        span.set_attribute("gen_ai.operation.name", "chat")
        span.add_event("gen_ai.first_token", {"botloom.time_to_first_token_s": seconds})

    def finished(self, model: str, counts: dict[str, int]) -> None:
        """A reply's token usage (the wire's `usage`: prompt_tokens, completion_tokens)."""
        self.input_tokens.labels(model).inc(counts.get("prompt_tokens", 0))
        self.output_tokens.labels(model).inc(counts.get("completion_tokens", 0))
        span = trace.get_current_span()
        span.set_attribute("gen_ai.usage.input_tokens", counts.get("prompt_tokens", 0))
        span.set_attribute("gen_ai.usage.output_tokens", counts.get("completion_tokens", 0))

    @web.middleware
    async def count_requests(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Chat completions by status (an error event after the first piece counts as 200)."""
        if request.path != "/v1/chat/completions":
            return await handler(request)
        try:
            response = await handler(request)
        except web.HTTPException as error:
            self.requests.labels(str(error.status)).inc()
            raise
        self.requests.labels(str(response.status)).inc()
        return response
