"""A typing indicator that lasts while a reply is produced, and stops when the reply is sent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from types import TracebackType

from botbuilder.core import TurnContext
from botbuilder.schema import Activity, ActivityTypes, ResourceResponse

logger = logging.getLogger(__name__)


class TypingIndicator:
    """``async with TypingIndicator(turn_context, interval):`` sends typing now and every
    `interval` seconds until the block exits or the turn sends its first message — whichever
    comes first — so no typing ever follows a reply. A failing typing send only stops the loop.
    """

    def __init__(self, turn_context: TurnContext, interval: float) -> None:
        self._context = turn_context
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> TypingIndicator:
        if await self._send_typing():
            self._context.on_send_activities(self._stop_before_message)
            self._task = asyncio.create_task(self._loop())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stop()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            if not await self._send_typing():
                return

    async def _send_typing(self) -> bool:
        try:
            await self._context.send_activity(Activity(type=ActivityTypes.typing))
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
        if any(a.type != ActivityTypes.typing for a in activities):
            await self._stop()
        return await next_send()
