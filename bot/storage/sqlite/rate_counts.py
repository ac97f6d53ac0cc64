"""Per-user message counts (bot/storage/rate_counts.py) in the SQLite file the state lives in:
one upsert per message; the first count of a new window drops the older windows' counts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bot.storage.sqlite.worker import SqliteWorker

_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS rate_counts (key TEXT NOT NULL, window INTEGER NOT NULL, "
    "count INTEGER NOT NULL, PRIMARY KEY (key, window))"
]


class SqliteRateCounts:
    """Counts in the SQLite file the state lives in (shared by processes on that file)."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 5.0) -> None:
        self._worker = SqliteWorker(
            Path(path), schema=_SCHEMA, busy_timeout_s=busy_timeout_s, name="sqlite-rate"
        )

    async def hit(self, key: str, window: int, ttl_s: float) -> int:
        return await self._worker.run(_hit, key, window)

    async def close(self) -> None:
        await self._worker.close()


def _hit(conn: sqlite3.Connection, key: str, window: int) -> int:
    count = conn.execute(
        "INSERT INTO rate_counts (key, window, count) VALUES (?, ?, 1) "
        "ON CONFLICT (key, window) DO UPDATE SET count = count + 1 RETURNING count",
        (key, window),
    ).fetchone()[0]
    if count == 1:  # the first message of someone's window: forget the older windows
        conn.execute("DELETE FROM rate_counts WHERE window < ?", (window,))
    return int(count)
