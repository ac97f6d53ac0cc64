"""The memory backend (see `MemoryBackend`)."""

from __future__ import annotations

from botbuilder.core import MemoryStorage, Storage

from bot.storage.backend import Backend
from bot.storage.leases import DEFAULT_LEASE_S
from bot.storage.memory.inbox import MemoryInbox
from bot.storage.memory.locks import LocalLocks
from bot.storage.memory.rate_counts import MemoryRateCounts


class MemoryBackend(Backend):
    """State in this process: botbuilder's `MemoryStorage` by default, or any storage that is not
    one of botloom's (`bot.storage.backend_of`). Its locks are no-ops (one process: the
    TurnRunner's queue orders turns) and `lease_s` is ignored; the inbox and the counts are in
    memory, lost with the process as the state is."""

    scheme = "memory"

    def __init__(self, storage: Storage | None = None) -> None:
        super().__init__(storage if storage is not None else MemoryStorage())

    def locks(self, *, lease_s: float = DEFAULT_LEASE_S) -> LocalLocks:
        return LocalLocks()

    def inbox(self) -> MemoryInbox:
        return MemoryInbox()

    def rate_counts(self) -> MemoryRateCounts:
        return MemoryRateCounts()
