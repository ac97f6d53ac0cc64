"""One trace per turn: from the request (its traceparent honoured) through the inbox, the lock,
the dialog, the answer's stages and the generation, to every connector call."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bot.observability import Telemetry
from bot.settings import Settings
from models.fake import FakeChatModel
from tests.activities import message
from tests.bot.observability.conftest import finished_spans, start_bot
from tests.connector import FakeConnector

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
SECRET_TEXT = "my salary is 91234 and my cat is Whiskers"


def by_name(spans: list[ReadableSpan]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans}


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def test_a_turn_is_one_trace_from_the_request_to_the_connector(
    traced_bot: tuple[TestClient, Telemetry],
    exporter: InMemorySpanExporter,
    connector: FakeConnector,
) -> None:
    client, _ = traced_bot
    response = await client.post(
        "/api/messages",
        json=message("hello", service_url=connector.url),
        headers={"traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01"},
    )
    assert response.status == 202
    await connector.wait_for_messages(1)
    spans = await finished_spans(exporter, "botloom.turn")
    named = by_name(spans)

    request, turn, dialog = (
        named["POST /api/messages"],
        named["botloom.turn"],
        named["botloom.dialog"],
    )
    assert {format(s.context.trace_id, "032x") for s in spans} == {TRACE_ID}
    assert format(parent_of(request) or 0, "016x") == CALLER_SPAN
    assert parent_of(turn) == request.context.span_id
    for child in ("botloom.inbox.wait", "botloom.lock.wait", "botloom.dialog"):
        assert parent_of(named[child]) == turn.context.span_id, child
    assert parent_of(named["botloom.answer.memory"]) == dialog.context.span_id
    generation = named["chat fake"]
    assert parent_of(generation) == dialog.context.span_id
    assert generation.attributes["gen_ai.request.model"] == "fake"
    assert generation.attributes["gen_ai.operation.name"] == "chat"
    assert generation.attributes["gen_ai.usage.input_tokens"] > 0
    assert generation.attributes["gen_ai.usage.output_tokens"] > 0
    assert generation.attributes["botloom.time_to_first_token_s"] >= 0
    assert turn.attributes["botloom.conversation.id"] == "conv-1"
    assert turn.attributes["botloom.activity.id"].startswith("in-")
    assert dialog.attributes["botloom.outcome"] == "ok"
    posts = [s for s in spans if s.name == "connector POST"]
    assert posts and all(s.attributes["http.response.status_code"] == 200 for s in posts)
    ids = {s.context.span_id: s for s in spans}
    for post in posts:  # each connector call descends from the turn
        ancestor = post
        while ancestor.parent is not None and ancestor is not turn:
            ancestor = ids[ancestor.parent.span_id]
        assert ancestor is turn
    assert turn.start_time <= named["botloom.inbox.wait"].start_time
    assert named["botloom.lock.wait"].end_time <= dialog.start_time


async def test_connector_retries_show_as_spans_with_their_status(
    traced_bot: tuple[TestClient, Telemetry],
    exporter: InMemorySpanExporter,
    connector: FakeConnector,
) -> None:
    client, _ = traced_bot
    connector.refuse_when(
        lambda a: a["type"] == "message",
        429,
        "Throttled",
        "slow down",
        headers={"Retry-After": "0"},
        times=1,
    )
    await client.post("/api/messages", json=message("hello", service_url=connector.url))
    await connector.wait_for_messages(1)
    spans = await finished_spans(exporter, "botloom.turn")
    posts = [s for s in spans if s.name == "connector POST"]
    statuses = [
        (s.attributes["http.response.status_code"], s.attributes["botloom.connector.attempt"])
        for s in posts
    ]
    assert (429, 1) in statuses and (200, 2) in statuses


async def test_no_message_text_in_spans_unless_asked(
    traced_bot: tuple[TestClient, Telemetry],
    exporter: InMemorySpanExporter,
    connector: FakeConnector,
    tmp_path: Path,
    provider: TracerProvider,
) -> None:
    client, _ = traced_bot
    await client.post("/api/messages", json=message(SECRET_TEXT, service_url=connector.url))
    await connector.wait_for_messages(1)
    spans = await finished_spans(exporter, "botloom.turn")
    values = [str(v) for s in spans for v in s.attributes.values()]
    values += [str(v) for s in spans for e in s.events for v in e.attributes.values()]
    assert not [v for v in values if "Whiskers" in v or "91234" in v]

    exporter.clear()
    logging_settings = Settings(
        storage=f"sqlite:///{tmp_path}/other.db", typing_interval_s=30, log_messages=True
    )
    telemetry = Telemetry(provider=provider, log_messages=True)
    other = await start_bot(logging_settings, telemetry, FakeChatModel())
    try:
        await other.post(
            "/api/messages",
            json=message(SECRET_TEXT, service_url=connector.url, conversation="conv-2"),
        )
        await connector.wait_for_messages(2)
        spans = await finished_spans(exporter, "botloom.turn")
        assert by_name(spans)["botloom.dialog"].attributes["botloom.message"] == SECRET_TEXT
    finally:
        await other.close()


async def test_tracing_is_off_by_default(settings: Settings) -> None:
    telemetry = Telemetry.from_settings(settings)
    assert not telemetry.tracing and telemetry.http_middlewares() == []
    on = Telemetry.from_settings(Settings(traces=True))
    try:
        assert on.tracing and on.provider is not None
    finally:
        on.shutdown()
