"""The SQLite backend (sqlite:///path.db, `SqliteBackend`): bot state (storage.py), conversation
locks, the inbox and the rate limit's counts in one SQLite file (WAL mode), shared by the
processes on one machine that open it; the knowledge index can live in the same file
(knowledge.py: it needs numpy, so it is imported where it is used). Each object runs its sqlite3
calls on a worker thread of its own (worker.py).
"""

from bot.storage.sqlite.backend import SqliteBackend
from bot.storage.sqlite.inbox import SqliteInbox
from bot.storage.sqlite.locks import SqliteLocks
from bot.storage.sqlite.rate_counts import SqliteRateCounts
from bot.storage.sqlite.storage import SqliteStorage

__all__ = ["SqliteBackend", "SqliteInbox", "SqliteLocks", "SqliteRateCounts", "SqliteStorage"]
