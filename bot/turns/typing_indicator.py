"""A typing indicator that lasts while a reply is produced, and stops when the reply is sent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress

from botbuilder.core import TurnContext
from botbuilder.schema import Activity, ActivityTypes, DeliveryModes, ResourceResponse

from bot.channels.streaming import is_stream_activity

logger = logging.getLogger(__name__)


class TypingIndicator:
    """``async with TypingIndicator(turn_context, interval):`` sends typing now and every
    `interval` seconds until the block exits, the turn sends its first message, or the first
    activity of a streamed reply — whichever comes first — so no typing ever follows a reply or
    mixes into a stream. A failing typing send only stops the loop.
    """

    def __init__(self, turn_context: TurnContext, interval: float) -> None:
        self._context = turn_context
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> TypingIndicator:
        if self._context.activity.delivery_mode == DeliveryModes.expect_replies:
            return self  # the replies travel in the HTTP response: there is no one to show typing
        if await self._send_typing():
            self._context.on_send_activities(self._stop_before_message)
            self._task = asyncio.create_task(self._loop())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stop()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            if not await self._send_typing():
                return

    async def _send_typing(self) -> bool:
        # Straight to the adapter, as botbuilder's ShowTypingMiddleware does: a send through the
        # turn context would mark the turn as "responded", and prompts then skip their retry.
        context = self._context
        typing = TurnContext.apply_conversation_reference(
            Activity(type=ActivityTypes.typing),
            TurnContext.get_conversation_reference(context.activity),
        )
        try:
            await context.adapter.send_activities(context, [typing])
        except Exception:  # the reply matters more than the indicator
            logger.debug("typing indicator stopped", exc_info=True)
            return False
        return True

    async def _stop(self) -> None:
        task, self._task = self._task, None
        if task is None or task is asyncio.current_task():
            return
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task

    async def _stop_before_message(
        self,
        context: TurnContext,
        activities: list[Activity],
        next_send: Callable[[], Awaitable[list[ResourceResponse]]],
    ) -> list[ResourceResponse]:
        # A streamed reply's updates are typing activities too: plain typing must not mix in.
        if any(a.type != ActivityTypes.typing or is_stream_activity(a) for a in activities):
            await self._stop()
        return await next_send()
