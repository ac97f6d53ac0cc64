"""The pace of a stream: the next send waits `interval_s` after the previous one returned, and
longer after a throttled one (doubling each time, at least the connector's Retry-After); and
stopping a stream's tasks (its sender, the model's consumer) without leaking their errors."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

MAX_BACK_OFF_S = 30.0  # the longest pause after a throttled send (a connector's Retry-After)


class StreamPacer:
    """`clock` is monotonic seconds (injectable for tests)."""

    def __init__(self, interval_s: float, clock: Callable[[], float]) -> None:
        self._interval_s = interval_s
        self._clock = clock
        self._next_at = float("-inf")
        self._throttled = 0  # throttled sends in a row

    def sent(self) -> None:
        """A send returned: the next one waits the interval."""
        self._throttled = 0
        self._next_at = self._clock() + self._interval_s

    def throttled(self, retry_after_s: float | None) -> float:
        """A send was throttled: back off; returns the pause."""
        self._throttled += 1
        back_off = self._interval_s * 2**self._throttled
        if retry_after_s is not None:
            back_off = max(back_off / 2, retry_after_s)
        pause = min(back_off, MAX_BACK_OFF_S)
        self._next_at = self._clock() + pause
        return pause

    async def wait(self) -> None:
        """Until the next send may go out."""
        delay = self._next_at - self._clock()
        if delay > 0:
            await asyncio.sleep(delay)


async def cancel_tasks(*tasks: asyncio.Task[object] | None) -> None:
    """Cancel tasks that still run and wait until they have ended, whatever they raised.

    Only the caller's own cancellation propagates from here.
    """
    pending = {task for task in tasks if task is not None}
    if not pending:
        return
    for task in pending:
        task.cancel()
    await asyncio.wait(pending)
    for task in pending:
        if not task.cancelled():
            task.exception()  # retrieved: the caller reads it from the task if it needs it
