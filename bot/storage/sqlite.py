"""Bot state in one SQLite file, with optimistic concurrency across processes."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from botbuilder.core import Storage

from bot.storage.errors import StorageConflictError
from bot.storage.values import dumps, etag_of, loads, set_etag

T = TypeVar("T")

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
        self._busy_timeout_s = busy_timeout_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-storage")
        self._conn: sqlite3.Connection | None = None  # created and used on the worker thread only
        self._closed = False

    async def read(self, keys: list[str]) -> dict[str, Any]:
        rows = await self._run(self._read_rows, list(keys or []))
        return {key: loads(text, etag) for key, etag, text in rows}

    async def write(self, changes: dict[str, Any]) -> None:
        if changes is None:
            raise ValueError("changes are required when writing")
        # Serialise now, so the stored value is the one the caller passed, whatever happens next.
        rows = [(key, etag_of(value), dumps(key, value)) for key, value in changes.items()]
        if not rows:
            return
        etags = await self._run(self._write_rows, rows)
        for value, etag in zip(changes.values(), etags, strict=True):
            set_etag(value, etag)

    async def delete(self, keys: list[str]) -> None:
        if keys:
            await self._run(self._delete_rows, list(keys))

    async def close(self) -> None:
        """Close the connection and stop the worker; later calls raise RuntimeError."""
        if self._closed:
            return
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(self._executor, self._disconnect)
        self._executor.shutdown()

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise RuntimeError(f"SqliteStorage({str(self.path)!r}) is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # Everything below runs on the worker thread.

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            # timeout= is SQLite's busy_timeout; isolation_level=None: we issue BEGIN ourselves.
            conn = connect_wal(self.path, busy_timeout_s=self._busy_timeout_s)
            try:
                conn.execute(_SCHEMA)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _read_rows(self, keys: list[str]) -> list[tuple[str, str, str]]:
        conn = self._connection()
        query = "SELECT key, etag, value FROM items WHERE key = ?"
        return [row for key in keys if (row := conn.execute(query, (key,)).fetchone())]

    def _write_rows(self, rows: list[tuple[str, str | None, str]]) -> list[str]:
        etags = []
        with _immediate(self._connection()) as conn:
            for key, expected, text in rows:
                if expected is not None:
                    found = conn.execute("SELECT etag FROM items WHERE key = ?", (key,)).fetchone()
                    if found is None or found[0] != expected:
                        raise StorageConflictError(key, expected, found[0] if found else None)
                etags.append(uuid.uuid4().hex)
                conn.execute(_UPSERT, (key, etags[-1], text))
        return etags

    def _delete_rows(self, keys: list[str]) -> None:
        with _immediate(self._connection()) as conn:
            conn.executemany("DELETE FROM items WHERE key = ?", [(key,) for key in keys])

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def connect_wal(path: Path, *, busy_timeout_s: float) -> sqlite3.Connection:
    """Open `path` in WAL mode, autocommit (we issue BEGIN ourselves), waiting out other writers.

    SQLite does not apply the busy timeout to switching the journal mode: when several processes
    open a new file at once, `PRAGMA journal_mode = WAL` fails at once with "database is locked".
    That switch is retried here until `busy_timeout_s` has passed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None)
    deadline = time.monotonic() + busy_timeout_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return conn
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                conn.close()
                raise
            time.sleep(0.01)


@contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A transaction that takes the write lock up front, so nobody writes between check and set."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.rollback()
        raise
    conn.commit()
