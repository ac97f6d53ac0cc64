"""The SQLite backend: bot state, conversation locks, the inbox and the rate limit's counts in one
SQLite file (WAL mode), shared by the processes on one machine that open it. The knowledge index
can live in the same file (`bot.storage.sqlite.knowledge`, which needs numpy and is imported only
where it is used). Each object's sqlite3 calls run on its own worker thread (`worker.py`).
"""

from bot.storage.sqlite.backend import SqliteBackend
from bot.storage.sqlite.inbox import SqliteInbox
from bot.storage.sqlite.locks import SqliteLocks
from bot.storage.sqlite.rate_counts import SqliteRateCounts
from bot.storage.sqlite.storage import SqliteStorage

__all__ = ["SqliteBackend", "SqliteInbox", "SqliteLocks", "SqliteRateCounts", "SqliteStorage"]
