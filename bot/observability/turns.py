"""The turn runner's collaborators with spans and metrics around them (bot/turns/runner.py is
unchanged: bot/app.py hands it these wrappers).

A message's trace crosses the inbox: `ObservedInbox.put` (still inside the request's span) keeps
the span's `traceparent` and the acknowledgement time with the entry, so whichever replica runs
the turn continues the same trace. `ObservedTurns.run` opens the turn's span from the
acknowledgement on, with the inbox wait and the lock wait as its first children.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from bot.observability.metrics import BotMetrics
from bot.storage import ConversationLocks, Inbox, InboxEntry, LockTimeout
from bot.turns.runner_terms import EntryTurns

KEPT = "telemetry"  # the inbox entry's field: {"traceparent": ..., "acknowledged_ns": ...}


class TurnTimes:
    """What the wrappers share: acknowledgement times of entries waiting here, and each
    conversation's last lock wait (requested, obtained), in time.time_ns()."""

    def __init__(self, max_waiting: int) -> None:
        self.waiting: dict[tuple[str, int], int] = {}
        self.max_waiting = max_waiting
        self.lock_waits: dict[str, tuple[int, int]] = {}

    def oldest_age_s(self) -> float:
        if not self.waiting:
            return 0.0
        return max(0.0, (time.time_ns() - min(self.waiting.values())) / 1e9)


class ObservedInbox:
    """An Inbox whose entries carry the acknowledging request's trace context."""

    def __init__(self, inner: Inbox, times: TurnTimes) -> None:
        self._inner = inner
        self._times = times
        self._propagator = TraceContextTextMapPropagator()

    async def put(self, conversation: str, activity_id: str | None, body: str) -> int | None:
        kept: dict[str, Any] = {"acknowledged_ns": time.time_ns()}
        self._propagator.inject(kept)
        stored = json.loads(body)
        stored[KEPT] = kept
        seq = await self._inner.put(conversation, activity_id, json.dumps(stored))
        if seq is not None:
            waiting = self._times.waiting
            if len(waiting) >= self._times.max_waiting:  # run by other replicas: forget the oldest
                waiting.pop(min(waiting, key=waiting.__getitem__))
            waiting[(conversation, seq)] = kept["acknowledged_ns"]
        return seq

    async def first(self, conversation: str) -> InboxEntry | None:
        return await self._inner.first(conversation)

    async def remove(self, entry: InboxEntry) -> None:
        self._times.waiting.pop((entry.conversation, entry.seq), None)
        await self._inner.remove(entry)

    async def waiting_since(self, seconds: float, limit: int = 100) -> list[str]:
        return await self._inner.waiting_since(seconds, limit)

    async def close(self) -> None:
        await self._inner.close()


class ObservedLocks:
    """ConversationLocks that time each wait (a histogram, and the next turn's span)."""

    def __init__(self, inner: ConversationLocks, times: TurnTimes, metrics: BotMetrics) -> None:
        self._inner = inner
        self._times = times
        self._metrics = metrics

    @contextlib.asynccontextmanager
    async def hold(self, key: str, *, ttl_s: float, wait_s: float) -> AsyncIterator[None]:
        requested = time.time_ns()
        try:
            async with self._inner.hold(key, ttl_s=ttl_s, wait_s=wait_s):
                obtained = time.time_ns()
                self._metrics.lock_wait.observe((obtained - requested) / 1e9)
                self._times.lock_waits[key] = (requested, obtained)
                try:
                    yield
                finally:
                    self._times.lock_waits.pop(key, None)
        except LockTimeout:
            self._metrics.lock_timeouts.inc()
            raise

    async def close(self) -> None:
        await self._inner.close()


class ObservedTurns:
    """EntryTurns whose turns are spans continuing the acknowledging request's trace."""

    def __init__(
        self, inner: EntryTurns, times: TurnTimes, tracer: Tracer, metrics: BotMetrics
    ) -> None:
        self._inner = inner
        self._times = times
        self._tracer = tracer
        self._metrics = metrics
        self._propagator = TraceContextTextMapPropagator()

    async def run(self, entry: InboxEntry) -> None:
        stored = json.loads(entry.body)
        kept = stored.get(KEPT) or {}
        activity = stored.get("activity") or {}
        channel = str(activity.get("channelId") or "unknown")
        started = time.time_ns()
        acknowledged = int(kept.get("acknowledged_ns") or started)
        self._times.waiting.pop((entry.conversation, entry.seq), None)
        self._metrics.inbox_wait.observe(max(0, started - acknowledged) / 1e9)
        requested, obtained = self._times.lock_waits.get(entry.conversation, (started, started))
        parent = self._propagator.extract(kept)
        attributes = {
            "botloom.channel": channel,
            "botloom.conversation.id": str((activity.get("conversation") or {}).get("id", "")),
            "botloom.activity.id": str(activity.get("id") or ""),
            "botloom.activity.type": str(activity.get("type") or ""),
        }
        span = self._tracer.start_span(
            "botloom.turn",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            start_time=min(acknowledged, requested),
        )
        turn = trace.set_span_in_context(span, parent)
        inbox_end = max(min(requested, started), acknowledged)
        self._tracer.start_span("botloom.inbox.wait", turn, start_time=acknowledged).end(inbox_end)
        self._tracer.start_span("botloom.lock.wait", turn, start_time=requested).end(obtained)
        try:
            with trace.use_span(span, end_on_exit=True, record_exception=True):
                await self._inner.run(entry)
        finally:
            self._metrics.turn_duration.labels(channel).observe(
                (time.time_ns() - acknowledged) / 1e9
            )

    async def say_one_moment(self, entry: InboxEntry) -> None:
        await self._inner.say_one_moment(entry)
