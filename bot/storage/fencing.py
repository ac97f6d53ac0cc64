"""Fencing tokens: which lock the running turn holds, so a store can refuse a stale holder's writes.

A lease lock (bot/storage/leases.py) sets the fence for the code inside `hold(...)`: the turn's
task and the tasks it starts. A storage that shares the lock's database checks, in the same
transaction as the write, that the lock still carries that fence, and raises `LockLost` if not.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class Fence:
    store: object  # the storage whose database holds the lock; other storages ignore the fence
    key: str  # the lock's key (the conversation key)
    token: int  # grows with every acquisition of any lock in that database


_current: ContextVar[Fence | None] = ContextVar("botloom_fence", default=None)


def current_fence(store: object) -> Fence | None:
    """The fence the running code holds in `store`'s database, if any."""
    fence = _current.get()
    return fence if fence is not None and fence.store is store else None


@contextmanager
def fenced(fence: Fence) -> Iterator[None]:
    token = _current.set(fence)
    try:
        yield
    finally:
        _current.reset(token)
