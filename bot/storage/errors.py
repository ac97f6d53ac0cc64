"""Errors raised by botloom's storages."""

from __future__ import annotations


class StorageConflictError(Exception):
    """A write carried an etag that no longer matches the stored item (optimistic concurrency).

    `expected` is the etag the write carried; `actual` is the stored one, or None when the item
    no longer exists. The caller should re-read and retry, or give up.
    """

    def __init__(self, key: str, expected: str, actual: str | None) -> None:
        stored = f"the stored etag is {actual!r}" if actual is not None else "it no longer exists"
        super().__init__(f"etag conflict on {key!r}: the write expected {expected!r} but {stored}")
        self.key = key
        self.expected = expected
        self.actual = actual
