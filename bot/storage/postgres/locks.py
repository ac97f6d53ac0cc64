"""Conversation leases in PostgreSQL (see `PostgresLocks`): rows timed by the database's clock."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.storage.leases import DEFAULT_LEASE_S, QUEUE_TTL_S, LeaseLocks

if TYPE_CHECKING:
    from bot.storage.postgres.storage import PostgresStorage


class PostgresLocks(LeaseLocks):
    """Conversation leases as rows of `<namespace>_locks` (key, owner, fence, expires), timed by
    the database's clock; fences come from the `<namespace>_fences` sequence. Waiting replicas
    stand in line as rows of `<namespace>_waiters` (key, ticket, expires).

    Rows, not advisory locks: a session advisory lock would pin a pooled connection for the whole
    turn (capping concurrent turns at the pool size, and deadlocking when the turns that hold
    every connection need one more to load state), would outlive a replica whose machine vanished
    until TCP keepalive noticed (hours by default), and does not survive PgBouncer's transaction
    pooling. A lease row costs a few short queries to take (a ticket, a place in line, the row,
    leaving the line), one every lease_s / 3 to renew, and a poll every 10-50 ms while another
    replica holds the conversation.
    """

    def __init__(self, storage: PostgresStorage, *, lease_s: float = DEFAULT_LEASE_S) -> None:
        super().__init__(storage, lease_s=lease_s)
        self._storage = storage
        self._table = f"{storage.namespace}_locks"
        self._sequence = f"{storage.namespace}_fences"
        self._waiters = f"{storage.namespace}_waiters"
        self._tickets = f"{storage.namespace}_tickets"

    async def _enqueue(self, key: str) -> int:
        async with self._storage.connection() as conn:
            ticket: int = await conn.fetchval(
                f"INSERT INTO {self._waiters} (key, ticket, expires) "
                f"VALUES ($1, nextval('{self._tickets}'), "
                "clock_timestamp() + make_interval(secs => $2)) RETURNING ticket",
                key,
                QUEUE_TTL_S,
            )
        return ticket

    async def _acquire(self, key: str, ticket: int, lease_s: float) -> int | None:
        async with self._storage.connection() as conn:
            first: bool = await conn.fetchval(
                f"WITH here AS (INSERT INTO {self._waiters} (key, ticket, expires) "
                "VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3)) "
                "ON CONFLICT (key, ticket) DO UPDATE SET expires = excluded.expires) "
                f"SELECT NOT EXISTS (SELECT 1 FROM {self._waiters} "
                "WHERE key = $1 AND ticket < $2 AND expires > clock_timestamp())",
                key,
                ticket,
                QUEUE_TTL_S,
            )
            if not first:
                return None
            fence: int | None = await conn.fetchval(
                f"INSERT INTO {self._table} AS held (key, owner, fence, expires) "
                f"VALUES ($1, $2, nextval('{self._sequence}'), "
                "clock_timestamp() + make_interval(secs => $3)) "
                "ON CONFLICT (key) DO UPDATE "
                "SET owner = excluded.owner, fence = excluded.fence, expires = excluded.expires "
                "WHERE held.expires < clock_timestamp() "
                "RETURNING fence",
                key,
                self.owner,
                float(lease_s),
            )
            if fence is not None:  # out of the line, and the places that lapsed with it
                await conn.execute(
                    f"DELETE FROM {self._waiters} "
                    "WHERE key = $1 AND (ticket = $2 OR expires < clock_timestamp())",
                    key,
                    ticket,
                )
        return fence

    async def _leave(self, key: str, ticket: int) -> None:
        async with self._storage.connection() as conn:
            await conn.execute(
                f"DELETE FROM {self._waiters} WHERE key = $1 AND ticket = $2", key, ticket
            )

    async def _renew(self, key: str, fence: int, lease_s: float) -> bool:
        async with self._storage.connection() as conn:
            status = await conn.execute(
                f"UPDATE {self._table} SET expires = clock_timestamp() + make_interval(secs => $3) "
                "WHERE key = $1 AND fence = $2",
                key,
                fence,
                float(lease_s),
            )
        return status == "UPDATE 1"

    async def _release(self, key: str, fence: int) -> None:
        async with self._storage.connection() as conn:
            await conn.execute(
                f"DELETE FROM {self._table} WHERE key = $1 AND fence = $2", key, fence
            )
