"""The PostgreSQL backend, for several replicas: bot state, conversation leases, the inbox and the
rate limit's counts in tables named `<namespace>_…`, reached through an asyncpg pool per process.
The knowledge index can live in the same database (`bot.storage.postgres.knowledge`, which needs
numpy and is imported only where it is used; pgvector's HNSW index where the server has it).
"""

from bot.storage.postgres.backend import PostgresBackend
from bot.storage.postgres.inbox import PostgresInbox
from bot.storage.postgres.locks import PostgresLocks
from bot.storage.postgres.rate_counts import PostgresRateCounts
from bot.storage.postgres.storage import PostgresStorage

__all__ = [
    "PostgresBackend",
    "PostgresInbox",
    "PostgresLocks",
    "PostgresRateCounts",
    "PostgresStorage",
]
