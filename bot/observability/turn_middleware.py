"""Botbuilder middleware for observability: the dialog's span and the turn counter, and the daily
token quota (BOTLOOM_TOKENS_PER_USER_PER_DAY)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from botbuilder.core import Middleware, TurnContext
from botbuilder.schema import ActivityTypes
from opentelemetry.trace import Status, StatusCode, Tracer

from bot.observability.metrics import BotMetrics
from bot.observability.usage import UsageStore, user_of
from dialogs.answer.apologies import OUTCOME_KEY

QUOTA_OUTCOME = "quota"


class TurnTelemetryMiddleware(Middleware):
    """A `botloom.dialog` span around the bot's logic (Bot Framework ids as attributes, the text
    only with `log_messages`), and `botloom_turns_total` by channel and outcome."""

    def __init__(self, tracer: Tracer, metrics: BotMetrics, *, log_messages: bool = False) -> None:
        self._tracer = tracer
        self._metrics = metrics
        self._log_messages = log_messages

    async def on_turn(self, context: TurnContext, logic: Callable[[], Awaitable]) -> None:
        activity = context.activity
        attributes = {
            "botloom.channel": activity.channel_id or "",
            "botloom.conversation.id": activity.conversation.id if activity.conversation else "",
            "botloom.activity.id": activity.id or "",
            "botloom.activity.type": activity.type or "",
        }
        if self._log_messages and activity.text:
            attributes["botloom.message"] = activity.text
        outcome = "ok"
        with self._tracer.start_as_current_span("botloom.dialog", attributes=attributes) as span:
            try:
                await logic()
                outcome = str(context.turn_state.get(OUTCOME_KEY, "ok"))
            except Exception:
                outcome = "error"
                raise
            finally:
                span.set_attribute("botloom.outcome", outcome)
                if outcome != "ok":
                    span.set_status(Status(StatusCode.ERROR, outcome))
                self._metrics.turns.labels(activity.channel_id or "unknown", outcome).inc()


class QuotaMiddleware(Middleware):
    """Past `tokens_per_day` tokens today (UTC), a user's messages get a polite notice with the
    time the quota resets instead of an answer. Commands ("/help", "/reset", ...) still run."""

    def __init__(self, usage: UsageStore, tokens_per_day: int, metrics: BotMetrics) -> None:
        self._usage = usage
        self._limit = tokens_per_day
        self._metrics = metrics

    async def on_turn(self, context: TurnContext, logic: Callable[[], Awaitable]) -> None:
        activity = context.activity
        text = (activity.text or "").strip()
        if activity.type != ActivityTypes.message or not text or text.startswith("/"):
            await logic()
            return
        if await self._usage.tokens_today(user_of(context)) < self._limit:
            await logic()
            return
        self._metrics.quota_refusals.inc()
        context.turn_state[OUTCOME_KEY] = QUOTA_OUTCOME
        await context.send_activity(quota_notice(self._limit, datetime.now(UTC)))


def quota_notice(limit: int, now: datetime) -> str:
    """What a user over the quota hears: the limit, and when it resets (midnight UTC)."""
    resets = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    minutes = max(1, round((resets - now).total_seconds() / 60))
    wait = f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"
    return (
        f"Sorry, you have used today's allowance of {limit:,} tokens, so I can't answer more "
        f"messages today. It resets at 00:00 UTC, in about {wait}. Commands such as /help "
        "still work."
    )
