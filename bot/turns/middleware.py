"""Middleware around every turn: one structured log line (the per-user rate limit is checked
before a turn is stored: bot/http/rate_limit.py)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable

from botbuilder.core import Middleware, TurnContext
from botbuilder.schema import ActivityTypes

from dialogs.answer.apologies import OUTCOME_KEY

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
