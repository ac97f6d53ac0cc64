"""StreamingReply against a recording adapter: fallbacks when the channel refuses the stream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from botbuilder.core import BotAdapter, TurnContext
from botbuilder.schema import (
    Activity,
    ChannelAccount,
    ConversationAccount,
    ConversationReference,
    ResourceResponse,
)

from bot.channels.connector_client import ConnectorError
from bot.channels.streaming import StreamPolicy
from bot.channels.streaming_reply import INTERRUPTED_NOTE, StreamingReply, StreamOutcome, with_note
from models import ModelError

POLICY = StreamPolicy(interval_s=0.01, limit_s=None, informative_text="Thinking…")


class RecordingAdapter(BotAdapter):
    """Records sends; `refuse(n)` makes the n-th send (1-based) fail with `error`."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[Activity] = []
        self.updated: list[Activity] = []
        self.refusals: dict[int, Exception] = {}
        self._attempts = 0

    async def send_activities(
        self, context: TurnContext, activities: list[Activity]
    ) -> list[ResourceResponse]:
        responses = []
        for activity in activities:
            self._attempts += 1
            if self._attempts in self.refusals:
                raise self.refusals[self._attempts]
            self.sent.append(activity)
            responses.append(ResourceResponse(id=f"id-{self._attempts}"))
        return responses

    async def update_activity(self, context: TurnContext, activity: Activity) -> ResourceResponse:
        self.updated.append(activity)
        return ResourceResponse(id=activity.id)

    async def delete_activity(self, context: TurnContext, reference: ConversationReference) -> None:
        raise NotImplementedError


def turn(adapter: RecordingAdapter) -> TurnContext:
    activity = Activity(
        type="message",
        id="in-1",
        channel_id="msteams",
        conversation=ConversationAccount(id="c1"),
        from_property=ChannelAccount(id="u1"),
        recipient=ChannelAccount(id="b1"),
        text="hi",
    )
    return TurnContext(adapter, activity)


async def words(count: int, delay: float = 0.005) -> AsyncIterator[str]:
    for index in range(count):
        await asyncio.sleep(delay)
        yield f"w{index} "


def stream_type(activity: Activity) -> str | None:
    return next((e.stream_type for e in activity.entities or [] if e.type == "streaminfo"), None)


async def test_a_refused_first_send_falls_back_to_one_plain_message() -> None:
    adapter = RecordingAdapter()
    adapter.refusals[1] = ConnectorError(400, "BadArgument: streaming api is not enabled")
    async with StreamingReply(turn(adapter), POLICY) as stream:
        assert not stream.streaming
        result = await stream.pump(lambda: words(5))
        await stream.finish(result.text.strip())
    assert result.outcome is StreamOutcome.COMPLETED
    assert [(a.type, a.text, stream_type(a)) for a in adapter.sent] == [
        ("message", "w0 w1 w2 w3 w4", None)
    ]


async def test_final_refused_after_stop_sends_nothing_more() -> None:
    adapter = RecordingAdapter()
    stop = ConnectorError(403, "ContentStreamNotAllowed: Content stream was cancelled by user")
    adapter.refusals.update({3: stop, 4: stop})  # Teams refuses everything after Stop
    async with StreamingReply(turn(adapter), POLICY) as stream:
        result = await stream.pump(lambda: words(500))
        await stream.finish(result.text.strip())
    assert result.outcome is StreamOutcome.USER_STOPPED
    assert [stream_type(a) for a in adapter.sent] == ["informative", "streaming"]


async def test_final_refused_without_a_stop_goes_out_as_a_plain_message() -> None:
    adapter = RecordingAdapter()
    async with StreamingReply(turn(adapter), POLICY) as stream:
        result = await stream.pump(lambda: words(3, delay=0))
        adapter.refusals[len(adapter.sent) + 1] = ConnectorError(400, "final not accepted")
        await stream.finish("done")
    assert result.outcome is StreamOutcome.COMPLETED
    final = adapter.sent[-1]
    assert (final.type, final.text, stream_type(final)) == ("message", "done", None)


async def test_teams_time_out_refusal_puts_the_text_into_the_streamed_message() -> None:
    adapter = RecordingAdapter()
    timed_out = Exception(
        "(ContentStreamNotAllowed) Content stream finished due to exceeded streaming time."
    )
    adapter.refusals.update({3: timed_out, 4: timed_out})
    async with StreamingReply(turn(adapter), POLICY) as stream:
        result = await stream.pump(lambda: words(500))
        await stream.finish(result.text.strip())
    assert result.outcome is StreamOutcome.TIME_LIMIT
    assert [(a.id, a.text) for a in adapter.updated] == [("id-1", result.text.strip())]


async def test_an_exception_inside_the_block_still_closes_the_stream() -> None:
    adapter = RecordingAdapter()
    try:
        async with StreamingReply(turn(adapter), POLICY) as stream:
            await stream.pump(lambda: words(4, delay=0))
            raise RuntimeError("bug after generation")
    except RuntimeError:
        pass
    final = adapter.sent[-1]
    assert stream_type(final) == "final"
    assert final.text == with_note("w0 w1 w2 w3", INTERRUPTED_NOTE)


async def test_pieces_that_end_in_a_stray_cancellation_are_a_model_failure() -> None:
    async def cut_off() -> AsyncIterator[str]:
        yield "w0 "
        raise asyncio.CancelledError  # e.g. a timeout of someone else's that landed here

    adapter = RecordingAdapter()
    async with StreamingReply(turn(adapter), POLICY) as stream:
        result = await stream.pump(cut_off)
        await stream.finish(result.text.strip())
    assert result.outcome is StreamOutcome.MODEL_FAILED
    assert isinstance(result.error, ModelError)
    assert result.text == "w0 "


async def test_a_cancelled_turn_still_cancels_the_pump() -> None:
    adapter = RecordingAdapter()

    async def run() -> None:
        async with StreamingReply(turn(adapter), POLICY) as stream:
            await stream.pump(lambda: words(500))

    task = asyncio.create_task(run())
    await asyncio.sleep(0.05)
    task.cancel()
    [outcome] = await asyncio.gather(task, return_exceptions=True)
    assert isinstance(outcome, asyncio.CancelledError)
    assert stream_type(adapter.sent[-1]) == "final"


def throttled(retry_after_s: float) -> ConnectorError:
    return ConnectorError(
        429, "connector answered 429 to typing: Throttled", retry_after_s=retry_after_s
    )


def stream_id(activity: Activity) -> str | None:
    return next((e.stream_id for e in activity.entities or [] if e.type == "streaminfo"), None)


async def test_a_stream_throttled_at_its_start_starts_after_retry_after() -> None:
    """The final message closes the stream the third try started."""
    adapter = RecordingAdapter()
    adapter.refusals.update({1: throttled(0.1), 2: throttled(0.1)})
    began = time.monotonic()
    async with StreamingReply(turn(adapter), POLICY) as stream:
        entered_after = time.monotonic() - began
        result = await stream.pump(lambda: words(60, delay=0.01))
        await stream.finish(result.text.strip())
    kinds = [stream_type(a) for a in adapter.sent]
    assert kinds[0] == "informative" and "streaming" in kinds and kinds[-1] == "final", kinds
    assert stream.streaming and result.outcome is StreamOutcome.COMPLETED
    assert entered_after < 0.05, "the model did not wait for the back-off"
    final = adapter.sent[-1]
    assert final.text == result.text.strip() and stream_id(final) == "id-3"
    assert all(stream_id(a) == "id-3" for a in adapter.sent[1:]), "one stream, the accepted one"


async def test_a_reply_done_before_a_throttled_stream_could_start_is_one_plain_message() -> None:
    adapter = RecordingAdapter()
    adapter.refusals[1] = throttled(5.0)
    began = time.monotonic()
    async with StreamingReply(turn(adapter), POLICY) as stream:
        result = await stream.pump(lambda: words(3, delay=0))
        await stream.finish(result.text.strip())
    assert time.monotonic() - began < 1.0, "the back-off did not hold the reply"
    assert not stream.streaming
    assert [(a.type, a.text, stream_type(a)) for a in adapter.sent] == [
        ("message", "w0 w1 w2", None)
    ]


async def test_an_exception_while_a_throttled_start_waits_sends_nothing_of_a_stream() -> None:
    adapter = RecordingAdapter()
    adapter.refusals[1] = throttled(5.0)
    try:
        async with StreamingReply(turn(adapter), POLICY) as stream:
            await stream.pump(lambda: words(2, delay=0))
            raise RuntimeError("bug after generation")
    except RuntimeError:
        pass
    assert adapter.sent == [], "no stream was opened, so none is closed (the turn apologises)"
