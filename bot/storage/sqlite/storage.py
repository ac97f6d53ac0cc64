"""Bot state in one SQLite file, with optimistic concurrency across processes."""

from __future__ import annotations

import os
import sqlite3
import uuid
from pathlib import Path
from typing import Any

from botbuilder.core import Storage

from bot.storage.errors import StorageConflictError
from bot.storage.sqlite.worker import SqliteWorker, immediate
from bot.storage.values import ABSENT, loads, rows_to_write, set_etags

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS items "
    "(key TEXT PRIMARY KEY, etag TEXT NOT NULL, value TEXT NOT NULL)"
)
_UPSERT = (
    "INSERT INTO items (key, etag, value) VALUES (?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET etag = excluded.etag, value = excluded.value"
)


class SqliteStorage(Storage):
    """A botbuilder `Storage` kept durably in one SQLite file (WAL mode), shareable by processes.

    Values are dicts or objects such as `StoreItem` (and whatever `BotState` writes, e.g.
    `DialogState`); they are stored as jsonpickle JSON, as botbuilder's Blob and Cosmos storages
    do, so `read` rebuilds the same types. Only open files you trust: reading restores classes.

    `read` returns each item with its etag in `e_tag` (dict key or attribute). Every write assigns
    a new etag and sets it on the written value. A value carrying an etag other than "*" is written
    only if that etag is still the stored one, else the whole `write` raises `StorageConflictError`
    and changes nothing; no etag or "*" overwrites. The check-and-write is one `BEGIN IMMEDIATE`
    transaction, so it holds across processes. A process waits up to `busy_timeout_s` for another
    one's lock, then `sqlite3.OperationalError` ("database is locked") is raised.

    All sqlite3 calls run on one worker thread that owns the connection; `close()` ends it.
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self._worker = SqliteWorker(
            self.path, schema=[_SCHEMA], busy_timeout_s=busy_timeout_s, name="sqlite-storage"
        )

    async def read(self, keys: list[str]) -> dict[str, Any]:
        rows = await self._worker.run(self._read_rows, list(keys or []))
        return {key: loads(text, etag) for key, etag, text in rows}

    async def write(self, changes: dict[str, Any]) -> None:
        rows = rows_to_write(changes)
        if not rows:
            return
        etags = await self._worker.run(self._write_rows, rows)
        set_etags(changes, etags)

    async def delete(self, keys: list[str]) -> None:
        if keys:
            await self._worker.run(self._delete_rows, list(keys))

    async def close(self) -> None:
        """Close the connection and stop the worker; later calls raise RuntimeError."""
        await self._worker.close()

    # Everything below runs on the worker thread.

    @staticmethod
    def _read_rows(conn: sqlite3.Connection, keys: list[str]) -> list[tuple[str, str, str]]:
        query = "SELECT key, etag, value FROM items WHERE key = ?"
        return [row for key in keys if (row := conn.execute(query, (key,)).fetchone())]

    @staticmethod
    def _write_rows(conn: sqlite3.Connection, rows: list[tuple[str, str | None, str]]) -> list[str]:
        etags = []
        with immediate(conn):
            for key, expected, text in rows:
                if expected is not None:
                    found = conn.execute("SELECT etag FROM items WHERE key = ?", (key,)).fetchone()
                    stored = found[0] if found else None
                    if (stored is not None) if expected == ABSENT else (stored != expected):
                        raise StorageConflictError(key, expected, stored)
                etags.append(uuid.uuid4().hex)
                conn.execute(_UPSERT, (key, etags[-1], text))
        return etags

    @staticmethod
    def _delete_rows(conn: sqlite3.Connection, keys: list[str]) -> None:
        with immediate(conn):
            conn.executemany("DELETE FROM items WHERE key = ?", [(key,) for key in keys])
