"""Replies rendered for the turn's channel: the `ReplyChannel` the chat dialog is given.

Teams one-to-one chats, Direct Line and Web Chat stream (bot/channels/streaming_reply.py); every
other channel gets one message. The final message carries the reply's citations as the channel
shows them (bot/channels/citations.py) and, for a model's reply, the AI label and, in Teams, the
feedback buttons (bot/channels/ai_content.py). A reply over Teams' message size is split.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from dataclasses import replace
from functools import partial

from botbuilder.core import MessageFactory, TurnContext
from botbuilder.schema import Activity

from bot.channels.ai_content import mark_ai_reply
from bot.channels.citations import cited_message
from bot.channels.message_parts import split_message
from bot.channels.streaming import TEAMS, StreamOptions, stream_policy
from bot.channels.streaming_reply import StreamingReply
from dialogs.answer.reply import Reply, ReplyStream, StreamOutcome, StreamResult
from models import ModelError

Decorate = Callable[[Activity], object]


class ChannelReplies:
    """Renders `Reply`s for the turn's channel. `options` say how replies stream;
    `feedback_buttons` puts Teams' thumbs up / down under each model reply."""

    def __init__(
        self, options: StreamOptions | None = None, *, feedback_buttons: bool = True
    ) -> None:
        self._options = options or StreamOptions()
        self._feedback_buttons = feedback_buttons

    @asynccontextmanager
    async def open(
        self, turn_context: TurnContext, *, show_text: bool = True, informative: str | None = None
    ) -> AsyncIterator[ReplyStream]:
        activity = turn_context.activity
        conversation = activity.conversation
        conversation_type = conversation.conversation_type if conversation else None
        policy = stream_policy(activity.channel_id, self._options, conversation_type)
        if policy is None:
            yield _OneMessage(self, turn_context)
            return
        policy = replace(
            policy,
            text_updates=show_text,
            informative_text=informative or policy.informative_text,
        )
        async with StreamingReply(turn_context, policy) as stream:
            yield _StreamedReply(self, turn_context, stream)

    async def send(self, turn_context: TurnContext, reply: Reply) -> None:
        text, decorate = self.render(turn_context, reply)
        channel = (turn_context.activity.channel_id or "").lower()
        limit = self._options.teams_max_message_bytes if channel == TEAMS else None
        for part in split_message(text, limit):
            message = MessageFactory.text(part)
            if decorate is not None:
                decorate(message)
            await turn_context.send_activity(message)

    def render(self, turn_context: TurnContext, reply: Reply) -> tuple[str, Decorate | None]:
        """The reply's text on this channel (with its citation references or Sources line) and
        what marks each of its messages (None for a reply the model did not write)."""
        channel = turn_context.activity.channel_id
        text, claims = cited_message(channel, reply.text, reply.citations)
        if not reply.generated:
            return text, None
        return text, partial(
            mark_ai_reply, channel_id=channel, feedback=self._feedback_buttons, citations=claims
        )


class _OneMessage:
    """A reply on a channel that does not stream: the model's text is collected, then sent as
    one message. Nothing of a reply that failed was shown, so its result keeps no text."""

    def __init__(self, replies: ChannelReplies, turn_context: TurnContext) -> None:
        self._replies = replies
        self._context = turn_context
        self._text = ""
        self._finished = False

    async def pump(self, open_pieces: Callable[[], AsyncIterator[str]]) -> StreamResult:
        try:
            async with aclosing(open_pieces()) as pieces:
                async for piece in pieces:
                    self._text += piece
        except ModelError as error:
            return StreamResult("", StreamOutcome.MODEL_FAILED, error)
        return StreamResult(self._text, StreamOutcome.COMPLETED)

    async def finish(self, reply: Reply) -> None:
        if not self._finished:
            self._finished = True
            await self._replies.send(self._context, reply)


class _StreamedReply:
    """A reply streamed to the channel (which may still refuse the stream at once: then
    StreamingReply sends one message)."""

    def __init__(
        self, replies: ChannelReplies, turn_context: TurnContext, stream: StreamingReply
    ) -> None:
        self._replies = replies
        self._context = turn_context
        self._stream = stream

    async def pump(self, open_pieces: Callable[[], AsyncIterator[str]]) -> StreamResult:
        return await self._stream.pump(open_pieces)

    async def finish(self, reply: Reply) -> None:
        text, decorate = self._replies.render(self._context, reply)
        await self._stream.finish(text, decorate=decorate)
