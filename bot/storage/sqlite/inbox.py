"""The inbox (bot/storage/inbox.py) as a table in the SQLite file the state lives in."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from bot.storage.inbox import InboxEntry
from bot.storage.sqlite.worker import SqliteWorker

_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS inbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
    "conversation TEXT NOT NULL, activity_id TEXT NOT NULL, body TEXT NOT NULL, "
    "accepted REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS inbox_by_conversation ON inbox (conversation, seq)",
    "CREATE UNIQUE INDEX IF NOT EXISTS inbox_activity ON inbox (conversation, activity_id) "
    "WHERE activity_id != ''",
]


class SqliteInbox:
    """The inbox as a table in the SQLite file the state lives in: acknowledged messages that a
    crash or restart interrupted are run when the bot starts again."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 5.0) -> None:
        self._worker = SqliteWorker(
            Path(path), schema=_SCHEMA, busy_timeout_s=busy_timeout_s, name="sqlite-inbox"
        )

    async def put(self, conversation: str, activity_id: str | None, body: str) -> int | None:
        return await self._worker.run(_put, conversation, activity_id or "", body)

    async def first(self, conversation: str) -> InboxEntry | None:
        return await self._worker.run(_first, conversation)

    async def remove(self, entry: InboxEntry) -> None:
        await self._worker.run(_remove, entry.seq)

    async def waiting_since(self, seconds: float, limit: int = 100) -> list[str]:
        return await self._worker.run(_waiting_since, time.time() - seconds, limit)

    async def close(self) -> None:
        await self._worker.close()


# SqliteInbox's queries, run on its worker thread.


def _put(conn: sqlite3.Connection, conversation: str, activity_id: str, body: str) -> int | None:
    cursor = conn.execute(
        "INSERT INTO inbox (conversation, activity_id, body, accepted) VALUES (?, ?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        (conversation, activity_id, body, time.time()),
    )
    return cursor.lastrowid if cursor.rowcount == 1 else None


def _first(conn: sqlite3.Connection, conversation: str) -> InboxEntry | None:
    row = conn.execute(
        "SELECT seq, activity_id, body FROM inbox WHERE conversation = ? ORDER BY seq LIMIT 1",
        (conversation,),
    ).fetchone()
    return InboxEntry(row[0], conversation, row[1], row[2]) if row else None


def _remove(conn: sqlite3.Connection, seq: int) -> None:
    conn.execute("DELETE FROM inbox WHERE seq = ?", (seq,))


def _waiting_since(conn: sqlite3.Connection, before: float, limit: int) -> list[str]:
    rows = conn.execute(
        "SELECT DISTINCT conversation FROM inbox WHERE accepted < ? LIMIT ?", (before, limit)
    )
    return [row[0] for row in rows]
