"""LoopTicks: shows whether the event loop kept running while something else was going on."""

from __future__ import annotations

import asyncio


class LoopTicks:
    """Inside `async with LoopTicks() as ticks:`, `ticks.count` grows every 5 ms that the event
    loop is free; work that blocks the loop (e.g. generation on its thread) stops it growing."""

    def __init__(self) -> None:
        self.count = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LoopTicks:
        self._task = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.005)
            self.count += 1
