"""The per-user rate limit, checked on /api/messages before anything is stored.

At most `per_minute` activities per user in each minute of the clock (fixed windows, counted in
the configured store, so every replica sees the same counts). A user is the identity the channel
vouches for (bot/turns/identity.py); where none does, the conversation is counted, so a client
that changes its `from.id` with every activity is still one sender. Every activity
type counts (messages, invokes such as feedback clicks, reactions, conversation updates, events):
each costs an inbox entry or a turn under the conversation's lock. (A group message that does not
@mention the bot costs neither: the endpoint acknowledges it without storing it, uncounted.) An
activity over the limit is answered 429 with Retry-After (the seconds
left in the window) and never reaches the inbox or the dialogs. The first refused message
addressed to the bot in a window also gets one polite reply, sent at once outside the turn
order, so a flood costs at most one outbound message per window, not one per activity; other
refused activities get the 429 alone (the bot answers none of them with a message).
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
    tell_user: bool = False  # the first refused message to the bot in the window


class UserRateLimit:
    """Counts each user's activities in `counts`; 0 `per_minute` turns the limit off."""

    def __init__(
        self, counts: RateCounts, per_minute: int, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._counts = counts
        self._per_minute = per_minute
        self._clock = clock
        self._notices: set[asyncio.Task[None]] = set()

    async def check(self, activity: Activity, user: str | None = None) -> RateDecision:
        """Count `activity`, whatever its type, for `user` (the vouched identity; None: the
        conversation); StorageUnavailable if the store cannot count."""
        if self._per_minute <= 0:
            return RateDecision(True)
        now = self._clock()
        window = int(now // WINDOW_S)
        key = rate_key(activity, user)
        count = await self._counts.hit(key, window, 2 * WINDOW_S)
        if count <= self._per_minute:
            return RateDecision(True)
        wait = max(1, math.ceil((window + 1) * WINDOW_S - now))
        tell = await self.notice_due(activity, key)
        return RateDecision(False, wait, tell_user=tell)

    async def notice_due(self, activity: Activity, scope: str) -> bool:
        """Whether the refused `activity` gets the polite reply: only a message addressed to the
        bot (a group message for others is never answered), once a window for each `scope` (a
        user, a conversation). StorageUnavailable if the store cannot count."""
        if activity.type != ActivityTypes.message or not addressed_to_bot(activity):
            return False
        window = int(self._clock() // WINDOW_S)
        return await self._counts.hit(f"{scope}/told", window, 2 * WINDOW_S) == 1

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
