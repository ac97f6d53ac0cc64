"""The memory backend (memory://, `MemoryBackend`): bot state in botbuilder's `MemoryStorage`,
the inbox and rate counts beside it in this process, all lost when it exits. One process only, so
its locks are no-ops (the TurnRunner's queue orders a conversation's turns). It keeps no
knowledge index; the knowledge setup then uses an in-memory SQLite one.
"""

from bot.storage.memory.backend import MemoryBackend
from bot.storage.memory.inbox import MemoryInbox
from bot.storage.memory.locks import LocalLocks
from bot.storage.memory.rate_counts import MemoryRateCounts

__all__ = [
    "LocalLocks",
    "MemoryBackend",
    "MemoryInbox",
    "MemoryRateCounts",
]
