"""One streamed reply: feeds the model's text to the channel at the channel's pace, and stops the
model as soon as the channel refuses the stream (the user pressed Stop), the stream reaches its
time limit, or the turn is cancelled.

    async with StreamingReply(turn_context, policy) as stream:   # sends the informative update
        result = await stream.pump(lambda: model.stream(prompt, params))
        await stream.finish(final_text_for(result))                # the final message

Leaving the block without `finish` (an exception, a cancelled turn) still closes the stream with
what was produced and a short note, so no stream is ever left open. When the channel refuses the
very first send, the reply falls back to one plain message.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from types import TracebackType

from botbuilder.core import MessageFactory, TurnContext
from botbuilder.schema import Activity, ActivityTypes, Entity

from dialogs.streaming import (
    SendRefusal,
    StreamPolicy,
    classify_send_error,
    final_message,
    informative_update,
    streaming_update,
)
from models import ModelError

logger = logging.getLogger(__name__)

INTERRUPTED_NOTE = "(Sorry, my reply was interrupted.)"
CLOSE_TIMEOUT_S = 5.0  # how long closing an interrupted stream may take


class StreamOutcome(enum.Enum):
    COMPLETED = "completed"  # the model finished its reply
    MODEL_FAILED = "model failed"  # the model raised a ModelError (see StreamResult.error)
    USER_STOPPED = "user stopped"  # the channel refused an update: the user pressed Stop
    TIME_LIMIT = "time limit"  # the stream reached the channel's time limit
    SEND_FAILED = "send failed"  # an update could not be delivered (connector down, 5xx)


@dataclass(frozen=True)
class StreamResult:
    text: str  # everything the model produced, unstripped
    outcome: StreamOutcome
    error: ModelError | None = None


def with_note(text: str, note: str) -> str:
    """What was produced, then a short note on its own paragraph (the note alone if nothing was)."""
    text = text.strip()
    return f"{text}\n\n{note}" if text else note


class StreamingReply:
    """Streams one reply into a turn. `clock` is injectable for tests (seconds, monotonic)."""

    def __init__(
        self,
        turn_context: TurnContext,
        policy: StreamPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._context = turn_context
        self._policy = policy
        self._clock = clock
        self._text = ""  # produced so far
        self._sent_text = ""  # as last sent in a streaming update
        self._sequence = 0
        self._stream_id: str | None = None
        self._streaming = False  # the channel accepted the informative update
        self._opened_at = 0.0
        self._last_send = float("-inf")
        self._wake = asyncio.Event()  # new text, or the stream is finishing
        self._refused = asyncio.Event()
        self._refusal: SendRefusal | None = None
        self._finishing = False
        self._finished = False
        self._sender: asyncio.Task[None] | None = None

    @property
    def streaming(self) -> bool:
        """False when the channel refused the stream at once: the reply goes out as one message."""
        return self._streaming

    @property
    def stream_id(self) -> str | None:
        return self._stream_id

    async def __aenter__(self) -> StreamingReply:
        self._opened_at = self._clock()
        self._sequence = 1
        try:
            await self._send(informative_update(self._policy.informative_text, self._sequence))
        except Exception as error:  # e.g. "streaming api is not enabled": one message instead
            logger.info(
                "channel refused to stream conversation=%s: %s", self._conversation_id, error
            )
            return self
        self._streaming = True
        self._sender = asyncio.create_task(self._send_updates())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._streaming and not self._finished:
                with suppress(Exception):
                    await asyncio.wait_for(
                        self.finish(with_note(self._text, INTERRUPTED_NOTE)), CLOSE_TIMEOUT_S
                    )
        finally:
            await _cancel(self._sender)

    async def pump(self, open_pieces: Callable[[], AsyncIterator[str]]) -> StreamResult:
        """Run the model (`open_pieces()` starts it) until it ends, the channel refuses the
        stream, or the stream's time limit passes; then close the model's iterator, which stops
        generation on the engine. Exceptions other than ModelError propagate."""
        consumer = asyncio.create_task(self._consume(open_pieces))
        refused = asyncio.create_task(self._refused.wait())
        try:
            done, _ = await asyncio.wait(
                {consumer, refused}, timeout=self._time_left(), return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            await _cancel(consumer, refused)
        if consumer in done:
            error = consumer.exception()
            if error is None:
                return StreamResult(self._text, StreamOutcome.COMPLETED)
            if isinstance(error, ModelError):
                return StreamResult(self._text, StreamOutcome.MODEL_FAILED, error)
            raise error
        refusal = self._refusal
        if refusal is None or refusal.time_limit:
            return StreamResult(self._text, StreamOutcome.TIME_LIMIT)
        if refusal.user_stopped:
            return StreamResult(self._text, StreamOutcome.USER_STOPPED)
        return StreamResult(self._text, StreamOutcome.SEND_FAILED)

    async def finish(self, text: str, entities: Sequence[Entity] = ()) -> None:
        """Send the final message: the end of the stream, or the one plain message; `entities`
        (citations, the AI label) go on it."""
        if self._finished:
            return
        self._finished = True
        if not self._streaming:
            await self._context.send_activity(_with_entities(MessageFactory.text(text), entities))
            return
        self._finishing = True
        self._wake.set()
        if self._sender is not None:
            await asyncio.wait({self._sender})  # a send in flight completes; then it stops
        await self._pace()
        try:
            await self._send(_with_entities(final_message(text, self._stream_id), entities))
        except Exception as error:
            await self._final_refused(text, error, entities)

    async def _final_refused(
        self, text: str, error: Exception, entities: Sequence[Entity] = ()
    ) -> None:
        refusal = self._refusal or classify_send_error(error)
        if refusal.time_limit and self._stream_id is not None:
            # Teams closed the stream itself: put the text into the streamed message.
            update = Activity(type=ActivityTypes.message, id=self._stream_id, text=text)
            with suppress(Exception):
                await self._context.update_activity(update)
            return
        if self._refusal is not None:  # the user stopped the stream; the channel closed it
            logger.info("final message refused after stop conversation=%s", self._conversation_id)
            return
        logger.warning(
            "final message of a stream failed conversation=%s; sending a plain message",
            self._conversation_id,
        )
        await self._context.send_activity(_with_entities(MessageFactory.text(text), entities))

    async def _consume(self, open_pieces: Callable[[], AsyncIterator[str]]) -> None:
        pieces = open_pieces()
        try:
            async for piece in pieces:
                self._text += piece
                self._wake.set()
        finally:
            aclose = getattr(pieces, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _send_updates(self) -> None:
        """The one task that sends streaming updates: at most one per interval, each with the
        whole text so far; it stops at the first refusal or when the stream finishes."""
        while True:
            await self._wake.wait()
            await self._pace()
            self._wake.clear()
            if self._finishing:
                return
            text = self._text.lstrip()
            if not text.strip() or text == self._sent_text:
                continue
            self._sequence += 1
            try:
                await self._send(streaming_update(text, self._sequence, self._stream_id))
            except Exception as error:
                self._refusal = classify_send_error(error)
                logger.info(
                    "stream refused conversation=%s status=%s: %s",
                    self._conversation_id,
                    self._refusal.status,
                    self._refusal.detail,
                )
                self._refused.set()
                return
            self._sent_text = text

    async def _send(self, activity: Activity) -> None:
        response = await self._context.send_activity(activity)
        self._last_send = self._clock()
        if self._stream_id is None:
            # The first send's id names the stream (Teams and Web Chat both work this way).
            self._stream_id = (response.id if response is not None else None) or str(uuid.uuid4())

    async def _pace(self) -> None:
        delay = self._last_send + self._policy.interval_s - self._clock()
        if delay > 0:
            await asyncio.sleep(delay)

    def _time_left(self) -> float | None:
        if not self._streaming or self._policy.limit_s is None:
            return None
        return max(0.0, self._opened_at + self._policy.limit_s - self._clock())

    @property
    def _conversation_id(self) -> str | None:
        conversation = self._context.activity.conversation
        return conversation.id if conversation is not None else None


def _with_entities(activity: Activity, entities: Sequence[Entity]) -> Activity:
    if entities:
        activity.entities = [*(activity.entities or []), *entities]
    return activity


async def _cancel(*tasks: asyncio.Task[object] | None) -> None:
    """Cancel tasks that still run and wait until they have ended, whatever they raised.

    Only the caller's own cancellation propagates from here.
    """
    pending = {task for task in tasks if task is not None}
    if not pending:
        return
    for task in pending:
        task.cancel()
    await asyncio.wait(pending)
    for task in pending:
        if not task.cancelled():
            task.exception()  # retrieved: the caller reads it from the task if it needs it
