"""Conversation locks for state in one process (memory://)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class LocalLocks:
    """For stores only one process uses (memory): the TurnRunner's queue already orders turns."""

    @asynccontextmanager
    async def hold(self, key: str, *, ttl_s: float, wait_s: float) -> AsyncIterator[None]:
        yield

    async def close(self) -> None:
        return None
