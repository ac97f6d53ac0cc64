"""Streamed replies on the wire: a real server, a slow fake model, a fake connector on loopback.

Teams, Direct Line and Web Chat get informative → streaming updates → final; every other
channel one message. Figures (gaps, stop latency) are printed; run with -s to see them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import ENDPOINT, create_app
from bot.channels.connector_client import RetryPolicy
from bot.channels.streaming_reply import INTERRUPTED_NOTE
from bot.settings import Settings
from dialogs.answer.apologies import apology_for
from models import ChatMessage, GenerationParams, ModelError
from models.api import ReadyLifecycle
from models.fake import FakeChatModel
from tests.activities import message
from tests.connector import FakeConnector

Activity = dict[str, Any]
WORDS = [f"w{i}" for i in range(400)]


def stream_info(activity: Activity) -> dict[str, Any] | None:
    return next((e for e in activity.get("entities") or [] if e.get("type") == "streaminfo"), None)


def stream_of(activities: list[Activity]) -> list[Activity]:
    return [a for a in activities if stream_info(a) is not None]


def finished(activities: list[Activity]) -> bool:
    return any(a["type"] == "message" for a in activities)


class CountingModel(ReadyLifecycle):
    """Yields `words` one per `delay` seconds; records when each was produced and when the
    stream was closed (generation stopped). Ready once constructed, like the fake."""

    name = "counting"
    context_window = 4096

    def __init__(self, words: Sequence[str], delay: float) -> None:
        self.words, self.delay = list(words), delay
        self.produced: list[float] = []
        self.closed_at: float | None = None

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return sum(len(m.content.split()) + 3 for m in messages)

    async def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> AsyncIterator[str]:
        try:
            for index, word in enumerate(self.words):
                await asyncio.sleep(self.delay)
                self.produced.append(time.monotonic())
                yield word if index == 0 else " " + word
        finally:
            self.closed_at = time.monotonic()


def assert_holds_what_was_produced(text: str, model: CountingModel) -> None:
    """The text is the produced words (the piece in flight when generation stopped may be lost)."""
    words = text.split()
    assert words == WORDS[: len(words)]
    assert len(model.produced) - 1 <= len(words) <= len(model.produced)


async def start(settings: Settings, model: Any) -> TestClient:
    app = create_app(settings, model=model)
    app[ENDPOINT].adapter.retry = RetryPolicy(attempts=2, base_delay_s=0.01)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


@pytest.fixture
def fast(settings: Settings) -> Settings:
    return dataclasses.replace(
        settings, stream_interval_teams_s=0.2, stream_interval_directline_s=0.1, max_new_tokens=500
    )


@pytest.mark.parametrize("channel", ["msteams", "directline", "webchat"])
async def test_streaming_channels_get_informative_then_growing_updates_then_final(
    fast: Settings, connector: FakeConnector, channel: str
) -> None:
    model = FakeChatModel(reply=lambda _: " ".join(WORDS[:25]), delay=0.04)
    client = await start(fast, model)
    try:
        await client.post(
            "/api/messages", json=message("hi", service_url=connector.url, channel=channel)
        )
        await connector.wait_for(finished)
    finally:
        await client.close()
    activities = connector.activities
    stream = stream_of(activities)
    first = activities.index(stream[0])
    assert all(stream_info(a) is None and a["type"] == "typing" for a in activities[:first]), (
        "only plain typing before the stream"
    )
    assert activities[first:] == stream, "nothing but the stream after it starts"

    informative, *updates, final = stream
    assert informative["type"] == "typing" and informative["text"] == "Thinking…"
    assert stream_info(informative) == {
        "type": "streaminfo",
        "streamType": "informative",
        "streamSequence": 1,
    }
    stream_id = f"reply-{first + 1}"  # the id the connector returned for the informative update
    assert len(updates) >= 2
    for sequence, update in enumerate(updates, start=2):
        assert update["type"] == "typing"
        assert stream_info(update) == {
            "type": "streaminfo",
            "streamId": stream_id,
            "streamType": "streaming",
            "streamSequence": sequence,
        }
    for activity in stream:
        info = {k: v for k, v in stream_info(activity).items() if k != "type"}
        stream_data = {k: v for k, v in activity["channelData"].items() if k.startswith("stream")}
        assert stream_data == info, "Web Chat 4.18 reads the same metadata from channelData"
    texts = [u["text"] for u in updates]
    assert all(a != b and b.startswith(a) for a, b in itertools.pairwise(texts)), "text grows"
    assert final["type"] == "message"
    assert final["text"] == " ".join(WORDS[:25])
    assert stream_info(final) == {
        "type": "streaminfo",
        "streamId": stream_id,
        "streamType": "final",
    }
    lengths = [len(t) for t in texts]
    print(f"\n[figure] {channel}: 1 informative, {len(updates)} updates, final; lengths {lengths}")


@pytest.mark.parametrize("channel", ["emulator", "slack", "telegram"])
async def test_other_channels_get_one_message(
    fast: Settings, connector: FakeConnector, channel: str
) -> None:
    client = await start(fast, FakeChatModel(reply=lambda _: "one two three", delay=0.05))
    try:
        await client.post(
            "/api/messages", json=message("hi", service_url=connector.url, channel=channel)
        )
        await connector.wait_for(finished)
    finally:
        await client.close()
    assert [m["text"] for m in connector.messages()] == ["one two three"]
    assert stream_of(connector.activities) == []


@pytest.mark.parametrize(("channel", "interval"), [("msteams", 1.0), ("directline", 0.5)])
async def test_updates_are_throttled_to_the_channel_interval(
    settings: Settings, connector: FakeConnector, channel: str, interval: float
) -> None:
    """With the default settings: Teams 1 s, Direct Line 0.5 s between two sends of a stream."""
    assert (settings.stream_interval_teams_s, settings.stream_interval_directline_s) == (1.0, 0.5)
    model = FakeChatModel(reply=lambda _: " ".join(WORDS[:50]), delay=0.05)  # 2.5 s, 20 pieces/s
    client = await start(dataclasses.replace(settings, max_new_tokens=500), model)
    try:
        await client.post(
            "/api/messages", json=message("hi", service_url=connector.url, channel=channel)
        )
        await connector.wait_for(finished, timeout=20)
    finally:
        await client.close()
    times = [
        t for t, a in zip(connector.times, connector.activities, strict=True) if stream_info(a)
    ]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= interval * 0.98, gaps
    assert max(gaps[:-1]) < interval + 0.25, "updates keep coming at about the interval"
    assert len(gaps) >= int(2.5 / interval), "the reply was streamed, not sent at the end"
    print(f"\n[figure] {channel} interval {interval} s: gaps {[round(g, 3) for g in gaps]}")


async def test_stop_on_teams_halts_generation_within_a_second(
    fast: Settings, connector: FakeConnector
) -> None:
    """Teams answers 403 ContentStreamNotAllowed once the user pressed Stop."""
    model = CountingModel(WORDS, delay=0.02)  # 8 s if nobody stops it
    connector.refuse_when(
        lambda a: (stream_info(a) or {}).get("streamSequence") == 4,
        message="Content stream was cancelled by user.",
    )
    client = await start(fast, model)
    try:
        await client.post(
            "/api/messages", json=message("hi", service_url=connector.url, channel="msteams")
        )
        await connector.wait_for(lambda _: bool(connector.refused), timeout=10)
        refused_at = connector.refused[0][0]
        await connector.wait_for(finished, timeout=10)
    finally:
        await client.close()
    assert model.closed_at is not None, "the model's stream was closed"
    stop_latency = model.closed_at - refused_at
    after = sum(1 for t in model.produced if t > refused_at)
    assert stop_latency < 1.0
    assert after <= 3, f"{after} pieces were produced after the stop"
    assert len(model.produced) < 100
    final = connector.messages()[-1]
    assert stream_info(final)["streamType"] == "final"
    assert_holds_what_was_produced(final["text"], model)
    print(
        f"\n[figure] stop: generation closed {stop_latency * 1000:.0f} ms after the 403; "
        f"{after} pieces after it; {len(model.produced)} of {len(WORDS)} produced"
    )


async def test_teams_time_limit_ends_with_a_final_holding_what_was_produced(
    fast: Settings, connector: FakeConnector
) -> None:
    model = CountingModel(WORDS, delay=0.02)
    client = await start(dataclasses.replace(fast, stream_limit_teams_s=0.8), model)
    try:
        started = time.monotonic()
        await client.post(
            "/api/messages", json=message("hi", service_url=connector.url, channel="msteams")
        )
        await connector.wait_for(finished, timeout=10)
    finally:
        await client.close()
    assert model.closed_at is not None and model.closed_at - started < 1.5
    final = connector.messages()[-1]
    assert stream_info(final)["streamType"] == "final"
    assert_holds_what_was_produced(final["text"], model)
    assert 10 < len(model.produced) < len(WORDS)


async def test_model_failure_mid_stream_ends_with_what_was_produced_and_a_note(
    fast: Settings, connector: FakeConnector
) -> None:
    error = ModelError("boom")
    model = FakeChatModel(
        reply=lambda _: " ".join(WORDS[:40]), delay=0.03, fail_after=12, error=error
    )
    client = await start(fast, model)
    try:
        await client.post(
            "/api/messages", json=message("hi", service_url=connector.url, channel="directline")
        )
        await connector.wait_for(finished)
    finally:
        await client.close()
    final = connector.messages()[-1]
    assert stream_info(final)["streamType"] == "final"
    assert final["text"] == " ".join(WORDS[:12]) + "\n\n" + apology_for(error)


async def test_connector_failure_mid_stream_stops_the_model_and_closes_the_stream(
    fast: Settings, connector: FakeConnector
) -> None:
    model = CountingModel(WORDS, delay=0.02)
    connector.refuse_when(
        lambda a: (stream_info(a) or {}).get("streamSequence") == 3, status=500, code="Oops"
    )
    client = await start(fast, model)
    try:
        await client.post(
            "/api/messages", json=message("hi", service_url=connector.url, channel="msteams")
        )
        await connector.wait_for(finished, timeout=10)
    finally:
        await client.close()
    assert model.closed_at is not None and len(model.produced) < 100
    final = connector.messages()[-1]
    assert stream_info(final)["streamType"] == "final"
    assert final["text"].startswith("w0 w1")
    assert final["text"].endswith(apology_for(ModelError()))


async def test_cancelled_turn_stops_the_model_and_closes_the_stream(
    fast: Settings, connector: FakeConnector
) -> None:
    model = CountingModel(WORDS, delay=0.02)
    client = await start(fast, model)
    try:
        await client.post(
            "/api/messages", json=message("hi", service_url=connector.url, channel="webchat")
        )
        await connector.wait_for(lambda a: len(stream_of(a)) >= 3)
        cancelled_at = time.monotonic()
        await client.app[ENDPOINT].runner.cancel_all()
        await connector.wait_for(finished)
    finally:
        await client.close()
    assert model.closed_at is not None and model.closed_at - cancelled_at < 1.0
    final = connector.messages()[-1]
    assert stream_info(final)["streamType"] == "final"
    assert final["text"].endswith(INTERRUPTED_NOTE)


async def test_history_keeps_what_was_streamed(fast: Settings, connector: FakeConnector) -> None:
    model = FakeChatModel(delay=0.01)
    client = await start(fast, model)
    try:
        for count, text in enumerate(("first", "second"), start=1):
            await client.post(
                "/api/messages", json=message(text, service_url=connector.url, channel="msteams")
            )
            await connector.wait_for_messages(count)
    finally:
        await client.close()
    assert [m.content for m in model.prompts[1][1:]] == ["first", "fake: first", "second"]
