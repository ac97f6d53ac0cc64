"""Per-user activity counts in fixed windows, kept where the state lives so replicas share them.

`hit(key, window, ttl_s)` adds one to `key`'s count in the numbered `window` and returns the
count after it, in one atomic step: SQLite (an upsert in the state file), PostgreSQL (an upsert in
`<namespace>_rate_counts`), Redis (INCR on `<namespace>:rate:<window>:<key>`, expiring after
`ttl_s`), or this process's memory. Counts of past windows are dropped as new windows start.
Errors reaching a database are StorageUnavailable, as for the state itself.
"""

from __future__ import annotations

from typing import Protocol


class RateCounts(Protocol):
    async def hit(self, key: str, window: int, ttl_s: float) -> int:
        """One more for `key` in `window`; the count so far, this one included."""

    async def close(self) -> None:
        """Release what the counts hold (not the storage's connections)."""
