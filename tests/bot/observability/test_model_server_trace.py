"""The model server's spans continue the bot's trace over HTTP (traceparent), and its /metrics
count what it served."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from bot.observability import Telemetry
from bot.settings import Settings
from models.fake import FakeChatModel
from models.serving.model_server import create_model_server
from models.serving.remote import RemoteChatModel, RemoteOptions
from models.serving.telemetry import ServerTelemetry
from tests.activities import message
from tests.bot.observability.conftest import finished_spans, start_bot
from tests.connector import FakeConnector


def samples(text: str) -> dict[str, float]:
    """Every sample as `name{label="value",...}` -> value."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            found[f"{sample.name}{{{labels}}}"] = sample.value
    return found


async def test_a_model_server_span_joins_the_bots_trace(
    settings: Settings,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    connector: FakeConnector,
) -> None:
    server_telemetry = ServerTelemetry(tracer=provider.get_tracer("model-server"))
    server = TestClient(
        TestServer(
            create_model_server(FakeChatModel(), telemetry=server_telemetry), host="127.0.0.1"
        )
    )
    await server.start_server()
    remote = RemoteChatModel(RemoteOptions(url=str(server.make_url("/v1")), model="fake"))
    bot = await start_bot(settings, Telemetry(provider=provider), remote)
    try:
        await bot.post("/api/messages", json=message("hello", service_url=connector.url))
        assert (await connector.wait_for_messages(1))[0]["text"] == "fake: hello"
        spans = await finished_spans(exporter, "botloom.turn")
        served = [s for s in spans if s.name == "POST /v1/chat/completions"]
        generation = next(s for s in spans if s.name == "chat fake")
        assert len(served) == 1
        assert served[0].context.trace_id == generation.context.trace_id
        assert served[0].parent is not None
        assert served[0].parent.span_id == generation.context.span_id
        assert served[0].attributes["gen_ai.request.model"] == "fake"
        assert served[0].attributes["gen_ai.usage.output_tokens"] > 0

        scraped = samples(await (await server.get("/metrics")).text())
        assert scraped['botloom_model_server_requests_total{status="200"}'] == 1
        assert scraped['botloom_model_server_time_to_first_token_seconds_count{model="fake"}'] == 1
        assert scraped['botloom_model_server_output_tokens_total{model="fake"}'] > 0
    finally:
        await bot.close()
        await server.close()


async def test_model_server_metrics_need_the_token_when_one_is_set() -> None:
    server = TestClient(
        TestServer(
            create_model_server(FakeChatModel(), telemetry=ServerTelemetry(metrics_token="s3")),
            host="127.0.0.1",
        )
    )
    await server.start_server()
    try:
        assert (await server.get("/metrics")).status == 401
        allowed = await server.get("/metrics", headers={"Authorization": "Bearer s3"})
        assert allowed.status == 200
        assert allowed.headers["Content-Type"].startswith("text/plain; version=")
    finally:
        await server.close()
