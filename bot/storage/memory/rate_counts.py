"""Per-user message counts (bot/storage/rate_counts.py) in this process's memory."""

from __future__ import annotations


class MemoryRateCounts:
    """Counts in this process (memory:// storage: one process anyway)."""

    def __init__(self) -> None:
        self._window = -1
        self._counts: dict[str, int] = {}

    async def hit(self, key: str, window: int, ttl_s: float) -> int:
        if window != self._window:
            self._window, self._counts = window, {}
        self._counts[key] = self._counts.get(key, 0) + 1
        return self._counts[key]

    async def close(self) -> None:
        self._counts.clear()
