"""The PostgreSQL backend (postgresql://…, `PostgresBackend`), for several replicas: bot state
(storage.py, with its schema migrations), conversation leases, the inbox and the rate limit's
counts in tables named `<namespace>_…`, through one asyncpg pool per process; the knowledge index
can live in the same database (knowledge.py, with pgvector's HNSW search in pgvector.py; it needs
numpy, so it is imported where it is used).
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
