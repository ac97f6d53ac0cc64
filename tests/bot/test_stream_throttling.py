"""Streams that survive Teams' throttling and tell its 403s apart, and turns that a blackholed
connector call does not stall (issue 12 item 8). A real server, the fake connector on loopback."""

from __future__ import annotations

import dataclasses
import itertools
import time
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from bot.app import ENDPOINT, create_app
from bot.channels.connector_client import RetryPolicy
from bot.settings import Settings
from dialogs.answer.model_reply import INCOMPLETE_MARK
from models.fake import FakeChatModel
from tests.activities import message
from tests.bot.test_streaming_wire import WORDS, CountingModel, stream_info, stream_of
from tests.connector import FakeConnector

Activity = dict[str, Any]


def is_update(activity: Activity) -> bool:
    return (stream_info(activity) or {}).get("streamType") == "streaming"


def finished(activities: list[Activity]) -> bool:
    return any(a["type"] == "message" for a in activities)


async def start(settings: Settings, model: Any, *, retry: RetryPolicy | None = None) -> TestClient:
    app = create_app(settings, model=model)
    if retry is not None:
        app[ENDPOINT].adapter.retry = retry
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


async def run_teams_turn(
    client: TestClient, connector: FakeConnector, text: str = "hi", timeout: float = 30
) -> None:
    await client.post(
        "/api/messages", json=message(text, service_url=connector.url, channel="msteams")
    )
    await connector.wait_for(finished, timeout=timeout)


async def test_429_with_retry_after_on_two_updates_still_streams_at_one_a_second(
    settings: Settings, connector: FakeConnector
) -> None:
    """Default Teams interval (1 s); the connector answers the first two updates 429."""
    reply = " ".join(WORDS[:60])
    model = FakeChatModel(reply=lambda _: reply, delay=0.1)  # about 6 s of text
    connector.refuse_when(
        is_update,
        status=429,
        code="Throttled",
        message="Too many requests",
        headers={"Retry-After": "1"},
        times=2,
    )
    client = await start(
        dataclasses.replace(settings, max_new_tokens=500),
        model,
        retry=RetryPolicy(attempts=2, base_delay_s=0.01),
    )
    try:
        await run_teams_turn(client, connector)
    finally:
        await client.close()
    assert len(connector.refused) == 2
    _informative, *updates, final = stream_of(connector.activities)
    assert final["type"] == "message" and final["text"] == reply, "the whole reply, at the end"
    assert len(updates) >= 2, "the stream went on after the 429s"
    sequences = [stream_info(u)["streamSequence"] for u in updates]
    assert sequences == list(range(2, 2 + len(updates))), "accepted updates in sequence"
    texts = [u["text"] for u in updates]
    assert all(b.startswith(a) and a != b for a, b in itertools.pairwise(texts))
    arrivals = sorted(
        [t for t, a in zip(connector.times, connector.activities, strict=True) if stream_info(a)]
        + [t for t, _ in connector.refused]
    )
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert min(gaps) >= 0.95, f"more than one request a second reached the connector: {gaps}"
    print(f"\n[figure] 429 x2: {len(updates)} updates, gaps {[round(g, 2) for g in gaps]}")


def refuse_updates_from(connector: FakeConnector, sequence: int, text: str, final: bool) -> None:
    """Teams' 403 with `text` to every update from `sequence` on (and to the final message)."""

    def matches(activity: Activity) -> bool:
        info = stream_info(activity) or {}
        return info.get("streamSequence", 0) >= sequence or (
            final and info.get("streamType") == "final"
        )

    connector.refuse_when(matches, status=403, code="ContentStreamNotAllowed", message=text)


class RecordingModel(CountingModel):
    """CountingModel that also records each prompt."""

    def __init__(self, words: list[str], delay: float) -> None:
        super().__init__(words, delay)
        self.prompts: list[list[Any]] = []

    def stream(self, messages: Any, params: Any) -> Any:
        self.prompts.append(list(messages))
        return super().stream(messages, params)


def teams(settings: Settings) -> Settings:
    return dataclasses.replace(settings, stream_interval_teams_s=0.2, max_new_tokens=500)


async def test_403_cancelled_by_user_stops_generation_and_keeps_an_incomplete_answer(
    settings: Settings, connector: FakeConnector
) -> None:
    model = RecordingModel(WORDS, delay=0.02)
    refuse_updates_from(connector, 3, "Content stream was cancelled by user.", final=True)
    client = await start(teams(settings), model)
    try:
        await client.post(
            "/api/messages", json=message("long", service_url=connector.url, channel="msteams")
        )
        await connector.wait_for(lambda _: model.closed_at is not None, timeout=10)
        refused_at = connector.refused[0][0]
        stopped_at, produced = model.closed_at, len(model.produced)
        await client.post(
            "/api/messages", json=message("next", service_url=connector.url, channel="msteams")
        )
        await connector.wait_for(lambda _: len(model.prompts) >= 2, timeout=10)
    finally:
        await client.close()
    assert stopped_at - refused_at < 1.0 and produced < 100, "generation ended at the 403"
    history = [(m.role, m.content) for m in model.prompts[1][1:]]
    assert history[0] == ("user", "long") and history[-1] == ("user", "next")
    role, kept = history[1]
    assert role == "assistant" and kept.endswith(INCOMPLETE_MARK)
    words = kept.removesuffix(INCOMPLETE_MARK).split()
    assert words == WORDS[: len(words)] and len(words) >= produced - 1


async def test_403_exceeded_streaming_time_ends_with_everything_written(
    settings: Settings, connector: FakeConnector
) -> None:
    model = CountingModel(WORDS, delay=0.02)
    refuse_updates_from(
        connector, 3, "Content stream finished due to exceeded streaming time.", final=True
    )
    client = await start(teams(settings), model)
    try:
        await run_teams_turn(client, connector)  # the final is refused: the streamed message
    finally:  # is updated in place (PUT), the one message the connector accepts
        await client.close()
    stream_id = stream_info(next(a for a in connector.activities if is_update(a)))["streamId"]
    updated = connector.messages()[-1]
    assert connector.paths[-1].endswith(f"/activities/{stream_id}")
    words = updated["text"].split()
    assert words == WORDS[: len(words)] and len(model.produced) - 1 <= len(words) < 100


async def test_403_message_size_finishes_the_stream_and_sends_the_rest_next(
    settings: Settings, connector: FakeConnector
) -> None:
    model = CountingModel(WORDS[:80], delay=0.01)
    refuse_updates_from(connector, 3, "Message size too large.", final=False)
    client = await start(teams(settings), model)
    try:
        await run_teams_turn(client, connector)
        await connector.wait_for_messages(2)
    finally:
        await client.close()
    updates = [a for a in connector.activities if is_update(a)]
    final, rest = connector.messages()
    assert stream_info(final)["streamType"] == "final"
    assert final["text"] == updates[-1]["text"], "the stream ends with what it showed"
    assert stream_info(rest) is None
    assert f"{final['text']} {rest['text']}".split() == WORDS[:80], "nothing lost"
    assert len(model.produced) == 80, "generation went on"


async def test_another_403_ends_the_stream_cleanly(
    settings: Settings, connector: FakeConnector
) -> None:
    model = CountingModel(WORDS, delay=0.02)
    refuse_updates_from(connector, 3, "Content stream is not allowed.", final=False)
    client = await start(teams(settings), model)
    try:
        await run_teams_turn(client, connector)
    finally:
        await client.close()
    (final,) = connector.messages()
    assert stream_info(final)["streamType"] == "final"
    words = final["text"].split()
    assert words == WORDS[: len(words)], "what was written, without an apology"
    assert len(model.produced) < 100 and model.closed_at is not None


async def test_a_blackholed_typing_indicator_does_not_stall_the_turn(
    settings: Settings, connector: FakeConnector
) -> None:
    """Issue 12.8: with the shipped retry policy a typing indicator used to get 4 tries of 15 s."""
    connector.blackhole_when(lambda a: a["type"] == "typing")
    client = await start(dataclasses.replace(settings, typing_interval_s=3.0), FakeChatModel())
    try:
        started = time.monotonic()
        await client.post("/api/messages", json=message("hi", service_url=connector.url))
        await connector.wait_for_messages(1, timeout=30)
        took = time.monotonic() - started
    finally:
        await client.close()
    assert connector.messages()[0]["text"] == "fake: hi"
    assert took < 20, f"the turn waited {took:.1f} s on a typing indicator"
    print(f"\n[figure] blackholed typing: reply after {took:.1f} s")


async def test_blackholed_stream_updates_do_not_stall_the_stream(
    settings: Settings, connector: FakeConnector
) -> None:
    """Issue 12.8: every update goes unanswered; each used to get 4 tries of 15 s. Now an update
    gets one try of 5 s, the stream backs off, and the final message delivers the whole reply."""
    connector.blackhole_when(is_update)
    reply = " ".join(WORDS[:20])
    model = FakeChatModel(reply=lambda _: reply, delay=0.1)  # 2 s of text
    client = await start(dataclasses.replace(settings, max_new_tokens=500), model)
    try:
        started = time.monotonic()
        await run_teams_turn(client, connector, timeout=45)
        took = time.monotonic() - started
    finally:
        await client.close()
    assert connector.blackholed, "updates were sent (and never answered)"
    final = connector.messages()[-1]
    assert stream_info(final)["streamType"] == "final" and final["text"] == reply
    assert took < 30, f"the stream waited {took:.1f} s on unanswered updates"
    print(f"\n[figure] blackholed updates: final after {took:.1f} s")


async def test_a_throttled_informative_update_is_tried_again_and_the_reply_still_streams(
    settings: Settings, connector: FakeConnector
) -> None:
    connector.refuse_when(
        lambda a: (stream_info(a) or {}).get("streamType") == "informative",
        status=429,
        code="Throttled",
        message="Too many requests",
        headers={"Retry-After": "1"},
        times=1,
    )
    reply = " ".join(WORDS[:30])
    client = await start(teams(settings), FakeChatModel(reply=lambda _: reply, delay=0.05))
    try:
        await run_teams_turn(client, connector)
    finally:
        await client.close()
    informative, *updates, final = stream_of(connector.activities)
    assert stream_info(informative)["streamType"] == "informative" and updates
    assert stream_info(final)["streamType"] == "final" and final["text"] == reply


async def test_a_stream_throttled_at_its_start_resumes_after_retry_after(
    settings: Settings, connector: FakeConnector
) -> None:
    """The first two sends of the stream (the informative update and its next try) are answered
    429 with Retry-After: 1; the third starts the stream, and the final message closes it."""
    connector.refuse_when(
        lambda a: stream_info(a) is not None,
        status=429,
        code="Throttled",
        message="Too many requests",
        headers={"Retry-After": "1"},
        times=2,
    )
    reply = " ".join(WORDS[:60])
    model = FakeChatModel(reply=lambda _: reply, delay=0.1)  # about 6 s of text
    client = await start(dataclasses.replace(settings, max_new_tokens=500), model)
    try:
        await run_teams_turn(client, connector)
    finally:
        await client.close()
    assert len(connector.refused) == 2
    informative, *updates, final = stream_of(connector.activities)
    assert stream_info(informative)["streamType"] == "informative"
    assert updates, "the stream showed the text while the model wrote it"
    assert stream_info(final)["streamType"] == "final" and final["text"] == reply
    stream_id = stream_info(updates[0])["streamId"]
    assert stream_info(final)["streamId"] == stream_id, "the final message closes the stream"
    assert [m["text"] for m in connector.messages()] == [reply], "one message, the final"
    arrivals = sorted(
        [t for t, a in zip(connector.times, connector.activities, strict=True) if stream_info(a)]
        + [t for t, _ in connector.refused]
    )
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert min(gaps) >= 0.95, f"more than one request a second reached the connector: {gaps}"
