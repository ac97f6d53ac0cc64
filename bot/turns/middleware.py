"""Middleware around every turn: one structured log line, and a per-user rate limit."""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

from botbuilder.core import Middleware, TurnContext
from botbuilder.schema import ActivityTypes

from bot.turns.teams_rules import addressed_to_bot
from dialogs.chat_dialog import OUTCOME_KEY

turn_logger = logging.getLogger("botloom.turn")


class TurnLogMiddleware(Middleware):
    """Logs one JSON line per turn: conversation, channel, type, outcome, latency, replies.

    Message text and user names appear only when `log_messages` is on; tokens and secrets never.
    """

    def __init__(self, *, log_messages: bool = False) -> None:
        self._log_messages = log_messages

    async def on_turn(self, context: TurnContext, logic: Callable[[], Awaitable]) -> None:
        started = time.perf_counter()
        replies = 0

        async def count(ctx: TurnContext, activities: list, next_send: Callable[[], Awaitable]):  # type: ignore[no-untyped-def]
            nonlocal replies
            replies += sum(1 for a in activities if a.type == ActivityTypes.message)
            return await next_send()

        context.on_send_activities(count)
        outcome = None
        try:
            await logic()
        except Exception:
            outcome = "error"
            raise
        finally:
            activity = context.activity
            line = {
                "event": "turn",
                "conversation": activity.conversation.id if activity.conversation else None,
                "channel": activity.channel_id,
                "type": activity.type,
                "outcome": outcome or context.turn_state.get(OUTCOME_KEY, "ok"),
                "latency_ms": round((time.perf_counter() - started) * 1000, 1),
                "replies": replies,
            }
            if self._log_messages:
                line["text"] = activity.text
                line["user"] = activity.from_property.name if activity.from_property else None
            turn_logger.info(json.dumps(line))


class RateLimitMiddleware(Middleware):
    """At most `per_minute` messages per user (channel + user id) in any 60 s; the rest get a
    polite answer instead of reaching the dialogs. 0 turns the limit off."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._per_minute = per_minute
        self._clock = clock
        self._recent: dict[str, deque[float]] = {}

    async def on_turn(self, context: TurnContext, logic: Callable[[], Awaitable]) -> None:
        activity = context.activity
        if (
            self._per_minute <= 0
            or activity.type != ActivityTypes.message
            or not addressed_to_bot(activity)  # a group message for others: not answered at all
        ):
            await logic()
            return
        user = (
            f"{activity.channel_id}/{activity.from_property.id if activity.from_property else ''}"
        )
        now = self._clock()
        stamps = self._recent.setdefault(user, deque())
        while stamps and now - stamps[0] >= 60:
            stamps.popleft()
        if len(stamps) >= self._per_minute:
            wait = max(1, round(60 - (now - stamps[0])))
            context.turn_state[OUTCOME_KEY] = "rate_limited"
            await context.send_activity(
                f"You're sending messages faster than I can answer. Please wait {wait} s."
            )
            return
        stamps.append(now)
        self._forget_idle(now)
        await logic()

    def _forget_idle(self, now: float) -> None:
        """Keep memory bounded: drop users whose last message is over a minute old."""
        if len(self._recent) > 10_000:
            for user in [u for u, s in self._recent.items() if not s or now - s[-1] >= 60]:
                del self._recent[user]
