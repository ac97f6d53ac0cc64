"""Waiting for the process to be told to stop, for the long-running commands."""

from __future__ import annotations

import asyncio
import signal


async def stop_signal() -> None:
    """Return once SIGTERM or SIGINT arrives (handled on the running loop from then on)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
