"""Errors raised by botloom's storages."""

from __future__ import annotations

import asyncio
import random


class StorageConflictError(Exception):
    """A write carried an etag that no longer matches the stored item (optimistic concurrency).

    `expected` is the etag the write carried; `actual` is the stored one, or None when the item
    no longer exists. The caller should re-read and retry, or give up.
    """

    def __init__(self, key: str, expected: str, actual: str | None) -> None:
        stored = f"the stored etag is {actual!r}" if actual is not None else "it no longer exists"
        super().__init__(f"etag conflict on {key!r}: the write expected {expected!r} but {stored}")
        self.key = key
        self.expected = expected
        self.actual = actual


class StorageURLError(ValueError):
    """A URL that names no backend (unknown scheme, malformed), or a backend that does not keep
    what was asked of it (a knowledge index in memory:// or Redis). The message names the scheme
    and the URLs that would work, never the URL itself (it may carry a password)."""


class StorageUnavailable(Exception):
    """The database behind a storage cannot be reached (down, refused, timed out, bad login).

    The message names the store and where it is (host, port, database), never a password.
    """


class LockLost(Exception):
    """A write came from a turn whose conversation lock has since passed to another holder (its
    lease ran out while the turn was stalled). The write is refused so the newer turn wins."""

    def __init__(self, lock_key: str, fence: int) -> None:
        super().__init__(f"lock on {lock_key!r} (fence {fence}) was lost; the write is refused")
        self.lock_key = lock_key
        self.fence = fence


async def pause_after_conflict(attempt: int) -> None:
    """A short random wait after a StorageConflictError, longer each attempt, so two writers
    that read the same version do not meet again at once."""
    await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))
