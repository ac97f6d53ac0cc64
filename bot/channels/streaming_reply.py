"""One streamed reply: feeds the model's text to the channel at the channel's pace, and stops the
model as soon as the channel refuses the stream (the user pressed Stop, the channel ended it), the
stream reaches its time limit, or the turn is cancelled.

    async with StreamingReply(turn_context, policy) as stream:   # sends the informative update
        result = await stream.pump(lambda: model.stream(prompt, params))
        await stream.finish(final_text_for(result))                # the final message

The stream starts when the channel accepts the informative update; if that is throttled (429,
412, 502 or 504), the model starts at once and the update is tried again after the back-off
(Retry-After honoured) until the reply is complete. At most one update is in flight, the next
goes out only `interval_s` after the previous one returned, and a throttled update (or one with
no answer in time) makes the stream back off and skip the updates in between. A started stream
always ends with the final message, even when the block is left without `finish` (an exception,
a cancelled turn: what was produced and a short note). When the channel refuses the stream
otherwise, or the reply was complete before the stream could start, the reply is one plain
message. A reply longer than the channel's message size goes out in parts split at paragraphs.

Over 300 lines because the stream is one state machine (the informative update, paced updates,
back-off, the final message, size and time refusals) whose parts all share its state.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import suppress

from botbuilder.core import MessageFactory, TurnContext
from botbuilder.schema import Activity, ActivityTypes

from bot.channels.message_parts import final_parts, split_message, update_text
from bot.channels.stream_pacing import StreamPacer, cancel_tasks
from bot.channels.streaming import (
    Refusal,
    SendRefusal,
    StreamPolicy,
    classify_send_error,
    final_message,
    informative_update,
    streaming_update,
)
from dialogs.answer.reply import INTERRUPTED_NOTE, StreamOutcome, StreamResult, with_note
from models import ModelError

__all__ = ["INTERRUPTED_NOTE", "StreamOutcome", "StreamResult", "StreamingReply", "with_note"]

logger = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 5.0  # how long closing an interrupted stream may take


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
        self._starting = False  # the informative update was throttled: it is tried again
        self._opened_at = 0.0
        self._pacer = StreamPacer(policy.interval_s, clock)
        self._size_refused = False  # the channel refused the stream's size: the rest follows
        self._wake = asyncio.Event()  # new text, or the stream is finishing
        self._refused = asyncio.Event()
        self._refusal: SendRefusal | None = None
        self._finishing = False
        self._in_flight = False  # a send is waiting for the channel's answer
        self._finished = False
        self._sender: asyncio.Task[None] | None = None

    @property
    def streaming(self) -> bool:
        """True once the channel accepted the informative update: the final message closes the
        stream. False while a throttled start waits to be tried again, and for good when the
        channel refused the stream (the reply then goes out as one plain message)."""
        return self._streaming

    @property
    def stream_id(self) -> str | None:
        return self._stream_id

    async def __aenter__(self) -> StreamingReply:
        self._opened_at = self._clock()
        self._starting = True
        if await self._start():
            self._sender = asyncio.create_task(self._send_updates())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            if not self._finished and (self._streaming or self._starting):
                with suppress(Exception):
                    await asyncio.wait_for(self._close_interrupted(), CLOSE_TIMEOUT_S)
        finally:
            await cancel_tasks(self._sender)

    async def _close_interrupted(self) -> None:
        await self._stop_sender()  # a start in flight may still open the stream
        if self._streaming:
            await self.finish(with_note(self._text, INTERRUPTED_NOTE))

    async def _start(self) -> bool:
        """Send the informative update. True while the stream is open or may still start (the
        update was throttled: `_send_updates` tries again after the back-off); False when the
        channel refused the stream, whose reply then goes out as one plain message."""
        self._sequence = 1
        try:
            await self._send(informative_update(self._policy.informative_text, self._sequence))
        except Exception as error:  # e.g. "streaming api is not enabled": one message instead
            refusal = classify_send_error(error)
            # Only an answer that says "later" is tried again: after silence the update may have
            # been delivered, and another would open a second stream.
            self._starting = refusal.kind is Refusal.THROTTLED and refusal.status is not None
            logger.info(
                "channel refused to start a stream conversation=%s (again later: %s): %s",
                self._conversation_id,
                self._starting,
                error,
            )
            if self._starting:
                self._pacer.throttled(refusal.retry_after_s)
                self._wake.set()
            return self._starting
        self._starting, self._streaming = False, True
        self._wake.set()  # show what the model wrote while the start waited
        return True

    async def pump(self, open_pieces: Callable[[], AsyncIterator[str]]) -> StreamResult:
        """Run the model (`open_pieces()` starts it) until it ends, the channel refuses the
        stream, or the stream's time limit passes; then close the model's iterator, which stops
        generation on the engine. Exceptions other than ModelError propagate; a CancelledError
        from the pieces (not a cancellation of the caller) is a ModelError."""
        consumer = asyncio.create_task(self._consume(open_pieces))
        refused = asyncio.create_task(self._refused.wait())
        try:
            done, _ = await asyncio.wait(
                {consumer, refused}, timeout=self._time_left(), return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            await cancel_tasks(consumer, refused)
        if consumer in done:
            if consumer.cancelled():
                # Not this turn's cancellation (that ends the wait above): a CancelledError that
                # escaped from the model's side ends the reply as a model failure.
                cut_off = ModelError("the reply was cancelled")
                return StreamResult(self._text, StreamOutcome.MODEL_FAILED, cut_off)
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
        if refusal.kind is Refusal.ENDED:
            return StreamResult(self._text, StreamOutcome.STREAM_ENDED)
        return StreamResult(self._text, StreamOutcome.SEND_FAILED)

    async def finish(
        self, text: str, *, decorate: Callable[[Activity], object] | None = None
    ) -> None:
        """Send the final message (the end of the stream, or the one plain message), then the
        rest of a reply too long for one message. `decorate` adds to each message of the reply
        (the AI label, feedback buttons)."""
        if self._finished:
            return
        self._finished = True
        await self._stop_sender()
        if not self._streaming:  # refused, or never started: one plain message
            for part in split_message(text, self._policy.max_message_bytes):
                await self._context.send_activity(_decorated(MessageFactory.text(part), decorate))
            return
        limit = self._policy.max_message_bytes
        first, *rest = final_parts(text, self._sent_text, limit, size_refused=self._size_refused)
        await self._pacer.wait()
        try:
            await self._send(_decorated(final_message(first, self._stream_id), decorate))
        except Exception as error:
            await self._final_refused(first, error, decorate)
        for part in rest:
            await self._context.send_activity(_decorated(MessageFactory.text(part), decorate))

    async def _stop_sender(self) -> None:
        """No more updates (nor start attempts): a send in flight completes first; a back-off
        is cut short (the final message waits out the pace itself)."""
        self._finishing = True
        self._wake.set()
        if self._sender is not None and self._in_flight:
            await asyncio.wait({self._sender})
        await cancel_tasks(self._sender)

    async def _final_refused(
        self, text: str, error: Exception, decorate: Callable[[Activity], object] | None
    ) -> None:
        refusal = self._refusal or classify_send_error(error)
        if refusal.time_limit and self._stream_id is not None:
            # Teams closed the stream itself: the text goes into the streamed message (or, if
            # that fails too, into a new one).
            update = Activity(type=ActivityTypes.message, id=self._stream_id, text=text)
            try:
                await self._context.update_activity(_decorated(update, decorate))
                return
            except Exception:
                logger.info("streamed message not updated conversation=%s", self._conversation_id)
        elif self._refusal is not None:  # the user stopped the stream; the channel closed it
            logger.info("final message refused after stop conversation=%s", self._conversation_id)
            return
        else:
            logger.warning(
                "final message of a stream failed conversation=%s; sending a plain message",
                self._conversation_id,
            )
        await self._context.send_activity(_decorated(MessageFactory.text(text), decorate))

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
        """The one task that sends streaming updates: at most one in flight, each with the whole
        text so far, the next `interval_s` after the previous returned. A throttled update makes
        it back off (the text grows meanwhile: the updates in between are skipped); a size
        refusal ends the updates, and any other refusal ends the stream. While a throttled start
        waits, it tries the informative update again first."""
        while True:
            await self._wake.wait()
            await self._pacer.wait()
            self._wake.clear()
            if self._finishing:
                return
            if not self._streaming:
                if not await self._start():
                    return  # refused: the reply goes out as one plain message
                continue
            if not self._policy.text_updates:
                continue
            text = update_text(self._text, self._policy.max_message_bytes)
            if text is None:
                return  # too long for one message: the final and the next ones carry the rest
            if not text.strip() or not text.startswith(self._sent_text) or text == self._sent_text:
                continue  # nothing new (an update must hold everything shown before)
            try:
                await self._send(streaming_update(text, self._sequence + 1, self._stream_id))
            except Exception as error:
                if not self._refused_update(classify_send_error(error)):
                    return
                continue
            self._sequence += 1
            self._sent_text = text

    def _refused_update(self, refusal: SendRefusal) -> bool:
        """Note a refused update; True when the stream goes on."""
        logger.info(
            "stream update refused conversation=%s status=%s kind=%s: %s",
            self._conversation_id,
            refusal.status,
            refusal.kind.value,
            refusal.detail,
        )
        if refusal.kind is Refusal.THROTTLED:
            self._pacer.throttled(refusal.retry_after_s)
            self._wake.set()  # try again (with the text by then) once the back-off is over
            return True
        if refusal.kind is Refusal.TOO_LARGE:
            self._size_refused = True
            return False
        self._refusal = refusal
        self._refused.set()
        return False

    async def _send(self, activity: Activity) -> None:
        self._in_flight = True
        try:
            response = await self._context.send_activity(activity)
        finally:
            self._in_flight = False
        self._pacer.sent()
        if self._stream_id is None:
            # The first accepted send's id names the stream (Teams and Web Chat both work this way).
            self._stream_id = (response.id if response is not None else None) or str(uuid.uuid4())

    def _time_left(self) -> float | None:
        # A stream that starts late counts from its first try: it ends early, never late.
        if not (self._streaming or self._starting) or self._policy.limit_s is None:
            return None
        return max(0.0, self._opened_at + self._policy.limit_s - self._clock())

    @property
    def _conversation_id(self) -> str | None:
        conversation = self._context.activity.conversation
        return conversation.id if conversation is not None else None


def _decorated(activity: Activity, decorate: Callable[[Activity], object] | None) -> Activity:
    if decorate is not None:
        decorate(activity)
    return activity
