"""Bot state in PostgreSQL, the recommended store for several replicas, and their locks there."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import asyncpg
from asyncpg import exceptions as pg_errors

from bot.storage.errors import LockLost, StorageConflictError
from bot.storage.fencing import current_fence
from bot.storage.postgres.backend import PostgresBackend
from bot.storage.server_storage import ServerStorage
from bot.storage.values import ABSENT, loads, rows_to_write, set_etags

if TYPE_CHECKING:
    from bot.storage.postgres.knowledge import PostgresKnowledgeStore

# What "the database cannot be reached" looks like from asyncpg: refused or dropped sockets,
# timeouts, a server shutting down or starting, a bad login or database name, too many clients.
_UNREACHABLE = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    pg_errors.PostgresConnectionError,
    pg_errors.OperatorInterventionError,
    pg_errors.InvalidAuthorizationSpecificationError,
    pg_errors.InvalidCatalogNameError,
    pg_errors.InsufficientResourcesError,
)


def migrations(ns: str) -> list[list[str]]:
    """The schema, one list of statements per version. Append new versions; never edit old ones."""
    return [
        [  # 1: state items, conversation locks, fencing tokens
            f"CREATE TABLE IF NOT EXISTS {ns}_items (key text PRIMARY KEY, etag text NOT NULL, "
            "value json NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())",
            f"CREATE TABLE IF NOT EXISTS {ns}_locks (key text PRIMARY KEY, owner text NOT NULL, "
            "fence bigint NOT NULL, expires timestamptz NOT NULL)",
            f"CREATE SEQUENCE IF NOT EXISTS {ns}_fences",
        ],
        [  # 2: the line of replicas waiting for a conversation (bot/storage/leases.py)
            f"CREATE TABLE IF NOT EXISTS {ns}_waiters (key text NOT NULL, ticket bigint NOT NULL, "
            "expires timestamptz NOT NULL, PRIMARY KEY (key, ticket))",
            f"CREATE SEQUENCE IF NOT EXISTS {ns}_tickets",
        ],
        [  # 3: acknowledged activities waiting for their turn (bot/storage/inbox.py)
            f"CREATE TABLE IF NOT EXISTS {ns}_inbox (seq bigserial PRIMARY KEY, "
            "conversation text NOT NULL, activity_id text NOT NULL, body text NOT NULL, "
            "accepted timestamptz NOT NULL DEFAULT clock_timestamp())",
            f"CREATE INDEX IF NOT EXISTS {ns}_inbox_by_conversation "
            f"ON {ns}_inbox (conversation, seq)",
            f"CREATE UNIQUE INDEX IF NOT EXISTS {ns}_inbox_activity "
            f"ON {ns}_inbox (conversation, activity_id) WHERE activity_id <> ''",
        ],
    ]


class PostgresStorage(ServerStorage):
    """A botbuilder `Storage` in one PostgreSQL table, `<namespace>_items`, shared by replicas.

    Values and etags behave exactly as in `SqliteStorage` (bot/storage/values.py): `read` returns
    each item with its etag in `e_tag`; every write assigns a new etag and sets it on the written
    value; a value carrying an etag other than "*" is written only if that etag is still the
    stored one, else the whole `write` raises `StorageConflictError` and changes nothing; no etag
    or "*" overwrites. Each `write` is one transaction (`UPDATE … WHERE etag = $2` per item, whose
    row lock makes the check-and-set atomic across replicas). Inside a `PostgresLocks.hold` on
    this storage, a write also checks that the lock is still held and raises `LockLost` if not.

    Connections come from an asyncpg pool of up to `max_connections`, opened on `open()` or
    first use; the schema is created or migrated then (`migrations`). A database that cannot be
    reached, or answers nothing within `timeout_s`, raises `StorageUnavailable` naming
    host:port/database, never the password. `close()` closes the pool; later calls raise
    RuntimeError.
    """

    server = "PostgreSQL"
    default_port = 5432
    backend_type = PostgresBackend
    default_max_connections = 10

    def knowledge_store(self) -> PostgresKnowledgeStore:
        """The knowledge index in this database and namespace, with a pool of its own (the
        storage hands on its URL, credentials included, without showing it)."""
        from bot.storage.postgres.knowledge import PostgresKnowledgeStore  # numpy only when used

        return PostgresKnowledgeStore(self._url, namespace=self.namespace)

    def _prepare(self) -> None:
        self.table = f"{self.namespace}_items"
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    async def open(self) -> None:
        """Connect and create or migrate the schema. Raises StorageUnavailable."""
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        async with self._opening:
            if self._pool is not None:
                return
            try:
                pool = await asyncpg.create_pool(
                    self._url,
                    min_size=1,
                    max_size=self._max_connections,
                    timeout=self._timeout_s,  # to connect
                    command_timeout=self._timeout_s,
                )
            except _UNREACHABLE as error:
                raise self.unavailable(error) from None
            try:
                await self._migrate(pool)
            except BaseException as error:
                await pool.close()
                if isinstance(error, _UNREACHABLE):
                    raise self.unavailable(error) from None
                raise
            self._pool = pool

    async def _migrate(self, pool: asyncpg.Pool) -> None:
        ns = self.namespace
        async with pool.acquire() as conn, conn.transaction():
            # Replicas starting together would race on CREATE TABLE; one migrates at a time.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"{ns}_schema")
            await conn.execute(f"CREATE TABLE IF NOT EXISTS {ns}_schema (version integer NOT NULL)")
            version = await conn.fetchval(f"SELECT coalesce(max(version), 0) FROM {ns}_schema")
            for number, statements in enumerate(migrations(ns), start=1):
                if number > version:
                    for statement in statements:
                        await conn.execute(statement)
                    await conn.execute(f"INSERT INTO {ns}_schema (version) VALUES ($1)", number)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection (for this storage's locks too); errors reaching the database
        become StorageUnavailable."""
        if self._pool is None:
            await self.open()
        assert self._pool is not None
        try:
            async with self._pool.acquire(timeout=self._timeout_s) as conn:
                yield conn
        except _UNREACHABLE as error:
            raise self.unavailable(error) from error

    async def read(self, keys: list[str]) -> dict[str, Any]:
        if not keys:
            return {}
        async with self.connection() as conn:
            rows = await conn.fetch(
                f"SELECT key, etag, value FROM {self.table} WHERE key = ANY($1::text[])", list(keys)
            )
        return {row["key"]: loads(row["value"], row["etag"]) for row in rows}

    async def write(self, changes: dict[str, Any]) -> None:
        rows = rows_to_write(changes)
        if not rows:
            return
        etags = [uuid.uuid4().hex for _ in rows]
        fence = current_fence(self)
        async with self.connection() as conn, conn.transaction():
            if fence is not None:
                await self._check_fence(conn, fence.key, fence.token)
            for (key, expected, text), etag in zip(rows, etags, strict=True):
                await self._write_row(conn, key, expected, etag, text)
        set_etags(changes, etags)

    async def _check_fence(self, conn: asyncpg.Connection, key: str, token: int) -> None:
        # FOR SHARE: a takeover of the lock waits until this write has committed.
        held = await conn.fetchval(
            f"SELECT fence FROM {self.namespace}_locks WHERE key = $1 FOR SHARE", key
        )
        if held != token:
            raise LockLost(key, token)

    async def _write_row(
        self, conn: asyncpg.Connection, key: str, expected: str | None, etag: str, text: str
    ) -> None:
        if expected is None:
            await conn.execute(
                f"INSERT INTO {self.table} (key, etag, value) VALUES ($1, $2, $3) "
                "ON CONFLICT (key) DO UPDATE "
                "SET etag = excluded.etag, value = excluded.value, updated_at = now()",
                key,
                etag,
                text,
            )
            return
        if expected == ABSENT:
            status = await conn.execute(
                f"INSERT INTO {self.table} (key, etag, value) VALUES ($1, $2, $3) "
                "ON CONFLICT (key) DO NOTHING",
                key,
                etag,
                text,
            )
            if status == "INSERT 0 0":
                actual = await conn.fetchval(f"SELECT etag FROM {self.table} WHERE key = $1", key)
                raise StorageConflictError(key, expected, actual)
            return
        status = await conn.execute(
            f"UPDATE {self.table} SET etag = $3, value = $4, updated_at = now() "
            "WHERE key = $1 AND etag = $2",
            key,
            expected,
            etag,
            text,
        )
        if status == "UPDATE 0":
            actual = await conn.fetchval(f"SELECT etag FROM {self.table} WHERE key = $1", key)
            raise StorageConflictError(key, expected, actual)

    async def delete(self, keys: list[str]) -> None:
        if not keys:
            return
        async with self.connection() as conn:
            await conn.execute(f"DELETE FROM {self.table} WHERE key = ANY($1::text[])", list(keys))

    async def close(self) -> None:
        """Close the pool; idempotent."""
        self._closed = True
        async with self._opening:
            pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()
