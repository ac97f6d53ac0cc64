"""One SQLite connection owned by one worker thread: each SQLite object (state, locks, inbox, rate
counts, knowledge index) runs its queries on its own."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class SqliteWorker:
    """A connection to `path` (WAL mode, autocommit: callers issue BEGIN), opened on first use with
    `schema` run once (then `upgrade`, which brings a file an older botloom wrote up to it), and
    used only on this worker's thread. `run(fn, *args)` calls
    `fn(connection, *args)` there. After `close()`, `run` raises RuntimeError."""

    def __init__(
        self,
        path: Path,
        *,
        schema: Sequence[str] = (),
        upgrade: Callable[[sqlite3.Connection], None] | None = None,
        busy_timeout_s: float = 5.0,
        name: str = "sqlite",
    ) -> None:
        self.path = path
        self._schema = schema
        self._upgrade = upgrade
        self._busy_timeout_s = busy_timeout_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._conn: sqlite3.Connection | None = None  # created and used on the worker thread only
        self._closed = False

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        if self._closed:
            raise RuntimeError(f"the SQLite connection to {str(self.path)!r} is closed")
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self._call, fn, *args
        )

    async def close(self) -> None:
        """Close the connection and stop the thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(self._executor, self._disconnect)
        self._executor.shutdown()

    # On the worker thread.

    def _call(self, fn: Callable[..., T], *args: object) -> T:
        return fn(self._connection(), *args)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = connect_wal(self.path, busy_timeout_s=self._busy_timeout_s)
            try:
                for statement in self._schema:
                    conn.execute(statement)
                if self._upgrade is not None:
                    self._upgrade(conn)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

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
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A transaction that takes the write lock up front, so nobody writes between check and set."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.rollback()
        raise
    conn.commit()
