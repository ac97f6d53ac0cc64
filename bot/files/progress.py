"""What the user sees while a file is read: in Teams (one-to-one) and Web Chat an informative
update ("Reading fare-rules.pdf…") that the acknowledgement then ends as the stream's final
message; elsewhere a typing indicator, then the acknowledgement as a message."""

from __future__ import annotations

import logging

from botbuilder.core import MessageFactory, TurnContext
from botbuilder.schema import Activity, ActivityTypes

from bot.channels.streaming import StreamOptions, final_message, informative_update, stream_policy

logger = logging.getLogger(__name__)


class Progress:
    def __init__(self, turn_context: TurnContext, options: StreamOptions) -> None:
        self._turn_context = turn_context
        self._options = options
        self._stream_id: str | None = None

    async def reading(self, names: list[str]) -> None:
        activity = self._turn_context.activity
        conversation_type = (
            activity.conversation.conversation_type if activity.conversation else None
        )
        policy = stream_policy(activity.channel_id, self._options, conversation_type)
        try:
            if policy is None:
                await self._turn_context.send_activity(Activity(type=ActivityTypes.typing))
                return
            sent = await self._turn_context.send_activity(
                informative_update(f"Reading {', '.join(names)}…", 1)
            )
            self._stream_id = sent.id if sent is not None else None
        except Exception as error:  # progress is a courtesy: the reading goes on
            logger.warning("files: progress not sent (%s)", type(error).__name__)

    async def done(self, text: str) -> None:
        """The acknowledgement: the final message of the informative stream, or a message."""
        if self._stream_id is not None:
            await self._turn_context.send_activity(final_message(text, self._stream_id))
        else:
            await self._turn_context.send_activity(MessageFactory.text(text))
