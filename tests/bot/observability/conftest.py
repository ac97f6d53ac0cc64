"""A bot whose spans go to an in-memory exporter, and the fake connector."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bot.app import create_app
from bot.observability import Telemetry
from bot.settings import Settings
from models.fake import FakeChatModel


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        storage=f"sqlite:///{tmp_path}/state.db", typing_interval_s=30, rate_limit_per_minute=0
    )


async def start_bot(app_settings: Settings, telemetry: Telemetry, model: object) -> TestClient:
    app = create_app(app_settings, model=model, telemetry=telemetry)  # type: ignore[arg-type]
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


@pytest.fixture
async def traced_bot(
    settings: Settings, provider: TracerProvider
) -> AsyncIterator[tuple[TestClient, Telemetry]]:
    telemetry = Telemetry(provider=provider)
    client = await start_bot(settings, telemetry, FakeChatModel())
    yield client, telemetry
    await client.close()


async def finished_spans(
    exporter: InMemorySpanExporter, name: str, count: int = 1
) -> list[ReadableSpan]:
    """Every finished span, once `count` spans called `name` have finished (a turn's span ends
    after its reply was posted)."""
    for _ in range(500):
        spans = list(exporter.get_finished_spans())
        if sum(1 for s in spans if s.name == name) >= count:
            return spans
        await asyncio.sleep(0.02)
    raise AssertionError(f"no {count} finished {name} spans: {[s.name for s in spans]}")
