"""Per-conversation locks as leases in a shared database (PostgreSQL, Redis), for many replicas.

A lease is a lock record with an expiry kept by the database's clock. While a turn runs, its
replica renews the lease every third of its length; a replica that dies stops renewing, and its
conversations are free again within one lease (`lease_s`), however long the turn would have run.
Every acquisition gets a fencing token that grows across the database; code inside `hold` runs
with that fence set (bot/storage/fencing.py), so the same database refuses the state writes of a
holder that stalled past its lease while another took over (`LockLost`).

Waiters queue: each `hold` first takes a ticket, and only the lowest live ticket of a conversation
may take its lease. Without the line, the replica that just finished a turn would take the lease
again at once for its next message, ahead of messages that other replicas acknowledged earlier
and are polling for. A waiter's place lapses `QUEUE_TTL_S` after its last poll, so a dead one
holds the line up for at most that long. The line decides who tries; the lease alone decides who
holds, so the line never weakens exclusion.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bot.storage.errors import StorageUnavailable
from bot.storage.fencing import Fence, fenced
from bot.storage.locks import LockTimeout

logger = logging.getLogger(__name__)

DEFAULT_LEASE_S = 8.0  # below the default BOTLOOM_LOCK_WAIT_S (10 s): a dead holder costs a wait
QUEUE_TTL_S = 2.0  # a waiter polls at least every max_poll_s; this allows for stalls


def owner_name() -> str:
    """Who holds a lock, for an operator reading the lock table: host, process, instance."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class LeaseLocks(ABC):
    """The `ConversationLocks` protocol over a database's queue and lease operations.

    `hold(key, ttl_s=…, wait_s=…)` takes a ticket, then polls (10 ms, backing off to
    `max_poll_s`) until its ticket is first in line and the lease is free, or `wait_s` has passed
    (`LockTimeout`). The lease lasts min(`lease_s`, `ttl_s`) and is renewed for at most `ttl_s` in
    all, so not even a live but stuck holder keeps it longer. A database error while queueing or
    taking the lock propagates as `StorageUnavailable`.
    """

    def __init__(
        self, store: object, *, lease_s: float = DEFAULT_LEASE_S, max_poll_s: float = 0.05
    ) -> None:
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        self._store = store
        self.lease_s = lease_s
        self._max_poll_s = max_poll_s
        self.owner = owner_name()

    @abstractmethod
    async def _enqueue(self, key: str) -> int:
        """Join the conversation's line: a ticket higher than every ticket handed out before."""

    @abstractmethod
    async def _acquire(self, key: str, ticket: int, lease_s: float) -> int | None:
        """Keep `ticket`'s place in line; if it is first and the lease is free or expired, take
        the lease and leave the line: the new fence, else None."""

    @abstractmethod
    async def _leave(self, key: str, ticket: int) -> None:
        """Leave the line without the lease (gave up waiting)."""

    @abstractmethod
    async def _renew(self, key: str, fence: int, lease_s: float) -> bool:
        """Extend the lease if `fence` still holds it; False if it was lost."""

    @abstractmethod
    async def _release(self, key: str, fence: int) -> None:
        """Free the lease if `fence` still holds it."""

    @asynccontextmanager
    async def hold(self, key: str, *, ttl_s: float, wait_s: float) -> AsyncIterator[None]:
        lease_s = min(self.lease_s, ttl_s)
        fence = await self._wait_for(key, lease_s, wait_s)
        # Stopped by an event, not cancelled: a renewal cut off mid-query would cost a connection.
        stop = asyncio.Event()
        until = time.monotonic() + ttl_s
        heartbeat = asyncio.create_task(self._keep(key, fence, lease_s, until, stop))
        try:
            with fenced(Fence(self._store, key, fence)):
                yield
        finally:
            stop.set()
            await asyncio.gather(heartbeat, return_exceptions=True)
            try:
                await self._release(key, fence)
            except StorageUnavailable:
                logger.warning("could not release lock key=%s; it expires in %.1f s", key, lease_s)

    async def _wait_for(self, key: str, lease_s: float, wait_s: float) -> int:
        deadline = time.monotonic() + wait_s
        ticket = await self._enqueue(key)
        try:
            poll_s = 0.01
            while (fence := await self._acquire(key, ticket, lease_s)) is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LockTimeout(f"conversation {key!r} is busy")
                await asyncio.sleep(min(poll_s, left))
                poll_s = min(poll_s * 2, self._max_poll_s)
        except BaseException:
            with contextlib.suppress(StorageUnavailable):  # else the place lapses by itself
                await self._leave(key, ticket)
            raise
        return fence

    async def _keep(
        self, key: str, fence: int, lease_s: float, until: float, stop: asyncio.Event
    ) -> None:
        """Renew every lease_s / 3 until `stop` or `until`; stop when the lease turns out lost."""
        while not await _set_within(stop, lease_s / 3):
            if time.monotonic() + lease_s > until:
                return  # renewing would outlast ttl_s: let the lease run out
            try:
                if not await self._renew(key, fence, lease_s):
                    logger.warning(
                        "lock lost key=%s fence=%d: its writes will be refused", key, fence
                    )
                    return
            except StorageUnavailable:
                logger.warning("could not renew lock key=%s fence=%d", key, fence)

    async def close(self) -> None:  # noqa: B027 (optional to override)
        """Nothing to close: the locks use the storage's connections, which the storage closes."""


async def _set_within(event: asyncio.Event, seconds: float) -> bool:
    """Whether `event` is set within `seconds`."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True
