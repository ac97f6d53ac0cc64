"""Spans and metrics for every request to a channel's connector, through aiohttp's own request
tracing (a TraceConfig on the connector client's session, bot/channels/connector_client.py): a
CLIENT span per try with its status and attempt number, requests by status (429s included),
retries and durations."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import aiohttp
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from bot.observability.metrics import BotMetrics


def connector_tracing(tracer: Tracer, metrics: BotMetrics) -> aiohttp.TraceConfig:
    """The TraceConfig; a request's `trace_request_ctx` may carry {"attempt": n}."""
    config = aiohttp.TraceConfig()

    async def on_start(
        session: aiohttp.ClientSession,
        ctx: SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        request: Any = ctx.trace_request_ctx
        attempt = int(request.get("attempt", 1)) if isinstance(request, dict) else 1
        if attempt > 1:
            metrics.connector_retries.inc()
        ctx.started = time.monotonic()
        ctx.span = tracer.start_span(
            f"connector {params.method}",
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": params.method,
                "server.address": params.url.host or "",
                "url.path": params.url.path,  # /v3/conversations/<id>/activities[/<reply to>]
                "botloom.connector.attempt": attempt,
            },
        )

    async def on_end(
        session: aiohttp.ClientSession,
        ctx: SimpleNamespace,
        params: aiohttp.TraceRequestEndParams,
    ) -> None:
        status = params.response.status
        ctx.span.set_attribute("http.response.status_code", status)
        if status >= 400:
            ctx.span.set_status(Status(StatusCode.ERROR, str(status)))
        _done(ctx, metrics, str(status))

    async def on_exception(
        session: aiohttp.ClientSession,
        ctx: SimpleNamespace,
        params: aiohttp.TraceRequestExceptionParams,
    ) -> None:
        ctx.span.set_attribute("error.type", type(params.exception).__name__)
        ctx.span.set_status(Status(StatusCode.ERROR, type(params.exception).__name__))
        _done(ctx, metrics, "error")

    config.on_request_start.append(on_start)
    config.on_request_end.append(on_end)
    config.on_request_exception.append(on_exception)
    return config


def _done(ctx: SimpleNamespace, metrics: BotMetrics, status: str) -> None:
    metrics.connector_requests.labels(status).inc()
    metrics.connector_duration.observe(time.monotonic() - ctx.started)
    ctx.span.end()
