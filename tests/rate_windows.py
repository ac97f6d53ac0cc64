"""The rate limit counts per clock minute (fixed windows, bot/http/rate_limit.py): a test that
floods must not cross a minute's end, where the count starts afresh."""

from __future__ import annotations

import asyncio
import time


async def start_of_a_window(room_s: float = 20.0) -> None:
    """Return at once with `room_s` left in this clock minute, else at the next one's start."""
    into = time.time() % 60
    if into > 60 - room_s:
        await asyncio.sleep(60 - into + 0.1)
