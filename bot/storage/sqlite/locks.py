"""Conversation locks as rows in the SQLite file the state lives in (see `SqliteLocks`)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bot.storage.locks import LockTimeout
from bot.storage.sqlite.worker import SqliteWorker, immediate

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS conversation_locks "
    "(key TEXT PRIMARY KEY, owner TEXT NOT NULL, expires REAL NOT NULL)"
)


class SqliteLocks:
    """Lock rows in the SQLite file the state lives in: (key, owner, expiry), taken atomically.

    A lock is a lease of min(`lease_s`, ttl_s), renewed every third of it while its turn runs
    (for ttl_s at most), so a process that was killed frees its conversations within one lease:
    a restarted bot does not wait for its own dead predecessor. Waiters poll every `poll_s`; an
    expired row is taken over.
    """

    def __init__(self, path: str | Path, *, lease_s: float = 8.0, poll_s: float = 0.02) -> None:
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        self._lease_s = lease_s
        self._poll_s = poll_s
        self._owner = uuid.uuid4().hex
        self._worker = SqliteWorker(Path(path), schema=[_SCHEMA], name="sqlite-locks")

    # On the worker thread.

    def _try_acquire(self, conn: sqlite3.Connection, key: str, lease_s: float) -> bool:
        now = time.time()
        with immediate(conn):
            row = conn.execute(
                "SELECT owner, expires FROM conversation_locks WHERE key = ?", (key,)
            ).fetchone()
            if row is not None and row[1] > now:
                return False
            conn.execute(
                "INSERT OR REPLACE INTO conversation_locks (key, owner, expires) VALUES (?, ?, ?)",
                (key, self._owner, now + lease_s),
            )
        return True

    def _renew(self, conn: sqlite3.Connection, key: str, lease_s: float) -> bool:
        cursor = conn.execute(
            "UPDATE conversation_locks SET expires = ? WHERE key = ? AND owner = ?",
            (time.time() + lease_s, key, self._owner),
        )
        return cursor.rowcount == 1

    def _release(self, conn: sqlite3.Connection, key: str) -> None:
        conn.execute(
            "DELETE FROM conversation_locks WHERE key = ? AND owner = ?", (key, self._owner)
        )

    # On the event loop.

    @asynccontextmanager
    async def hold(self, key: str, *, ttl_s: float, wait_s: float) -> AsyncIterator[None]:
        lease_s = min(self._lease_s, ttl_s)
        deadline = time.monotonic() + wait_s
        while not await self._worker.run(self._try_acquire, key, lease_s):
            if time.monotonic() >= deadline:
                raise LockTimeout(f"conversation {key!r} is busy")
            await asyncio.sleep(self._poll_s)
        renewing = asyncio.create_task(self._keep(key, lease_s, time.monotonic() + ttl_s))
        try:
            yield
        finally:
            renewing.cancel()
            await asyncio.gather(renewing, return_exceptions=True)
            await self._worker.run(self._release, key)

    async def _keep(self, key: str, lease_s: float, until: float) -> None:
        """Renew every lease_s / 3, as long as renewing does not outlast `until`."""
        while True:
            await asyncio.sleep(lease_s / 3)
            if time.monotonic() + lease_s > until:
                return
            if not await self._worker.run(self._renew, key, lease_s):
                return

    async def close(self) -> None:
        await self._worker.close()
