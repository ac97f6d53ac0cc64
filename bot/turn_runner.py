"""Runs turns in the background: one at a time per conversation, in arrival order, none lost."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bot.storage import ConversationLocks, LockTimeout

logger = logging.getLogger(__name__)

Turn = Callable[[], Awaitable[Any]]


class RunnerBusy(Exception):
    """Too many turns are queued (or the runner is draining); the channel should retry later."""


@dataclass(frozen=True)
class RunnerLimits:
    max_queued: int = 1000  # turns waiting or running, all conversations together
    turn_timeout_s: float = 90.0  # a turn (model, storage, replies) is cancelled after this
    lock_wait_s: float = 10.0  # how long a turn waits for another process's lock
    dedupe_window: int = 10_000  # how many recent activity ids are remembered


@dataclass
class _Job:
    turn: Turn
    on_lock_timeout: Turn | None
    done: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class TurnRunner:
    """A queue per conversation, drained by one task per busy conversation.

    `submit` never blocks: it queues the turn and returns a future of its result. Turns of one
    conversation run strictly one after another, holding the conversation's lock in the shared
    store (so other processes wait too). When the lock cannot be had within `lock_wait_s`,
    `on_lock_timeout` runs instead (a polite "one moment"). A repeated activity id is dropped.
    """

    def __init__(self, locks: ConversationLocks, limits: RunnerLimits) -> None:
        self._locks = locks
        self._limits = limits
        self._queues: dict[str, deque[_Job]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._recent: OrderedDict[tuple[str, str], None] = OrderedDict()
        self.queued = 0
        self.draining = False

    def _remember(self, conversation: str, activity_id: str | None) -> bool:
        """Remember an accepted activity id; False if it was accepted before (a retry)."""
        if not activity_id:
            return True
        key = (conversation, activity_id)
        if key in self._recent:
            return False
        self._recent[key] = None
        if len(self._recent) > self._limits.dedupe_window:
            self._recent.popitem(last=False)
        return True

    def submit(
        self,
        conversation: str,
        turn: Turn,
        *,
        activity_id: str | None = None,
        on_lock_timeout: Turn | None = None,
    ) -> asyncio.Future[Any] | None:
        """Queue `turn`; its future, or None when `activity_id` was already accepted."""
        if self.draining:
            raise RunnerBusy("shutting down")
        if self.queued >= self._limits.max_queued:
            raise RunnerBusy("too many turns queued")
        if not self._remember(conversation, activity_id):
            return None
        job = _Job(turn, on_lock_timeout)
        self._queues.setdefault(conversation, deque()).append(job)
        self.queued += 1
        if conversation not in self._workers:
            self._workers[conversation] = asyncio.create_task(self._work(conversation))
        return job.done

    async def _work(self, conversation: str) -> None:
        queue = self._queues[conversation]
        try:
            while queue:
                job = queue.popleft()
                try:
                    job.done.set_result(await self._run(conversation, job))
                except asyncio.CancelledError:
                    job.done.cancel()
                    raise
                except Exception as error:
                    job.done.set_exception(error)
                finally:
                    self.queued -= 1
        finally:
            for job in queue:  # only when cancelled: nothing left behind un-answered
                job.done.cancel()
                self.queued -= 1
            queue.clear()
            del self._queues[conversation]
            del self._workers[conversation]

    async def _run(self, conversation: str, job: _Job) -> Any:
        limits = self._limits
        try:
            async with asyncio.timeout(limits.turn_timeout_s + limits.lock_wait_s):
                async with self._locks.hold(
                    conversation, ttl_s=limits.turn_timeout_s + 5, wait_s=limits.lock_wait_s
                ):
                    async with asyncio.timeout(limits.turn_timeout_s):
                        return await job.turn()
        except LockTimeout:
            logger.warning("conversation locked elsewhere conversation=%s", conversation)
            return await job.on_lock_timeout() if job.on_lock_timeout else None

    @property
    def busy(self) -> bool:
        return bool(self._workers)

    async def drain(self, timeout_s: float) -> bool:
        """Refuse new turns and wait up to `timeout_s` for queued ones. True if all finished."""
        self.draining = True
        deadline = time.monotonic() + timeout_s
        while self._workers and time.monotonic() < deadline:
            await asyncio.wait(set(self._workers.values()), timeout=deadline - time.monotonic())
        return not self._workers

    async def cancel_all(self) -> None:
        workers = list(self._workers.values())
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)

    async def close(self) -> None:
        """Cancel what is left and release the lock store."""
        await self.cancel_all()
        await self._locks.close()
