"""The per-user rate limit, checked on /api/messages before anything is stored.

At most `per_minute` messages per user in each minute of the clock (fixed windows, counted in the
configured store, so every replica sees the same counts). A user is the identity the channel
vouches for (bot/turns/identity.py); where none does, the conversation is counted, so a client
that changes its `from.id` with every message is still one sender. A message over
the limit is answered 429 with Retry-After (the seconds left in the window) and never reaches the
inbox or the dialogs; the first one of a window also gets one polite reply, sent at once outside
the turn order, so a flood costs one outbound message per window, not one per message. Only
messages to the bot count: conversation updates, invokes, the bot's own notices and group
messages that do not @mention it do not.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from botbuilder.core import TurnContext
from botbuilder.schema import Activity, ActivityTypes
from botframework.connector.auth.authenticate_request_result import AuthenticateRequestResult

from bot.channels.connector_client import RetryingCloudAdapter
from bot.storage import RateCounts
from bot.turns.identity import rate_key
from bot.turns.teams_rules import addressed_to_bot
from dialogs.answer.apologies import OUTCOME_KEY

logger = logging.getLogger(__name__)

WINDOW_S = 60
NOTICE = "You're sending messages faster than I can answer. Please wait {wait} s."


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after_s: int = 0
    tell_user: bool = False  # the first refused message of the window


class UserRateLimit:
    """Counts each user's messages in `counts`; 0 `per_minute` turns the limit off."""

    def __init__(
        self, counts: RateCounts, per_minute: int, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._counts = counts
        self._per_minute = per_minute
        self._clock = clock
        self._notices: set[asyncio.Task[None]] = set()

    async def check(self, activity: Activity, user: str | None = None) -> RateDecision:
        """Count `activity` if it is a message, for `user` (the vouched identity; None: the
        conversation); StorageUnavailable if the store cannot count."""
        if (
            self._per_minute <= 0
            or activity.type != ActivityTypes.message
            or not addressed_to_bot(activity)  # a group message for others: never answered
        ):
            return RateDecision(True)
        now = self._clock()
        window = int(now // WINDOW_S)
        count = await self._counts.hit(rate_key(activity, user), window, 2 * WINDOW_S)
        if count <= self._per_minute:
            return RateDecision(True)
        wait = max(1, math.ceil((window + 1) * WINDOW_S - now))
        return RateDecision(False, wait, tell_user=count == self._per_minute + 1)

    def tell_user(
        self,
        adapter: RetryingCloudAdapter,
        auth: AuthenticateRequestResult,
        activity: Activity,
        wait_s: int,
    ) -> None:
        """Send the polite reply in the background (the 429 does not wait for it)."""

        async def notice(turn_context: TurnContext) -> None:
            turn_context.turn_state[OUTCOME_KEY] = "rate_limited"
            await turn_context.send_activity(NOTICE.format(wait=wait_s))

        async def send() -> None:
            try:
                await adapter.process_activity(auth, activity, notice)
            except Exception:
                logger.warning("could not send the rate-limit notice", exc_info=True)

        task = asyncio.create_task(send())
        self._notices.add(task)
        task.add_done_callback(self._notices.discard)

    async def close(self) -> None:
        """Wait briefly for notices being sent, then stop them; close the counts."""
        if self._notices:
            _, pending = await asyncio.wait(self._notices, timeout=5)
            for task in pending:
                task.cancel()
        await self._counts.close()
