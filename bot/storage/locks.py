"""Per-conversation locks that hold across processes sharing one store.

Within a process, turns of a conversation are already ordered by the TurnRunner's queue; these
locks extend that to several processes (or replicas) that share the store.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol


class LockTimeout(Exception):
    """The conversation stayed locked by another process for longer than the allowed wait."""


class ConversationLocks(Protocol):
    def hold(self, key: str, *, ttl_s: float, wait_s: float) -> AbstractAsyncContextManager[None]:
        """``async with locks.hold(key, ttl_s=…, wait_s=…)``: exclusive across processes.

        A holder that dies frees the lock after `ttl_s`; waiting longer than `wait_s` raises
        LockTimeout.
        """
        ...

    async def close(self) -> None: ...
